package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Listener ids, as mochi and the logs name them.
const (
	listenerMQTT = "mqtt"
	listenerWS   = "ws"
)

// trackedConn marks whether a connection completed CONNECT, so that the
// listener logs and counts only connections that failed before it: the hook
// reports the others when they disconnect.
type trackedConn struct {
	net.Conn
	established atomic.Bool
	wrote       atomic.Bool // before CONNECT completes, only a refusing CONNACK is written
}

func (c *trackedConn) Write(p []byte) (int, error) {
	if !c.wrote.Load() {
		c.wrote.Store(true)
	}
	return c.Conn.Write(p)
}

// NetConn returns the underlying connection (a *tls.Conn under TLS).
func (c *trackedConn) NetConn() net.Conn { return c.Conn }

func markEstablished(c net.Conn) {
	if tc, ok := c.(*trackedConn); ok {
		tc.established.Store(true)
	}
}

// connReporter logs and counts a connection that ended before CONNECT
// completed, from the error mochi's establish returned.
type connReporter struct {
	log     *slog.Logger
	metrics *Metrics
}

func (r connReporter) report(listener string, c *trackedConn, err error) {
	if err == nil || c.established.Load() {
		return
	}
	attrs := []any{"listener", listener, "remote", c.RemoteAddr().String(), "error", err}
	var code packets.Code
	switch {
	case errors.Is(err, packets.ErrPacketTooLarge):
		r.metrics.errTooLarge.Inc()
		r.log.Warn("connection closed: CONNECT over the packet size limit", attrs...)
	case c.wrote.Load(): // mochi answered with a failure CONNACK
		r.metrics.errRefused.Inc()
		if errors.As(err, &code) {
			attrs = append(attrs, "reason_code", fmt.Sprintf("0x%02x", code.Code))
		}
		r.log.Warn("connect refused", attrs...)
	case errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed):
		r.metrics.errConnect.Inc()
		r.log.Info("connection closed before CONNECT", attrs...)
	default:
		r.metrics.errConnect.Inc()
		r.log.Warn("connection closed: not a valid MQTT CONNECT", attrs...)
	}
}

// tcpListener is mochi's listeners.Listener for MQTT over TCP or TLS. Unlike
// mochi's own, it binds when created, so that the bound address is known
// (port 0) and a bind error is reported before anything starts.
type tcpListener struct {
	ln       net.Listener
	tls      bool
	reporter connReporter
	conns    *connTracker
	closed   atomic.Bool
}

var _ listeners.Listener = (*tcpListener)(nil)

func listenOn(addr string, tlsConfig *tls.Config) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	return ln, nil
}

func (l *tcpListener) ID() string              { return listenerMQTT }
func (l *tcpListener) Address() string         { return l.ln.Addr().String() }
func (l *tcpListener) Init(*slog.Logger) error { return nil }

func (l *tcpListener) Protocol() string {
	if l.tls {
		return "mqtts"
	}
	return "mqtt"
}

// Serve accepts connections until Close, backing off on accept errors such
// as running out of file descriptors.
func (l *tcpListener) Serve(establish listeners.EstablishFn) {
	var backoff time.Duration
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			if l.closed.Load() {
				return
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			l.reporter.log.Error("accept failed", "listener", listenerMQTT, "error", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		go establishTracked(l.conns, l.reporter, listenerMQTT, establish, conn)
	}
}

// Close stops accepting, then disconnects the listener's clients.
func (l *tcpListener) Close(closeClients listeners.CloseFn) {
	if l.closed.CompareAndSwap(false, true) {
		_ = l.ln.Close()
		closeClients(listenerMQTT)
	}
}

// httpListener serves MQTT over WebSocket at /mqtt, /healthz and /metrics on
// one HTTP server. It is registered with mochi as the "ws" listener.
type httpListener struct {
	ln       net.Listener
	tls      bool
	srv      *http.Server
	upgrader websocket.Upgrader
	reporter connReporter
	health   func() error
	conns    *connTracker
	closed   atomic.Bool

	mu        sync.Mutex
	establish listeners.EstablishFn // set by Serve; guarded by mu
}

var _ listeners.Listener = (*httpListener)(nil)

func newHTTPListener(ln net.Listener, isTLS bool, reporter connReporter, health func() error, conns *connTracker) *httpListener {
	l := &httpListener{
		ln:       ln,
		conns:    conns,
		tls:      isTLS,
		reporter: reporter,
		health:   health,
		upgrader: websocket.Upgrader{
			// MQTT.js and mosquitto ask for "mqtt"; older clients "mqttv3.1".
			Subprotocols:     []string{"mqtt", "mqttv3.1"},
			HandshakeTimeout: 10 * time.Second,
			// Browsers on the LAN load dashboards from anywhere; who may
			// connect is decided by authentication, not by Origin.
			CheckOrigin: func(*http.Request) bool { return true },
		},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/mqtt", l.serveWebSocket)
	mux.HandleFunc("GET /healthz", l.serveHealth)
	mux.Handle("GET /metrics", reporter.metrics.Handler())
	mux.HandleFunc("/", l.serveNotFound)
	l.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(reporter.log.Handler(), slog.LevelWarn),
	}
	return l
}

func (l *httpListener) ID() string              { return listenerWS }
func (l *httpListener) Address() string         { return l.ln.Addr().String() }
func (l *httpListener) Init(*slog.Logger) error { return nil }

func (l *httpListener) Protocol() string {
	if l.tls {
		return "wss"
	}
	return "ws"
}

// Serve serves HTTP until Close.
func (l *httpListener) Serve(establish listeners.EstablishFn) {
	l.mu.Lock()
	l.establish = establish
	l.mu.Unlock()
	if err := l.srv.Serve(l.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		l.reporter.log.Error("http server stopped", "error", err)
	}
}

// Close stops the HTTP server, then disconnects the WebSocket clients.
func (l *httpListener) Close(closeClients listeners.CloseFn) {
	if !l.closed.CompareAndSwap(false, true) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	// Hijacked WebSocket connections are not waited for; closeClients
	// disconnects them with a DISCONNECT packet.
	_ = l.srv.Shutdown(ctx)
	closeClients(listenerWS)
}

func (l *httpListener) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	if !websocket.IsWebSocketUpgrade(r) {
		http.Error(w, "hearth: /mqtt expects a WebSocket upgrade (MQTT over WebSocket)", http.StatusBadRequest)
		return
	}
	l.mu.Lock()
	establish := l.establish
	l.mu.Unlock()
	if establish == nil || l.closed.Load() {
		http.Error(w, "hearth: shutting down", http.StatusServiceUnavailable)
		return
	}
	ws, err := l.upgrader.Upgrade(w, r, nil) // writes the HTTP error itself
	if err != nil {
		l.reporter.metrics.errWebSocket.Inc()
		l.reporter.log.Warn("websocket upgrade failed", "remote", r.RemoteAddr, "error", err)
		return
	}
	establishTracked(l.conns, l.reporter, listenerWS, establish, &wsConn{Conn: ws.NetConn(), ws: ws})
}

func (l *httpListener) serveHealth(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := l.health(); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "unavailable: %v\n", err)
		return
	}
	fmt.Fprintln(w, "ok")
}

func (l *httpListener) serveNotFound(w http.ResponseWriter, r *http.Request) {
	if websocket.IsWebSocketUpgrade(r) {
		l.reporter.metrics.errWebSocket.Inc()
		l.reporter.log.Warn("websocket upgrade on a wrong path", "path", r.URL.Path, "remote", r.RemoteAddr, "want", "/mqtt")
	}
	http.NotFound(w, r)
}

// wsConn carries an MQTT byte stream in WebSocket binary messages. An MQTT
// packet may span messages and a message may hold several packets
// (MQTT 5.0 section 6.0).
type wsConn struct {
	net.Conn // the underlying connection, for addresses and deadlines
	ws       *websocket.Conn
	r        io.Reader // the message being read, or nil
}

// errTextFrame is returned when a client sends a WebSocket text message:
// MQTT over WebSocket uses binary messages only.
var errTextFrame = errors.New("broker: websocket text message (MQTT needs binary)")

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			op, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if op != websocket.BinaryMessage {
				return 0, errTextFrame
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue // empty or finished message: read the next one
			}
			err = nil
		}
		return n, err
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) Close() error { return c.ws.Close() }
