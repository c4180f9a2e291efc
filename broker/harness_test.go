package broker_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/broker"
	"github.com/hearth-iot/hearth/broker/codec"
	"github.com/hearth-iot/hearth/storage"
)

// waitTimeout bounds every wait for something the broker does
// asynchronously. It is generous: the suite runs with -race on small,
// noisy machines.
const waitTimeout = 10 * time.Second

// brokerOpts configures startBroker.
type brokerOpts struct {
	Limits broker.Limits
	// Store is passed to storage.Open; the harness sets OnCommit and
	// OnError to the broker's metrics.
	Store storage.Options
	// MQTTTLS and HTTPTLS, when set, make the listeners serve TLS.
	MQTTTLS, HTTPTLS broker.TLS
	// Records bounds records (broker.Config.Records).
	Records broker.Records
	// MQTTCodec and HTTPCodec are the listeners' default codecs, for
	// clients that declare none; zero means JSON.
	MQTTCodec, HTTPCodec codec.Codec
	// RPC, PresenceKeepOffline, Auth and LoginLimit are broker.Config's.
	RPC                 broker.RPC
	PresenceKeepOffline time.Duration
	Auth                broker.Authenticator
	LoginLimit          broker.LoginLimiter
}

// testBroker is an in-process Hearth broker on random loopback ports, with
// its store in a temporary directory that survives restart.
type testBroker struct {
	opts brokerOpts
	Dir  string
	logs *logBuffer
	log  *slog.Logger

	B        *broker.Broker
	Store    *storage.Store
	Metrics  *broker.Metrics
	MQTTAddr string
	HTTPAddr string
	running  bool

	mu      sync.Mutex
	closers []func() // of the clients connected to this broker
}

// brokers finds the running test broker of an address ("host:port"), so
// that client helpers can register their clients with it.
var brokers sync.Map

// trackClient registers close, which disconnects a client connected to
// addr, with the broker listening there.
func trackClient(addr string, close func()) {
	if v, ok := brokers.Load(addr); ok {
		tb := v.(*testBroker)
		tb.mu.Lock()
		tb.closers = append(tb.closers, close)
		tb.mu.Unlock()
	}
}

// disconnectClients disconnects every client the helpers connected, then
// waits (a few seconds at most) until the broker has finished with their
// connections. mochi v2.7.9 can deadlock in Server.Close when a client's
// connection ends while Close lists a listener's clients (Clients.
// GetByListener takes the read lock twice): stop avoids that race, which is
// not what most tests are about.
func (tb *testBroker) disconnectClients(t testing.TB) {
	t.Helper()
	tb.mu.Lock()
	closers := tb.closers
	tb.closers = nil
	tb.mu.Unlock()
	for i := len(closers) - 1; i >= 0; i-- {
		closers[i]()
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if v, ok := tb.scrape(t)["hearth_connections"]; ok && v == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startBroker starts a broker and stops it when the test ends. On failure
// the test log shows everything the broker logged.
func startBroker(t testing.TB, opts brokerOpts) *testBroker {
	t.Helper()
	tb := &testBroker{opts: opts, Dir: t.TempDir(), logs: &logBuffer{}}
	tb.log = slog.New(slog.NewTextHandler(tb.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	t.Cleanup(func() {
		if tb.running {
			tb.disconnectClients(t)
			if err := tb.shutdown(); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
		if t.Failed() {
			t.Logf("broker log:\n%s", tb.logs.String())
		}
	})
	tb.open(t)
	return tb
}

func (tb *testBroker) dbPath() string { return filepath.Join(tb.Dir, "hearth.db") }

// open opens the store in tb.Dir and starts a broker on it, on new ports.
func (tb *testBroker) open(t testing.TB) {
	t.Helper()
	m := broker.NewMetrics(tb.log)
	so := tb.opts.Store
	so.OnCommit = m.ObserveCommit
	so.OnError = m.StoreError
	st, err := storage.Open(tb.dbPath(), so)
	if err != nil {
		t.Fatalf("storage.Open: %v", err)
	}
	b, err := broker.New(broker.Config{
		MQTT:                broker.Listener{Addr: "127.0.0.1:0", TLS: tb.opts.MQTTTLS, Codec: tb.opts.MQTTCodec},
		HTTP:                broker.Listener{Addr: "127.0.0.1:0", TLS: tb.opts.HTTPTLS, Codec: tb.opts.HTTPCodec},
		Limits:              tb.opts.Limits,
		Records:             tb.opts.Records,
		RPC:                 tb.opts.RPC,
		PresenceKeepOffline: tb.opts.PresenceKeepOffline,
		Auth:                tb.opts.Auth,
		LoginLimit:          tb.opts.LoginLimit,
		Logger:              tb.log,
	}, st, m)
	if err != nil {
		_ = st.Close()
		t.Fatalf("broker.New: %v", err)
	}
	if err := b.Start(); err != nil {
		_ = st.Close()
		t.Fatalf("Start: %v", err)
	}
	tb.B, tb.Store, tb.Metrics = b, st, m
	tb.MQTTAddr, tb.HTTPAddr = b.MQTTAddr(), b.HTTPAddr()
	tb.running = true
	brokers.Store(tb.MQTTAddr, tb)
	brokers.Store(tb.HTTPAddr, tb)
}

// shutdown stops the broker with a 5s budget, then closes (flushes) the
// store. It returns the first error. Connected clients stay connected until
// the broker disconnects them.
func (tb *testBroker) shutdown() error {
	tb.running = false
	brokers.Delete(tb.MQTTAddr)
	brokers.Delete(tb.HTTPAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := tb.B.Shutdown(ctx)
	if cerr := tb.Store.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("store close: %w", cerr)
	} else if err != nil {
		err = fmt.Errorf("shutdown: %w", err)
	}
	return err
}

// stop disconnects the clients, shuts the broker down, and fails the test
// if that fails.
func (tb *testBroker) stop(t testing.TB) {
	t.Helper()
	tb.disconnectClients(t)
	if err := tb.shutdown(); err != nil {
		t.Fatal(err)
	}
}

// restart stops the broker, reopens the same data directory, and starts a
// new broker on new ports. Clients must reconnect to the new addresses.
func (tb *testBroker) restart(t testing.TB) {
	t.Helper()
	tb.stop(t)
	tb.open(t)
}

// waitLog waits for a log line holding every one of parts, and returns it.
func (tb *testBroker) waitLog(t testing.TB, parts ...string) string {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		if line, ok := tb.logs.find(parts...); ok {
			return line
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %q within %s", parts, waitTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logCount counts the log lines holding every one of parts.
func (tb *testBroker) logCount(parts ...string) int {
	n := 0
	for _, line := range tb.logs.lines() {
		if hasAll(line, parts) {
			n++
		}
	}
	return n
}

func hasAll(line string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(line, p) {
			return false
		}
	}
	return true
}

// logBuffer collects the broker's log; slog handlers write from many
// goroutines, tests read it concurrently.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) lines() []string {
	return strings.Split(l.String(), "\n")
}

func (l *logBuffer) find(parts ...string) (string, bool) {
	for _, line := range l.lines() {
		if hasAll(line, parts) {
			return line, true
		}
	}
	return "", false
}

// httpGet fetches path from the broker's HTTP listener.
func (tb *testBroker) httpGet(t testing.TB, path string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	scheme := "http://"
	if tb.opts.HTTPTLS.Enabled() {
		// The test's own self-signed certificate; TestTLS checks verification.
		scheme = "https://"
		c.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	}
	resp, err := c.Get(scheme + tb.HTTPAddr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", path, err)
	}
	return resp.StatusCode, string(body)
}

// scrape reads /metrics into series -> value, where a series is written as
// in the text format: `name{label="value"}` or `name`.
func (tb *testBroker) scrape(t testing.TB) map[string]float64 {
	t.Helper()
	code, body := tb.httpGet(t, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: status %d", code)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("metrics: bad line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics: bad value in %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// metric returns one series from /metrics, failing if it is absent.
func (tb *testBroker) metric(t testing.TB, series string) float64 {
	t.Helper()
	v, ok := tb.scrape(t)[series]
	if !ok {
		t.Fatalf("metrics: no series %s", series)
	}
	return v
}

// waitMetric polls /metrics until series satisfies ok, and returns its
// value. Counters updated when a connection ends lag the client's view.
func (tb *testBroker) waitMetric(t testing.TB, series string, want string, ok func(float64) bool) float64 {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		v, found := tb.scrape(t)[series]
		if found && ok(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("metric %s = %v (present %v), want %s", series, v, found, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func errorsSeries(kind string) string { return `hearth_errors_total{kind="` + kind + `"}` }

// inspectStore opens the stopped broker's data file, passes it to fn, and
// closes it again.
func (tb *testBroker) inspectStore(t testing.TB, fn func(*storage.Store)) {
	t.Helper()
	if tb.running {
		t.Fatal("inspectStore: the broker is running")
	}
	st, err := storage.Open(tb.dbPath(), storage.Options{})
	if err != nil {
		t.Fatalf("inspectStore: %v", err)
	}
	defer func() {
		if err := st.Close(); err != nil {
			t.Errorf("inspectStore: close: %v", err)
		}
	}()
	fn(st)
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
