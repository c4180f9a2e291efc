package broker

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hearth-iot/hearth/broker/codec"
	"github.com/hearth-iot/hearth/broker/document"
	"github.com/hearth-iot/hearth/broker/record"
	"github.com/hearth-iot/hearth/storage"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// recPrefix starts the record operations namespace: $rec/<op>/<name>.
const recPrefix = "$rec/"

// Protocol error codes of the broker itself; record.Code* are the others.
const (
	codeUnknownOperation = "UNKNOWN_OPERATION"
)

// knownOps are the operations of $rec/<op>/<name>.
var knownOps = map[string]bool{"get": true, "set": true, "merge": true, "delete": true,
	"append": true, "insert": true, "remove": true}

// reasonCode is the MQTT 5 PUBACK/PUBREC reason code for an error code.
func reasonCode(code string, err error) packets.Code {
	var c byte
	switch code {
	case record.CodeInvalidPayload, record.CodeInvalidPath:
		c = packets.ErrPayloadFormatInvalid.Code // 0x99
	case record.CodeTooLarge:
		c = packets.ErrQuotaExceeded.Code // 0x97
	case record.CodeInvalidName, codeUnknownOperation:
		c = packets.ErrTopicNameInvalid.Code // 0x90
	case codeDenied:
		c = packets.ErrNotAuthorized.Code // 0x87
	case record.CodeNotFound, record.CodeVersionConflict:
		c = packets.ErrImplementationSpecificError.Code // 0x83
	default: // STORAGE_ERROR
		c = packets.ErrUnspecifiedError.Code // 0x80
		if errors.Is(err, storage.ErrFull) {
			c = packets.ErrQuotaExceeded.Code
		}
	}
	return packets.Code{Code: c, Reason: code + ": " + truncateUTF8(errorMessage(err), 200)}
}

// errorMessage is err's message as an error reply gives it.
func errorMessage(err error) string {
	if re, ok := errors.AsType[*record.Error](err); ok {
		return re.Message
	}
	return err.Error()
}

// truncateUTF8 cuts s to at most n bytes, at a character boundary: an MQTT
// string must be valid UTF-8.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// request is one $rec operation being served.
type request struct {
	cl    *mqtt.Client
	pk    packets.Packet
	op    string // get, set, merge, delete, append, insert, remove
	name  string
	codec codec.Codec // the requester's: its reply is in it
}

// serveRecord serves a publish to $rec/<op>/<name>: it applies the
// operation and replies. The publish itself goes to no subscriber.
func (h *hook) serveRecord(cl *mqtt.Client, pk packets.Packet, rest string) (packets.Packet, error) {
	op, name, _ := strings.Cut(rest, "/")
	rq := &request{cl: cl, pk: pk, op: op, name: name, codec: h.b.clientCodec(cl)}
	var body map[string]any
	err := checkResponseTopic(cl.ID, pk.Properties.ResponseTopic)
	if err == nil {
		body, err = h.doRecord(rq)
	}
	label := op
	if !knownOps[op] {
		label = "unknown" // a metric label must not take any value a client sends
	}
	h.b.metrics.recordOp(label, record.CodeOf(err), err == nil)
	if err != nil {
		return h.fail(rq, err, false)
	}
	h.reply(rq, body)
	return pk, packets.CodeSuccessIgnore
}

// fail logs a failed record request, replies with the error, and
// answers the publish: MQTT 5 with a reason code. MQTT 3.1.1 has no
// negative acknowledgement: a plain retained publish that was not stored
// closes the connection, since a PUBACK would say it was (closeV3); a $rec
// request is acknowledged, its reply carrying the error.
func (h *hook) fail(rq *request, err error, closeV3 bool) (packets.Packet, error) {
	code := record.CodeOf(err)
	level := h.b.log.Warn
	if code == record.CodeStorageError {
		level = h.b.log.Error
		h.b.metrics.storeError(err)
	}
	level("record operation refused",
		"client", rq.cl.ID, "op", rq.op, "record", rq.name, "code", code,
		"reason_code", fmt.Sprintf("0x%02x", reasonCode(code, err).Code), "error", err)
	body := map[string]any{"error": code, "message": errorMessage(err)}
	if re, ok := errors.AsType[*record.Error](err); ok {
		switch cur := re.Current; {
		case cur == nil:
		case code == record.CodeVersionConflict:
			body["version"] = cur.Version // 0: the record does not exist
			if cur.Exists(time.Now()) {
				body["value"] = recordValue(cur)
			}
		case cur.Version > 0:
			body["version"] = cur.Version
		}
	}
	h.reply(rq, body)
	if rq.pk.FixedHeader.Qos == 0 || isWill(rq.pk) || rq.cl.Closed() {
		return rq.pk, packets.CodeSuccessIgnore
	}
	if rq.cl.Properties.ProtocolVersion >= 5 || closeV3 {
		h.refusePublish(rq.cl, rq.pk, reasonCode(code, err))
		return rq.pk, packets.ErrRejectPacket
	}
	return rq.pk, packets.CodeSuccessIgnore
}

// doRecord applies rq and returns the reply body.
func (h *hook) doRecord(rq *request) (map[string]any, error) {
	recs := h.b.records
	if err := recs.CheckName(rq.name); err != nil {
		return nil, err
	}
	if rq.name[0] == '$' {
		return nil, &record.Error{Code: record.CodeInvalidName, Message: fmt.Sprintf("%q: names starting with $ are the broker's", rq.name)}
	}
	if rq.op == "get" {
		r, err := recs.Get(rq.name)
		if err != nil {
			return nil, err
		}
		return map[string]any{"version": r.Version, "value": recordValue(&r)}, nil
	}
	op, err := h.parseOp(rq)
	if err != nil {
		return nil, err
	}
	res, err := recs.Apply(op)
	if err != nil {
		return nil, err
	}
	body := map[string]any{"version": res.Record.Version}
	if op.Kind == record.RemoveValue {
		body["removed"] = int64(res.Removed)
	}
	return body, nil
}

// recordValue is a record's value for a reply: its document, or the bytes
// of an opaque record.
func recordValue(r *record.Record) any {
	if r.Structured {
		return r.Value
	}
	return r.Bytes
}

func invalidPayload(format string, args ...any) error {
	return &record.Error{Code: record.CodeInvalidPayload, Message: fmt.Sprintf(format, args...)}
}

// parseOp builds the record operation of a write request.
func (h *hook) parseOp(rq *request) (record.Op, error) {
	op := record.Op{
		Name:    rq.name,
		Writer:  rq.cl.ID,
		Message: messageOf(packets.Packet{FixedHeader: packets.FixedHeader{Qos: rq.pk.FixedHeader.Qos}}),
	}
	if v, ok, err := versionOf(rq.pk); err != nil {
		return op, err
	} else if ok {
		op.Conditional, op.IfVersion = true, v
	}
	switch rq.op {
	case "merge":
		op.Kind = record.Merge
		v, err := h.requestValue(rq)
		if err != nil {
			return op, err
		}
		op.Value = v
		return op, nil
	case "set", "delete", "append", "insert", "remove":
	default:
		return op, &record.Error{Code: codeUnknownOperation,
			Message: fmt.Sprintf("unknown operation %q: use get, set, merge, delete, append, insert or remove", rq.op)}
	}

	var env map[string]any
	if rq.op != "delete" || len(rq.pk.Payload) > 0 {
		v, err := h.requestValue(rq)
		if err != nil {
			return op, err
		}
		var ok bool
		if env, ok = v.(map[string]any); !ok {
			return op, invalidPayload("$rec/%s takes an object: {\"path\": ..., \"value\": ...}", rq.op)
		}
	}
	allowed := map[string]bool{"path": true, "version": true}
	switch rq.op {
	case "set":
		op.Kind = record.Set
		allowed["value"] = true
	case "delete":
		op.Kind = record.Delete
	case "append":
		op.Kind = record.Append
		allowed["value"], allowed["values"] = true, true
	case "insert":
		op.Kind = record.Insert
		allowed["value"], allowed["values"], allowed["index"] = true, true, true
	case "remove":
		op.Kind = record.RemoveAt
		allowed["value"], allowed["index"] = true, true
	}
	for k := range env {
		if !allowed[k] {
			return op, invalidPayload("$rec/%s: unknown field %q", rq.op, k)
		}
	}
	if p, ok := env["path"]; ok {
		s, ok := p.(string)
		if !ok {
			return op, invalidPayload("path must be a string")
		}
		path, err := document.ParsePath(s)
		if err != nil {
			return op, &record.Error{Code: record.CodeInvalidPath, Message: strings.TrimPrefix(err.Error(), "document: "), Err: err}
		}
		op.Path = path
	}
	if v, ok := env["version"]; ok {
		n, ok := unsigned(v)
		if !ok {
			return op, invalidPayload("version must be a whole number from 0")
		}
		if op.Conditional && op.IfVersion != n {
			return op, invalidPayload("version %d in the payload differs from the user property's %d", n, op.IfVersion)
		}
		op.Conditional, op.IfVersion = true, n
	}
	value, hasValue := env["value"]
	values, hasValues := env["values"]
	index, hasIndex := env["index"]
	switch op.Kind {
	case record.Set:
		if !hasValue {
			return op, invalidPayload("$rec/set needs a value (null is one)")
		}
		op.Value = value
	case record.Append, record.Insert:
		switch {
		case hasValue == hasValues:
			return op, invalidPayload("$rec/%s needs either value or values", rq.op)
		case hasValue:
			op.Values = []any{value}
		default:
			list, ok := values.([]any)
			if !ok {
				return op, invalidPayload("values must be an array")
			}
			op.Values = list
		}
		if op.Kind == record.Insert {
			if !hasIndex {
				return op, invalidPayload("$rec/insert needs an index")
			}
			n, ok := unsigned(index)
			if !ok || n > document.MaxIndex {
				return op, &record.Error{Code: record.CodeInvalidPath, Message: fmt.Sprintf("index must be a whole number from 0 to %d", document.MaxIndex)}
			}
			op.Index = int(n)
		}
	case record.RemoveAt:
		switch {
		case hasValue == hasIndex:
			return op, invalidPayload("$rec/remove needs either index or value")
		case hasValue:
			op.Kind, op.Value = record.RemoveValue, value
		default:
			n, ok := unsigned(index)
			if !ok || n > document.MaxIndex {
				return op, &record.Error{Code: record.CodeInvalidPath, Message: fmt.Sprintf("index must be a whole number from 0 to %d", document.MaxIndex)}
			}
			op.Index = int(n)
		}
	}
	return op, nil
}

// requestValue decodes rq's payload, which must be structured.
func (h *hook) requestValue(rq *request) (any, error) {
	c, err := codec.Classify(rq.pk.Payload, rq.pk.Properties.ContentType, rq.codec)
	if err != nil {
		return nil, &record.Error{Code: record.CodeInvalidPayload, Message: err.Error(), Err: err}
	}
	if c == 0 {
		return nil, invalidPayload("$rec/%s needs a JSON or CBOR payload", rq.op)
	}
	lim := h.b.records.Limits().Codec()
	v, err := codec.Decode(rq.pk.Payload, c, lim)
	if err != nil {
		code := record.CodeInvalidPayload
		if errors.Is(err, codec.ErrTooLarge) {
			code = record.CodeTooLarge
		}
		return nil, &record.Error{Code: code, Message: err.Error(), Err: err}
	}
	return v, nil
}

// versionOf reads the expected version from the MQTT 5 user property.
func versionOf(pk packets.Packet) (uint64, bool, error) {
	for _, u := range pk.Properties.User {
		if u.Key != versionProperty {
			continue
		}
		n, err := strconv.ParseUint(u.Val, 10, 64)
		if err != nil {
			return 0, false, invalidPayload("user property version %q is not a whole number", u.Val)
		}
		return n, true, nil
	}
	return 0, false, nil
}

// unsigned returns a document number as a uint64 if it is a whole number
// from 0.
func unsigned(v any) (uint64, bool) {
	switch n := v.(type) {
	case int64:
		return uint64(n), n >= 0
	case uint64:
		return n, true
	case float64:
		if n >= 0 && n == math.Trunc(n) && n < 1<<63 {
			return uint64(n), true
		}
	}
	return 0, false
}

// reply publishes body, with the operation and record name added, to rq's
// requester: on the MQTT 5 Response Topic with its Correlation Data if the
// request had one, else on $reply/<client id>, in the requester's codec.
func (h *hook) reply(rq *request, body map[string]any) {
	body["op"] = rq.op
	body["name"] = rq.name
	h.b.publishReply(replyTarget(rq.cl, rq.pk, rq.codec), body)
}

// replyTo is where a reply goes, and in what form.
type replyTo struct {
	client      string // the requester's id, for logs
	topic       string
	correlation []byte
	qos         byte
	codec       codec.Codec
}

// replyTarget is where the reply to pk, a request from cl, goes: its MQTT 5
// Response Topic with its Correlation Data, else (or if the Response Topic
// is not one the client may have replies on: see checkResponseTopic)
// $reply/<client id>.
func replyTarget(cl *mqtt.Client, pk packets.Packet, c codec.Codec) replyTo {
	to := replyTo{client: cl.ID, topic: pk.Properties.ResponseTopic, correlation: pk.Properties.CorrelationData,
		qos: pk.FixedHeader.Qos, codec: c}
	if to.topic == "" || checkResponseTopic(cl.ID, to.topic) != nil {
		to.topic = replyPrefix + cl.ID
	}
	return to
}

// checkResponseTopic refuses a Response Topic the broker must not publish
// a reply on for client id: one holding a wildcard (not a topic name), or
// one in a $ namespace other than the client's own $reply/<id>. The broker
// publishes replies without the checks of a client's publish, so a reply
// there would let a client publish as the broker: forge $listen
// notifications or $presence records, or reach every $rpc provider.
func checkResponseTopic(id, topic string) error {
	switch {
	case topic == "":
		return nil
	case strings.ContainsAny(topic, "+#"):
		return &record.Error{Code: codeDenied, Message: fmt.Sprintf("Response Topic %q holds a wildcard", topic)}
	case topic[0] == '$':
		if rest, ok := strings.CutPrefix(topic, replyPrefix); ok && ownsReplyTopic(id, rest) {
			return nil
		}
		return &record.Error{Code: codeDenied, Message: fmt.Sprintf("Response Topic %q: the broker replies on no $ topic but the client's own $reply/<client id>", topic)}
	}
	return nil
}

// publishReply publishes body in to's codec. An error reply (body has
// "error") carries the code as the MQTT 5 user property "error" too, so a
// requester whose successful replies are arbitrary payloads (RPC) can tell.
func (b *Broker) publishReply(to replyTo, body map[string]any) {
	p, err := codec.Encode(body, to.codec)
	if err != nil { // cannot happen: body holds only document values
		b.log.Error("reply not encoded", "client", to.client, "op", body["op"], "name", body["name"], "error", err)
		return
	}
	var user []packets.UserProperty
	if code, ok := body["error"].(string); ok {
		user = []packets.UserProperty{{Key: errorProperty, Val: code}}
	}
	b.srv.PublishToSubscribers(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: to.qos},
		TopicName:   to.topic,
		Payload:     p,
		Properties: packets.Properties{
			CorrelationData: to.correlation,
			ContentType:     to.codec.ContentType(),
			User:            user,
		},
		Attachment: codec.NewPayload(p, to.codec, codec.Limits{MaxSize: math.MaxInt32}),
	})
}
