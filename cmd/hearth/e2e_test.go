package main

// End-to-end tests: they build the hearth binary once (TestMain), run it as a
// child process on loopback ports the kernel picks, and talk to it with the
// mosquitto command-line clients and the paho Go clients.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	pahov3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/hearth-iot/hearth/storage"
	bolt "go.etcd.io/bbolt"
)

// The binary is stamped like the Makefile does, so that TestVersion checks
// the -X flags reach versionString.
const (
	testVersion = "v0.0.0-e2e"
	testCommit  = "e2e0c0ffee"
)

var (
	hearthBin      string // the binary TestMain built
	hearthBuildErr error
)

func TestMain(m *testing.M) {
	flag.Parse()
	// Fuzzing workers run only the fuzz target: they need no binary.
	if f := flag.Lookup("test.fuzzworker"); f != nil && f.Value.String() == "true" {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "hearth-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: temp dir:", err)
		os.Exit(1)
	}
	hearthBin, hearthBuildErr = buildHearth(dir)
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// buildHearth builds this package into dir with the go command that runs the
// tests (go test puts its own GOROOT/bin first on PATH).
func buildHearth(dir string) (string, error) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("go command not found: %w", err)
	}
	bin := filepath.Join(dir, "hearth")
	ldflags := "-X main.version=" + testVersion + " -X main.commit=" + testCommit
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// -buildvcs=false as in the Makefile: the commit comes from ldflags.
	cmd := exec.CommandContext(ctx, goTool, "build", "-buildvcs=false", "-ldflags", ldflags, "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %w\n%s", err, out)
	}
	return bin, nil
}

func hearthBinary(t *testing.T) string {
	t.Helper()
	if hearthBin == "" {
		t.Fatalf("hearth binary not built: %v", hearthBuildErr)
	}
	return hearthBin
}

// logBuffer collects a process's output; it is safe for concurrent use and
// lets a reader wait for a pattern.
type logBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed on the next write
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if b.changed != nil {
		close(b.changed)
		b.changed = nil
	}
	return len(p), nil
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitUntil waits until cond holds for the output; it reports false after
// timeout, or once stop is closed and cond still does not hold.
func (b *logBuffer) waitUntil(cond func(out string) bool, timeout time.Duration, stop <-chan struct{}) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		b.mu.Lock()
		if cond(b.buf.String()) {
			b.mu.Unlock()
			return true
		}
		if b.changed == nil {
			b.changed = make(chan struct{})
		}
		changed := b.changed
		b.mu.Unlock()
		select {
		case <-changed:
		case <-stop:
			return cond(b.String())
		case <-deadline.C:
			return false
		}
	}
}

// waitFor waits until re matches the output and returns the match, or nil
// (see waitUntil).
func (b *logBuffer) waitFor(re *regexp.Regexp, timeout time.Duration, stop <-chan struct{}) []string {
	var m []string
	b.waitUntil(func(out string) bool {
		m = re.FindStringSubmatch(out)
		return m != nil
	}, timeout, stop)
	return m
}

// hearth is a running `hearth serve` child process.
type hearth struct {
	t       *testing.T
	DataDir string
	MQTT    string // bound MQTT address, 127.0.0.1:PORT
	HTTP    string // bound HTTP address
	cmd     *exec.Cmd
	log     logBuffer     // stdout and stderr
	exited  chan struct{} // closed when the process has been waited for
	code    int           // exit code, -1 if killed by a signal; set before exited closes
}

var servingLine = regexp.MustCompile(`msg="hearth broker serving" mqtt=(\S+) http=(\S+)`)

// startHearth starts `hearth serve` on loopback ports the kernel picks, with
// its data in dataDir, and waits until it serves. The process is killed when
// the test ends if it is still running.
func startHearth(t *testing.T, dataDir string, extraArgs ...string) *hearth {
	t.Helper()
	args := append([]string{"serve", "--mqtt", "127.0.0.1:0", "--http", "127.0.0.1:0", "--data", dataDir}, extraArgs...)
	h := &hearth{t: t, DataDir: dataDir, exited: make(chan struct{})}
	h.cmd = exec.Command(hearthBinary(t), args...)
	h.cmd.Stdout = &h.log
	h.cmd.Stderr = &h.log
	if err := h.cmd.Start(); err != nil {
		t.Fatalf("start hearth: %v", err)
	}
	go func() {
		_ = h.cmd.Wait()
		h.code = h.cmd.ProcessState.ExitCode()
		close(h.exited)
	}()
	t.Cleanup(func() {
		if h.running() {
			_ = h.cmd.Process.Kill()
			select {
			case <-h.exited:
			case <-time.After(15 * time.Second):
				t.Errorf("hearth pid %d did not exit after SIGKILL", h.cmd.Process.Pid)
			}
		}
		if t.Failed() {
			t.Logf("hearth %v output:\n%s", args, h.log.String())
		}
	})
	m := h.log.waitFor(servingLine, 30*time.Second, h.exited)
	if m == nil {
		if h.running() {
			t.Fatalf("hearth did not log that it serves within 30s:\n%s", h.log.String())
		}
		t.Fatalf("hearth exited with code %d before serving:\n%s", h.code, h.log.String())
	}
	h.MQTT, h.HTTP = m[1], m[2]
	for _, a := range []string{h.MQTT, h.HTTP} {
		if host, _, err := net.SplitHostPort(a); err != nil || host != "127.0.0.1" {
			t.Fatalf("serving line has address %q, want 127.0.0.1:PORT", a)
		}
	}
	return h
}

func (h *hearth) running() bool {
	select {
	case <-h.exited:
		return false
	default:
		return true
	}
}

// Log is the process's output so far.
func (h *hearth) Log() string { return h.log.String() }

// WaitLog waits up to 15s for the output to match pattern.
func (h *hearth) WaitLog(pattern string) {
	h.t.Helper()
	if h.log.waitFor(regexp.MustCompile(pattern), 15*time.Second, h.exited) == nil {
		h.t.Fatalf("hearth output never matched %q:\n%s", pattern, h.Log())
	}
}

// WaitDisconnected waits up to 15s until every connection of client id that
// the broker logged as connected is logged as disconnected too.
func (h *hearth) WaitDisconnected(id string) {
	h.t.Helper()
	q := regexp.QuoteMeta(id)
	connected := regexp.MustCompile(`msg="client connected" client=` + q + ` `)
	disconnected := regexp.MustCompile(`msg="client disconnected[^"]*" client=` + q + ` `)
	ok := h.log.waitUntil(func(out string) bool {
		n := len(connected.FindAllStringIndex(out, -1))
		return n > 0 && len(disconnected.FindAllStringIndex(out, -1)) == n
	}, 15*time.Second, h.exited)
	if !ok {
		h.t.Fatalf("hearth did not log the disconnection of %s within 15s:\n%s", id, h.Log())
	}
}

func (h *hearth) signal(sig os.Signal) {
	h.t.Helper()
	if err := h.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		h.t.Fatalf("signal %v: %v", sig, err)
	}
}

// wait waits up to d for the process to exit and returns its exit code.
func (h *hearth) wait(d time.Duration, what string) int {
	h.t.Helper()
	select {
	case <-h.exited:
		return h.code
	case <-time.After(d):
		_ = h.cmd.Process.Kill()
		<-h.exited
		h.t.Fatalf("hearth did not exit within %v after %s", d, what)
		return -1
	}
}

// Stop sends SIGTERM and returns the exit code; it fails the test if the
// process takes longer than 15s.
func (h *hearth) Stop() int {
	h.t.Helper()
	h.signal(syscall.SIGTERM)
	return h.wait(15*time.Second, "SIGTERM")
}

// Kill sends SIGKILL and waits for the process to be gone.
func (h *hearth) Kill() {
	h.t.Helper()
	h.signal(syscall.SIGKILL)
	if code := h.wait(15*time.Second, "SIGKILL"); code != -1 {
		h.t.Fatalf("hearth exited with code %d before SIGKILL", code)
	}
}

// runHearth runs the binary to completion and returns its output and exit code.
func runHearth(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runHearthIn(t, "", "", args...)
}

// runHearthIn is runHearth in directory dir ("" for this one), with stdin.
func runHearthIn(t *testing.T, dir, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, hearthBinary(t), args...)
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("hearth %q: %v", args, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("hearth %q did not finish within 30s", args)
	}
	return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
}

func TestVersion(t *testing.T) {
	want := fmt.Sprintf("hearth %s (commit %s) %s %s/%s\n", testVersion, testCommit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	for _, arg := range []string{"version", "--version", "-version"} {
		stdout, stderr, code := runHearth(t, arg)
		if code != 0 || stdout != want || stderr != "" {
			t.Errorf("hearth %s: code %d, stdout %q, stderr %q; want code 0, stdout %q", arg, code, stdout, stderr, want)
		}
	}
}

func TestCommandLine(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	missing := filepath.Join(dir, "missing.pem")
	badText := "limts:\n  max_clients: 3\nlog:\n  level: loud\nmqtt:\n  addr: nocolon\n  tls:\n    cert: " + missing +
		"\n    key: " + missing + "\nlimits:\n  max_clients: lots\n  keepalive_min: 2h\n  keepalive_max: 1h\n  max_packet_size: 10\nstore:\n  max_size: 10\n"
	if err := os.WriteFile(bad, []byte(badText), 0o600); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte(fullConfig), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("check reports every problem", func(t *testing.T) {
		stdout, stderr, code := runHearth(t, "serve", "--check", "--config", bad)
		if code != 2 {
			t.Errorf("exit code %d, want 2", code)
		}
		if stdout != "" {
			t.Errorf("stdout %q, want nothing", stdout)
		}
		want := []string{
			"hearth: configuration has 9 problem(s):",
			"  " + bad + ":1: field limts not found in type main.fileConfig",
			"  " + bad + ":11: cannot unmarshal !!str `lots` into int64",
			"  " + bad + `:4:3: log.level: "loud" is not debug, info, warn or error`,
			"  " + bad + `:6:3: mqtt.addr: "nocolon" is not host:port (for all interfaces write :PORT)`,
			"  " + bad + ":8:5: mqtt.tls.cert: stat " + missing + ": no such file or directory",
			"  " + bad + ":9:5: mqtt.tls.key: stat " + missing + ": no such file or directory",
			"  " + bad + ":16:3: store.max_size: 10 is below 1 MiB",
			"  " + bad + ":14:3: limits.max_packet_size: 10 is outside 64 bytes .. 256 MiB",
			"  " + bad + ":12:3: limits.keepalive_min: 2h0m0s is above keepalive_max 1h0m0s",
		}
		lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
		if len(lines) != len(want) || lines[0] != want[0] {
			t.Errorf("stderr:\n%s\nwant the header and %d problem lines", stderr, len(want)-1)
		}
		for _, w := range want[1:] {
			if !slices.Contains(lines, w) {
				t.Errorf("stderr lacks the line\n%s\nstderr:\n%s", w, stderr)
			}
		}
	})
	t.Run("check with a flag problem", func(t *testing.T) {
		_, stderr, code := runHearth(t, "serve", "--check", "--http", "8080")
		if code != 2 || !strings.Contains(stderr, `  flag --http: http.addr: "8080" is not host:port`) {
			t.Errorf("code %d, stderr %q; want 2 and the flag's problem", code, stderr)
		}
	})
	t.Run("check with a good config", func(t *testing.T) {
		data := filepath.Join(dir, "data-never-created")
		stdout, stderr, code := runHearth(t, "serve", "--check", "--config", good, "--data", data)
		if code != 0 || stdout != "hearth: configuration ok\n" || stderr != "" {
			t.Errorf("code %d, stdout %q, stderr %q; want 0 and %q", code, stdout, stderr, "hearth: configuration ok\n")
		}
		if _, err := os.Stat(data); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("--check touched the data directory: stat: %v", err)
		}
	})
	t.Run("unknown command", func(t *testing.T) {
		stdout, stderr, code := runHearth(t, "frobnicate")
		if code != 2 || stdout != "" || !strings.HasPrefix(stderr, `hearth: unknown command "frobnicate"`) || !strings.Contains(stderr, "Usage:") {
			t.Errorf("code %d, stdout %q, stderr %q; want 2 and the usage on stderr", code, stdout, stderr)
		}
	})
	t.Run("no command", func(t *testing.T) {
		_, stderr, code := runHearth(t)
		if code != 2 || !strings.Contains(stderr, "Usage:") {
			t.Errorf("code %d, stderr %q; want 2 and the usage", code, stderr)
		}
	})
	t.Run("help", func(t *testing.T) {
		stdout, _, code := runHearth(t, "help")
		if code != 0 || !strings.Contains(stdout, "hearth serve [flags]") {
			t.Errorf("code %d, stdout %q; want 0 and the usage on stdout", code, stdout)
		}
	})
	t.Run("serve flags", func(t *testing.T) {
		if _, stderr, code := runHearth(t, "serve", "--bogus"); code != 2 || !strings.Contains(stderr, "-bogus") {
			t.Errorf("serve --bogus: code %d, stderr %q; want 2", code, stderr)
		}
		if _, stderr, code := runHearth(t, "serve", "-h"); code != 0 || !strings.Contains(stderr, "-mqtt address") {
			t.Errorf("serve -h: code %d, stderr %q; want 0 and the flags", code, stderr)
		}
		if _, stderr, code := runHearth(t, "serve", "stray"); code != 2 || !strings.Contains(stderr, `unexpected argument "stray"`) {
			t.Errorf("serve stray: code %d, stderr %q; want 2", code, stderr)
		}
	})
}

// requireMosquitto skips the test when the mosquitto clients are missing,
// unless CI is set: there they are required.
func requireMosquitto(t *testing.T) {
	t.Helper()
	for _, name := range []string{"mosquitto_pub", "mosquitto_sub", "stdbuf"} {
		if _, err := exec.LookPath(name); err != nil {
			msg := fmt.Sprintf("%s not found: install mosquitto-clients (and coreutils for stdbuf): %v", name, err)
			if os.Getenv("CI") != "" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
}

func hostPort(t *testing.T, addr string) []string {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return []string{"-h", host, "-p", port}
}

// mosquittoPub runs mosquitto_pub against addr; stdin feeds -l or -s.
func mosquittoPub(t *testing.T, addr, stdin string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "mosquitto_pub", append(hostPort(t, addr), args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.WaitDelay = 5 * time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub %q: %v\n%s", args, err, out)
	}
}

// message is one message a mosquitto_sub printed.
type message struct {
	Topic, Payload string
	QoS            int
	Retain         bool
}

func (m message) String() string {
	return fmt.Sprintf("%s=%q(q%d,r%v)", m.Topic, m.Payload, m.QoS, m.Retain)
}

// subscriber is a running mosquitto_sub. It runs under stdbuf -oL, since
// mosquitto_sub buffers stdout on a pipe and -d's "Subscribed" line must be
// seen when it is printed.
type subscriber struct {
	t          *testing.T
	args       []string
	cmd        *exec.Cmd
	subscribed chan struct{}
	exited     chan struct{}
	err        error // from Wait; set before exited closes
	stderr     logBuffer

	mu   sync.Mutex
	out  strings.Builder
	msgs []message
}

// msgFormat prints QoS, retain flag, topic and payload on one line.
const msgFormat = "MSG|%q|%r|%t|%p"

// startSub starts mosquitto_sub -d against addr with args. It is killed when
// the test ends if still running, and after 60s in any case.
func startSub(t *testing.T, addr string, args ...string) *subscriber {
	t.Helper()
	s := &subscriber{t: t, args: args, subscribed: make(chan struct{}), exited: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	full := append([]string{"-oL", "mosquitto_sub", "-d", "-F", msgFormat}, hostPort(t, addr)...)
	s.cmd = exec.CommandContext(ctx, "stdbuf", append(full, args...)...)
	s.cmd.Stderr = &s.stderr
	s.cmd.WaitDelay = 5 * time.Second
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start mosquitto_sub: %v", err)
	}
	go func() {
		defer cancel()
		s.read(stdout)
		s.err = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.exited:
		case <-time.After(15 * time.Second):
			t.Errorf("mosquitto_sub %q did not exit", args)
		}
	})
	return s
}

func (s *subscriber) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	once := sync.Once{}
	for sc.Scan() {
		line := sc.Text()
		s.mu.Lock()
		s.out.WriteString(line + "\n")
		if rest, ok := strings.CutPrefix(line, "MSG|"); ok {
			f := strings.SplitN(rest, "|", 4)
			if len(f) == 4 {
				qos, _ := strconv.Atoi(f[0])
				s.msgs = append(s.msgs, message{Topic: f[2], Payload: f[3], QoS: qos, Retain: f[1] == "1"})
			}
		}
		s.mu.Unlock()
		if strings.HasPrefix(line, "Subscribed (mid:") {
			once.Do(func() { close(s.subscribed) })
		}
	}
	_, _ = io.Copy(io.Discard, r)
}

func (s *subscriber) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String() + s.stderr.String()
}

// WaitSubscribed waits until the broker has acknowledged the subscription.
func (s *subscriber) WaitSubscribed() {
	s.t.Helper()
	select {
	case <-s.subscribed:
	case <-s.exited:
		s.t.Fatalf("mosquitto_sub %q exited (%v) before subscribing:\n%s", s.args, s.err, s.output())
	case <-time.After(20 * time.Second):
		s.t.Fatalf("mosquitto_sub %q not subscribed after 20s:\n%s", s.args, s.output())
	}
}

// Messages waits for mosquitto_sub to exit (-C) and returns what it printed;
// it fails the test unless it exited 0 with exactly n messages.
func (s *subscriber) Messages(n int) []message {
	s.t.Helper()
	select {
	case <-s.exited:
	case <-time.After(45 * time.Second):
		s.t.Fatalf("mosquitto_sub %q still running after 45s:\n%s", s.args, s.output())
	}
	s.mu.Lock()
	msgs := slices.Clone(s.msgs)
	s.mu.Unlock()
	if s.err != nil || len(msgs) != n {
		s.t.Fatalf("mosquitto_sub %q: exit %v, %d messages %v, want %d:\n%s", s.args, s.err, len(msgs), msgs, n, s.output())
	}
	return msgs
}

// Signal sends sig and waits for mosquitto_sub to exit.
func (s *subscriber) Signal(sig os.Signal) {
	s.t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		s.t.Fatal(err)
	}
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
		s.t.Fatalf("mosquitto_sub %q did not exit on %v", s.args, sig)
	}
}

func wantMessages(t *testing.T, got []message, want ...message) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("messages\n  %v\nwant\n  %v", got, want)
	}
}

// sortMessages orders messages by topic, for deliveries from several
// publishers whose order between each other is not defined.
func sortMessages(m []message) []message {
	m = slices.Clone(m)
	slices.SortFunc(m, func(a, b message) int { return strings.Compare(a.Topic+"\x00"+a.Payload, b.Topic+"\x00"+b.Payload) })
	return m
}

func TestMosquittoPubSub(t *testing.T) {
	requireMosquitto(t)
	h := startHearth(t, t.TempDir())
	t.Run("group", func(t *testing.T) {
		for _, v := range []string{"mqttv311", "mqttv5"} {
			for qos := 0; qos <= 2; qos++ {
				t.Run(fmt.Sprintf("%s/qos%d", v, qos), func(t *testing.T) {
					t.Parallel()
					q := strconv.Itoa(qos)
					topic := fmt.Sprintf("e2e/%s/qos%d", v, qos)
					sub := startSub(t, h.MQTT, "-V", v, "-q", q, "-t", topic, "-C", "3", "-W", "30")
					sub.WaitSubscribed()
					// One connection publishes all three: their order is kept.
					mosquittoPub(t, h.MQTT, "m1\nm2\nm3\n", "-V", v, "-q", q, "-t", topic, "-l")
					got := sub.Messages(3)
					var want []message
					for _, p := range []string{"m1", "m2", "m3"} {
						want = append(want, message{Topic: topic, Payload: p, QoS: qos})
					}
					wantMessages(t, got, want...)
				})
			}
			t.Run(v+"/wildcards", func(t *testing.T) {
				t.Parallel()
				base := "wild/" + v
				plus := startSub(t, h.MQTT, "-V", v, "-q", "1", "-t", base+"/a/+/c", "-C", "2", "-W", "30")
				hash := startSub(t, h.MQTT, "-V", v, "-q", "1", "-t", base+"/h/#", "-C", "3", "-W", "30")
				plus.WaitSubscribed()
				hash.WaitSubscribed()
				for _, tp := range []string{"a/b/c", "a/x/y", "a/z/c", "a/b/c/d", "h", "h/1", "h/1/2", "hx/1"} {
					mosquittoPub(t, h.MQTT, "", "-V", v, "-q", "1", "-t", base+"/"+tp, "-m", tp)
				}
				wantMessages(t, sortMessages(plus.Messages(2)),
					message{Topic: base + "/a/b/c", Payload: "a/b/c", QoS: 1},
					message{Topic: base + "/a/z/c", Payload: "a/z/c", QoS: 1})
				wantMessages(t, sortMessages(hash.Messages(3)),
					message{Topic: base + "/h", Payload: "h", QoS: 1},
					message{Topic: base + "/h/1", Payload: "h/1", QoS: 1},
					message{Topic: base + "/h/1/2", Payload: "h/1/2", QoS: 1})
			})
			t.Run(v+"/retained on subscribe", func(t *testing.T) {
				t.Parallel()
				base := "ret/" + v
				mosquittoPub(t, h.MQTT, "", "-V", v, "-q", "1", "-r", "-t", base+"/a", "-m", "first")
				mosquittoPub(t, h.MQTT, "", "-V", v, "-q", "1", "-r", "-t", base+"/a", "-m", "second")
				// Nothing acknowledges QoS 0: once the broker has logged the
				// DISCONNECT that follows the PUBLISH, it has processed it.
				mosquittoPub(t, h.MQTT, "", "-V", v, "-q", "0", "-r", "-t", base+"/b", "-m", "qos0 retained", "-i", "e2e-q0-"+v)
				h.WaitDisconnected("e2e-q0-" + v)
				mosquittoPub(t, h.MQTT, "", "-V", v, "-q", "1", "-r", "-t", base+"/gone", "-m", "cleared next")
				mosquittoPub(t, h.MQTT, "", "-V", v, "-q", "1", "-r", "-t", base+"/gone", "-n")
				one := startSub(t, h.MQTT, "-V", v, "-q", "1", "-t", base+"/a", "-C", "1", "-W", "30")
				wantMessages(t, one.Messages(1), message{Topic: base + "/a", Payload: "second", QoS: 1, Retain: true})
				all := startSub(t, h.MQTT, "-V", v, "-q", "1", "-t", base+"/#", "-C", "2", "-W", "30")
				wantMessages(t, sortMessages(all.Messages(2)),
					message{Topic: base + "/a", Payload: "second", QoS: 1, Retain: true},
					message{Topic: base + "/b", Payload: "qos0 retained", QoS: 0, Retain: true})
			})
			t.Run(v+"/will", func(t *testing.T) {
				t.Parallel()
				will := "will/" + v
				watcher := startSub(t, h.MQTT, "-V", v, "-q", "1", "-t", will, "-C", "1", "-W", "30")
				watcher.WaitSubscribed()
				dying := startSub(t, h.MQTT, "-V", v, "-t", "will/unused/"+v,
					"--will-topic", will, "--will-payload", "gone", "--will-qos", "1")
				dying.WaitSubscribed()
				dying.Signal(syscall.SIGKILL)
				wantMessages(t, watcher.Messages(1), message{Topic: will, Payload: "gone", QoS: 1})
			})
		}
	})
	if code := h.Stop(); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
}

func TestPersistentSessionAcrossRestart(t *testing.T) {
	requireMosquitto(t)
	dir := t.TempDir()
	h := startHearth(t, dir)
	sessions := []struct {
		name, id, topic string
		args            []string
	}{
		{"mqttv311", "e2e-persist-311", "persist/311", []string{"-V", "mqttv311", "-c"}},
		{"mqttv5", "e2e-persist-5", "persist/5", []string{"-V", "mqttv5", "-c", "-x", "3600"}},
	}
	subArgs := func(i int, extra ...string) []string {
		s := sessions[i]
		return append(append(slices.Clone(s.args), "-i", s.id, "-q", "1", "-t", s.topic), extra...)
	}
	for i, s := range sessions {
		sub := startSub(t, h.MQTT, subArgs(i)...)
		sub.WaitSubscribed()
		// Not SIGTERM: mosquitto_sub 2.0.11 was seen to hang on it now
		// and then; a lost connection keeps a persistent session just as
		// well.
		sub.Signal(syscall.SIGKILL)
		h.WaitDisconnected(s.id)
	}
	for _, s := range sessions {
		for n := 1; n <= 3; n++ {
			mosquittoPub(t, h.MQTT, "", "-q", "1", "-t", s.topic, "-m", fmt.Sprintf("%s-%d", s.name, n))
		}
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	if !strings.Contains(h.Log(), "store flushed and closed") {
		t.Errorf("log lacks %q", "store flushed and closed")
	}

	h = startHearth(t, dir)
	for i, s := range sessions {
		t.Run(s.name, func(t *testing.T) {
			sub := startSub(t, h.MQTT, subArgs(i, "-C", "3", "-W", "20")...)
			var want []message
			for n := 1; n <= 3; n++ {
				want = append(want, message{Topic: s.topic, Payload: fmt.Sprintf("%s-%d", s.name, n), QoS: 1})
			}
			// The order is TestQueuedMessagesKeepOrder's subject.
			wantMessages(t, sortMessages(sub.Messages(3)), want...)
		})
	}
	if code := h.Stop(); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
}

// TestQueuedMessagesKeepOrder: QoS 1 messages queued for an offline
// persistent session are delivered in the order they were published
// [MQTT-4.6.0-1], both on a plain reconnect and after a broker restart.
func TestQueuedMessagesKeepOrder(t *testing.T) {
	requireMosquitto(t)
	const n = 20
	dir := t.TempDir()
	h := startHearth(t, dir)
	var lines strings.Builder
	var want []message
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&lines, "msg-%02d\n", i)
		want = append(want, message{Topic: "order/q", Payload: fmt.Sprintf("msg-%02d", i), QoS: 1})
	}
	queue := func() {
		t.Helper()
		sub := startSub(t, h.MQTT, "-c", "-i", "e2e-order", "-q", "1", "-t", "order/q")
		sub.WaitSubscribed()
		sub.Signal(syscall.SIGKILL)
		h.WaitDisconnected("e2e-order")
		mosquittoPub(t, h.MQTT, lines.String(), "-q", "1", "-t", "order/q", "-l")
	}
	receive := func() []message {
		t.Helper()
		msgs := startSub(t, h.MQTT, "-c", "-i", "e2e-order", "-q", "1", "-t", "order/q", "-C", strconv.Itoa(n), "-W", "20").Messages(n)
		h.WaitDisconnected("e2e-order")
		return msgs
	}
	ordered := func(what string, got []message) {
		t.Helper()
		wantMessages(t, sortMessages(got), want...)
		if !slices.Equal(got, want) {
			t.Errorf("%s: the %d queued messages arrived out of order: %v", what, n, got)
		}
	}

	queue()
	ordered("reconnect", receive())

	queue()
	if code := h.Stop(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	h = startHearth(t, dir)
	ordered("reconnect after a restart", receive())
	if code := h.Stop(); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
}

func TestRetainedSurviveRestart(t *testing.T) {
	requireMosquitto(t)
	dir := t.TempDir()
	h := startHearth(t, dir)
	pub := func(args ...string) { mosquittoPub(t, h.MQTT, "", append([]string{"-r"}, args...)...) }
	pub("-q", "1", "-t", "keep/1", "-m", "one")
	pub("-q", "1", "-t", "keep/2", "-m", "two")
	pub("-q", "1", "-t", "keep/1", "-m", "one, updated")
	pub("-q", "2", "-t", "keep/3", "-m", "three at qos 2", "-V", "mqttv5")
	pub("-q", "0", "-t", "keep/4", "-m", "four at qos 0", "-i", "e2e-q0")
	h.WaitDisconnected("e2e-q0") // the PUBLISH came before the DISCONNECT
	pub("-q", "1", "-t", "keep/5", "-m", "deleted next")
	pub("-q", "1", "-t", "keep/5", "-n")
	// A retained will is stored too.
	dying := startSub(t, h.MQTT, "-t", "unused", "--will-topic", "keep/will", "--will-payload", "died", "--will-retain", "--will-qos", "1")
	dying.WaitSubscribed()
	dying.Signal(syscall.SIGKILL)
	h.WaitLog(`msg="will published" client=\S+ topic=keep/will retain=true`)
	if code := h.Stop(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}

	h = startHearth(t, dir)
	want := []message{
		{Topic: "keep/1", Payload: "one, updated", QoS: 1, Retain: true},
		{Topic: "keep/2", Payload: "two", QoS: 1, Retain: true},
		{Topic: "keep/3", Payload: "three at qos 2", QoS: 1, Retain: true},
		{Topic: "keep/4", Payload: "four at qos 0", QoS: 0, Retain: true},
		{Topic: "keep/will", Payload: "died", QoS: 1, Retain: true},
	}
	sub := startSub(t, h.MQTT, "-q", "1", "-t", "keep/#", "-C", strconv.Itoa(len(want)), "-W", "20")
	wantMessages(t, sortMessages(sub.Messages(len(want))), want...)
	if code := h.Stop(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}

	s := openTestStore(t, dir)
	defer closeTestStore(t, s)
	if r, ok, err := s.Retained("keep/5"); err != nil || ok {
		t.Errorf("keep/5, cleared with an empty retained publish: stored %v %+v, err %v", ok, r, err)
	}
	if r, ok, err := s.Retained("keep/1"); err != nil || !ok || r.Version != 2 || string(r.Message.Payload) != "one, updated" {
		t.Errorf("keep/1 = %+v, %v, %v; want version 2 with the updated payload", r, ok, err)
	}
}

func openTestStore(t *testing.T, dataDir string) *storage.Store {
	t.Helper()
	s, err := storage.Open(filepath.Join(dataDir, dbFile), storage.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("storage.Open: %v", err)
	}
	return s
}

func closeTestStore(t *testing.T, s *storage.Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Errorf("store close: %v", err)
	}
}

// connectV5 connects a paho MQTT 5 client to addr with a clean start.
func connectV5(t *testing.T, addr, clientID string, onServerDisconnect func(*paho.Disconnect)) *paho.Client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	c := paho.NewClient(paho.ClientConfig{
		ClientID:           clientID,
		Conn:               packets.NewThreadSafeConn(conn),
		OnServerDisconnect: onServerDisconnect,
		PacketTimeout:      15 * time.Second,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: clientID, KeepAlive: 60, CleanStart: true}); err != nil {
		t.Fatalf("paho connect %s to %s: %v", clientID, addr, err)
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return c
}

func TestShutdownDisconnectsClients(t *testing.T) {
	dir := t.TempDir()
	h := startHearth(t, dir)
	disconnects := make(chan *paho.Disconnect, 1)
	c := connectV5(t, h.MQTT, "e2e-shutdown", func(d *paho.Disconnect) { disconnects <- d })
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := c.Publish(ctx, &paho.Publish{Topic: "shutdown/kept", QoS: 1, Retain: true, Payload: []byte("before")}); err != nil {
		t.Fatalf("publish: %v", err)
	}

	if code := h.Stop(); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	select {
	case d := <-disconnects:
		if d.ReasonCode != 0x8B {
			t.Errorf("DISCONNECT reason 0x%02X, want 0x8B server shutting down", d.ReasonCode)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no DISCONNECT from the server within 15s of SIGTERM")
	}
	log := h.Log()
	for _, want := range []string{`msg="signal received: shutting down`, "store flushed and closed", `msg=stopped exit_code=0`} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	s := openTestStore(t, dir)
	defer closeTestStore(t, s)
	if r, ok, err := s.Retained("shutdown/kept"); err != nil || !ok || string(r.Message.Payload) != "before" {
		t.Errorf("retained shutdown/kept = %+v, %v, %v", r, ok, err)
	}
}

// TestShutdownWithIdleConnection: a TCP connection that never sends CONNECT
// has no session to save; it must not hold up a graceful shutdown, and
// shutdown_timeout bounds the shutdown in any case.
func TestShutdownWithIdleConnection(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "hearth.yaml")
	if err := os.WriteFile(cfg, []byte("shutdown_timeout: 2s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := startHearth(t, filepath.Join(dir, "data"), "--config", cfg)
	idle, err := net.DialTimeout("tcp", h.MQTT, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	connectV5(t, h.MQTT, "e2e-idle-neighbour", func(*paho.Disconnect) {})

	h.signal(syscall.SIGTERM)
	// shutdown_timeout is 2s: 10s is generous.
	select {
	case <-h.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("hearth still running 10s after SIGTERM with shutdown_timeout 2s, held up by a connection that never sent CONNECT " +
			"(broker.go Shutdown: b.srv.Close() waits for mochi's ClientsWg, which counts connections still reading their CONNECT, before ctx is consulted)")
	}
	if h.code != 0 {
		t.Errorf("exit code %d, want 0: a connection without CONNECT has no state to save", h.code)
	}
}

func TestSecondSignalExitsPromptly(t *testing.T) {
	dir := t.TempDir()
	h := startHearth(t, dir)
	// A connection that never sends CONNECT can slow the shutdown down
	// (see TestShutdownWithIdleConnection), giving the second signal
	// something to interrupt; the test holds either way.
	idle, err := net.DialTimeout("tcp", h.MQTT, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	for i := range 4 {
		c := connectV5(t, h.MQTT, fmt.Sprintf("e2e-second-%d", i), func(*paho.Disconnect) {})
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		_, err := c.Publish(ctx, &paho.Publish{Topic: fmt.Sprintf("second/%d", i), QoS: 1, Retain: true, Payload: []byte("acked")})
		cancel()
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	h.signal(syscall.SIGTERM)
	// Wait until the first signal is being handled, so that the second is
	// not merged with it by the kernel; then send it at once.
	h.log.waitFor(regexp.MustCompile(`signal received`), 10*time.Second, h.exited)
	h.signal(syscall.SIGTERM)
	code := h.wait(5*time.Second, "a second SIGTERM")
	switch code {
	case 0: // the clean shutdown finished first
	case 1:
		if !strings.Contains(h.Log(), "second signal: exiting without a clean shutdown") {
			t.Errorf("exit code 1 without the second-signal log line")
		}
	default:
		t.Errorf("exit code %d, want 0 or 1", code)
	}
	t.Logf("exit code %d after two SIGTERMs", code)

	s := openTestStore(t, dir)
	defer closeTestStore(t, s)
	for i := range 4 {
		topic := fmt.Sprintf("second/%d", i)
		if r, ok, err := s.Retained(topic); err != nil || !ok || string(r.Message.Payload) != "acked" {
			t.Errorf("retained %s = %+v, %v, %v; want the acknowledged value", topic, r, ok, err)
		}
	}
	if _, err := s.RetainedMessages(); err != nil {
		t.Errorf("RetainedMessages: %v", err)
	}
}

// TestServeStartupFailures: hearth serve exits 1 when it cannot start.
func TestServeStartupFailures(t *testing.T) {
	dir := t.TempDir()
	h := startHearth(t, dir)

	t.Run("address in use", func(t *testing.T) {
		_, stderr, code := runHearth(t, "serve", "--mqtt", h.MQTT, "--http", "127.0.0.1:0", "--data", t.TempDir())
		if code != 1 || !strings.Contains(stderr, "cannot create broker") || !strings.Contains(stderr, "address already in use") {
			t.Errorf("code %d, stderr:\n%s\nwant 1 and the bind error", code, stderr)
		}
	})
	t.Run("data directory under a file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(file, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		_, stderr, code := runHearth(t, "serve", "--mqtt", "127.0.0.1:0", "--http", "127.0.0.1:0", "--data", filepath.Join(file, "data"))
		if code != 1 || !strings.Contains(stderr, "cannot open store") {
			t.Errorf("code %d, stderr:\n%s\nwant 1 and the store error", code, stderr)
		}
	})
	t.Run("data directory in use", func(t *testing.T) {
		// The store waits 5s for the other process's lock, then gives up.
		_, stderr, code := runHearth(t, "serve", "--mqtt", "127.0.0.1:0", "--http", "127.0.0.1:0", "--data", dir)
		if code != 1 || !strings.Contains(stderr, "cannot open store") {
			t.Errorf("code %d, stderr:\n%s\nwant 1 and the store error", code, stderr)
		}
	})
	if code := h.Stop(); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
}

// checkBolt runs bbolt's consistency check on the store file.
func checkBolt(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("bolt open %s: %v", path, err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
	if err != nil {
		t.Fatalf("bbolt check of %s after SIGKILL: %v", path, err)
	}
}

// crashPublisher publishes retained QoS 1 messages to crash/<pub>/<n> with
// payload <pub>-<n> from several goroutines over one connection, and records
// each topic once its PUBACK has arrived.
type crashPublisher struct {
	id   int
	next atomic.Int64 // the next n, kept across rounds

	mu     sync.Mutex
	acked  map[string]string // topic -> payload
	latest string            // the acknowledged topic with the highest n
	maxN   int64
}

func (p *crashPublisher) run(ctx context.Context, c *paho.Client, window int, total *atomic.Int64, wg *sync.WaitGroup) {
	for range window {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := p.next.Add(1)
				topic := fmt.Sprintf("crash/%d/%d", p.id, n)
				payload := fmt.Sprintf("%d-%d", p.id, n)
				pubCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
				_, err := c.Publish(pubCtx, &paho.Publish{Topic: topic, QoS: 1, Retain: true, Payload: []byte(payload)})
				cancel()
				if err != nil {
					return // the broker is gone (or refused), or the round ended: stop
				}
				p.mu.Lock()
				p.acked[topic] = payload
				if n > p.maxN {
					p.maxN, p.latest = n, topic
				}
				p.mu.Unlock()
				total.Add(1)
			}
		}()
	}
}

// killWhileWriting SIGKILLs h while writers run: once minRun has passed and
// total counts 300 acknowledgements, or, on a slow machine, once slowAfter
// has passed with at least one; it fails if none comes within 1.5 times
// slowAfter. It then ends the writers (cancel: paho can wait for its
// PacketTimeout once the connection is gone; an acknowledgement already
// read still counts) and waits for wg. It returns how long the writers ran
// and the acknowledgements counted at the kill.
func killWhileWriting(t *testing.T, h *hearth, total *atomic.Int64, wg *sync.WaitGroup, cancel func(),
	minRun, slowAfter time.Duration, what string) (time.Duration, int64) {
	t.Helper()
	start := time.Now()
	for {
		n, d := total.Load(), time.Since(start)
		if d >= minRun && (n >= 300 || (n > 0 && d >= slowAfter)) {
			break
		}
		if d > slowAfter*3/2 {
			cancel()
			t.Fatalf("%s: nothing acknowledged within %s", what, slowAfter*3/2)
		}
		time.Sleep(5 * time.Millisecond)
	}
	killedAfter := time.Since(start)
	h.Kill()
	atKill := total.Load()
	cancel()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s still running 30s after SIGKILL", what)
	}
	return killedAfter, atKill
}

func TestCrashSafety(t *testing.T) {
	const (
		publishers = 8
		window     = 8 // concurrent publishes per connection
		rounds     = 3
		sample     = 24
	)
	dir := t.TempDir()
	path := filepath.Join(dir, dbFile)
	pubs := make([]*crashPublisher, publishers)
	for i := range pubs {
		pubs[i] = &crashPublisher{id: i, acked: map[string]string{}}
	}
	h := startHearth(t, dir)
	for round := 1; round <= rounds; round++ {
		var total atomic.Int64
		var wg sync.WaitGroup
		ctx, cancel := context.WithCancel(context.Background())
		for _, p := range pubs {
			c := connectV5(t, h.MQTT, fmt.Sprintf("e2e-crash-%d-%d", round, p.id), nil)
			p.run(ctx, c, window, &total, &wg)
		}
		// Kill while they publish: after 1.5s once there are 300
		// acknowledgements; on a slow machine, after 20s with fewer.
		killedAfter, atKill := killWhileWriting(t, h, &total, &wg, cancel,
			1500*time.Millisecond, 20*time.Second, fmt.Sprintf("round %d: publishers", round))

		acked := map[string]string{}
		var latest []string // acknowledged just before the kill: the most at risk
		for _, p := range pubs {
			p.mu.Lock()
			maps.Copy(acked, p.acked)
			if p.latest != "" {
				latest = append(latest, p.latest)
			}
			p.mu.Unlock()
		}
		t.Logf("round %d: SIGKILL after %v with %d acks this round (%d by the time publishers stopped), %d acked topics in all",
			round, killedAfter.Round(time.Millisecond), atKill, total.Load(), len(acked))

		checkBolt(t, path)
		s := openTestStore(t, dir)
		all, err := s.RetainedMessages()
		if err != nil {
			t.Fatalf("round %d: RetainedMessages after SIGKILL: %v", round, err)
		}
		if len(all) < len(acked) {
			t.Errorf("round %d: %d retained messages stored, fewer than the %d acknowledged", round, len(all), len(acked))
		}
		lost := 0
		for topic, payload := range acked {
			r, ok, err := s.Retained(topic)
			switch {
			case err != nil:
				t.Errorf("round %d: Retained(%s): %v", round, topic, err)
			case !ok:
				lost++
				if lost <= 10 {
					t.Errorf("round %d: acknowledged retained %s = %q is not in the store after SIGKILL", round, topic, payload)
				}
			case string(r.Message.Payload) != payload || r.Message.Topic != topic || !r.Message.Retain || r.Version != 1:
				t.Errorf("round %d: %s stored as %+v (version %d), want payload %q version 1", round, topic, r.Message, r.Version, payload)
			}
		}
		if lost > 0 {
			t.Errorf("round %d: %d of %d acknowledged retained messages lost", round, lost, len(acked))
		}
		closeTestStore(t, s)
		if t.Failed() {
			t.FailNow()
		}

		// The restarted broker serves the same values.
		h = startHearth(t, dir)
		topics := slices.Sorted(maps.Keys(acked))
		picked := latest
		for i := 0; i < len(topics) && len(picked) < sample+len(latest); i += max(1, len(topics)/sample) {
			if !slices.Contains(picked, topics[i]) {
				picked = append(picked, topics[i])
			}
		}
		t.Run(fmt.Sprintf("round %d sample via mosquitto_sub", round), func(t *testing.T) {
			requireMosquitto(t)
			args := []string{"-q", "1", "-C", strconv.Itoa(len(picked)), "-W", "20"}
			var want []message
			for _, topic := range picked {
				args = append(args, "-t", topic)
				want = append(want, message{Topic: topic, Payload: acked[topic], QoS: 1, Retain: true})
			}
			sub := startSub(t, h.MQTT, args...)
			wantMessages(t, sortMessages(sub.Messages(len(picked))), sortMessages(want)...)
		})
	}
	if code := h.Stop(); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
}

func TestHTTPEndpoints(t *testing.T) {
	h := startHearth(t, t.TempDir())
	client := &http.Client{Timeout: 10 * time.Second}
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := client.Get("http://" + h.HTTP + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		return resp.StatusCode, string(body)
	}
	if code, body := get("/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz: %d %q, want 200 \"ok\\n\"", code, body)
	}
	// One connection, so that the gauge has something to show.
	connectV5(t, h.MQTT, "e2e-metrics", nil)
	code, body := get("/metrics")
	if code != http.StatusOK {
		t.Errorf("/metrics: status %d", code)
	}
	for _, want := range []string{"\nhearth_connections 1\n", "hearth_store_commit_seconds_bucket", "hearth_store_commit_seconds_count", "hearth_connections_total"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
	if code, _ := get("/mqtt"); code != http.StatusBadRequest {
		t.Errorf("/mqtt without a WebSocket upgrade: %d, want 400", code)
	}
	if code, _ := get("/nothing-here"); code != http.StatusNotFound {
		t.Errorf("/nothing-here: %d, want 404", code)
	}
	if code := h.Stop(); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
}

func TestWebSocket(t *testing.T) {
	requireMosquitto(t)
	h := startHearth(t, t.TempDir())
	opts := pahov3.NewClientOptions().
		AddBroker("ws://" + h.HTTP + "/mqtt").
		SetClientID("e2e-ws").
		SetAutoReconnect(false).
		SetConnectTimeout(10 * time.Second).
		SetKeepAlive(30 * time.Second)
	c := pahov3.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		t.Fatalf("connect over WebSocket: %v", tok.Error())
	}
	defer c.Disconnect(250)

	t.Run("websocket to tcp", func(t *testing.T) {
		sub := startSub(t, h.MQTT, "-q", "1", "-t", "ws/out", "-C", "2", "-W", "20")
		sub.WaitSubscribed()
		for _, p := range []string{"over websocket", strings.Repeat("x", 70000)} {
			if tok := c.Publish("ws/out", 1, false, p); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
				t.Fatalf("publish over WebSocket: %v", tok.Error())
			}
		}
		wantMessages(t, sub.Messages(2),
			message{Topic: "ws/out", Payload: "over websocket", QoS: 1},
			message{Topic: "ws/out", Payload: strings.Repeat("x", 70000), QoS: 1})
	})
	t.Run("tcp to websocket", func(t *testing.T) {
		got := make(chan string, 1)
		tok := c.Subscribe("ws/in", 1, func(_ pahov3.Client, m pahov3.Message) { got <- string(m.Payload()) })
		if !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe over WebSocket: %v", tok.Error())
		}
		mosquittoPub(t, h.MQTT, "", "-q", "1", "-t", "ws/in", "-m", "over tcp")
		select {
		case p := <-got:
			if p != "over tcp" {
				t.Errorf("payload %q, want %q", p, "over tcp")
			}
		case <-time.After(15 * time.Second):
			t.Fatal("no message over WebSocket within 15s")
		}
	})
	if code := h.Stop(); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
}
