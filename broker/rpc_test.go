package broker_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/fxamacker/cbor/v2"
)

// RPC end to end (docs/PROTOCOL.md "RPC"): requests to $rpc/<name> from
// MQTT 5 (Response Topic and Correlation Data) and envelope requesters,
// routed to exactly one MQTT 5 or MQTT 3.1.1 provider, answered on
// $rpc-response/<id>. rpcbad_test.go has the refusals and the metrics.

// rpcOpts configures newRPCClient.
type rpcOpts struct {
	v3       bool   // MQTT 3.1.1 (paho.mqtt.golang), else MQTT 5 (paho.golang)
	id       string // client id; "" for a unique one named after role
	role     string // readable part of a generated id
	user     string // user name, if not ""
	cbor     bool   // MQTT 5: declare codec cbor in CONNECT
	envelope bool   // MQTT 5: send requests without a Response Topic
	expiry   uint32 // > 0: a persistent session (MQTT 5 expiry; 3.1.1 clean session false)
	noLocal  bool   // MQTT 5: subscribe to filters with No Local
	// noProblemInfo: MQTT 5 CONNECT with Request Problem Information 0
	// (without it a server leaves reason strings out).
	noProblemInfo bool
	filters       []string
}

// rpcClient is a requester or provider of either MQTT version. It is
// subscribed at QoS 1, in one SUBSCRIBE before anything else, to its
// filters, its reply topic $reply/<id>, rpcres/<id> (its Response Topic) and
// rpcend/<id> (for expectEnd).
type rpcClient struct {
	ID       string
	v5       *v5Client
	v3       *v3Client
	cbor     bool
	envelope bool
}

func newRPCClient(t testing.TB, tb *testBroker, o rpcOpts) *rpcClient {
	t.Helper()
	c := &rpcClient{ID: o.id, cbor: o.cbor, envelope: o.envelope || o.v3}
	if c.ID == "" {
		role := o.role
		if role == "" {
			role = map[bool]string{true: "v3", false: "v5"}[o.v3]
		}
		c.ID = clientID(t, role)
	}
	own := []string{"$reply/" + c.ID, "rpcres/" + c.ID, "rpcend/" + c.ID}
	if o.v3 {
		c.v3 = connectV3(t, tcpURL(tb.MQTTAddr), func(co *mqtt.ClientOptions) {
			co.SetClientID(c.ID)
			if o.user != "" {
				co.SetUsername(o.user)
			}
			if o.expiry > 0 {
				co.SetCleanSession(false)
			}
		})
		filters := map[string]byte{}
		for _, f := range append(slices.Clone(o.filters), own...) {
			filters[f] = 1
		}
		tok := c.v3.SubscribeMultiple(filters, nil)
		if !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
			t.Fatalf("v3 subscribe %v: %v", filters, tok.Error())
		}
		for f, got := range tok.(*mqtt.SubscribeToken).Result() {
			if got != 1 {
				t.Fatalf("v3 subscribe %s: granted 0x%02x, want QoS 1", f, got)
			}
		}
		return c
	}
	cp := &paho.Connect{ClientID: c.ID, CleanStart: o.expiry == 0, KeepAlive: 30,
		Properties: &paho.ConnectProperties{RequestProblemInfo: !o.noProblemInfo}}
	if o.user != "" {
		cp.Username, cp.UsernameFlag = o.user, true
	}
	if o.cbor {
		cp.Properties.User = paho.UserProperties{{Key: "codec", Value: "cbor"}}
	}
	if o.expiry > 0 {
		cp.Properties.SessionExpiryInterval = ptr(o.expiry)
	}
	c.v5 = connectV5(t, tb.MQTTAddr, cp)
	var subs []paho.SubscribeOptions
	for _, f := range o.filters {
		subs = append(subs, paho.SubscribeOptions{Topic: f, QoS: 1, NoLocal: o.noLocal})
	}
	for _, f := range own {
		subs = append(subs, paho.SubscribeOptions{Topic: f, QoS: 1})
	}
	c.v5.subscribeOpts(t, subs...)
	return c
}

// rpcMsg is a message a client received, whatever its MQTT version.
type rpcMsg struct {
	Topic       string
	Payload     []byte
	QoS         byte
	Retain      bool
	ContentType string
	RespTopic   string
	Corr        []byte
	User        paho.UserProperties
}

func (m rpcMsg) String() string {
	return fmt.Sprintf("%s %q (QoS %d, retain %v, content type %q, response topic %q, correlation %q, user %v)",
		m.Topic, m.Payload, m.QoS, m.Retain, m.ContentType, m.RespTopic, m.Corr, m.User)
}

func (c *rpcClient) ch() reflect.Value {
	if c.v5 != nil {
		return reflect.ValueOf(c.v5.msgs)
	}
	return reflect.ValueOf(c.v3.msgs)
}

// recvAny returns the next message any of cs receives within d, and whose.
func recvAny(d time.Duration, cs ...*rpcClient) (int, rpcMsg, bool) {
	cases := make([]reflect.SelectCase, 0, len(cs)+1)
	for _, c := range cs {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: c.ch()})
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(timer.C)})
	i, v, _ := reflect.Select(cases)
	if i == len(cs) {
		return -1, rpcMsg{}, false
	}
	switch m := v.Interface().(type) {
	case *paho.Publish:
		out := rpcMsg{Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, Retain: m.Retain}
		if p := m.Properties; p != nil {
			out.ContentType, out.RespTopic, out.Corr, out.User = p.ContentType, p.ResponseTopic, p.CorrelationData, p.User
		}
		return i, out, true
	case mqtt.Message:
		return i, rpcMsg{Topic: m.Topic(), Payload: m.Payload(), QoS: m.Qos(), Retain: m.Retained()}, true
	}
	panic("unreachable")
}

func (c *rpcClient) next(t testing.TB) rpcMsg {
	t.Helper()
	_, m, ok := recvAny(waitTimeout, c)
	if !ok {
		t.Fatalf("%s: no message within %s", c.ID, waitTimeout)
	}
	return m
}

// expectEnd checks that c has received nothing more: it publishes to its
// own rpcend/<id>, which must be the next message it gets. Whatever the
// broker had sent c before handling that publish arrives first.
func (c *rpcClient) expectEnd(t testing.TB) {
	t.Helper()
	if ack, err := c.send("rpcend/"+c.ID, 1, false, []byte("end"), nil); err != nil || ack.Code != 0 {
		t.Fatalf("%s: publish rpcend: %v %+v", c.ID, err, ack)
	}
	for {
		m := c.next(t)
		if m.Topic == "rpcend/"+c.ID {
			return
		}
		t.Errorf("%s: unexpected message %s", c.ID, m)
	}
}

// rpcAck is the broker's acknowledgement of a publish: MQTT 5 at QoS 1/2
// only (the PUBACK, or the PUBCOMP after a PUBREC below 0x80).
type rpcAck struct {
	Code   byte
	Reason string
}

// send publishes; props are MQTT 5's only.
func (c *rpcClient) send(topic string, qos byte, retain bool, payload []byte, props *paho.PublishProperties) (rpcAck, error) {
	if c.v5 != nil {
		resp, err := c.v5.pub(&paho.Publish{Topic: topic, QoS: qos, Retain: retain, Payload: payload, Properties: props})
		if qos == 0 || resp == nil {
			return rpcAck{}, err
		}
		ack := rpcAck{Code: resp.ReasonCode}
		if resp.Properties != nil {
			ack.Reason = resp.Properties.ReasonString
		}
		return ack, nil
	}
	if props != nil {
		return rpcAck{}, errors.New("MQTT 3.1.1 has no publish properties")
	}
	tok := c.v3.Publish(topic, qos, retain, payload)
	if !tok.WaitTimeout(waitTimeout) {
		return rpcAck{}, fmt.Errorf("v3 publish %s: timeout", topic)
	}
	return rpcAck{}, tok.Error()
}

// mustSend publishes and fails the test unless acknowledged with want.
func (c *rpcClient) mustSend(t testing.TB, want byte, topic string, payload []byte, props *paho.PublishProperties) rpcAck {
	t.Helper()
	ack, err := c.send(topic, 1, false, payload, props)
	if err != nil {
		t.Fatalf("%s: publish %s %q: %v", c.ID, topic, payload, err)
	}
	if ack.Code != want {
		t.Fatalf("%s: publish %s %q: acknowledged 0x%02x (%q), want 0x%02x", c.ID, topic, payload, ack.Code, ack.Reason, want)
	}
	return ack
}

// docBytes is JSON text doc in c's codec.
func (c *rpcClient) docBytes(doc string) ([]byte, error) {
	if !c.cbor || doc == "" {
		return []byte(doc), nil
	}
	v, err := decodeJSON([]byte(doc))
	if err != nil {
		return nil, err
	}
	return cbor.Marshal(plainNumbers(v))
}

// plainNumbers replaces decodeJSON's json.Number with int64 or float64.
func plainNumbers(v any) any {
	switch v := v.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		f, _ := v.Float64()
		return f
	case []any:
		for i := range v {
			v[i] = plainNumbers(v[i])
		}
	case map[string]any:
		for k := range v {
			v[k] = plainNumbers(v[k])
		}
	}
	return v
}

// docText returns a received payload as canonical JSON (see canonJSON) if it
// is JSON or CBOR by its content type (MQTT 3.1.1: JSON if it parses), else
// as it is.
func docText(payload []byte, contentType string, v3 bool) (string, error) {
	switch {
	case contentType == "application/cbor":
		var v any
		if err := cborDec.Unmarshal(payload, &v); err != nil {
			return "", fmt.Errorf("content type %s but not CBOR: %x: %v", contentType, payload, err)
		}
		out, err := json.Marshal(v)
		return string(out), err
	case contentType == "application/json", v3 && json.Valid(payload):
		v, err := decodeJSON(payload)
		if err != nil {
			return "", fmt.Errorf("content type %q but not JSON: %q: %v", contentType, payload, err)
		}
		out, err := json.Marshal(v)
		return string(out), err
	}
	return string(payload), nil
}

// docMap decodes a structured payload as an object.
func docMap(payload []byte, contentType string, v3 bool) (map[string]any, error) {
	text, err := docText(payload, contentType, v3)
	if err != nil {
		return nil, err
	}
	v, err := decodeJSON([]byte(text))
	if err != nil {
		return nil, fmt.Errorf("not a document: %q (content type %q)", payload, contentType)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("not an object: %s", text)
	}
	return m, nil
}

func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("<%v>", err)
	}
	return string(b)
}

// rpcReq is a request as a provider received it.
type rpcReq struct {
	ID, Name string
	Data     string // the request's value as canonical JSON (opaque bytes as they are), "" for none
	// The requester, as told: requester-client and requester-user (MQTT 5)
	// or the envelope's requester.
	Client, User       string
	HasClient, HasUser bool
	Extra              paho.UserProperties // MQTT 5: the other user properties
	Corr               []byte
	QoS                byte
	Retain             bool
	ContentType        string
	Raw                []byte
}

// parseRequest reads a request as the protocol says c gets it.
func (c *rpcClient) parseRequest(m rpcMsg) (rpcReq, error) {
	name, ok := strings.CutPrefix(m.Topic, "$rpc/")
	if !ok {
		return rpcReq{}, fmt.Errorf("%s: not a request: %s", c.ID, m)
	}
	r := rpcReq{Name: name, Corr: m.Corr, QoS: m.QoS, Retain: m.Retain, ContentType: m.ContentType, Raw: m.Payload}
	isID := func(s string) bool { _, err := strconv.ParseUint(s, 10, 64); return err == nil }
	if c.v5 != nil {
		id, ok := strings.CutPrefix(m.RespTopic, "$rpc-response/")
		if !ok || !isID(id) {
			return r, fmt.Errorf("%s: request without a Response Topic $rpc-response/<id>: %s", c.ID, m)
		}
		r.ID = id
		for _, u := range m.User {
			switch u.Key {
			case "requester-client":
				if r.HasClient {
					return r, fmt.Errorf("%s: two requester-client properties: %s", c.ID, m)
				}
				r.Client, r.HasClient = u.Value, true
			case "requester-user":
				if r.HasUser {
					return r, fmt.Errorf("%s: two requester-user properties: %s", c.ID, m)
				}
				r.User, r.HasUser = u.Value, true
			default:
				r.Extra = append(r.Extra, u)
			}
		}
		if len(m.Payload) > 0 {
			var err error
			if r.Data, err = docText(m.Payload, m.ContentType, false); err != nil {
				return r, fmt.Errorf("%s: %v", c.ID, err)
			}
		}
		return r, nil
	}
	env, err := docMap(m.Payload, "", true)
	if err != nil {
		return r, fmt.Errorf("%s: request envelope: %v", c.ID, err)
	}
	for k, v := range env {
		switch k {
		case "id":
			s, ok := v.(string)
			if !ok || !isID(s) {
				return r, fmt.Errorf("%s: envelope id %v is not a decimal string: %s", c.ID, v, m)
			}
			r.ID = s
		case "name":
			if v != name {
				return r, fmt.Errorf("%s: envelope name %v on %s", c.ID, v, m.Topic)
			}
		case "data":
			r.Data = jsonText(v)
		case "requester":
			who, ok := v.(map[string]any)
			if !ok {
				return r, fmt.Errorf("%s: envelope requester %v", c.ID, v)
			}
			for wk, wv := range who {
				s, ok := wv.(string)
				switch {
				case !ok:
					return r, fmt.Errorf("%s: envelope requester %v", c.ID, who)
				case wk == "client":
					r.Client, r.HasClient = s, true
				case wk == "user":
					r.User, r.HasUser = s, true
				default:
					return r, fmt.Errorf("%s: envelope requester %v", c.ID, who)
				}
			}
		default:
			return r, fmt.Errorf("%s: envelope field %q: %s", c.ID, k, m)
		}
	}
	if r.ID == "" {
		return r, fmt.Errorf("%s: envelope without id: %s", c.ID, m)
	}
	return r, nil
}

// request waits for the next message, which must be a request.
func (c *rpcClient) request(t testing.TB) rpcReq {
	t.Helper()
	r, err := c.parseRequest(c.next(t))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// firstRequest waits for a request to any of providers, and returns whose.
func firstRequest(t testing.TB, providers ...*rpcClient) (*rpcClient, rpcReq) {
	t.Helper()
	i, m, ok := recvAny(waitTimeout, providers...)
	if !ok {
		t.Fatalf("no provider got a request within %s", waitTimeout)
	}
	r, err := providers[i].parseRequest(m)
	if err != nil {
		t.Fatal(err)
	}
	return providers[i], r
}

// answer answers request id with data (JSON text): the payload in c's codec
// (MQTT 5, with user properties user), or {"data": data} (MQTT 3.1.1).
func (c *rpcClient) answer(id, data string, user ...paho.UserProperty) (rpcAck, error) {
	topic := "$rpc-response/" + id
	if c.v3 != nil {
		return c.send(topic, 1, false, []byte(`{"data":`+data+`}`), nil)
	}
	payload, err := c.docBytes(data)
	if err != nil {
		return rpcAck{}, err
	}
	var props *paho.PublishProperties
	if len(user) > 0 {
		props = &paho.PublishProperties{User: user}
	}
	return c.send(topic, 1, false, payload, props)
}

// answerError answers request id with an error code: the user property
// error and the message as payload (MQTT 5), or {"error":, "message":}.
func (c *rpcClient) answerError(id, code, msg string) (rpcAck, error) {
	topic := "$rpc-response/" + id
	if c.v3 != nil {
		body := map[string]any{"error": code}
		if msg != "" {
			body["message"] = msg
		}
		return c.send(topic, 1, false, []byte(jsonText(body)), nil)
	}
	return c.send(topic, 1, false, []byte(msg), &paho.PublishProperties{User: paho.UserProperties{{Key: "error", Value: code}}})
}

func (c *rpcClient) mustAnswer(t testing.TB, id, data string, user ...paho.UserProperty) {
	t.Helper()
	ack, err := c.answer(id, data, user...)
	if err != nil || ack.Code != 0 {
		t.Fatalf("%s: answer %s %s: %v, acknowledged 0x%02x %q", c.ID, id, data, err, ack.Code, ack.Reason)
	}
}

func (c *rpcClient) mustAnswerError(t testing.TB, id, code, msg string) {
	t.Helper()
	ack, err := c.answerError(id, code, msg)
	if err != nil || ack.Code != 0 {
		t.Fatalf("%s: answer %s with error %s: %v, acknowledged 0x%02x %q", c.ID, id, code, err, ack.Code, ack.Reason)
	}
}

func (c *rpcClient) corr(seq int) []byte { return fmt.Appendf(nil, "corr-%d", seq) }

// call sends request number seq to $rpc/<name> at QoS 1 with data (JSON
// text, "" for none): with the Response Topic rpcres/<id> and Correlation
// Data corr-<seq> and user properties user, or as an envelope with id seq.
// timeout > 0 asks for that many milliseconds.
func (c *rpcClient) call(name, data string, seq, timeout int, user ...paho.UserProperty) (rpcAck, error) {
	topic := "$rpc/" + name
	if c.envelope {
		env := fmt.Sprintf(`{"id":%d`, seq)
		if data != "" {
			env += `,"data":` + data
		}
		if timeout > 0 {
			env += fmt.Sprintf(`,"timeout":%d`, timeout)
		}
		payload, err := c.docBytes(env + "}")
		if err != nil {
			return rpcAck{}, err
		}
		return c.send(topic, 1, false, payload, nil)
	}
	payload, err := c.docBytes(data)
	if err != nil {
		return rpcAck{}, err
	}
	props := &paho.PublishProperties{ResponseTopic: "rpcres/" + c.ID, CorrelationData: c.corr(seq), User: slices.Clone(user)}
	if timeout > 0 {
		props.User = append(props.User, paho.UserProperty{Key: "timeout", Value: strconv.Itoa(timeout)})
	}
	return c.send(topic, 1, false, payload, props)
}

// mustCall sends a request and fails the test unless it is acknowledged
// with want (MQTT 5; 0 for 3.1.1).
func (c *rpcClient) mustCall(t testing.TB, want byte, name, data string, seq, timeout int, user ...paho.UserProperty) {
	t.Helper()
	ack, err := c.call(name, data, seq, timeout, user...)
	if err != nil {
		t.Fatalf("%s: request %d to %s: %v", c.ID, seq, name, err)
	}
	if ack.Code != want {
		t.Fatalf("%s: request %d to %s: acknowledged 0x%02x (%q), want 0x%02x", c.ID, seq, name, ack.Code, ack.Reason, want)
	}
}

// rpcResult is what a requester got for a request: an answer or an error.
type rpcResult struct {
	Seq           int
	Data          string // the answer's value as canonical JSON (opaque bytes as they are), "" for none
	Code, Message string // an error reply
	User          paho.UserProperties
	QoS           byte
	ContentType   string
}

// parseResult reads m as the reply to c's request number seq (any if seq
// < 0; an envelope without id if 0) to name, as the protocol routes it to c.
func (c *rpcClient) parseResult(m rpcMsg, name string, seq int) (rpcResult, error) {
	res := rpcResult{Seq: seq, QoS: m.QoS, ContentType: m.ContentType}
	errCodes := m.User.GetAll("error")
	wantCT := map[bool]string{true: "application/cbor", false: "application/json"}[c.cbor]
	if !c.envelope {
		if m.Topic != "rpcres/"+c.ID {
			return res, fmt.Errorf("%s: reply on %s, want rpcres/%s: %s", c.ID, m.Topic, c.ID, m)
		}
		corr, ok := strings.CutPrefix(string(m.Corr), "corr-")
		n, err := strconv.Atoi(corr)
		if !ok || err != nil || seq >= 0 && n != seq {
			return res, fmt.Errorf("%s: reply with correlation data %q, want corr-%d: %s", c.ID, m.Corr, seq, m)
		}
		res.Seq = n
		if len(errCodes) == 0 {
			res.User = m.User
			if len(m.Payload) > 0 {
				if res.Data, err = docText(m.Payload, m.ContentType, false); err != nil {
					return res, fmt.Errorf("%s: %v", c.ID, err)
				}
			}
			return res, nil
		}
		if len(errCodes) > 1 || m.ContentType != wantCT {
			return res, fmt.Errorf("%s: error reply with error properties %q, content type %q: %s", c.ID, errCodes, m.ContentType, m)
		}
		body, err := docMap(m.Payload, m.ContentType, false)
		if err != nil {
			return res, fmt.Errorf("%s: error reply: %v", c.ID, err)
		}
		code, _ := body["error"].(string)
		msg, ok := body["message"].(string)
		if body["op"] != "rpc" || body["name"] != name || code != errCodes[0] || !ok || len(body) != 4 {
			return res, fmt.Errorf("%s: error reply %s, want {op: rpc, name: %q, error: %q, message: <text>}", c.ID, jsonText(body), name, errCodes[0])
		}
		res.Code, res.Message = code, msg
		return res, nil
	}
	if m.Topic != "$reply/"+c.ID {
		return res, fmt.Errorf("%s: reply on %s, want $reply/%s: %s", c.ID, m.Topic, c.ID, m)
	}
	if c.v5 != nil && m.ContentType != wantCT {
		return res, fmt.Errorf("%s: reply with content type %q, want %s: %s", c.ID, m.ContentType, wantCT, m)
	}
	body, err := docMap(m.Payload, m.ContentType, c.v3 != nil)
	if err != nil {
		return res, fmt.Errorf("%s: reply: %v", c.ID, err)
	}
	id, hasID := body["id"].(json.Number)
	n, err := strconv.Atoi(string(id))
	if seq == 0 { // a request without an id
		n, err = 0, nil
		if _, ok := body["id"]; ok {
			err = errors.New("an id")
		}
	} else if !hasID {
		err = errors.New("no id")
	}
	if body["op"] != "rpc" || body["name"] != name || err != nil || seq > 0 && n != seq {
		return res, fmt.Errorf("%s: reply %s, want op rpc, name %q, id %d (0: none)", c.ID, jsonText(body), name, seq)
	}
	res.Seq = n
	delete(body, "op")
	delete(body, "name")
	delete(body, "id")
	if code, ok := body["error"].(string); ok {
		msg, ok := body["message"].(string)
		if !ok || len(body) != 2 || c.v5 != nil && (len(errCodes) != 1 || errCodes[0] != code) {
			return res, fmt.Errorf("%s: error reply %s (error properties %q), want error, message", c.ID, m.Payload, errCodes)
		}
		res.Code, res.Message = code, msg
		return res, nil
	}
	if len(errCodes) > 0 {
		return res, fmt.Errorf("%s: answer with error properties %q: %s", c.ID, errCodes, m)
	}
	if data, ok := body["data"]; ok {
		res.Data = jsonText(data)
		delete(body, "data")
	}
	if len(body) > 0 {
		return res, fmt.Errorf("%s: reply with unexpected fields %s: %s", c.ID, jsonText(body), m)
	}
	return res, nil
}

// result waits for the reply to c's request seq to name.
func (c *rpcClient) result(t testing.TB, name string, seq int) rpcResult {
	t.Helper()
	r, err := c.parseResult(c.next(t), name, seq)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// wantAnswer waits for the answer to request seq, which must be data.
func (c *rpcClient) wantAnswer(t testing.TB, name string, seq int, data string) rpcResult {
	t.Helper()
	r := c.result(t, name, seq)
	if r.Code != "" || r.Data != data {
		t.Fatalf("%s: request %d to %s: got %+v, want the answer %s", c.ID, seq, name, r, data)
	}
	return r
}

// wantError waits for the error reply to request seq, with code and a
// message starting with msg.
func (c *rpcClient) wantError(t testing.TB, name string, seq int, code, msg string) rpcResult {
	t.Helper()
	r := c.result(t, name, seq)
	if r.Code != code || !strings.HasPrefix(r.Message, msg) {
		t.Fatalf("%s: request %d to %s: got %+v, want error %s with a message starting %q", c.ID, seq, name, r, code, msg)
	}
	return r
}

// wantRefused waits for the error reply about c's answer to request id
// (on $reply/<c's id>), with code and message.
func (c *rpcClient) wantRefused(t testing.TB, id, code, msg string) {
	t.Helper()
	c.wantRefusedOn(t, "$reply/"+c.ID, nil, "$rpc-response/"+id, code, msg)
}

func (c *rpcClient) wantRefusedOn(t testing.TB, topic string, corr []byte, name, code, msg string) {
	t.Helper()
	m := c.next(t)
	want := jsonText(map[string]any{"op": "answer", "name": name, "error": code, "message": msg})
	got, err := docText(m.Payload, m.ContentType, c.v3 != nil)
	if m.Topic != topic || !bytes.Equal(m.Corr, corr) || err != nil || got != want {
		t.Fatalf("%s: got %s (%v), want %s with correlation %q: %s", c.ID, m, err, topic, corr, want)
	}
	if c.v5 != nil && (len(m.User) != 1 || m.User.Get("error") != code) {
		t.Fatalf("%s: refusal with user properties %v, want error=%s", c.ID, m.User, code)
	}
}

// serveEcho answers every request c gets, until the test ends or stop is
// called, with {"by": label, "echo": <the request's value or null>}. stop
// returns the number of requests served, by name.
func serveEcho(t testing.TB, c *rpcClient, label string) (stop func() map[string]int) {
	done := make(chan struct{})
	exited := make(chan struct{})
	counts := map[string]int{}
	go func() {
		defer close(exited)
		for {
			select {
			case <-done:
				return
			default:
			}
			_, m, ok := recvAny(20*time.Millisecond, c)
			if !ok {
				continue
			}
			r, err := c.parseRequest(m)
			if err != nil {
				t.Errorf("echo provider %s: %v", label, err)
				continue
			}
			counts[r.Name]++
			data := r.Data
			if data == "" {
				data = "null"
			}
			ack, err := c.answer(r.ID, fmt.Sprintf(`{"by":%q,"echo":%s}`, label, data))
			if err != nil || ack.Code != 0 {
				t.Errorf("echo provider %s: answer %s: %v %+v", label, r.ID, err, ack)
			}
		}
	}()
	var once sync.Once
	stop = func() map[string]int {
		once.Do(func() { close(done); <-exited })
		return counts
	}
	t.Cleanup(func() { stop() })
	return stop
}

// echoed is the answer of serveEcho to a request with data.
func echoed(label, data string) string { return fmt.Sprintf(`{"by":%q,"echo":%s}`, label, data) }

// byOf returns the label of an echo answer.
func byOf(t testing.TB, data string) string {
	t.Helper()
	var v struct{ By string }
	if err := json.Unmarshal([]byte(data), &v); err != nil || v.By == "" {
		t.Fatalf("not an echo answer: %s", data)
	}
	return v.By
}

// Every combination of requester and provider forms: the provider gets the
// request with the broker's id, the requester's data, correlation data and
// user properties and who asked; the requester gets the answer in its own
// form and codec.
func TestRPCRequesterProviderCombinations(t *testing.T) {
	t.Parallel()
	requesters := []struct {
		name string
		o    rpcOpts
	}{
		{"5", rpcOpts{user: "ann"}},
		{"3.1.1", rpcOpts{v3: true, user: "bob"}},
		{"5 envelope", rpcOpts{envelope: true}},
		{"5 cbor", rpcOpts{cbor: true, user: "cat"}},
		{"5 cbor envelope", rpcOpts{cbor: true, envelope: true, user: "dan"}},
	}
	providers := []struct {
		name string
		o    rpcOpts
	}{
		{"5", rpcOpts{filters: []string{"$rpc/math/add"}}},
		{"3.1.1", rpcOpts{v3: true, filters: []string{"$rpc/math/add"}}},
		{"5 cbor", rpcOpts{cbor: true, filters: []string{"$rpc/math/add"}}},
	}
	for _, rq := range requesters {
		for _, pv := range providers {
			t.Run(rq.name+" to "+pv.name, func(t *testing.T) {
				t.Parallel()
				tb := startBroker(t, brokerOpts{})
				prov := newRPCClient(t, tb, pv.o)
				req := newRPCClient(t, tb, rq.o)
				withRT := !req.envelope
				var user []paho.UserProperty
				if withRT {
					user = paho.UserProperties{{Key: "trace", Value: "t-7"}}
				}
				req.mustCall(t, 0, "math/add", `{"a":1,"b":2}`, 7, 0, user...)

				r := prov.request(t)
				if r.ID != "1" || r.Name != "math/add" || r.Data != `{"a":1,"b":2}` {
					t.Errorf("provider got request %s to %s with %s, want 1 to math/add with {\"a\":1,\"b\":2}", r.ID, r.Name, r.Data)
				}
				if !r.HasClient || r.Client != req.ID || r.HasUser != (rq.o.user != "") || r.User != rq.o.user {
					t.Errorf("provider was told requester %q (%v) user %q (%v), want %q user %q", r.Client, r.HasClient, r.User, r.HasUser, req.ID, rq.o.user)
				}
				if r.QoS != 1 || r.Retain {
					t.Errorf("provider got the request at QoS %d retain %v, want QoS 1 not retained", r.QoS, r.Retain)
				}
				if prov.v5 != nil {
					var wantCorr []byte
					if withRT {
						wantCorr = req.corr(7)
					}
					wantCT := map[bool]string{true: "application/cbor", false: "application/json"}[prov.cbor]
					if !bytes.Equal(r.Corr, wantCorr) || !userEq(r.Extra, user) || r.ContentType != wantCT {
						t.Errorf("MQTT 5 provider got correlation %q, user properties %v, content type %q; want %q, %v, %s", r.Corr, r.Extra, r.ContentType, wantCorr, user, wantCT)
					}
				} else {
					who := map[string]any{"client": req.ID}
					if rq.o.user != "" {
						who["user"] = rq.o.user
					}
					want := jsonText(map[string]any{"id": "1", "name": "math/add", "data": map[string]int{"a": 1, "b": 2}, "requester": who})
					if got := canonJSON(t, r.Raw); got != want {
						t.Errorf("MQTT 3.1.1 provider got %s, want %s", got, want)
					}
				}

				var answerUser []paho.UserProperty
				if prov.v5 != nil {
					answerUser = paho.UserProperties{{Key: "unit", Value: "none"}}
				}
				prov.mustAnswer(t, r.ID, `{"sum":3}`, answerUser...)
				res := req.wantAnswer(t, "math/add", 7, `{"sum":3}`)
				if res.QoS != 1 {
					t.Errorf("answer at QoS %d, want the request's 1", res.QoS)
				}
				if withRT {
					wantCT := map[bool]string{true: "application/cbor", false: "application/json"}[req.cbor]
					if res.ContentType != wantCT || !userEq(res.User, answerUser) {
						t.Errorf("answer with content type %q, user properties %v; want %s, %v", res.ContentType, res.User, wantCT, answerUser)
					}
				}
				req.expectEnd(t)
				prov.expectEnd(t)
			})
		}
	}
}

// An opaque answer reaches an envelope requester as a byte string, and an
// opaque request an MQTT 3.1.1 provider the same way (base64url in JSON).
func TestRPCOpaquePayloads(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	p5 := newRPCClient(t, tb, rpcOpts{filters: []string{"$rpc/blob/v5"}})
	p3 := newRPCClient(t, tb, rpcOpts{v3: true, filters: []string{"$rpc/blob/v3"}})
	r3 := newRPCClient(t, tb, rpcOpts{v3: true})
	r5 := newRPCClient(t, tb, rpcOpts{})

	r3.mustCall(t, 0, "blob/v5", `"x"`, 1, 0)
	r := p5.request(t)
	p5.mustSend(t, 0, "$rpc-response/"+r.ID, []byte("hello"), &paho.PublishProperties{ContentType: "text/plain"})
	r3.wantAnswer(t, "blob/v5", 1, `"aGVsbG8"`)

	if _, err := r5.send("$rpc/blob/v3", 1, false, []byte("\x00\x01raw"), &paho.PublishProperties{
		ContentType: "application/octet-stream", ResponseTopic: "rpcres/" + r5.ID, CorrelationData: r5.corr(2)}); err != nil {
		t.Fatal(err)
	}
	r = p3.request(t)
	if r.Data != `"AAFyYXc"` {
		t.Errorf("MQTT 3.1.1 provider got data %s, want the bytes as base64url \"AAFyYXc\"", r.Data)
	}
	p3.mustAnswer(t, r.ID, `"ok"`)
	r5.wantAnswer(t, "blob/v3", 2, `"ok"`)
}

// requireMosquittoClients skips the test when the mosquitto clients are
// missing, unless CI is set: there they are required. (cmd/hearth has the
// same helper, in another package.)
func requireMosquittoClients(t *testing.T, names ...string) {
	t.Helper()
	for _, name := range names {
		if _, err := exec.LookPath(name); err != nil {
			msg := fmt.Sprintf("%s not found: install mosquitto-clients: %v", name, err)
			if os.Getenv("CI") != "" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
}

// mosquittoArgs are the connection arguments of the mosquitto clients.
func mosquittoArgs(t *testing.T, tb *testBroker, id string) []string {
	t.Helper()
	host, port, err := net.SplitHostPort(tb.MQTTAddr)
	if err != nil {
		t.Fatal(err)
	}
	return []string{"-h", host, "-p", port, "-i", id, "-V", "mqttv5"}
}

// mosquitto_rr is a requester: its output is the answer, or the error reply.
func TestRPCMosquittoRR(t *testing.T) {
	t.Parallel()
	requireMosquittoClients(t, "mosquitto_rr")
	tests := []struct {
		name     string
		provider *rpcOpts
		answer   func(t *testing.T, p *rpcClient, id string)
		want     string
	}{
		{"5 provider", &rpcOpts{filters: []string{"$rpc/math/add"}},
			func(t *testing.T, p *rpcClient, id string) { p.mustSend(t, 0, "$rpc-response/"+id, []byte("3"), nil) }, "3\n"},
		{"3.1.1 provider", &rpcOpts{v3: true, filters: []string{"$rpc/math/add"}},
			func(t *testing.T, p *rpcClient, id string) { p.mustAnswer(t, id, "3") }, "3\n"},
		{"provider error", &rpcOpts{filters: []string{"$rpc/math/add"}},
			func(t *testing.T, p *rpcClient, id string) { p.mustAnswerError(t, id, "OVERFLOW", "too big") },
			`{"error":"OVERFLOW","message":"too big","name":"math/add","op":"rpc"}` + "\n"},
		{"no provider", nil, nil, `{"error":"NO_PROVIDER","message":"no provider for \"math/add\"","name":"math/add","op":"rpc"}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tb := startBroker(t, brokerOpts{})
			var p *rpcClient
			if tt.provider != nil {
				p = newRPCClient(t, tb, *tt.provider)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			id := clientID(t, "rr")
			args := append(mosquittoArgs(t, tb, id), "-t", "$rpc/math/add", "-e", "replies/rr", "-m", `{"a":1,"b":2}`, "-W", "10")
			cmd := exec.CommandContext(ctx, "mosquitto_rr", args...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			if p != nil {
				r := p.request(t)
				if r.Name != "math/add" || r.Data != `{"a":1,"b":2}` || r.Client != id {
					t.Errorf("provider got %+v, want math/add {\"a\":1,\"b\":2} from %s", r, id)
				}
				tt.answer(t, p, r.ID)
			}
			err := cmd.Wait()
			if err != nil || stdout.String() != tt.want {
				t.Errorf("mosquitto_rr: %v, stdout %q, stderr %q; want stdout %q", err, stdout.String(), stderr.String(), tt.want)
			}
		})
	}
}

// The examples of docs/PROTOCOL.md "RPC" and "Presence", run as written:
// mosquitto_sub is a provider that prints each request and never answers,
// and mosquitto_rr prints exactly the reply the doc shows.
func TestRPCDocExampleMosquitto(t *testing.T) {
	t.Parallel()
	requireMosquittoClients(t, "mosquitto_rr", "mosquitto_sub")
	tb := startBroker(t, brokerOpts{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	sub := exec.CommandContext(ctx, "mosquitto_sub", append(mosquittoArgs(t, tb, clientID(t, "sub")), "-t", "$rpc/math/add", "-F", "%R %p")...)
	subOut, err := sub.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = sub.Wait() }()
	lines := make(chan string, 10)
	go func() {
		sc := bufio.NewScanner(subOut)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	tb.waitMetric(t, "hearth_subscriptions", "1", func(v float64) bool { return v == 1 })

	rr := func(args ...string) string {
		t.Helper()
		host, port, _ := net.SplitHostPort(tb.MQTTAddr)
		out, err := exec.CommandContext(ctx, "mosquitto_rr", append([]string{"-h", host, "-p", port, "-W", "10"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("mosquitto_rr %q: %v: %s", args, err, out)
		}
		return string(out)
	}
	provided := func(want string) {
		t.Helper()
		select {
		case line := <-lines:
			if line != want {
				t.Errorf("the provider printed %q, want %q", line, want)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("the provider printed nothing, want %q", want)
		}
	}

	if got, want := rr("-V", "mqttv5", "-t", "$rpc/math/add", "-e", "replies/me", "-m", `{"a":1,"b":2}`, "-D", "publish", "user-property", "timeout", "500"),
		`{"error":"TIMEOUT","message":"no answer within 500ms","name":"math/add","op":"rpc"}`+"\n"; got != want {
		t.Errorf("mosquitto_rr printed %q, want %q", got, want)
	}
	provided(`$rpc-response/1 {"a":1,"b":2}`)
	if got, want := rr("-V", "mqttv5", "-t", "$rpc/math/mul", "-e", "replies/me", "-m", "2"),
		`{"error":"NO_PROVIDER","message":"no provider for \"math/mul\"","name":"math/mul","op":"rpc"}`+"\n"; got != want {
		t.Errorf("mosquitto_rr printed %q, want %q", got, want)
	}
	dash := clientID(t, "dash")
	if got, want := rr("-V", "mqttv311", "-i", dash, "-t", "$rpc/math/add", "-e", "$reply/"+dash, "-m", `{"id":7,"data":{"a":1,"b":2},"timeout":300}`),
		`{"error":"TIMEOUT","id":7,"message":"no answer within 300ms","name":"math/add","op":"rpc"}`+"\n"; got != want {
		t.Errorf("mosquitto_rr (3.1.1 envelope) printed %q, want %q", got, want)
	}
	provided(`$rpc-response/3 {"a":1,"b":2}`) // request 2 was math/mul's

	// Presence: the clients online whose ids start with the prefix.
	prefix := clientID(t, "kitchen") + "-"
	for _, n := range []string{"1", "2"} {
		connectV5(t, tb.MQTTAddr, &paho.Connect{ClientID: prefix + n, KeepAlive: 30, CleanStart: true})
	}
	if got, want := rr("-V", "mqttv5", "-t", "$presence/get", "-e", "replies/me", "-m", `{"prefix":"`+prefix+`"}`),
		`{"clients":["`+prefix+`1","`+prefix+`2"],"name":"$presence","op":"get"}`+"\n"; got != want {
		t.Errorf("mosquitto_rr printed %q, want %q", got, want)
	}
}

// Sequential requests go round robin among equally idle providers, however
// they registered: one filter or several names, a wildcard, overlapping
// filters (still one provider).
func TestRPCFairDistribution(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	a := newRPCClient(t, tb, rpcOpts{role: "a", filters: []string{"$rpc/kitchen/light", "$rpc/kitchen/oven"}})
	b := newRPCClient(t, tb, rpcOpts{v3: true, role: "b", filters: []string{"$rpc/kitchen/+", "$rpc/garage/door"}})
	c := newRPCClient(t, tb, rpcOpts{role: "c", filters: []string{"$rpc/kitchen/light", "$rpc/kitchen/#"}})
	stops := map[string]func() map[string]int{"a": serveEcho(t, a, "a"), "b": serveEcho(t, b, "b"), "c": serveEcho(t, c, "c")}
	req := newRPCClient(t, tb, rpcOpts{})

	seq := 0
	run := func(name string, n int) []string {
		var by []string
		for range n {
			seq++
			data := fmt.Sprintf(`{"n":%d}`, seq)
			req.mustCall(t, 0, name, data, seq, 0)
			res := req.result(t, name, seq)
			who := byOf(t, res.Data)
			if res.Data != echoed(who, data) {
				t.Fatalf("request %d: answer %s, want an echo of %s", seq, res.Data, data)
			}
			by = append(by, who)
		}
		return by
	}
	count := func(by []string) map[string]int {
		n := map[string]int{}
		for _, w := range by {
			n[w]++
		}
		return n
	}

	light := run("kitchen/light", 300)
	if got, want := count(light), map[string]int{"a": 100, "b": 100, "c": 100}; !reflect.DeepEqual(got, want) {
		t.Errorf("kitchen/light: answered by %v, want %v", got, want)
	}
	for i := 3; i < len(light); i++ {
		if light[i] != light[i-3] {
			t.Errorf("kitchen/light: request %d went to %s, not in turn (the order was %v)", i+1, light[i], light[max(0, i-3):i+1])
			break
		}
	}
	if got, want := count(run("kitchen/oven", 30)), map[string]int{"a": 10, "b": 10, "c": 10}; !reflect.DeepEqual(got, want) {
		t.Errorf("kitchen/oven: answered by %v, want %v", got, want)
	}
	if got, want := count(run("garage/door", 5)), map[string]int{"b": 5}; !reflect.DeepEqual(got, want) {
		t.Errorf("garage/door: answered by %v, want %v", got, want)
	}
	want := map[string]map[string]int{
		"a": {"kitchen/light": 100, "kitchen/oven": 10},
		"b": {"kitchen/light": 100, "kitchen/oven": 10, "garage/door": 5},
		"c": {"kitchen/light": 100, "kitchen/oven": 10},
	}
	for label, stop := range stops {
		if got := stop(); !reflect.DeepEqual(got, want[label]) {
			t.Errorf("provider %s served %v, want %v", label, got, want[label])
		}
	}
	req.expectEnd(t)
}

// A provider holding an unanswered request is busier than an idle one: the
// next requests go to the idle one.
func TestRPCLeastBusyFirst(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	x := newRPCClient(t, tb, rpcOpts{filters: []string{"$rpc/slow"}})
	y := newRPCClient(t, tb, rpcOpts{v3: true, filters: []string{"$rpc/slow"}})
	req := newRPCClient(t, tb, rpcOpts{})

	req.mustCall(t, 0, "slow", `"held"`, 1, 0)
	holder, held := firstRequest(t, x, y)
	for seq := 2; seq <= 7; seq++ {
		req.mustCall(t, 0, "slow", strconv.Itoa(seq), seq, 0)
		p, r := firstRequest(t, x, y)
		if p == holder {
			t.Fatalf("request %d went to %s, which holds request %s: want the idle provider", seq, p.ID, held.ID)
		}
		p.mustAnswer(t, r.ID, r.Data)
		req.wantAnswer(t, "slow", seq, strconv.Itoa(seq))
	}
	holder.mustAnswer(t, held.ID, `"late"`)
	req.wantAnswer(t, "slow", 1, `"late"`)
	req.expectEnd(t)
}

// Each request goes to exactly one provider: a $rpc/# subscriber and a
// shared subscriber are providers too; nothing reaches other subscribers,
// answers reach no $rpc-response subscriber, and a retained request is not
// retained.
func TestRPCExactlyOneProvider(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	providers := []*rpcClient{
		newRPCClient(t, tb, rpcOpts{filters: []string{"$rpc/svc/a"}}),
		newRPCClient(t, tb, rpcOpts{v3: true, filters: []string{"$rpc/#"}}),
		newRPCClient(t, tb, rpcOpts{filters: []string{"$share/g/$rpc/svc/a"}}),
	}
	hash := newRPCClient(t, tb, rpcOpts{filters: []string{"#"}}) // gets the other clients' rpcres and rpcend
	spies := []*rpcClient{
		newRPCClient(t, tb, rpcOpts{v3: true, filters: []string{"$rpc/svc/b", "$rpc/other/#"}}),
		newRPCClient(t, tb, rpcOpts{filters: []string{"$rpc-response/#"}}),
		newRPCClient(t, tb, rpcOpts{v3: true, filters: []string{"$rpc-response/+"}}),
	}
	requesters := []*rpcClient{newRPCClient(t, tb, rpcOpts{}), newRPCClient(t, tb, rpcOpts{v3: true})}

	const n = 30
	got := map[*rpcClient]int{}
	ids := map[string]bool{}
	for seq := 1; seq <= n; seq++ {
		req := requesters[seq%2]
		data := strconv.Itoa(seq)
		var payload []byte
		var props *paho.PublishProperties
		if req.envelope {
			payload = fmt.Appendf(nil, `{"id":%d,"data":%d}`, seq, seq)
		} else {
			payload = []byte(data)
			props = &paho.PublishProperties{ResponseTopic: "rpcres/" + req.ID, CorrelationData: req.corr(seq)}
		}
		if ack, err := req.send("$rpc/svc/a", 1, seq%3 == 0, payload, props); err != nil || ack.Code != 0 {
			t.Fatalf("request %d: %v %+v", seq, err, ack)
		}
		p, r := firstRequest(t, providers...)
		if ids[r.ID] || r.Name != "svc/a" || r.Data != data || r.Retain {
			t.Fatalf("request %d: %s got id %s (seen before: %v) to %s with %s, retain %v", seq, p.ID, r.ID, ids[r.ID], r.Name, r.Data, r.Retain)
		}
		ids[r.ID] = true
		got[p]++
		p.mustAnswer(t, r.ID, fmt.Sprintf(`{"n":%s}`, data))
		req.wantAnswer(t, "svc/a", seq, fmt.Sprintf(`{"n":%s}`, data))
	}
	for _, p := range providers {
		if got[p] != n/len(providers) {
			t.Errorf("provider %s got %d requests, want %d", p.ID, got[p], n/len(providers))
		}
		p.expectEnd(t)
	}
	for _, c := range append(spies, requesters...) {
		c.expectEnd(t)
	}
	if ack, err := hash.send("rpcend/"+hash.ID, 1, false, nil, nil); err != nil || ack.Code != 0 {
		t.Fatalf("publish rpcend: %v %+v", err, ack)
	}
	for m := hash.next(t); m.Topic != "rpcend/"+hash.ID; m = hash.next(t) {
		if strings.HasPrefix(m.Topic, "$") {
			t.Errorf("a '#' subscriber got %s", m)
		}
	}
	late := newRPCClient(t, tb, rpcOpts{filters: []string{"$rpc/svc/#"}})
	late.expectEnd(t) // no retained request
}

// A requester whose own subscription has No Local is not its own provider;
// without No Local (MQTT 3.1.1 has none) it is one like any other.
func TestRPCNoLocalRequester(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	r := newRPCClient(t, tb, rpcOpts{noLocal: true, filters: []string{"$rpc/self/echo"}})
	p := newRPCClient(t, tb, rpcOpts{v3: true, filters: []string{"$rpc/self/echo"}})

	for seq := 1; seq <= 4; seq++ {
		r.mustCall(t, 0, "self/echo", strconv.Itoa(seq), seq, 0)
		got, rq := firstRequest(t, r, p)
		if got != p {
			t.Fatalf("request %d of %s (No Local) went to itself", seq, r.ID)
		}
		p.mustAnswer(t, rq.ID, rq.Data)
		r.wantAnswer(t, "self/echo", seq, strconv.Itoa(seq))
	}
	served := map[*rpcClient]int{}
	for seq := 1; seq <= 4; seq++ {
		p.mustCall(t, 0, "self/echo", strconv.Itoa(seq), seq, 0)
		got, rq := firstRequest(t, r, p)
		served[got]++
		got.mustAnswer(t, rq.ID, rq.Data)
		p.wantAnswer(t, "self/echo", seq, strconv.Itoa(seq))
	}
	if served[r] != 2 || served[p] != 2 {
		t.Errorf("requests of %s (no No Local) served: %d by %s, %d by itself; want 2 and 2", p.ID, served[r], r.ID, served[p])
	}
	r.expectEnd(t)
	p.expectEnd(t)
}

// userEq compares user properties, nil and empty alike.
func userEq(a, b paho.UserProperties) bool {
	return len(a) == 0 && len(b) == 0 || reflect.DeepEqual(a, b)
}
