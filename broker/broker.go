package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hearth-iot/hearth/broker/auth"
	"github.com/hearth-iot/hearth/broker/codec"
	"github.com/hearth-iot/hearth/broker/record"
	"github.com/hearth-iot/hearth/broker/rpc"
	"github.com/hearth-iot/hearth/storage"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// topicAliasMaximum bounds the topic aliases a client may define. mochi's
// default (65535) lets one connection hold 65535 topic strings.
const topicAliasMaximum = 64

// Broker is a running Hearth MQTT broker. Create it with New, run it with
// Start, stop it with Shutdown.
type Broker struct {
	log     *slog.Logger
	limits  Limits
	store   *storage.Store
	metrics *Metrics
	records *record.Records

	// codecs are the listeners' default codecs (Listener.Codec).
	codecs struct{ mqtt, ws codec.Codec }
	// eventLimits bound the decoding of an event's payload for transcoding.
	eventLimits codec.Limits

	srv  *mqtt.Server
	hook *hook
	// retained streams records to new subscriptions; recordLocks order
	// that against the publishing of changes.
	retained    *retainedSender
	recordLocks recordLocks
	published   atomic.Uint64 // records published live, in order (see retainedRequest.since)

	auth         Authenticator
	loginLimit   LoginLimiter
	rpc          *rpc.Router[provider]
	rpcLimits    RPC
	listening    *listening
	presenceKeep time.Duration // how long an offline client's presence record is kept

	mqttLn *tcpListener
	httpLn *httpListener
	conns  connTracker

	timersMu sync.Mutex
	timers   []*time.Timer // expiry of restored MQTT 3.1.1 sessions

	started  atomic.Bool
	stopping atomic.Bool

	stopExpiry  context.CancelFunc // ends records.Run
	expiryEnded chan struct{}
}

// New validates cfg, binds both listeners and builds the broker; nothing is
// served until Start. store must stay open until Shutdown has returned. It
// returns the joined *FieldError values of an invalid cfg, or the error of
// a TLS file or address that cannot be used.
func New(cfg Config, store *storage.Store, metrics *Metrics) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MQTT.Addr == "" {
		cfg.MQTT.Addr = ":1883"
	}
	if cfg.HTTP.Addr == "" {
		cfg.HTTP.Addr = ":8080"
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if metrics == nil {
		metrics = NewMetrics(log)
	}
	b := &Broker{
		log:     log,
		limits:  cfg.Limits.withDefaults(),
		store:   store,
		metrics: metrics,
	}
	b.auth, b.loginLimit = cfg.Auth, cfg.LoginLimit
	if b.auth == nil {
		b.auth = auth.Chain{auth.None{}}
	}
	b.retained = newRetainedSender(b)
	b.listening = newListening(b)
	b.rpcLimits = cfg.RPC.withDefaults()
	b.presenceKeep = cfg.PresenceKeepOffline
	if b.presenceKeep == 0 {
		b.presenceKeep = 7 * 24 * time.Hour
	}
	b.rpc = rpc.New(b.rpcLimits.MaxPending, b.rpcTimedOut)
	b.codecs.mqtt, b.codecs.ws = cfg.MQTT.codec(), cfg.HTTP.codec()
	b.eventLimits = codec.Limits{MaxSize: int(b.limits.MaxPacketSize), MaxDepth: cfg.Records.MaxDepth}
	records, err := record.New(store, recordPublisher{b}, record.Options{
		Limits:     record.Limits{MaxSize: cfg.Records.MaxSize, MaxNameLen: cfg.Records.MaxNameLen, MaxDepth: cfg.Records.MaxDepth},
		CacheBytes: cfg.Records.CacheBytes,
		OnError: func(name string, err error) {
			metrics.storeError(err)
			log.Error("record change not stored", "record", name, "error", err)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("broker: records: %w", err)
	}
	b.records = records
	mqttTLS, err := loadTLS(cfg.MQTT.TLS)
	if err != nil {
		return nil, fmt.Errorf("broker: mqtt.tls: %w", err)
	}
	httpTLS, err := loadTLS(cfg.HTTP.TLS)
	if err != nil {
		return nil, fmt.Errorf("broker: http.tls: %w", err)
	}
	reporter := connReporter{log: log, metrics: metrics}
	mln, err := listenOn(cfg.MQTT.Addr, mqttTLS)
	if err != nil {
		return nil, fmt.Errorf("broker: mqtt listener: %w", err)
	}
	hln, err := listenOn(cfg.HTTP.Addr, httpTLS)
	if err != nil {
		_ = mln.Close()
		return nil, fmt.Errorf("broker: http listener: %w", err)
	}
	b.mqttLn = &tcpListener{ln: mln, tls: mqttTLS != nil, reporter: reporter, conns: &b.conns}
	b.httpLn = newHTTPListener(hln, httpTLS != nil, reporter, b.Health, &b.conns)

	l := b.limits
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClients = l.MaxClients
	caps.MaximumPacketSize = l.MaxPacketSize
	caps.MaximumClientWritesPending = l.MaxPendingWrites
	caps.MaximumInflight = l.MaxInflight
	caps.ReceiveMaximum = l.ReceiveMaximum
	caps.TopicAliasMaximum = topicAliasMaximum
	caps.MaximumSessionExpiryInterval = uint32(min(l.MaxSessionExpiry/time.Second, math.MaxUint32))
	// Retained messages are records: they never expire by age, only when
	// their publisher set an MQTT 5 message expiry.
	caps.MaximumMessageExpiryInterval = 0
	b.srv = mqtt.New(&mqtt.Options{
		Capabilities: caps,
		Logger:       log.With("component", "mqtt"),
		// $SYS topics are refreshed every 10s rather than every second.
		SysTopicResendInterval: 10,
		// Records are the retained messages; they stay in the store.
		RetainedMessages: b.subscribedAcked,
	})
	b.hook = &hook{b: b}
	if err := b.srv.AddHook(b.hook, nil); err != nil {
		_ = mln.Close()
		_ = hln.Close()
		return nil, fmt.Errorf("broker: add hook: %w", err)
	}
	metrics.attach(b.srv, b.records)
	return b, nil
}

// subscribedAcked runs once a new subscription's SUBACK is out (mochi's
// Options.RetainedMessages): a listener is told the current state, any
// other subscription gets its retained records.
func (b *Broker) subscribedAcked(cl *mqtt.Client, sub packets.Subscription) {
	if strings.HasPrefix(sub.Filter, listenPrefix) {
		b.listening.sendState(cl, sub)
		return
	}
	b.retained.request(cl, sub)
}

func loadTLS(t TLS) (*tls.Config, error) {
	if !t.Enabled() {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// Records returns the broker's records. A change applied through it takes
// exactly the path of a retained publish or a $rec request: versioned,
// durable, then published to MQTT subscribers in version order. Later
// components (HTTP API, sync, bridge) write records through it.
func (b *Broker) Records() *record.Records { return b.records }

// MQTTAddr is the bound address of the MQTT listener.
func (b *Broker) MQTTAddr() string { return b.mqttLn.ln.Addr().String() }

// HTTPAddr is the bound address of the HTTP (WebSocket, health, metrics)
// listener.
func (b *Broker) HTTPAddr() string { return b.httpLn.ln.Addr().String() }

// Start restores the stored state and starts serving. It fails if the stored
// state cannot be read; nothing is served then.
func (b *Broker) Start() error {
	if err := b.restore(time.Now()); err != nil {
		b.closeListeners()
		return fmt.Errorf("broker: %w", err)
	}
	for _, l := range []listeners.Listener{b.mqttLn, b.httpLn} {
		if err := b.srv.AddListener(l); err != nil {
			b.closeListeners()
			return fmt.Errorf("broker: add listener %s: %w", l.ID(), err)
		}
	}
	if err := b.srv.Serve(); err != nil {
		b.closeListeners()
		return fmt.Errorf("broker: serve: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.stopExpiry, b.expiryEnded = cancel, make(chan struct{})
	go func() {
		defer close(b.expiryEnded)
		if err := b.records.Run(ctx); err != nil {
			b.log.Error("record expiry stopped", "error", err)
		}
	}()
	b.started.Store(true)
	if w := authWarning(b.auth); w != "" {
		b.log.Warn(w)
	}
	b.log.Info("hearth broker serving", "mqtt", b.MQTTAddr(), "http", b.HTTPAddr(),
		"mqtt_protocol", b.mqttLn.Protocol(), "http_protocol", b.httpLn.Protocol())
	return nil
}

func (b *Broker) closeListeners() {
	b.stopTimers()
	_ = b.mqttLn.ln.Close()
	_ = b.httpLn.ln.Close()
}

// Health reports why the broker cannot serve, or nil when the store is open
// and the listeners are up.
func (b *Broker) Health() error {
	switch {
	case b.stopping.Load():
		return errors.New("shutting down")
	case !b.started.Load():
		return errors.New("starting")
	case !b.store.Ready():
		return errors.New("store closed")
	}
	return nil
}

// Shutdown stops accepting connections, disconnects every client (MQTT 5
// clients get DISCONNECT with reason 0x8B server shutting down), and waits
// until each connection's state has been handed to the store. It returns
// ctx's error if that takes longer than ctx allows. The caller closes the
// store afterwards, which flushes it.
func (b *Broker) Shutdown(ctx context.Context) error {
	if !b.stopping.CompareAndSwap(false, true) {
		return nil
	}
	if !b.started.Load() {
		b.closeListeners()
		return nil
	}
	defer func() {
		// The store stays open until Shutdown returns: an expiry being
		// written finishes.
		b.stopExpiry()
		<-b.expiryEnded
		b.retained.close()
		b.rpc.Stop() // its requesters are gone
	}()
	b.log.Info("shutting down: disconnecting clients")
	b.stopTimers()
	b.conns.closePending()
	// mochi's Close stops the listeners, disconnects the clients and waits
	// for them without a bound: bound it by ctx.
	closed := make(chan error, 1)
	go func() { closed <- b.srv.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			return fmt.Errorf("broker: close: %w", err)
		}
	case <-ctx.Done():
		return fmt.Errorf("broker: disconnecting clients (%d connections left): %w", b.conns.count(), ctx.Err())
	}
	if err := b.conns.wait(ctx); err != nil {
		return fmt.Errorf("broker: waiting for %d connections: %w", b.conns.count(), err)
	}
	return nil
}

// connectTimeout bounds the wait for a new connection's CONNECT packet
// (and its TLS handshake); mochi sets no deadline before CONNECT.
const connectTimeout = 10 * time.Second

// connTracker knows the live connections so Shutdown can close those still
// waiting for CONNECT and wait for the rest. Once closed, it admits no more.
type connTracker struct {
	mu     sync.Mutex
	closed bool
	live   map[*trackedConn]struct{}
	wg     sync.WaitGroup
}

// add admits c, or returns false after closeAndWait began.
func (t *connTracker) add(c *trackedConn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	if t.live == nil {
		t.live = make(map[*trackedConn]struct{})
	}
	t.live[c] = struct{}{}
	t.wg.Add(1)
	return true
}

func (t *connTracker) done(c *trackedConn) {
	t.mu.Lock()
	delete(t.live, c)
	t.mu.Unlock()
	t.wg.Done()
}

func (t *connTracker) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.live)
}

// closePending admits no more connections and closes those that have not
// completed CONNECT; mochi knows nothing of them, so it cannot close them.
func (t *connTracker) closePending() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	for c := range t.live {
		if !c.established.Load() {
			_ = c.Close()
		}
	}
}

func (t *connTracker) wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		t.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// establishTracked runs mochi's establish for conn unless shutdown began,
// and reports how the connection ended.
func establishTracked(t *connTracker, r connReporter, id string, establish listeners.EstablishFn, conn net.Conn) {
	tc := &trackedConn{Conn: conn}
	if !t.add(tc) {
		_ = conn.Close()
		return
	}
	defer t.done(tc)
	// Reset by mochi once CONNECT is accepted (to the keepalive deadline).
	_ = conn.SetReadDeadline(time.Now().Add(connectTimeout))
	r.report(id, tc, establish(id, tc))
}
