package broker

import (
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hearth-iot/hearth/broker/record"
	"github.com/hearth-iot/hearth/storage"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"
)

// Error kinds counted in hearth_errors_total{kind}.
const (
	errConnect   = "connect"          // a connection that never completed CONNECT
	errRefused   = "connect_refused"  // a CONNECT answered with a failure code
	errTooLarge  = "packet_too_large" // a packet over Limits.MaxPacketSize
	errProtocol  = "protocol"         // a protocol violation that closed a connection
	errDenied    = "denied"           // a publish refused by policy ($SYS)
	errDropped   = "dropped"          // an outbound message dropped: client queue full
	errStore     = "store"            // a failed store write
	errStoreFull = "store_full"       // a store write refused: file or disk full
	errWebSocket = "websocket"        // a failed WebSocket upgrade
	errTranscode = "transcode"        // a structured-looking payload delivered untranscoded
)

// packetNames are the label values of packet types, indexed by type.
var packetNames = [16]string{
	"reserved", "connect", "connack", "publish", "puback", "pubrec", "pubrel", "pubcomp",
	"subscribe", "suback", "unsubscribe", "unsuback", "pingreq", "pingresp", "disconnect", "auth",
}

// Metrics are the broker's Prometheus collectors. Counters on the per-packet
// path are resolved once, so counting is an atomic add. Create them before
// the store, whose commit and error callbacks they provide, and pass them to
// New.
type Metrics struct {
	reg  *prometheus.Registry
	log  *slog.Logger
	srv  atomic.Pointer[mqtt.Server]
	once sync.Once

	connections prometheus.Counter
	packetsIn   [16]prometheus.Counter
	packetsOut  [16]prometheus.Counter
	errors      *prometheus.CounterVec
	commit      prometheus.Histogram
	batch       prometheus.Histogram

	errConnect, errRefused, errTooLarge, errProtocol, errDenied,
	errDropped, errStore, errStoreFull, errWebSocket, errTranscode prometheus.Counter

	recordOps *prometheus.CounterVec
	records   atomic.Pointer[record.Records]

	retainedStreams prometheus.Gauge   // clients being sent records for new subscriptions
	retainedSent    prometheus.Counter // records sent to new subscriptions

	rpcRequests  prometheus.Counter     // requests accepted for routing
	rpcAnswers   prometheus.Counter     // providers' answers delivered (results and errors)
	rpcLatency   prometheus.Histogram   // request to result, for answered calls
	rpcErrors    *prometheus.CounterVec // error replies, by code
	rpcReroutes  *prometheus.CounterVec // calls passed to another provider, by reason
	listenNotify prometheus.Counter     // listening notifications sent
	authAttempts *prometheus.CounterVec // CONNECT authentications, by mode and result
}

// rpcErrorCodes are the label values of hearth_rpc_errors_total; a
// provider's own error codes are counted as "PROVIDER_ERROR", so that no
// client chooses a label value.
var rpcErrorCodes = map[string]bool{
	codeNoProvider: true, codeTimeout: true, codeTooManyRequests: true, codeUnknownRequest: true,
	codeDenied: true, record.CodeInvalidPayload: true, record.CodeInvalidName: true, codeProviderError: true,
}

// NewMetrics creates the collectors; log receives store errors.
func NewMetrics(log *slog.Logger) *Metrics {
	if log == nil {
		log = slog.Default()
	}
	m := &Metrics{reg: prometheus.NewRegistry(), log: log}
	in := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hearth_packets_received_total", Help: "MQTT packets received, by type.",
	}, []string{"type"})
	out := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hearth_packets_sent_total", Help: "MQTT packets sent, by type.",
	}, []string{"type"})
	for i, name := range packetNames {
		m.packetsIn[i] = in.WithLabelValues(name)
		m.packetsOut[i] = out.WithLabelValues(name)
	}
	m.connections = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "hearth_connections_total", Help: "MQTT connections accepted (CONNACK success).",
	})
	m.errors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hearth_errors_total", Help: "Errors, by kind.",
	}, []string{"kind"})
	for _, p := range []struct {
		c    *prometheus.Counter
		kind string
	}{
		{&m.errConnect, errConnect}, {&m.errRefused, errRefused}, {&m.errTooLarge, errTooLarge},
		{&m.errProtocol, errProtocol}, {&m.errDenied, errDenied}, {&m.errDropped, errDropped},
		{&m.errStore, errStore}, {&m.errStoreFull, errStoreFull}, {&m.errWebSocket, errWebSocket},
		{&m.errTranscode, errTranscode},
	} {
		*p.c = m.errors.WithLabelValues(p.kind)
	}
	m.commit = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "hearth_store_commit_seconds",
		Help:    "Duration of store group commits, including the sync.",
		Buckets: prometheus.ExponentialBuckets(0.0002, 2, 14), // 0.2ms .. 1.6s
	})
	m.batch = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "hearth_store_commit_changes",
		Help:    "Changes per store group commit (the batch size).",
		Buckets: prometheus.ExponentialBuckets(1, 2, 11), // 1 .. 1024
	})
	m.recordOps = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hearth_record_operations_total",
		Help: "Record operations (retained publishes and $rec requests), by operation and result (ok or the error code).",
	}, []string{"op", "result"})
	m.retainedStreams = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "hearth_retained_streams",
		Help: "Clients being sent the records matching a new subscription now (retained messages, paced to the client).",
	})
	m.retainedSent = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "hearth_retained_sent_total",
		Help: "Records sent to new subscriptions as retained messages.",
	})
	m.rpcRequests = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "hearth_rpc_requests_total", Help: "RPC requests accepted for routing to a provider.",
	})
	m.rpcAnswers = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "hearth_rpc_answers_total", Help: "RPC answers of providers delivered to requesters (results and provider errors).",
	})
	m.rpcLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "hearth_rpc_answer_seconds",
		Help:    "Time from an RPC request to its provider's answer.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18), // 0.1ms .. 13s
	})
	m.rpcErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hearth_rpc_errors_total",
		Help: "RPC errors sent to requesters or providers, by code (TIMEOUT counts timeouts; PROVIDER_ERROR a provider's own error answers).",
	}, []string{"code"})
	m.rpcReroutes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hearth_rpc_reroutes_total",
		Help: "RPC requests a provider gave back, by reason (rejected, disconnected, undeliverable): each went to the next provider, or failed with NO_PROVIDER.",
	}, []string{"reason"})
	m.listenNotify = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "hearth_listen_notifications_total", Help: "Listening notifications sent to $listen subscribers.",
	})
	m.authAttempts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hearth_auth_attempts_total",
		Help: "CONNECT authentications, by the mode that decided (none if no mode did) and result (allow, deny, forbid, error, limited).",
	}, []string{"mode", "result"})
	m.reg.MustRegister(in, out, m.connections, m.errors, m.commit, m.batch, m.recordOps, m.retainedStreams, m.retainedSent,
		m.rpcRequests, m.rpcAnswers, m.rpcLatency, m.rpcErrors, m.rpcReroutes, m.listenNotify, m.authAttempts)
	return m
}

// attach points the gauges at s and r, the mochi server and records of the
// newest Broker built with these Metrics; they are registered on the first
// call.
func (m *Metrics) attach(s *mqtt.Server, r *record.Records) {
	m.srv.Store(s)
	m.records.Store(r)
	m.once.Do(m.registerGauges)
}

func (m *Metrics) registerGauges() {
	read := func(v func(*mqtt.Server) int64) func() float64 {
		return func() float64 {
			if s := m.srv.Load(); s != nil {
				return float64(v(s))
			}
			return 0
		}
	}
	gauge := func(name, help string, v func(*mqtt.Server) int64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, read(v))
	}
	counter := func(name, help string, v func(*mqtt.Server) int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, read(v))
	}
	m.reg.MustRegister(
		gauge("hearth_connections", "MQTT clients connected now.",
			func(s *mqtt.Server) int64 { return atomic.LoadInt64(&s.Info.ClientsConnected) }),
		gauge("hearth_sessions", "Sessions known (connected, and disconnected persistent ones).",
			func(s *mqtt.Server) int64 { return int64(s.Clients.Len()) }),
		gauge("hearth_subscriptions", "Subscriptions now.",
			func(s *mqtt.Server) int64 { return atomic.LoadInt64(&s.Info.Subscriptions) }),
		m.recordGauge("hearth_retained_messages", "Records (retained messages) stored now, not counting the broker's own $SYS topics.",
			func(r *record.Records) int64 { return r.Count() }),
		m.recordGauge("hearth_record_cache_records", "Records in the record cache now.",
			func(r *record.Records) int64 { n, _ := r.CacheStats(); return int64(n) }),
		m.recordGauge("hearth_record_cache_bytes", "Estimated memory of the record cache now.",
			func(r *record.Records) int64 { _, n := r.CacheStats(); return int64(n) }),
		m.recordCounter("hearth_record_changes_combined_total", "Record changes written together with other changes of the same record (one sync for several).",
			func(r *record.Records) int64 { return r.Combined() }),
		gauge("hearth_inflight_messages", "QoS 1/2 messages inflight or queued now.",
			func(s *mqtt.Server) int64 { return atomic.LoadInt64(&s.Info.Inflight) }),
		counter("hearth_bytes_received_total", "Bytes received from MQTT clients.",
			func(s *mqtt.Server) int64 { return atomic.LoadInt64(&s.Info.BytesReceived) }),
		counter("hearth_bytes_sent_total", "Bytes sent to MQTT clients.",
			func(s *mqtt.Server) int64 { return atomic.LoadInt64(&s.Info.BytesSent) }),
		counter("hearth_messages_received_total", "PUBLISH packets received.",
			func(s *mqtt.Server) int64 { return atomic.LoadInt64(&s.Info.MessagesReceived) }),
		counter("hearth_messages_sent_total", "PUBLISH packets sent.",
			func(s *mqtt.Server) int64 { return atomic.LoadInt64(&s.Info.MessagesSent) }),
	)
}

func (m *Metrics) recordGauge(name, help string, v func(*record.Records) int64) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, m.readRecords(v))
}

func (m *Metrics) recordCounter(name, help string, v func(*record.Records) int64) prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, m.readRecords(v))
}

func (m *Metrics) readRecords(v func(*record.Records) int64) func() float64 {
	return func() float64 {
		if r := m.records.Load(); r != nil {
			return float64(v(r))
		}
		return 0
	}
}

// recordOp counts a record operation by its result.
func (m *Metrics) recordOp(op, code string, ok bool) {
	if ok {
		code = "ok"
	}
	m.recordOps.WithLabelValues(op, code).Inc()
}

// rpcError counts an RPC error reply.
func (m *Metrics) rpcError(code string) {
	if !rpcErrorCodes[code] {
		code = codeProviderError
	}
	m.rpcErrors.WithLabelValues(code).Inc()
}

// authAttempt counts an authentication; mode "" is none deciding.
func (m *Metrics) authAttempt(mode, result string) {
	if mode == "" {
		mode = "none_decided"
	}
	m.authAttempts.WithLabelValues(mode, result).Inc()
}

// rpcReroute counts a call passed on.
func (m *Metrics) rpcReroute(reason string) {
	m.rpcReroutes.WithLabelValues(reason).Inc()
}

// ObserveCommit is the storage.Options.OnCommit callback.
func (m *Metrics) ObserveCommit(changes int, elapsed time.Duration, err error) {
	m.commit.Observe(elapsed.Seconds())
	m.batch.Observe(float64(changes))
}

// StoreError is the storage.Options.OnError callback: it logs and counts a
// failed write that nobody waited for.
func (m *Metrics) StoreError(err error) {
	m.storeError(err)
	m.log.Error("store write failed", "error", err)
}

// storeError counts a failed store write.
func (m *Metrics) storeError(err error) {
	if errors.Is(err, storage.ErrFull) {
		m.errStoreFull.Inc()
		return
	}
	m.errStore.Inc()
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(m.log.Handler(), slog.LevelError)})
}

func (m *Metrics) packetIn(pk packets.Packet) {
	m.packetsIn[pk.FixedHeader.Type&0x0f].Inc()
}

func (m *Metrics) packetOut(pk packets.Packet) {
	m.packetsOut[pk.FixedHeader.Type&0x0f].Inc()
}
