package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/hearth-iot/hearth/broker/codec"
)

// Config configures a Broker. The zero value of every field means its
// documented default.
type Config struct {
	// MQTT is the MQTT-over-TCP listener. Addr defaults to ":1883".
	MQTT Listener
	// HTTP is the HTTP listener for /mqtt (WebSocket), /healthz and
	// /metrics. Addr defaults to ":8080".
	HTTP Listener
	// Limits bound what clients may use.
	Limits Limits
	// Records bounds records and their cache.
	Records Records
	// RPC configures request routing ($rpc).
	RPC RPC
	// Auth decides who may connect, and who they are. Nil lets every
	// client in anonymously (auth.None), with a warning at start.
	Auth Authenticator
	// LoginLimit, if set, refuses addresses that failed to log in too
	// often (CONNACK 0x9F, or 5 for MQTT 3.1.1) before their credentials are
	// checked.
	LoginLimit LoginLimiter
	// PresenceKeepOffline is how long an offline client's presence record
	// ($presence/<client id>) is kept before it expires. Zero means 7 days.
	PresenceKeepOffline time.Duration
	// Logger receives the broker's structured logs. Nil means slog.Default().
	Logger *slog.Logger
}

// Listener is one network listener.
type Listener struct {
	// Addr is host:port; port 0 picks a free port (see Broker.MQTTAddr).
	Addr string
	// TLS, when both files are set, serves TLS with that certificate.
	TLS TLS
	// Codec is the codec of the listener's clients that declare none (an
	// MQTT 5 CONNECT user property "codec" declares one). Zero means JSON.
	Codec codec.Codec
}

func (l Listener) codec() codec.Codec {
	if !l.Codec.Valid() {
		return codec.JSON
	}
	return l.Codec
}

// Records bounds records (retained messages) and the memory they use.
type Records struct {
	// MaxSize is the largest record value in bytes: a document's CBOR
	// encoding, or an opaque payload. Larger writes fail with TOO_LARGE.
	// Zero means 1 MiB.
	MaxSize int
	// MaxNameLen is the longest record name (topic) in bytes; longer ones
	// fail with INVALID_NAME. Zero means 256.
	MaxNameLen int
	// MaxDepth is the deepest nesting of arrays and maps in a document (and
	// in an event payload transcoded for a subscriber). Zero means 32.
	MaxDepth int
	// CacheBytes bounds the memory of the cache of recently used records.
	// Zero means 16 MiB; negative turns the cache off.
	CacheBytes int
}

// RPC configures the routing of requests to providers.
type RPC struct {
	// Timeout is how long a request waits for an answer before it fails
	// with TIMEOUT; a request may ask for less, not more. Zero means 10s.
	Timeout time.Duration
	// MaxPending bounds the requests in flight on the broker; more are
	// refused with TOO_MANY_REQUESTS. Zero means 10000.
	MaxPending int
	// HideRequester keeps the requester's client id and user name from
	// providers, which are told them by default.
	HideRequester bool
}

func (r RPC) withDefaults() RPC {
	if r.Timeout == 0 {
		r.Timeout = 10 * time.Second
	}
	if r.MaxPending == 0 {
		r.MaxPending = 10000
	}
	return r
}

// TLS names a PEM certificate chain and its private key.
type TLS struct {
	CertFile string
	KeyFile  string
}

// Enabled reports whether TLS is configured.
func (t TLS) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" }

// Limits bound per-client and broker-wide resources.
type Limits struct {
	// MaxPacketSize is the largest MQTT packet accepted, in bytes; a larger
	// one closes the connection. Zero means 1 MiB.
	MaxPacketSize uint32
	// MaxClients is the most concurrent connections; further CONNECTs are
	// refused with 0x89 server busy (MQTT 5) or 3 server unavailable (3.1.1).
	// Zero means 4096.
	MaxClients int64
	// MaxPendingWrites is the outbound packet queue of one connection. Each
	// slot costs a pointer up front (8 bytes on 64-bit), so mochi's 8192
	// costs 64 KiB per connection before a byte is sent. A QoS 0 message that
	// finds the queue full is dropped for that client and counted. Zero
	// means 1024 (8 KiB per connection).
	MaxPendingWrites int32
	// MaxInflight bounds the QoS 1/2 messages inflight or queued for one
	// session, online or offline; further messages for it are dropped and
	// counted. Zero means 1024.
	MaxInflight uint16
	// ReceiveMaximum is the number of unacknowledged QoS 1/2 publishes the
	// broker accepts from one client at a time. Zero means 256.
	ReceiveMaximum uint16
	// KeepaliveMin and KeepaliveMax bound the keepalive of MQTT 5 clients,
	// which are told the value in CONNACK (Server Keep Alive); a client
	// asking for 0 (no keepalive) gets KeepaliveMax. MQTT 3.1.1 has no way
	// to tell a client, so its own keepalive is kept. Zero means 5s and 1h.
	KeepaliveMin time.Duration
	KeepaliveMax time.Duration
	// MaxSessionExpiry caps how long a disconnected persistent session is
	// kept; it is also the expiry of MQTT 3.1.1 sessions with clean session
	// false. Zero means 30 days.
	MaxSessionExpiry time.Duration
}

func (l Limits) withDefaults() Limits {
	if l.MaxPacketSize == 0 {
		l.MaxPacketSize = 1 << 20
	}
	if l.MaxClients == 0 {
		l.MaxClients = 4096
	}
	if l.MaxPendingWrites == 0 {
		l.MaxPendingWrites = 1024
	}
	if l.MaxInflight == 0 {
		l.MaxInflight = 1024
	}
	if l.ReceiveMaximum == 0 {
		l.ReceiveMaximum = 256
	}
	if l.KeepaliveMin == 0 {
		l.KeepaliveMin = 5 * time.Second
	}
	if l.KeepaliveMax == 0 {
		l.KeepaliveMax = time.Hour
	}
	if l.MaxSessionExpiry == 0 {
		l.MaxSessionExpiry = 30 * 24 * time.Hour
	}
	return l
}

// FieldError is a configuration problem of one field, named by its key in
// the configuration file (for example "limits.max_clients").
type FieldError struct {
	Key string
	Msg string
}

func (e *FieldError) Error() string { return e.Key + ": " + e.Msg }

// Validate reports every problem of c at once, each a *FieldError, joined with
// errors.Join.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, &FieldError{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	for _, t := range []struct {
		key string
		tls TLS
	}{{"mqtt.tls", c.MQTT.TLS}, {"http.tls", c.HTTP.TLS}} {
		if t.tls.Enabled() && (t.tls.CertFile == "" || t.tls.KeyFile == "") {
			bad(t.key, "cert and key must both be set")
		}
	}
	l := c.Limits
	if l.MaxPacketSize != 0 && (l.MaxPacketSize < 64 || l.MaxPacketSize > 256<<20) {
		bad("limits.max_packet_size", "%d is outside 64 bytes .. 256 MiB", l.MaxPacketSize)
	}
	if l.MaxClients < 0 {
		bad("limits.max_clients", "must not be negative")
	}
	if l.MaxPendingWrites < 0 {
		bad("limits.max_pending_writes", "must not be negative")
	}
	for _, k := range []struct {
		key string
		d   time.Duration
	}{{"limits.keepalive_min", l.KeepaliveMin}, {"limits.keepalive_max", l.KeepaliveMax}} {
		if k.d < 0 || k.d > math.MaxUint16*time.Second {
			bad(k.key, "%s is outside 0s .. 18h12m15s", k.d)
		} else if k.d%time.Second != 0 {
			bad(k.key, "%s is not a whole number of seconds", k.d)
		}
	}
	if d := l.withDefaults(); d.KeepaliveMin > d.KeepaliveMax {
		bad("limits.keepalive_min", "%s is above keepalive_max %s", d.KeepaliveMin, d.KeepaliveMax)
	}
	if l.MaxSessionExpiry < 0 || l.MaxSessionExpiry > math.MaxUint32*time.Second {
		bad("limits.max_session_expiry", "%s is out of range", l.MaxSessionExpiry)
	}
	r := c.Records
	if r.MaxSize < 0 || r.MaxSize > 256<<20 {
		bad("records.max_size", "%d is outside 0 .. 256 MiB", r.MaxSize)
	}
	if r.MaxNameLen < 0 || r.MaxNameLen > 65535 {
		bad("records.max_name_length", "%d is outside 0 .. 65535", r.MaxNameLen)
	}
	if r.MaxDepth < 0 || r.MaxDepth > codec.MaxDepthCeiling {
		bad("records.max_depth", "%d is outside 0 .. %d", r.MaxDepth, codec.MaxDepthCeiling)
	}
	if c.RPC.Timeout < 0 || c.RPC.Timeout > 24*time.Hour {
		bad("rpc.timeout", "%s is outside 0s .. 24h", c.RPC.Timeout)
	} else if c.RPC.Timeout%time.Millisecond != 0 {
		bad("rpc.timeout", "%s is not a whole number of milliseconds", c.RPC.Timeout)
	}
	if c.PresenceKeepOffline < 0 || c.PresenceKeepOffline > math.MaxUint32*time.Second {
		bad("presence.keep_offline", "%s is out of range", c.PresenceKeepOffline)
	} else if c.PresenceKeepOffline%time.Second != 0 {
		bad("presence.keep_offline", "%s is not a whole number of seconds", c.PresenceKeepOffline)
	}
	if c.RPC.MaxPending < 0 {
		bad("rpc.max_pending", "must not be negative")
	}
	for _, k := range []struct {
		key string
		c   codec.Codec
	}{{"mqtt.codec", c.MQTT.Codec}, {"http.codec", c.HTTP.Codec}} {
		if k.c != 0 && !k.c.Valid() {
			bad(k.key, "%s is not json or cbor", k.c)
		}
	}
	return errors.Join(errs...)
}
