package broker

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hearth-iot/hearth/broker/codec"
	"github.com/hearth-iot/hearth/broker/record"
	"github.com/hearth-iot/hearth/broker/rpc"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// The RPC namespaces: a request is a publish to $rpc/<name>, which goes to
// one provider subscribed to it; the provider answers on
// $rpc-response/<request id>, the Response Topic the broker gives it.
const (
	rpcPrefix       = "$rpc/"
	rpcAnswerPrefix = "$rpc-response/"
)

// RPC error codes, besides INVALID_PAYLOAD and INVALID_NAME.
const (
	codeNoProvider      = "NO_PROVIDER"       // no provider, or every one rejected or went away
	codeTimeout         = "TIMEOUT"           // no answer in time
	codeTooManyRequests = "TOO_MANY_REQUESTS" // rpc.max_pending calls in flight
	codeUnknownRequest  = "UNKNOWN_REQUEST"   // an answer to no call in flight
	codeDenied          = "DENIED"            // an answer to a call given to another provider; a Response Topic refused
	codeRejected        = "REJECTED"          // a provider's: pass the call on
	codeProviderError   = "PROVIDER_ERROR"    // the metric label of a provider's own error answers
)

// MQTT 5 user properties of RPC.
const (
	timeoutProperty         = "timeout"          // a request's timeout, in milliseconds
	errorProperty           = "error"            // the code of an error reply, or of a provider's error answer
	requesterClientProperty = "requester-client" // the requester's client id, for the provider
	requesterUserProperty   = "requester-user"   // the requester's user name, for the provider
)

// provider is the Router's name for a provider: its connection, so that a
// call held by a connection that a reconnect replaced is passed on.
type provider = *mqtt.Client

// rpcCall is what the broker keeps of a call: how to send the request to a
// provider and how to answer the requester.
type rpcCall struct {
	to       replyTo
	envelope bool // the requester used the envelope (no Response Topic): answer in one
	id       any  // the envelope's id, echoed in the answer

	requester, user string
	qos             byte
	timeout         time.Duration

	// The request: a payload (MQTT 5 with a Response Topic) or the
	// envelope's data.
	payload     []byte
	class       codec.Codec // the payload's codec; 0 for opaque bytes
	contentType string
	props       []packets.UserProperty // the request's, passed to MQTT 5 providers
	data        any
}

// rpcError is a refused request or answer.
type rpcError struct {
	code, msg string
}

func (e *rpcError) Error() string { return e.code + ": " + e.msg }

func rpcErrorf(code, format string, args ...any) *rpcError {
	return &rpcError{code: code, msg: fmt.Sprintf(format, args...)}
}

// rpcReason is the MQTT 5 PUBACK/PUBREC reason code for an RPC error code.
func rpcReason(e *rpcError) packets.Code {
	c := packets.ErrImplementationSpecificError.Code // 0x83
	switch e.code {
	case codeNoProvider:
		c = packets.CodeNoMatchingSubscribers.Code // 0x10
	case record.CodeInvalidPayload:
		c = packets.ErrPayloadFormatInvalid.Code // 0x99
	case codeTooManyRequests:
		c = packets.ErrQuotaExceeded.Code // 0x97
	case record.CodeInvalidName:
		c = packets.ErrTopicNameInvalid.Code // 0x90
	case codeDenied:
		c = packets.ErrNotAuthorized.Code // 0x87
	}
	return packets.Code{Code: c, Reason: e.code + ": " + truncateUTF8(e.msg, 200)}
}

// serveRPC serves a request: a publish to $rpc/<name>. It goes to one
// provider; the publish itself goes to no subscriber.
func (h *hook) serveRPC(cl *mqtt.Client, pk packets.Packet, name string) (packets.Packet, error) {
	b := h.b
	c := b.clientCodec(cl)
	rc := &rpcCall{to: replyTarget(cl, pk, c), requester: cl.ID, user: string(cl.Properties.Username), qos: pk.FixedHeader.Qos}
	timeout, err := h.parseRequest(rc, cl, pk, name)
	if rerr := checkResponseTopic(cl.ID, pk.Properties.ResponseTopic); rerr != nil {
		err = rpcErrorf(codeDenied, "%s", errorMessage(rerr))
	}
	if err != nil {
		return h.refuseRPC(cl, pk, rc, name, err)
	}
	rc.timeout = timeout
	call, err := b.rpc.Start(name, timeout, rc)
	if err != nil {
		return h.refuseRPC(cl, pk, rc, name, rpcErrorf(codeTooManyRequests, "%d requests in flight: try again later", b.rpcLimits.MaxPending))
	}
	b.metrics.rpcRequests.Inc()
	if err := b.route(call); err != nil {
		return h.refuseRPC(cl, pk, rc, name, err)
	}
	return pk, packets.CodeSuccessIgnore
}

// parseRequest fills rc from a request and returns its timeout.
func (h *hook) parseRequest(rc *rpcCall, cl *mqtt.Client, pk packets.Packet, name string) (time.Duration, error) {
	b := h.b
	if name == "" {
		return 0, rpcErrorf(record.CodeInvalidName, "a request needs a name: $rpc/<name>")
	}
	if max := b.records.Limits().MaxNameLen; len(name) > max {
		return 0, rpcErrorf(record.CodeInvalidName, "a name of %d bytes, more than the limit of %d", len(name), max)
	}
	timeout := b.rpcLimits.Timeout
	var env map[string]any
	if pk.Properties.ResponseTopic == "" {
		rc.envelope = true
		var err error
		if env, err = h.decodeEnvelope(pk, rc.to.codec); err != nil {
			return 0, err
		}
		// The id first: an error reply echoes it.
		if id, ok := env["id"]; ok {
			switch id.(type) {
			case string, int64, uint64, float64:
				rc.id = id
			default:
				return 0, rpcErrorf(record.CodeInvalidPayload, "id must be a string or a number")
			}
		}
	}
	for _, u := range pk.Properties.User {
		switch u.Key {
		case requesterClientProperty, requesterUserProperty:
			// The broker's to say: a requester cannot claim another's identity.
		case timeoutProperty:
			ms, err := strconv.ParseUint(u.Val, 10, 64)
			if err != nil || ms == 0 {
				return 0, rpcErrorf(record.CodeInvalidPayload, "user property timeout %q is not a whole number of milliseconds from 1", u.Val)
			}
			timeout = lowerTimeout(timeout, ms)
		default:
			rc.props = append(rc.props, u)
		}
	}
	if rc.envelope {
		return envelopeFields(rc, env, timeout)
	}
	class, err := codec.Classify(pk.Payload, pk.Properties.ContentType, rc.to.codec)
	if err != nil {
		return 0, rpcErrorf(record.CodeInvalidPayload, "%v", err)
	}
	rc.payload, rc.class, rc.contentType = pk.Payload, class, pk.Properties.ContentType
	return timeout, nil
}

// lowerTimeout is the timeout of a request that asks for ms milliseconds:
// it may ask for less than the broker's, not more.
func lowerTimeout(broker time.Duration, ms uint64) time.Duration {
	return min(broker, time.Duration(min(ms, 1<<40))*time.Millisecond)
}

// envelopeFields reads an envelope request's data and timeout into rc and
// returns the request's timeout.
func envelopeFields(rc *rpcCall, env map[string]any, timeout time.Duration) (time.Duration, error) {
	for k, f := range env {
		switch k {
		case "id": // read first
		case "data":
			rc.data = f
		case "timeout":
			ms, ok := unsigned(f)
			if !ok || ms == 0 {
				return 0, rpcErrorf(record.CodeInvalidPayload, "timeout must be a whole number of milliseconds from 1")
			}
			timeout = lowerTimeout(timeout, ms)
		default:
			return 0, rpcErrorf(record.CodeInvalidPayload, "unknown field %q: a request is {\"id\": ..., \"data\": ..., \"timeout\": ms}", k)
		}
	}
	return timeout, nil
}

// decodeEnvelope decodes the JSON or CBOR object of an envelope request or
// answer.
func (h *hook) decodeEnvelope(pk packets.Packet, c codec.Codec) (map[string]any, error) {
	class, err := codec.Classify(pk.Payload, pk.Properties.ContentType, c)
	if err != nil {
		return nil, rpcErrorf(record.CodeInvalidPayload, "%v", err)
	}
	if class == 0 {
		return nil, rpcErrorf(record.CodeInvalidPayload, "without a Response Topic, a request or answer is a JSON or CBOR object")
	}
	v, err := codec.Decode(pk.Payload, class, h.b.records.Limits().Codec())
	if err != nil {
		return nil, rpcErrorf(record.CodeInvalidPayload, "%v", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, rpcErrorf(record.CodeInvalidPayload, "without a Response Topic, a request or answer is an object")
	}
	return m, nil
}

// refuseRPC answers a request that will not be served: an error reply to
// the requester and, for MQTT 5 at QoS 1/2, the matching reason code. MQTT
// 3.1.1 has no negative acknowledgement: its request is acknowledged and
// the reply carries the error.
func (h *hook) refuseRPC(cl *mqtt.Client, pk packets.Packet, rc *rpcCall, name string, err error) (packets.Packet, error) {
	e := asRPCError(err)
	h.b.rpcFailed(rc, name, e)
	if pk.FixedHeader.Qos == 0 || cl.Properties.ProtocolVersion < 5 || isWill(pk) || cl.Closed() {
		return pk, packets.CodeSuccessIgnore
	}
	code := rpcReason(e)
	if code.Code < packets.ErrUnspecifiedError.Code {
		// A success code (0x10): mochi acknowledges the publish with it,
		// completing the QoS 2 flow as for any accepted publish.
		return pk, code
	}
	h.refusePublish(cl, pk, code)
	return pk, packets.ErrRejectPacket
}

func asRPCError(err error) *rpcError {
	if e, ok := errors.AsType[*rpcError](err); ok {
		return e
	}
	return &rpcError{code: codeNoProvider, msg: err.Error()}
}

// rpcFailed logs, counts and replies an error of the broker's to the
// requester of rc.
func (b *Broker) rpcFailed(rc *rpcCall, name string, e *rpcError) {
	b.metrics.rpcError(e.code)
	b.replyRPCError(rc, name, e)
}

// replyRPCError logs an error and replies it to the requester of rc.
func (b *Broker) replyRPCError(rc *rpcCall, name string, e *rpcError) {
	level := b.log.Info // no provider, a timeout, a provider's error: outcomes, not faults
	switch e.code {
	case record.CodeInvalidPayload, record.CodeInvalidName, codeTooManyRequests:
		level = b.log.Warn
	}
	level("rpc request failed", "client", rc.requester, "name", name, "code", e.code, "error", e.msg)
	body := map[string]any{"error": e.code, "message": e.msg}
	b.replyRPC(rc, name, body)
}

// replyRPC sends body, an answer or error in envelope form, to rc's
// requester, with the call's op, name and the requester's id.
func (b *Broker) replyRPC(rc *rpcCall, name string, body map[string]any) {
	body["op"] = "rpc"
	body["name"] = name
	if rc.id != nil {
		body["id"] = rc.id
	}
	b.publishReply(rc.to, body)
}

// route gives call to a provider: a connected client subscribed to a filter
// matching $rpc/<name>, the least busy not yet tried. A provider that
// cannot take it (its queue is full) is passed over. It fails with
// NO_PROVIDER, ending the call, when none is left.
func (b *Broker) route(call *rpc.Call[provider]) error {
	rc := call.Data.(*rpcCall)
	for {
		cands, subs := b.providers(call.Name(), rc.requester)
		p, err := b.rpc.Assign(call, cands)
		switch {
		case errors.Is(err, rpc.ErrEnded):
			return nil // timed out meanwhile: its requester has had TIMEOUT
		case err != nil && b.rpc.Tried(call) == 0:
			return rpcErrorf(codeNoProvider, "no provider for %q", call.Name())
		case err != nil:
			return rpcErrorf(codeNoProvider, "no provider left for %q: %d tried, each rejected it or went away", call.Name(), b.rpc.Tried(call))
		}
		sub := subs[slices.Index(cands, p)]
		err = b.sendRequest(p, sub, call)
		if e, ok := errors.AsType[*rpcError](err); ok {
			b.rpc.End(call) // the request itself is at fault, not the provider
			return e
		}
		if err == nil && !p.Closed() {
			return nil
		}
		// Not delivered, or the provider closed while it was chosen: its
		// disconnect may have released its calls before this one was
		// given to it, and a QoS 1/2 request waiting for its receive quota
		// is not refused by a closed client.
		b.log.Debug("rpc request not delivered: trying the next provider", "provider", p.ID, "name", call.Name(), "error", err)
		b.metrics.rpcReroute("undeliverable")
		if _, err := b.rpc.Reject(call.ID(), p); err != nil {
			return nil // the provider went away meanwhile, and its release passes the call on
		}
		if p.Closed() {
			b.providerGone(p) // again: the calls given to it since, and its turn
		}
	}
}

// passOn routes a call a provider gave back, telling its requester if no
// provider is left.
func (b *Broker) passOn(call *rpc.Call[provider]) {
	if err := b.route(call); err != nil {
		b.rpcFailed(call.Data.(*rpcCall), call.Name(), asRPCError(err))
	}
}

// providers returns the connected clients subscribed to $rpc/<name>,
// sorted by client id (so that ties are broken in a stable turn), each with
// its subscription. A requester whose subscription has No Local is not its
// own provider.
func (b *Broker) providers(name, requester string) ([]provider, []packets.Subscription) {
	found := b.srv.Topics.Subscribers(rpcPrefix + name)
	ids := make(map[string]packets.Subscription, len(found.Subscriptions))
	for id, sub := range found.Subscriptions {
		ids[id] = sub
	}
	for _, group := range found.Shared {
		for id, sub := range group {
			if _, ok := ids[id]; !ok {
				ids[id] = sub
			}
		}
	}
	sorted := make([]string, 0, len(ids))
	for id, sub := range ids {
		if !(sub.NoLocal && id == requester) {
			sorted = append(sorted, id)
		}
	}
	slices.Sort(sorted)
	cands := make([]provider, 0, len(sorted))
	subs := make([]packets.Subscription, 0, len(sorted))
	for _, id := range sorted {
		if cl, ok := b.srv.Clients.Get(id); ok && !cl.Closed() && !cl.Net.Inline {
			cands = append(cands, cl)
			subs = append(subs, ids[id])
		}
	}
	return cands, subs
}

// sendRequest sends call to provider p through its subscription sub: to an
// MQTT 5 provider as the request's payload, with the Response Topic
// $rpc-response/<id> and the requester's Correlation Data; to an MQTT 3.1.1
// provider as an envelope naming the id.
func (b *Broker) sendRequest(p provider, sub packets.Subscription, call *rpc.Call[provider]) error {
	rc := call.Data.(*rpcCall)
	id := strconv.FormatUint(call.ID(), 10)
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: rc.qos},
		TopicName:   rpcPrefix + call.Name(),
		Origin:      rc.requester,
	}
	pc := b.clientCodec(p)
	if p.Properties.ProtocolVersion >= 5 {
		pk.Properties.ResponseTopic = rpcAnswerPrefix + id
		pk.Properties.CorrelationData = rc.to.correlation
		pk.Properties.User = slices.Clone(rc.props)
		if !b.rpcLimits.HideRequester {
			pk.Properties.User = append(pk.Properties.User, packets.UserProperty{Key: requesterClientProperty, Val: rc.requester})
			if rc.user != "" {
				pk.Properties.User = append(pk.Properties.User, packets.UserProperty{Key: requesterUserProperty, Val: rc.user})
			}
		}
		if rc.envelope {
			payload, err := encodeData(rc.data, pc)
			if err != nil { // cannot happen: the data was decoded
				return rpcErrorf(record.CodeInvalidPayload, "the request's data: %v", err)
			}
			pk.Payload, pk.Properties.ContentType = payload, pc.ContentType()
		} else {
			pk.Payload, pk.Properties.ContentType = rc.payload, rc.contentType
			if rc.class != 0 {
				pk.Attachment = codec.NewPayload(rc.payload, rc.class, b.eventLimits)
			}
		}
		return b.srv.PublishToClient(p, sub, pk)
	}
	env := map[string]any{"id": id, "name": call.Name()}
	data, err := b.requestData(rc)
	if err != nil {
		return rpcErrorf(record.CodeInvalidPayload, "the request is not valid %s, which an MQTT 3.1.1 provider needs decoded: %v", rc.class, err)
	}
	if data != nil {
		env["data"] = data
	}
	if !b.rpcLimits.HideRequester {
		who := map[string]any{"client": rc.requester}
		if rc.user != "" {
			who["user"] = rc.user
		}
		env["requester"] = who
	}
	payload, err := codec.Encode(env, pc)
	if err != nil {
		return err
	}
	pk.Payload = payload
	return b.srv.PublishToClient(p, sub, pk)
}

// requestData is the request as a document value, for an envelope: the
// envelope's data, the decoded payload, or an opaque payload's bytes.
func (b *Broker) requestData(rc *rpcCall) (any, error) {
	switch {
	case rc.envelope:
		return rc.data, nil
	case len(rc.payload) == 0:
		return nil, nil
	case rc.class == 0:
		return rc.payload, nil
	}
	return codec.Decode(rc.payload, rc.class, b.records.Limits().Codec())
}

// encodeData encodes an envelope's data as a payload in c; no data is an
// empty payload.
func encodeData(v any, c codec.Codec) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	return codec.Encode(v, c)
}

// serveAnswer serves a provider's answer: a publish to
// $rpc-response/<id>. An MQTT 5 answer is the payload, or an error when it
// has the user property "error" (REJECTED passes the call on); an MQTT
// 3.1.1 answer is an envelope, {"data": ...} or {"error": ..., "message":
// ...}. The answer goes to the requester; nothing goes to subscribers.
func (h *hook) serveAnswer(cl *mqtt.Client, pk packets.Packet, rest string) (packets.Packet, error) {
	b := h.b
	id, err := strconv.ParseUint(rest, 10, 64)
	if err != nil {
		return h.refuseAnswer(cl, pk, rest, rpcErrorf(codeUnknownRequest, "%q is not a request id", rest))
	}
	ans, err := h.parseAnswer(cl, pk)
	if err != nil {
		return h.refuseAnswer(cl, pk, rest, err)
	}
	if ans.code == codeRejected {
		call, err := b.rpc.Reject(id, cl)
		if err != nil {
			return h.refuseAnswer(cl, pk, rest, answerError(err, id))
		}
		b.metrics.rpcReroute("rejected")
		b.log.Debug("rpc request rejected: trying the next provider", "provider", cl.ID, "name", call.Name(), "id", id)
		b.passOn(call)
		return pk, packets.CodeSuccessIgnore
	}
	call, err := b.rpc.Held(id, cl)
	if err != nil {
		return h.refuseAnswer(cl, pk, rest, answerError(err, id))
	}
	if ans.code == "" && cl.Properties.ProtocolVersion >= 5 {
		// Checked before the call ends: a bad answer leaves it pending.
		if err := b.readAnswer(&ans, call.Data.(*rpcCall), cl, pk); err != nil {
			return h.refuseAnswer(cl, pk, rest, err)
		}
	}
	if _, err := b.rpc.Answer(id, cl); err != nil {
		return h.refuseAnswer(cl, pk, rest, answerError(err, id)) // ended meanwhile (timed out)
	}
	b.deliverAnswer(call, cl, pk, ans)
	return pk, packets.CodeSuccessIgnore
}

// readAnswer classifies an MQTT 5 provider's result, and decodes it for a
// requester that takes its answer in an envelope: a payload that
// contradicts its Content Type, or does not decode, is INVALID_PAYLOAD.
func (b *Broker) readAnswer(a *answer, rc *rpcCall, p provider, pk packets.Packet) error {
	class, err := codec.Classify(pk.Payload, pk.Properties.ContentType, b.clientCodec(p))
	if err != nil {
		return rpcErrorf(record.CodeInvalidPayload, "the answer: %v", err)
	}
	a.class = class
	switch {
	case !rc.envelope, len(pk.Payload) == 0:
	case class == 0:
		a.data = pk.Payload
	default:
		if a.data, err = codec.Decode(pk.Payload, class, b.records.Limits().Codec()); err != nil {
			return rpcErrorf(record.CodeInvalidPayload, "the answer: %v", err)
		}
	}
	return nil
}

// answer is a provider's answer: a result, or an error code and message.
type answer struct {
	code, message string
	data          any         // the result as a document: an envelope's, or an MQTT 5 payload for an envelope requester
	class         codec.Codec // an MQTT 5 result's codec; 0 for opaque bytes
}

// parseAnswer reads an answer in cl's form.
func (h *hook) parseAnswer(cl *mqtt.Client, pk packets.Packet) (answer, error) {
	var a answer
	if cl.Properties.ProtocolVersion >= 5 {
		hasError := false
		for _, u := range pk.Properties.User {
			if u.Key == errorProperty {
				hasError = true
				a.code, a.message = u.Val, truncateUTF8(strings.ToValidUTF8(string(pk.Payload), "\uFFFD"), 1024)
			}
		}
		if hasError && !validErrorCode(a.code) {
			return a, rpcErrorf(record.CodeInvalidPayload, "error code %q: use 1 to 64 of A-Z, 0-9 and _", a.code)
		}
		return a, nil
	}
	env, err := h.decodeEnvelope(pk, h.b.clientCodec(cl))
	if err != nil {
		return a, err
	}
	_, hasData := env["data"]
	code, hasError := env["error"]
	for k := range env {
		if k != "data" && k != "error" && k != "message" {
			return a, rpcErrorf(record.CodeInvalidPayload, "unknown field %q: an answer is {\"data\": ...} or {\"error\": ..., \"message\": ...}", k)
		}
	}
	switch {
	case hasData == hasError:
		return a, rpcErrorf(record.CodeInvalidPayload, "an answer has either data or error")
	case hasError:
		s, ok := code.(string)
		if !ok || !validErrorCode(s) {
			return a, rpcErrorf(record.CodeInvalidPayload, "error must be a code: 1 to 64 of A-Z, 0-9 and _")
		}
		a.code = s
		if m, ok := env["message"]; ok {
			if a.message, ok = m.(string); !ok {
				return a, rpcErrorf(record.CodeInvalidPayload, "message must be text")
			}
		}
	default:
		if _, ok := env["message"]; ok {
			return a, rpcErrorf(record.CodeInvalidPayload, "message goes with error, not data")
		}
		a.data = env["data"]
	}
	return a, nil
}

// validErrorCode reports whether s is a code as Hearth's own are.
func validErrorCode(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}

// answerError is the error of an answer the Router refused.
func answerError(err error, id uint64) *rpcError {
	switch {
	case errors.Is(err, rpc.ErrNotHolder):
		return rpcErrorf(codeDenied, "request %d is not yours to answer: it was not given to you, or was passed on", id)
	case errors.Is(err, rpc.ErrEnded):
		return rpcErrorf(codeUnknownRequest, "request %d has ended already (answered, timed out or failed): answer dropped", id)
	}
	return rpcErrorf(codeUnknownRequest, "no request %d", id)
}

// refuseAnswer tells a provider its answer was not taken: an error reply on
// its reply topic and, for MQTT 5 at QoS 1/2, the reason code.
func (h *hook) refuseAnswer(cl *mqtt.Client, pk packets.Packet, id string, e error) (packets.Packet, error) {
	re := asRPCError(e)
	h.b.metrics.rpcError(re.code)
	h.b.log.Warn("rpc answer refused", "provider", cl.ID, "id", id, "code", re.code, "error", re.msg)
	h.b.publishReply(replyTarget(cl, pk, h.b.clientCodec(cl)),
		map[string]any{"op": "answer", "name": rpcAnswerPrefix + id, "error": re.code, "message": re.msg})
	if pk.FixedHeader.Qos > 0 && cl.Properties.ProtocolVersion >= 5 && !isWill(pk) && !cl.Closed() {
		h.refusePublish(cl, pk, rpcReason(re))
		return pk, packets.ErrRejectPacket
	}
	return pk, packets.CodeSuccessIgnore
}

// deliverAnswer sends a provider's answer to the call's requester.
func (b *Broker) deliverAnswer(call *rpc.Call[provider], p provider, pk packets.Packet, a answer) {
	rc := call.Data.(*rpcCall)
	if a.code != "" {
		b.metrics.rpcAnswers.Inc()
		b.metrics.rpcError(codeProviderError) // whatever its code: a provider's, not the broker's
		b.replyRPCError(rc, call.Name(), &rpcError{code: a.code, msg: a.message})
		return
	}
	b.metrics.rpcAnswers.Inc()
	b.metrics.rpcLatency.Observe(time.Since(call.Started()).Seconds())
	fromEnvelope := p.Properties.ProtocolVersion < 5
	if rc.envelope {
		body := map[string]any{}
		if a.data != nil {
			body["data"] = a.data
		}
		b.replyRPC(rc, call.Name(), body)
		return
	}
	out := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: rc.qos},
		TopicName:   rc.to.topic,
		Properties: packets.Properties{
			CorrelationData: rc.to.correlation,
		},
	}
	if fromEnvelope {
		payload, err := encodeData(a.data, rc.to.codec)
		if err != nil {
			b.rpcFailed(rc, call.Name(), rpcErrorf(record.CodeInvalidPayload, "the provider's answer: %v", err))
			return
		}
		out.Payload, out.Properties.ContentType = payload, rc.to.codec.ContentType()
		if payload != nil {
			out.Attachment = codec.NewPayload(payload, rc.to.codec, b.eventLimits)
		}
	} else {
		out.Payload, out.Properties.ContentType = pk.Payload, pk.Properties.ContentType
		out.Properties.User = pk.Properties.User
		if a.class != 0 {
			out.Attachment = codec.NewPayload(pk.Payload, a.class, b.eventLimits)
		}
	}
	b.srv.PublishToSubscribers(out)
}

// rpcTimedOut is the Router's timeout callback.
func (b *Broker) rpcTimedOut(call *rpc.Call[provider]) {
	rc := call.Data.(*rpcCall)
	b.rpcFailed(rc, call.Name(), rpcErrorf(codeTimeout, "no answer within %s", rc.timeout))
}

// providerGone passes on the calls a disconnected provider held.
func (b *Broker) providerGone(cl *mqtt.Client) {
	for _, call := range b.rpc.Release(cl) {
		b.metrics.rpcReroute("disconnected")
		b.log.Debug("rpc provider disconnected holding a request: trying the next provider", "provider", cl.ID, "name", call.Name(), "id", call.ID())
		b.passOn(call)
	}
}
