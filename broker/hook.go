package broker

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hearth-iot/hearth/broker/codec"
	"github.com/hearth-iot/hearth/broker/record"
	"github.com/hearth-iot/hearth/storage"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// replyPrefix starts the reply namespace: replies to an MQTT 3.1.1
// client's requests go to $reply/<its client id>.
const replyPrefix = "$reply/"

// hook is Hearth's one implementation of mochi's hook interface.
type hook struct {
	mqtt.HookBase
	b *Broker

	// persisted holds the ids of sessions that are in the store, so that
	// clean sessions never cost a write.
	persisted sync.Map // client id -> struct{}

	// refused holds, per client, the code of a publish refusal that closed
	// an MQTT 3.1.1 connection, so the disconnect is reported as such.
	refused sync.Map // *mqtt.Client -> packets.Code

	// identities holds each connection's identity, from its authenticator.
	identities sync.Map // *mqtt.Client -> auth.Identity

	// sessionLocks serialise, per client id, the session writes of the
	// connections that share that id, so that a replaced connection cannot
	// queue its write after its successor's (see owns).
	sessionLocks [64]sync.Mutex

	// seq orders stored inflight messages (storage.Message.Seq); restore
	// starts it above the highest stored value.
	seq atomic.Uint64

	lastDropLog atomic.Int64 // unix nanos of the last "dropped" log line
	drops       atomic.Int64 // drops since then
}

var _ mqtt.Hook = (*hook)(nil)

func (h *hook) ID() string { return "hearth" }

// provides is the set of mochi events the hook handles. mochi asks for
// every event of every packet, so it is a table, not a search.
var provides = func() (set [256]bool) {
	for _, e := range []byte{
		mqtt.OnConnectAuthenticate,
		mqtt.OnACLCheck,
		mqtt.OnConnect,
		mqtt.OnSessionEstablished,
		mqtt.OnDisconnect,
		mqtt.OnPacketRead,
		mqtt.OnPacketSent,
		mqtt.OnPacketEncode,
		mqtt.OnPublish,
		mqtt.OnSubscribed,
		mqtt.OnUnsubscribed,
		mqtt.OnQosPublish,
		mqtt.OnQosComplete,
		mqtt.OnQosDropped,
		mqtt.OnPublishDropped,
		mqtt.OnClientExpired,
		mqtt.OnWillSent,
	} {
		set[e] = true
	}
	return set
}()

func (h *hook) Provides(b byte) bool { return provides[b] }

// writeAsync queues changes; a failure to queue (the store is closing) is
// logged and counted here, a failure to commit by Metrics.StoreError.
func (h *hook) writeAsync(what string, changes ...storage.Change) {
	if err := h.b.store.WriteAsync(changes...); err != nil {
		h.b.metrics.storeError(err)
		h.b.log.Error("store write not queued", "what", what, "error", err)
	}
}

// lockSession locks id's session writes; call the returned func to unlock.
func (h *hook) lockSession(id string) func() {
	f := fnv.New32a()
	_, _ = f.Write([]byte(id))
	m := &h.sessionLocks[f.Sum32()%uint32(len(h.sessionLocks))]
	m.Lock()
	return m.Unlock
}

// owns reports whether cl is the connection mochi holds under its id, or
// none is held. A replaced connection (a reconnect with the same id) must
// not write its session: mochi adds the new one before it establishes it,
// and with lockSession held that makes the check and the write atomic with
// respect to the successor's.
func (h *hook) owns(cl *mqtt.Client) bool {
	cur, ok := h.b.srv.Clients.Get(cl.ID)
	return !ok || cur == cl
}

func (h *hook) isPersisted(id string) bool {
	_, ok := h.persisted.Load(id)
	return ok
}

// OnConnectAuthenticate admits every client OnConnect has not refused:
// OnConnect authenticates, since it can choose the refusal's reason code.
func (h *hook) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

// OnACLCheck guards the broker's namespaces. $reply/<client id> belongs to
// that client alone: mochi asks with write false both for a SUBSCRIBE's
// filters and for every delivery, so a filter that slipped through would
// still deliver nothing. (OnPublish refuses publishes to $presence and
// $listen topics.) Everything else is allowed: Hearth has no permissions
// yet.
func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if cl.Net.Inline || topic == "" || topic[0] != '$' {
		return true // the common case, on every delivery
	}
	if write {
		return true // OnPublish refuses the broker's topics, aliases resolved
	}
	rest, ok := replyTopicRest(topic)
	if !ok || ownsReplyTopic(cl.ID, rest) {
		return true
	}
	h.b.metrics.errDenied.Inc()
	h.b.log.Warn("refused: a $reply topic belongs to its client alone",
		"client", cl.ID, "remote", cl.Net.Remote, "filter", topic)
	return false
}

// brokerOwned reports whether topic is one only the broker publishes to:
// $presence/<client id> (not $presence/get, a request) and $listen/....
func brokerOwned(topic string) bool {
	return strings.HasPrefix(topic, listenPrefix) || strings.HasPrefix(topic, presencePrefix) && topic != presenceGet
}

// replyTopicRest returns what follows "$reply/" in a topic or filter,
// looking through a "$share/<group>/" prefix.
func replyTopicRest(topic string) (string, bool) {
	if first, after, ok := strings.Cut(topic, "/"); ok && strings.EqualFold(first, mqtt.SharePrefix) {
		_, topic, _ = strings.Cut(after, "/") // mochi matches $share in any case
	}
	return strings.CutPrefix(topic, replyPrefix)
}

// ownsReplyTopic reports whether rest, the part of a $reply topic or
// filter after the prefix, is id itself or below it. A client id holding a
// wildcard or a slash could not be told apart from a filter matching other
// clients' replies, so such a client owns no reply topic.
func ownsReplyTopic(id, rest string) bool {
	if id == "" || strings.ContainsAny(id, "+#/") {
		return false
	}
	after, ok := strings.CutPrefix(rest, id)
	return ok && (after == "" || after[0] == '/')
}

// OnConnect refuses an MQTT 5 client declaring an unknown codec, applies
// the keepalive bounds to MQTT 5 clients (which learn the result from the
// Server Keep Alive property of CONNACK), and authenticates.
func (h *hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if cl.Properties.ProtocolVersion >= 5 {
		if err := h.connectV5(cl, pk); err != nil {
			return err
		}
	}
	return h.authenticate(cl, pk)
}

// connectV5 refuses an unknown codec and bounds the keepalive.
func (h *hook) connectV5(cl *mqtt.Client, pk packets.Packet) error {
	for _, u := range pk.Properties.User {
		if u.Key != codecProperty {
			continue
		}
		if _, err := codec.ParseCodec(u.Val); err != nil {
			code := packets.Code{Code: packets.ErrImplementationSpecificError.Code,
				Reason: fmt.Sprintf("unknown codec %q: use json or cbor", u.Val)}
			// Counted as connect_refused with every failure CONNACK.
			h.b.log.Warn("connection refused: unknown codec",
				"client", cl.ID, "remote", cl.Net.Remote, "codec", u.Val)
			if err := h.b.srv.SendConnack(cl, code, false, nil); err != nil {
				h.b.log.Debug("refusal not delivered", "client", cl.ID, "error", err)
			}
			return code
		}
	}
	lo := uint16(h.b.limits.KeepaliveMin / time.Second)
	hi := uint16(h.b.limits.KeepaliveMax / time.Second)
	ka := pk.Connect.Keepalive
	switch {
	case ka == 0 || ka > hi:
		ka = hi
	case ka < lo:
		ka = lo
	}
	if ka != pk.Connect.Keepalive {
		cl.State.Keepalive = ka
		cl.State.ServerKeepalive = true
	}
	return nil
}

func (h *hook) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	markEstablished(cl.Net.Conn)
	h.b.metrics.connections.Inc()
	keep := persistent(cl)
	h.b.log.Info("client connected",
		"client", cl.ID, "remote", cl.Net.Remote, "listener", cl.Net.Listener,
		"protocol", cl.Properties.ProtocolVersion, "clean", pk.Connect.Clean,
		"persistent", keep, "keepalive", cl.State.Keepalive)

	defer h.lockSession(cl.ID)()
	h.b.setPresence(cl, true, "", time.Now())
	var changes []storage.Change
	if _, was := h.persisted.Load(cl.ID); was && (pk.Connect.Clean || !keep) {
		// A clean start discards the old session; a session that is no
		// longer persistent ends with this connection.
		h.persisted.Delete(cl.ID)
		changes = append(changes, storage.DeleteSession(cl.ID))
	}
	if keep {
		h.persisted.Store(cl.ID, struct{}{})
		changes = append(changes, storage.PutSession(sessionOf(cl, 0)))
	}
	if len(changes) > 0 {
		h.writeAsync("session", changes...)
	}
}

// disconnectReason names why a connection ended, for logs.
func disconnectReason(err error) string {
	var netErr net.Error
	switch {
	case err == nil, errors.Is(err, packets.CodeDisconnect):
		return "disconnect"
	case errors.Is(err, packets.CodeDisconnectWillMessage):
		return "disconnect with will"
	case errors.Is(err, packets.ErrSessionTakenOver):
		return "taken over"
	case errors.Is(err, packets.ErrServerShuttingDown):
		return "server shutdown"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return "keepalive timeout"
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection lost"
	default:
		return "error"
	}
}

func (h *hook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	// The read error of a connection the broker closed says only that it
	// was closed; the stop cause says why.
	if cause := cl.StopCause(); errors.Is(cause, packets.ErrServerShuttingDown) || errors.Is(cause, packets.ErrSessionTakenOver) {
		err = cause
	}
	h.b.providerGone(cl)
	defer h.identities.Delete(cl)
	reason := disconnectReason(err)
	if h.b.stopping.Load() && reason != "disconnect" {
		// The broker's DISCONNECT 0x8B is written before the client is
		// stopped: a client that closes on reading it wins the race.
		reason = "server shutdown"
	}
	refusal, refused := h.refused.LoadAndDelete(cl)
	if refused {
		reason = "publish refused"
	}
	attrs := []any{"client", cl.ID, "remote", cl.Net.Remote, "listener", cl.Net.Listener, "reason", reason}
	if err != nil && reason != "disconnect" {
		attrs = append(attrs, "error", err)
	}
	var code packets.Code
	switch {
	case refused: // already logged and counted as the refusal
		h.b.log.Info("client disconnected: MQTT 3.1.1 has no negative acknowledgement",
			append(attrs, "reason_code", fmt.Sprintf("0x%02x", refusal.(packets.Code).Code))...)
	case errors.Is(err, packets.ErrPacketTooLarge):
		h.b.metrics.errTooLarge.Inc()
		h.b.log.Warn("client disconnected: packet over the size limit",
			append(attrs, "max_packet_size", h.b.limits.MaxPacketSize)...)
	case reason == "error" && errors.As(err, &code) && code.Code >= packets.ErrUnspecifiedError.Code:
		h.b.metrics.errProtocol.Inc()
		h.b.log.Warn("client disconnected: protocol error", append(attrs, "reason_code", fmt.Sprintf("0x%02x", code.Code))...)
	case reason == "error":
		h.b.metrics.errProtocol.Inc()
		h.b.log.Warn("client disconnected", attrs...)
	default:
		h.b.log.Info("client disconnected", attrs...)
	}

	defer h.lockSession(cl.ID)()
	if cl.IsTakenOver() || errors.Is(cl.StopCause(), packets.ErrSessionTakenOver) || !h.owns(cl) {
		return // the new connection owns the session, and the presence record
	}
	// A will (its topic is kept once sent) is published on any disconnect
	// but a clean one.
	h.b.setPresence(cl, false, presenceReason(reason, cl.Properties.Will.TopicName != ""), time.Now())
	if expire {
		if _, was := h.persisted.LoadAndDelete(cl.ID); was {
			h.writeAsync("session end", storage.DeleteSession(cl.ID))
		}
		return
	}
	if h.isPersisted(cl.ID) {
		h.writeAsync("session", storage.PutSession(sessionOf(cl, cl.StopTime())))
	}
}

// OnPacketRead counts packets and refuses publishes to $SYS, which mochi
// would otherwise drop without acknowledging them.
func (h *hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	h.b.metrics.packetIn(pk)
	if pk.FixedHeader.Type != packets.Publish || cl.Net.Inline || !isSysTopic(pk.TopicName) {
		return pk, nil
	}
	h.b.metrics.errDenied.Inc()
	h.b.log.Warn("publish refused: $SYS topics are the broker's",
		"client", cl.ID, "remote", cl.Net.Remote, "topic", pk.TopicName, "qos", pk.FixedHeader.Qos)
	if h.refusePublish(cl, pk, packets.ErrNotAuthorized) {
		return pk, packets.ErrRejectPacket
	}
	return pk, nil // mochi drops publishes to $SYS after this
}

// refuseBrokerTopic refuses a publish to a topic only the broker publishes
// to, as a publish to $SYS is refused: QoS 0 is dropped; QoS 1/2 gets 0x87
// (MQTT 5) or closes the connection (3.1.1, which has no negative
// acknowledgement). A will (its client is gone) is dropped. It runs in
// OnPublish, not OnPacketRead, so that a topic alias is resolved.
func (h *hook) refuseBrokerTopic(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	h.b.metrics.errDenied.Inc()
	what := "publish"
	if isWill(pk) {
		what = "will"
	}
	h.b.log.Warn(what+" refused: $presence and $listen topics are the broker's",
		"client", cl.ID, "remote", cl.Net.Remote, "topic", pk.TopicName, "qos", pk.FixedHeader.Qos)
	h.refusePublish(cl, pk, packets.ErrNotAuthorized)
	return pk, packets.ErrRejectPacket
}

// isWill reports whether pk is a will being published (mochi patch: its
// client may not be closed yet).
func isWill(pk packets.Packet) bool { return pk.Connect.WillFlag }

// isSysTopic reports whether topic is under $SYS, in any case, as mochi
// matches it; it runs for every PUBLISH, so it does not allocate.
func isSysTopic(topic string) bool {
	return len(topic) >= len(mqtt.SysPrefix) && strings.EqualFold(topic[:len(mqtt.SysPrefix)], mqtt.SysPrefix)
}

// refusePublish answers a publish that will not be processed: MQTT 5 gets
// a PUBACK or PUBREC with code and stays connected; MQTT 3.1.1, which has no
// negative acknowledgement, is disconnected if it expects one. It reports
// whether it closed the connection.
func (h *hook) refusePublish(cl *mqtt.Client, pk packets.Packet, code packets.Code) (closed bool) {
	if pk.FixedHeader.Qos == 0 || isWill(pk) || cl.Closed() { // a will's client is going: nothing to answer
		return false
	}
	if cl.Properties.ProtocolVersion < 5 {
		// Closing the socket, not the client, lets mochi's read loop fail
		// and take the abnormal-disconnect path: the will is published.
		h.refused.Store(cl, code)
		_ = cl.Net.Conn.Close()
		return true
	}
	ack := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Puback},
		PacketID:    pk.PacketID,
		ReasonCode:  code.Code,
		Properties:  packets.Properties{ReasonString: code.Reason},
	}
	if pk.FixedHeader.Qos == 2 {
		ack.FixedHeader.Type = packets.Pubrec
	}
	if err := cl.WritePacket(ack); err != nil {
		h.b.log.Debug("refusal not delivered", "client", cl.ID, "error", err)
	}
	return false
}

// OnPacketEncode tells MQTT 5 clients the broker's maximum packet size in
// CONNACK (MQTT 5.0 section 3.2.2.3.6), which mochi leaves out.
func (h *hook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	switch pk.FixedHeader.Type {
	case packets.Publish:
		if pk.Attachment != nil {
			h.b.deliver(cl, &pk)
		}
	case packets.Connack:
		if cl.Properties.ProtocolVersion == 5 && pk.ReasonCode < packets.ErrUnspecifiedError.Code {
			pk.Properties.MaximumPacketSize = h.b.limits.MaxPacketSize
		}
	}
	return pk
}

func (h *hook) OnPacketSent(_ *mqtt.Client, pk packets.Packet, _ []byte) {
	h.b.metrics.packetOut(pk)
}

// OnPublish routes a publish by its topic and kind. $rec/<op>/<name> is a
// record operation; $rpc/<name> an RPC request and $rpc-response/<id> an
// answer; $presence/get asks who is online. A retained publish sets or deletes a record: it is
// acknowledged after the change is durable, and the record layer, not
// mochi, publishes it (in version order). Anything else is an event, whose
// payload is classified so that each subscriber gets it in its codec.
// Will messages come here too (mochi patch), as their client's publish.
func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if t := pk.TopicName; t != "" && t[0] == '$' {
		if rest, ok := strings.CutPrefix(t, recPrefix); ok {
			return h.serveRecord(cl, pk, rest)
		}
		if name, ok := strings.CutPrefix(t, rpcPrefix); ok {
			return h.serveRPC(cl, pk, name)
		}
		if id, ok := strings.CutPrefix(t, rpcAnswerPrefix); ok {
			return h.serveAnswer(cl, pk, id)
		}
		if t == presenceGet {
			return h.servePresenceGet(cl, pk)
		}
		if brokerOwned(t) {
			return h.refuseBrokerTopic(cl, pk)
		}
	}
	clientCodec := h.b.clientCodec(cl)
	c, err := codec.Classify(pk.Payload, pk.Properties.ContentType, clientCodec)
	if err != nil {
		rq := &request{cl: cl, pk: pk, op: "publish", name: pk.TopicName, codec: clientCodec}
		return h.fail(rq, &record.Error{Code: record.CodeInvalidPayload, Message: err.Error(), Err: err}, true)
	}
	if pk.FixedHeader.Retain {
		return h.setRecord(cl, pk, c, clientCodec)
	}
	if c != 0 {
		pk.Attachment = codec.NewPayload(pk.Payload, c, h.b.eventLimits)
	}
	return pk, nil
}

// setRecord applies a retained publish to its record: a non-empty payload
// sets it, an empty one deletes it. An MQTT 5 user property "version" makes
// the write conditional.
func (h *hook) setRecord(cl *mqtt.Client, pk packets.Packet, c, clientCodec codec.Codec) (packets.Packet, error) {
	m := messageOf(pk)
	m.Payload = nil
	// QoS 0 promises no delivery: it need not wait for the disk.
	op := record.Op{Kind: record.Put, Name: pk.TopicName, Writer: cl.ID, Message: m, Async: pk.FixedHeader.Qos == 0}
	if len(pk.Payload) == 0 {
		op.Kind, op.IgnoreMissing = record.Delete, true
	} else {
		op.Payload = codec.NewPayload(pk.Payload, c, h.b.records.Limits().Codec())
	}
	rq := &request{cl: cl, pk: pk, op: "publish", name: pk.TopicName, codec: clientCodec}
	v, ok, err := versionOf(pk)
	if err == nil && ok {
		op.Conditional, op.IfVersion = true, v
	}
	if err == nil {
		_, err = h.b.records.Apply(op)
	}
	h.b.metrics.recordOp(op.Kind.String(), record.CodeOf(err), err == nil)
	if err != nil {
		return h.fail(rq, err, true)
	}
	return pk, packets.CodeSuccessIgnore
}

func (h *hook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	for i, f := range pk.Filters {
		if i < len(codes) && codes[i] < packets.ErrUnspecifiedError.Code {
			h.b.listening.subscribed(cl, f, true)
		}
	}
	if !h.isPersisted(cl.ID) {
		return
	}
	changes := make([]storage.Change, 0, len(pk.Filters))
	for i, f := range pk.Filters {
		if i >= len(codes) || codes[i] >= packets.ErrUnspecifiedError.Code {
			continue
		}
		changes = append(changes, storage.PutSubscription(storage.Subscription{
			ClientID:          cl.ID,
			Filter:            f.Filter,
			QoS:               codes[i],
			Identifier:        f.Identifier,
			NoLocal:           f.NoLocal,
			RetainAsPublished: f.RetainAsPublished,
			RetainHandling:    f.RetainHandling,
		}))
	}
	if len(changes) > 0 {
		h.writeAsync("subscribe", changes...)
	}
}

func (h *hook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	for _, f := range pk.Filters {
		h.b.listening.unsubscribed(cl, f.Filter)
	}
	if !h.isPersisted(cl.ID) || len(pk.Filters) == 0 {
		return
	}
	changes := make([]storage.Change, len(pk.Filters))
	for i, f := range pk.Filters {
		changes[i] = storage.DeleteSubscription(cl.ID, f.Filter)
	}
	h.writeAsync("unsubscribe", changes...)
}

func (h *hook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, sent int64, _ int) {
	if !h.isPersisted(cl.ID) {
		return
	}
	m := messageOf(pk)
	m.Sent = sent
	// mochi calls this in send order, also when it resends a session's
	// inflight messages in order, so a fresh sequence number keeps it.
	m.Seq = h.seq.Add(1)
	h.writeAsync("inflight", storage.PutInflight(cl.ID, m))
}

func (h *hook) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	// A resumed session's old client clears its copy of the inflight
	// messages, which the new client has taken over (and resends, storing
	// them again): that must not delete the stored ones.
	if cl.IsTakenOver() {
		return
	}
	if h.isPersisted(cl.ID) {
		h.writeAsync("inflight done", storage.DeleteInflight(cl.ID, pk.PacketID))
	}
}

func (h *hook) OnQosDropped(cl *mqtt.Client, pk packets.Packet) {
	h.OnQosComplete(cl, pk)
}

// OnPublishDropped counts messages dropped because a client's outbound
// queue was full, logging at most once a second with the count since.
func (h *hook) OnPublishDropped(cl *mqtt.Client, pk packets.Packet) {
	if pk.FixedHeader.Retain {
		h.b.retained.noteDropped(cl, pk.TopicName)
	}
	h.b.metrics.errDropped.Inc()
	n := h.drops.Add(1)
	now := time.Now().UnixNano()
	last := h.lastDropLog.Load()
	if now-last < int64(time.Second) || !h.lastDropLog.CompareAndSwap(last, now) {
		return
	}
	h.drops.Add(-n)
	h.b.log.Warn("messages dropped: client outbound queue full",
		"client", cl.ID, "topic", pk.TopicName, "dropped_since_last_log", n,
		"max_pending_writes", h.b.limits.MaxPendingWrites)
}

// OnClientExpired ends an expired session. mochi only forgets the client:
// its subscriptions would stay in the topic index, matched by every
// publish, and its inflight messages counted, for as long as the broker runs.
func (h *hook) OnClientExpired(cl *mqtt.Client) {
	defer h.lockSession(cl.ID)()
	if !h.owns(cl) {
		// Reconnected meanwhile: the new connection owns the session, and
		// the topic index knows subscriptions by client id.
		return
	}
	h.b.srv.UnsubscribeClient(cl)
	cl.ClearInflights()
	h.b.log.Info("session expired", "client", cl.ID)
	if _, was := h.persisted.LoadAndDelete(cl.ID); was {
		h.writeAsync("session expiry", storage.DeleteSession(cl.ID))
	}
}

func (h *hook) OnWillSent(cl *mqtt.Client, pk packets.Packet) {
	h.b.log.Info("will published", "client", cl.ID, "topic", pk.TopicName, "retain", pk.FixedHeader.Retain)
	defer h.lockSession(cl.ID)()
	if h.owns(cl) && h.isPersisted(cl.ID) {
		// StopTime, not now: a delayed will is sent after the disconnect.
		h.writeAsync("session", storage.PutSession(sessionOf(cl, cl.StopTime())))
	}
}
