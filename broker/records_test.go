package broker_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/eclipse/paho.golang/paho"
	"github.com/hearth-iot/hearth/broker"
	"github.com/hearth-iot/hearth/storage"
)

// The $rec namespace, end to end: $rec/<op>/<name> requests from MQTT 5 and
// MQTT 3.1.1 clients, their replies and acknowledgements, and what the
// changes do to the record's retained message.

// recReasons is the MQTT 5 PUBACK/PUBREC reason code of each error code.
var recReasons = map[string]byte{
	"INVALID_PAYLOAD":   0x99,
	"INVALID_PATH":      0x99,
	"TOO_LARGE":         0x97,
	"INVALID_NAME":      0x90,
	"UNKNOWN_OPERATION": 0x90,
	"NOT_FOUND":         0x83,
	"VERSION_CONFLICT":  0x83,
	"STORAGE_ERROR":     0x80, // 0x97 when the store is full
}

// recRequest is one publish to $rec/<Op>/<Name>.
type recRequest struct {
	Op, Name string
	Payload  string // sent as is; "" is the empty payload
	QoS      byte
	// Version is the MQTT 5 user property "version", if not "".
	Version string
}

// rec is a QoS 1 request.
func rec(op, name, payload string) recRequest {
	return recRequest{Op: op, Name: name, Payload: payload, QoS: 1}
}

func (rq recRequest) topic() string { return "$rec/" + rq.Op + "/" + rq.Name }

func (rq recRequest) String() string {
	s := fmt.Sprintf("%s %s (QoS %d)", rq.topic(), rq.Payload, rq.QoS)
	if rq.Version != "" {
		s += " version=" + rq.Version
	}
	return s
}

// recReply is the reply to a request and how the request was acknowledged.
type recReply struct {
	V5          bool // the requester speaks MQTT 5
	Topic       string
	QoS         byte
	Body        []byte
	ContentType string
	// Reason and ReasonString are the PUBACK's (PUBREC's at QoS 2): MQTT 5
	// requests at QoS 1 or 2 only.
	Reason       byte
	ReasonString string
}

// recRequester sends $rec requests and returns their replies. It fails the
// test if the reply is not routed as the protocol says.
type recRequester interface {
	send(t testing.TB, rq recRequest) recReply
}

// v5Requester asks over MQTT 5, with a Response Topic and Correlation Data.
type v5Requester struct {
	c         *v5Client
	respTopic string
	seq       int
}

func newV5Requester(t testing.TB, tb *testBroker) *v5Requester {
	t.Helper()
	c := connectV5(t, tb.MQTTAddr, nil)
	r := &v5Requester{c: c, respTopic: "responses/" + c.ID}
	c.subscribe(t, r.respTopic, 2)
	return r
}

func (r *v5Requester) send(t testing.TB, rq recRequest) recReply {
	t.Helper()
	r.seq++
	corr := fmt.Appendf(nil, "corr-%d", r.seq)
	p := &paho.Publish{Topic: rq.topic(), QoS: rq.QoS, Payload: []byte(rq.Payload),
		Properties: &paho.PublishProperties{ResponseTopic: r.respTopic, CorrelationData: corr}}
	if rq.Version != "" {
		p.Properties.User = paho.UserProperties{{Key: "version", Value: rq.Version}}
	}
	resp, err := r.c.pub(p)
	out := recReply{V5: true}
	switch {
	case rq.QoS == 0 && err != nil:
		t.Fatalf("%s: %v", rq, err)
	case rq.QoS > 0 && resp == nil:
		t.Fatalf("%s: no acknowledgement: %v", rq, err)
	case rq.QoS > 0:
		out.Reason = resp.ReasonCode
		if resp.Properties != nil {
			out.ReasonString = resp.Properties.ReasonString
		}
	}
	m := r.c.recv(t)
	if m.Topic != r.respTopic || !bytes.Equal(m.Properties.CorrelationData, corr) {
		t.Fatalf("%s: reply on %s with correlation data %q, want %s with %q",
			rq, m.Topic, m.Properties.CorrelationData, r.respTopic, corr)
	}
	out.Topic, out.QoS, out.Body, out.ContentType = m.Topic, m.QoS, m.Payload, m.Properties.ContentType
	if out.ContentType != "application/json" {
		t.Errorf("%s: reply content type %q, want application/json", rq, out.ContentType)
	}
	if out.QoS != rq.QoS {
		t.Errorf("%s: reply at QoS %d, want the request's", rq, out.QoS)
	}
	return out
}

// v3Requester asks over MQTT 3.1.1; replies come on $reply/<client id>.
type v3Requester struct{ c *v3Client }

func newV3Requester(t testing.TB, tb *testBroker) *v3Requester {
	t.Helper()
	c := connectV3(t, tcpURL(tb.MQTTAddr), nil)
	c.subscribe(t, "$reply/"+c.ID, 2)
	return &v3Requester{c: c}
}

func (r *v3Requester) send(t testing.TB, rq recRequest) recReply {
	t.Helper()
	if rq.Version != "" {
		t.Fatalf("%s: MQTT 3.1.1 has no user properties", rq)
	}
	r.c.publish(t, rq.topic(), rq.QoS, false, []byte(rq.Payload))
	m := r.c.recv(t)
	if want := "$reply/" + r.c.ID; m.Topic() != want {
		t.Fatalf("%s: reply on %s, want %s", rq, m.Topic(), want)
	}
	if m.Qos() != rq.QoS {
		t.Errorf("%s: reply at QoS %d, want the request's", rq, m.Qos())
	}
	if !r.c.IsConnectionOpen() {
		t.Fatalf("%s: the broker closed the connection", rq)
	}
	return recReply{Topic: m.Topic(), QoS: m.Qos(), Body: m.Payload()}
}

// requesters are the two ways to make $rec requests.
var requesters = []struct {
	name    string
	connect func(t testing.TB, tb *testBroker) recRequester
}{
	{"5", func(t testing.TB, tb *testBroker) recRequester { return newV5Requester(t, tb) }},
	{"3.1.1", func(t testing.TB, tb *testBroker) recRequester { return newV3Requester(t, tb) }},
}

// decodeJSON decodes exactly one JSON text, keeping numbers as written.
func decodeJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("data after the JSON text: %v", err)
	}
	return v, nil
}

// canonJSON returns JSON text b compact and with sorted keys, so that
// documents compare as strings. It fails the test if b is not JSON.
func canonJSON(t testing.TB, b []byte) string {
	t.Helper()
	v, err := decodeJSON(b)
	if err != nil {
		t.Fatalf("not JSON: %q: %v", b, err)
	}
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("re-encode %q: %v", b, err)
	}
	return string(out)
}

// checkReply checks the reply to rq. Its JSON body names rq's op and name
// and, without those and without "message", equals want. An error reply
// has a message, holding each of msg. Over MQTT 5 at QoS 1 or 2 the request
// was acknowledged with 0x00, or the reason code of want's error code with
// the reason string "<code>: <message>". It reports whether all is so.
func checkReply(t testing.TB, rq recRequest, got recReply, want string, msg ...string) bool {
	t.Helper()
	ok := true
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf(format, args...)
		ok = false
	}
	v, err := decodeJSON(got.Body)
	body, isObject := v.(map[string]any)
	if err != nil || !isObject {
		fail("%s: reply %q is not a JSON object: %v", rq, got.Body, err)
		return false
	}
	if body["op"] != rq.Op || body["name"] != rq.Name {
		fail("%s: reply %s, want op %q and name %q", rq, got.Body, rq.Op, rq.Name)
	}
	message, _ := body["message"].(string)
	if _, isErr := body["error"]; isErr {
		m := message
		if m == "" {
			fail("%s: error reply %s without a message", rq, got.Body)
		}
		for _, s := range msg {
			if !strings.Contains(m, s) {
				fail("%s: message %q does not mention %q", rq, m, s)
			}
		}
	}
	delete(body, "op")
	delete(body, "name")
	delete(body, "message")
	rest, _ := json.Marshal(body)
	if w := canonJSON(t, []byte(want)); string(rest) != w {
		fail("%s:\nreply %s\nwant  %s (besides op, name, message)", rq, got.Body, w)
	}

	if !got.V5 || rq.QoS == 0 {
		return ok
	}
	var w struct{ Error string }
	_ = json.Unmarshal([]byte(want), &w)
	if w.Error == "" {
		if got.Reason != 0 {
			fail("%s: acknowledged with 0x%02x %q, want 0x00", rq, got.Reason, got.ReasonString)
		}
		return ok
	}
	// The reason string is "<code>: <the reply's message>", cut short at a
	// character boundary if long.
	full := w.Error + ": " + message
	if code := recReasons[w.Error]; got.Reason != code || !strings.HasPrefix(full, got.ReasonString) ||
		len(got.ReasonString) < min(len(full), 190) || !utf8.ValidString(got.ReasonString) {
		fail("%s: acknowledged with 0x%02x %q, want 0x%02x and the reason string %q",
			rq, got.Reason, got.ReasonString, code, full)
	}
	return ok
}

// getReply is the reply to $rec/get of a record holding doc at version;
// doc "" means the record does not exist (version 0: never has).
func getReply(doc string, version uint64) string {
	switch {
	case doc != "":
		return fmt.Sprintf(`{"version":%d,"value":%s}`, version, doc)
	case version > 0:
		return fmt.Sprintf(`{"error":"NOT_FOUND","version":%d}`, version)
	}
	return `{"error":"NOT_FOUND"}`
}

// checkRecord checks that $rec/get of name returns doc at version, and
// reports whether it does.
func checkRecord(t testing.TB, r recRequester, name, doc string, version uint64) bool {
	t.Helper()
	get := rec("get", name, "")
	return checkReply(t, get, r.send(t, get), getReply(doc, version))
}

// recStep is a request and what follows: its reply, then the record's
// document ("" if it does not exist) and version.
type recStep struct {
	op, payload string
	version     string // MQTT 5 user property "version", if not ""
	reply       string
	doc         string
	at          uint64
}

// runSteps sends the steps' requests on record name in order, checking each
// reply and then the record with $rec/get. It stops once the record is not
// as a step should have left it.
func runSteps(t *testing.T, r recRequester, name string, steps []recStep) {
	t.Helper()
	for i, s := range steps {
		rq := rec(s.op, name, s.payload)
		rq.Version = s.version
		checkReply(t, rq, r.send(t, rq), s.reply)
		if !checkRecord(t, r, name, s.doc, s.at) {
			t.Fatalf("stopped at step %d: %s", i+1, rq)
		}
	}
}

// Every operation, from either protocol: each change adds one to the
// version, and $rec/get returns the document as the change left it.
func TestRecordOperations(t *testing.T) {
	t.Parallel()
	steps := []recStep{
		{op: "merge", payload: `{"temp":21,"name":"kitchen"}`, reply: `{"version":1}`,
			doc: `{"name":"kitchen","temp":21}`, at: 1},
		{op: "merge", payload: `{"temp":22.5,"name":null,"lights":{"main":true}}`, reply: `{"version":2}`,
			doc: `{"lights":{"main":true},"temp":22.5}`, at: 2},
		{op: "set", payload: `{"path":"lights.desk","value":false}`, reply: `{"version":3}`,
			doc: `{"lights":{"desk":false,"main":true},"temp":22.5}`, at: 3},
		{op: "set", payload: `{"path":"temp","value":null}`, reply: `{"version":4}`,
			doc: `{"lights":{"desk":false,"main":true},"temp":null}`, at: 4},
		{op: "set", payload: `{"value":{"occupants":["ann"]}}`, reply: `{"version":5}`,
			doc: `{"occupants":["ann"]}`, at: 5},
		{op: "append", payload: `{"path":"occupants","value":"bob"}`, reply: `{"version":6}`,
			doc: `{"occupants":["ann","bob"]}`, at: 6},
		{op: "append", payload: `{"path":"occupants","values":["cy","dee"]}`, reply: `{"version":7}`,
			doc: `{"occupants":["ann","bob","cy","dee"]}`, at: 7},
		{op: "insert", payload: `{"path":"occupants","index":1,"value":"eve"}`, reply: `{"version":8}`,
			doc: `{"occupants":["ann","eve","bob","cy","dee"]}`, at: 8},
		{op: "insert", payload: `{"path":"occupants","index":0,"values":["fay","gus"]}`, reply: `{"version":9}`,
			doc: `{"occupants":["fay","gus","ann","eve","bob","cy","dee"]}`, at: 9},
		{op: "remove", payload: `{"path":"occupants","index":2}`, reply: `{"version":10}`,
			doc: `{"occupants":["fay","gus","eve","bob","cy","dee"]}`, at: 10},
		{op: "append", payload: `{"path":"occupants","value":"bob"}`, reply: `{"version":11}`,
			doc: `{"occupants":["fay","gus","eve","bob","cy","dee","bob"]}`, at: 11},
		{op: "remove", payload: `{"path":"occupants","value":"bob"}`, reply: `{"version":12,"removed":2}`,
			doc: `{"occupants":["fay","gus","eve","cy","dee"]}`, at: 12},
		// Nothing to remove: success, and no new version.
		{op: "remove", payload: `{"path":"occupants","value":"zed"}`, reply: `{"version":12,"removed":0}`,
			doc: `{"occupants":["fay","gus","eve","cy","dee"]}`, at: 12},
		{op: "delete", payload: `{"path":"occupants[0]"}`, reply: `{"version":13}`,
			doc: `{"occupants":["gus","eve","cy","dee"]}`, at: 13},
		{op: "delete", payload: `{"path":"occupants"}`, reply: `{"version":14}`,
			doc: `{}`, at: 14},
		{op: "delete", payload: ``, reply: `{"version":15}`,
			doc: ``, at: 15},
		// A deleted record comes back with the next version.
		{op: "merge", payload: `{"back":true}`, reply: `{"version":16}`,
			doc: `{"back":true}`, at: 16},
		// get ignores its payload.
		{op: "get", payload: `{"path":"ignored"}`, reply: `{"version":16,"value":{"back":true}}`,
			doc: `{"back":true}`, at: 16},
		// A patch that is not an object replaces the document; an object
		// patch on a non-object starts from an empty object (RFC 7396).
		{op: "merge", payload: `[1,2]`, reply: `{"version":17}`, doc: `[1,2]`, at: 17},
		{op: "merge", payload: `{"a":{"b":null,"c":1}}`, reply: `{"version":18}`, doc: `{"a":{"c":1}}`, at: 18},
	}
	for _, proto := range requesters {
		t.Run(proto.name, func(t *testing.T) {
			t.Parallel()
			tb := startBroker(t, brokerOpts{})
			runSteps(t, proto.connect(t, tb), "room/1", steps)
		})
	}
}

// Paths in deepstream syntax reach into objects and arrays, creating the
// objects and arrays missing on the way and padding arrays with null.
// Deleting at the path removes just that value.
func TestRecordPaths(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		start       string // the document before, "" for no record
		path, value string
		want        string // after the set
		deleted     string // after a delete at the path
	}{
		{"deepstream example on a new record", "", "player.spouses[0]", `"ann"`,
			`{"player":{"spouses":["ann"]}}`, `{"player":{"spouses":[]}}`},
		{"index between keys", "", "a.b[2].c", `1`,
			`{"a":{"b":[null,null,{"c":1}]}}`, `{"a":{"b":[null,null,{}]}}`},
		{"nested indexes", "", "a[0][1]", `true`,
			`{"a":[[null,true]]}`, `{"a":[[null]]}`},
		{"root array", "", "[1].name", `"x"`,
			`[null,{"name":"x"}]`, `[null,{}]`},
		{"keys with spaces and non-ASCII", "", "living room.température", `19.5`,
			`{"living room":{"température":19.5}}`, `{"living room":{}}`},
		{"replace an element, keep the rest", `{"a":{"b":[1,2,3]},"x":0}`, "a.b[1]", `"two"`,
			`{"a":{"b":[1,"two",3]},"x":0}`, `{"a":{"b":[1,3]},"x":0}`},
		{"grow an array", `{"a":{"b":[1]}}`, "a.b[4]", `9`,
			`{"a":{"b":[1,null,null,null,9]}}`, `{"a":{"b":[1,null,null,null]}}`},
		{"null member becomes an object", `{"m":null,"k":1}`, "m.n", `{"o":[]}`,
			`{"k":1,"m":{"n":{"o":[]}}}`, `{"k":1,"m":{}}`},
		{"into an existing element", `{"player":{"spouses":[{"name":"ann"}]}}`, "player.spouses[0].age", `40`,
			`{"player":{"spouses":[{"age":40,"name":"ann"}]}}`, `{"player":{"spouses":[{"name":"ann"}]}}`},
	}
	for _, proto := range requesters {
		t.Run(proto.name, func(t *testing.T) {
			t.Parallel()
			tb := startBroker(t, brokerOpts{})
			r := proto.connect(t, tb)
			for i, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					var steps []recStep
					if tt.start != "" {
						steps = append(steps, recStep{op: "set", payload: `{"value":` + tt.start + `}`,
							reply: `{"version":1}`, doc: tt.start, at: 1})
					}
					v := uint64(len(steps) + 1)
					steps = append(steps,
						recStep{op: "set", payload: fmt.Sprintf(`{"path":%q,"value":%s}`, tt.path, tt.value),
							reply: fmt.Sprintf(`{"version":%d}`, v), doc: tt.want, at: v},
						recStep{op: "delete", payload: fmt.Sprintf(`{"path":%q}`, tt.path),
							reply: fmt.Sprintf(`{"version":%d}`, v+1), doc: tt.deleted, at: v + 1})
					runSteps(t, r, fmt.Sprintf("paths/%d", i), steps)
				})
			}
		})
	}
}

// A list of record names, as deepstream applications keep them, edited
// without sending the whole list.
func TestRecordListOfNames(t *testing.T) {
	t.Parallel()
	steps := []recStep{
		// The list and the record holding it are created by the first append.
		{op: "append", payload: `{"path":"rooms","value":"room/kitchen"}`, reply: `{"version":1}`,
			doc: `{"rooms":["room/kitchen"]}`, at: 1},
		{op: "append", payload: `{"path":"rooms","values":["room/hall","room/attic"]}`, reply: `{"version":2}`,
			doc: `{"rooms":["room/kitchen","room/hall","room/attic"]}`, at: 2},
		{op: "insert", payload: `{"path":"rooms","index":0,"value":"room/porch"}`, reply: `{"version":3}`,
			doc: `{"rooms":["room/porch","room/kitchen","room/hall","room/attic"]}`, at: 3},
		{op: "insert", payload: `{"path":"rooms","index":2,"values":["room/bath","room/hall"]}`, reply: `{"version":4}`,
			doc: `{"rooms":["room/porch","room/kitchen","room/bath","room/hall","room/hall","room/attic"]}`, at: 4},
		// Inserting at the length appends.
		{op: "insert", payload: `{"path":"rooms","index":6,"value":"room/cellar"}`, reply: `{"version":5}`,
			doc: `{"rooms":["room/porch","room/kitchen","room/bath","room/hall","room/hall","room/attic","room/cellar"]}`, at: 5},
		{op: "remove", payload: `{"path":"rooms","index":0}`, reply: `{"version":6}`,
			doc: `{"rooms":["room/kitchen","room/bath","room/hall","room/hall","room/attic","room/cellar"]}`, at: 6},
		{op: "remove", payload: `{"path":"rooms","index":5}`, reply: `{"version":7}`,
			doc: `{"rooms":["room/kitchen","room/bath","room/hall","room/hall","room/attic"]}`, at: 7},
		// Remove by value removes every equal element.
		{op: "remove", payload: `{"path":"rooms","value":"room/hall"}`, reply: `{"version":8,"removed":2}`,
			doc: `{"rooms":["room/kitchen","room/bath","room/attic"]}`, at: 8},
		{op: "remove", payload: `{"path":"rooms","value":"room/hall"}`, reply: `{"version":8,"removed":0}`,
			doc: `{"rooms":["room/kitchen","room/bath","room/attic"]}`, at: 8},
		// Elements may be objects; equal ones are removed whatever their key order.
		{op: "append", payload: `{"path":"links","values":[{"to":"room/bath","kind":"door"},{"to":"room/attic","kind":"stairs"}]}`,
			reply: `{"version":9}`,
			doc:   `{"links":[{"kind":"door","to":"room/bath"},{"kind":"stairs","to":"room/attic"}],"rooms":["room/kitchen","room/bath","room/attic"]}`, at: 9},
		{op: "remove", payload: `{"path":"links","value":{"kind":"stairs","to":"room/attic"}}`, reply: `{"version":10,"removed":1}`,
			doc: `{"links":[{"kind":"door","to":"room/bath"}],"rooms":["room/kitchen","room/bath","room/attic"]}`, at: 10},
		// Numbers compare by value.
		{op: "append", payload: `{"path":"floors","values":[1,2,1.0]}`, reply: `{"version":11}`,
			doc: `{"floors":[1,2,1],"links":[{"kind":"door","to":"room/bath"}],"rooms":["room/kitchen","room/bath","room/attic"]}`, at: 11},
		{op: "remove", payload: `{"path":"floors","value":1.0}`, reply: `{"version":12,"removed":2}`,
			doc: `{"floors":[2],"links":[{"kind":"door","to":"room/bath"}],"rooms":["room/kitchen","room/bath","room/attic"]}`, at: 12},
		// A list at the root of the document.
		{op: "set", payload: `{"value":[]}`, reply: `{"version":13}`, doc: `[]`, at: 13},
		{op: "append", payload: `{"value":"room/kitchen"}`, reply: `{"version":14}`, doc: `["room/kitchen"]`, at: 14},
		{op: "insert", payload: `{"index":0,"value":"room/hall"}`, reply: `{"version":15}`, doc: `["room/hall","room/kitchen"]`, at: 15},
		{op: "remove", payload: `{"value":"room/kitchen"}`, reply: `{"version":16,"removed":1}`, doc: `["room/hall"]`, at: 16},
	}
	for _, proto := range requesters {
		t.Run(proto.name, func(t *testing.T) {
			t.Parallel()
			tb := startBroker(t, brokerOpts{})
			runSteps(t, proto.connect(t, tb), "lists/house", steps)
		})
	}
}

// A write naming a version ("version" in the payload) applies only to that
// version; version 0 only creates. A conflict changes nothing and replies
// with the current version and value.
func TestRecordConditionalWrites(t *testing.T) {
	t.Parallel()
	steps := []recStep{
		{op: "set", payload: `{"value":{"n":1},"version":0}`, reply: `{"version":1}`, doc: `{"n":1}`, at: 1},
		{op: "set", payload: `{"value":{"n":2},"version":0}`,
			reply: `{"error":"VERSION_CONFLICT","version":1,"value":{"n":1}}`, doc: `{"n":1}`, at: 1},
		{op: "set", payload: `{"value":{"n":2},"version":1}`, reply: `{"version":2}`, doc: `{"n":2}`, at: 2},
		{op: "set", payload: `{"path":"n","value":3,"version":1}`,
			reply: `{"error":"VERSION_CONFLICT","version":2,"value":{"n":2}}`, doc: `{"n":2}`, at: 2},
		{op: "set", payload: `{"path":"n","value":3,"version":2}`, reply: `{"version":3}`, doc: `{"n":3}`, at: 3},
		{op: "append", payload: `{"path":"l","value":"x","version":2}`,
			reply: `{"error":"VERSION_CONFLICT","version":3,"value":{"n":3}}`, doc: `{"n":3}`, at: 3},
		{op: "append", payload: `{"path":"l","value":"x","version":3}`, reply: `{"version":4}`, doc: `{"l":["x"],"n":3}`, at: 4},
		{op: "insert", payload: `{"path":"l","index":0,"value":"w","version":99}`,
			reply: `{"error":"VERSION_CONFLICT","version":4,"value":{"l":["x"],"n":3}}`, doc: `{"l":["x"],"n":3}`, at: 4},
		{op: "remove", payload: `{"path":"l","index":0,"version":3}`,
			reply: `{"error":"VERSION_CONFLICT","version":4,"value":{"l":["x"],"n":3}}`, doc: `{"l":["x"],"n":3}`, at: 4},
		{op: "delete", payload: `{"path":"n","version":3}`,
			reply: `{"error":"VERSION_CONFLICT","version":4,"value":{"l":["x"],"n":3}}`, doc: `{"l":["x"],"n":3}`, at: 4},
		{op: "delete", payload: `{"path":"n","version":4}`, reply: `{"version":5}`, doc: `{"l":["x"]}`, at: 5},
		{op: "delete", payload: `{"version":4}`,
			reply: `{"error":"VERSION_CONFLICT","version":5,"value":{"l":["x"]}}`, doc: `{"l":["x"]}`, at: 5},
		{op: "delete", payload: `{"version":5}`, reply: `{"version":6}`, doc: ``, at: 6},
		// A deleted record still has its version, and no value.
		{op: "set", payload: `{"value":1,"version":0}`, reply: `{"error":"VERSION_CONFLICT","version":6}`, doc: ``, at: 6},
		{op: "set", payload: `{"value":1,"version":6}`, reply: `{"version":7}`, doc: `1`, at: 7},
	}
	for _, proto := range requesters {
		t.Run(proto.name, func(t *testing.T) {
			t.Parallel()
			tb := startBroker(t, brokerOpts{})
			r := proto.connect(t, tb)
			runSteps(t, r, "cond/1", steps)

			// Version 0 on a record that never existed creates it, for
			// every write.
			for i, rq := range []recRequest{
				rec("set", "", `{"path":"a","value":1,"version":0}`),
				rec("append", "", `{"path":"a","value":1,"version":0}`),
				rec("insert", "", `{"path":"a","index":0,"value":1,"version":0}`),
			} {
				rq.Name = fmt.Sprintf("cond/new/%d", i)
				checkReply(t, rq, r.send(t, rq), `{"version":1}`)
			}
			// A version on a record that never existed conflicts: its
			// version is 0, and it has no value.
			rq := rec("set", "cond/missing", `{"value":1,"version":3}`)
			checkReply(t, rq, r.send(t, rq), `{"error":"VERSION_CONFLICT","version":0}`)
			checkRecord(t, r, "cond/missing", "", 0)
		})
	}
}

// Over MQTT 5 the expected version can also be the user property
// "version", on any write, merge and a retained publish included.
func TestRecordConditionalUserProperty(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	r := newV5Requester(t, tb)
	runSteps(t, r, "cond/prop", []recStep{
		{op: "merge", version: "0", payload: `{"a":1}`, reply: `{"version":1}`, doc: `{"a":1}`, at: 1},
		{op: "merge", version: "0", payload: `{"b":2}`,
			reply: `{"error":"VERSION_CONFLICT","version":1,"value":{"a":1}}`, doc: `{"a":1}`, at: 1},
		{op: "merge", version: "1", payload: `{"b":2}`, reply: `{"version":2}`, doc: `{"a":1,"b":2}`, at: 2},
		{op: "set", version: "1", payload: `{"path":"a","value":5}`,
			reply: `{"error":"VERSION_CONFLICT","version":2,"value":{"a":1,"b":2}}`, doc: `{"a":1,"b":2}`, at: 2},
		{op: "set", version: "2", payload: `{"path":"a","value":5}`, reply: `{"version":3}`, doc: `{"a":5,"b":2}`, at: 3},
		// Both given: they must agree.
		{op: "set", version: "3", payload: `{"path":"a","value":6,"version":3}`, reply: `{"version":4}`, doc: `{"a":6,"b":2}`, at: 4},
		{op: "set", version: "4", payload: `{"path":"a","value":7,"version":3}`,
			reply: `{"error":"INVALID_PAYLOAD"}`, doc: `{"a":6,"b":2}`, at: 4},
		{op: "set", version: "four", payload: `{"path":"a","value":7}`,
			reply: `{"error":"INVALID_PAYLOAD"}`, doc: `{"a":6,"b":2}`, at: 4},
		{op: "delete", version: "3", payload: ``,
			reply: `{"error":"VERSION_CONFLICT","version":4,"value":{"a":6,"b":2}}`, doc: `{"a":6,"b":2}`, at: 4},
		{op: "delete", version: "4", payload: ``, reply: `{"version":5}`, doc: ``, at: 5},
	})

	// A retained publish with the property is a conditional write too; a
	// conflict is refused with 0x83 and replied to on $reply/<client id>.
	c := r.c
	c.subscribe(t, "$reply/"+c.ID, 1)
	publish := func(payload, version string) *paho.PublishResponse {
		t.Helper()
		resp, _ := c.pub(&paho.Publish{Topic: "cond/retained", QoS: 1, Retain: true, Payload: []byte(payload),
			Properties: &paho.PublishProperties{User: paho.UserProperties{{Key: "version", Value: version}}}})
		if resp == nil {
			t.Fatalf("retained publish version=%s: no PUBACK", version)
		}
		return resp
	}
	if resp := publish(`{"on":true}`, "0"); resp.ReasonCode != 0 {
		t.Fatalf("retained publish creating the record with version=0: PUBACK 0x%02x, want 0x00", resp.ReasonCode)
	}
	checkRecord(t, r, "cond/retained", `{"on":true}`, 1)
	resp := publish(`{"on":false}`, "0")
	if resp.ReasonCode != 0x83 || !strings.HasPrefix(resp.Properties.ReasonString, "VERSION_CONFLICT") {
		t.Errorf("conflicting retained publish: PUBACK 0x%02x %q, want 0x83 VERSION_CONFLICT...", resp.ReasonCode, resp.Properties.ReasonString)
	}
	m := c.recv(t)
	if m.Topic != "$reply/"+c.ID {
		t.Fatalf("after a conflicting retained publish: message on %s, want the error reply on $reply/%s", m.Topic, c.ID)
	}
	var body struct {
		Error   string
		Name    string
		Version uint64
		Value   json.RawMessage
	}
	if err := json.Unmarshal(m.Payload, &body); err != nil ||
		body.Error != "VERSION_CONFLICT" || body.Name != "cond/retained" || body.Version != 1 || canonJSON(t, body.Value) != `{"on":true}` {
		t.Errorf("error reply %s (%v), want VERSION_CONFLICT for cond/retained at version 1 with value {\"on\":true}", m.Payload, err)
	}
	checkRecord(t, r, "cond/retained", `{"on":true}`, 1)
	if resp := publish(`{"on":false}`, "1"); resp.ReasonCode != 0 {
		t.Errorf("retained publish with the current version: PUBACK 0x%02x, want 0x00", resp.ReasonCode)
	}
	checkRecord(t, r, "cond/retained", `{"on":false}`, 2)
}

// Every error code: the reply names it (both protocols) and, over MQTT 5,
// so does the acknowledgement's reason code. NOT_FOUND adds the record's
// version when it has one, VERSION_CONFLICT the current version and value;
// other errors add nothing. Nothing changes.
func TestRecordErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		start string // the record's document before, at version 1; "" for none
		// rq is the request; an empty Name is the case's own record,
		// unless named is set.
		rq     recRequest
		named  bool
		v5only bool // rq has a user property
		reply  string
		msg    []string // the message mentions each
	}{
		// INVALID_PAYLOAD
		{name: "merge of text", rq: rec("merge", "", `hello`), reply: `{"error":"INVALID_PAYLOAD"}`},
		{name: "merge of broken JSON", start: `{"a":1}`, rq: rec("merge", "", `{"a":`), reply: `{"error":"INVALID_PAYLOAD"}`},
		{name: "merge of nothing", rq: rec("merge", "", ``), reply: `{"error":"INVALID_PAYLOAD"}`},
		{name: "set of a non-object", rq: rec("set", "", `[1,2]`), reply: `{"error":"INVALID_PAYLOAD"}`},
		{name: "set without value", start: `{"a":1}`, rq: rec("set", "", `{"path":"a"}`), reply: `{"error":"INVALID_PAYLOAD"}`},
		{name: "set with an unknown field", start: `{"a":1}`, rq: rec("set", "", `{"value":1,"colour":"red"}`),
			reply: `{"error":"INVALID_PAYLOAD"}`, msg: []string{"colour"}},
		{name: "delete with an unknown field", start: `{"a":1}`, rq: rec("delete", "", `{"path":"a","force":true}`),
			reply: `{"error":"INVALID_PAYLOAD"}`, msg: []string{"force"}},
		{name: "path not a string", rq: rec("set", "", `{"path":5,"value":1}`), reply: `{"error":"INVALID_PAYLOAD"}`},
		{name: "negative version", rq: rec("set", "", `{"value":1,"version":-1}`), reply: `{"error":"INVALID_PAYLOAD"}`},
		{name: "version as text", rq: rec("set", "", `{"value":1,"version":"1"}`), reply: `{"error":"INVALID_PAYLOAD"}`},
		{name: "append with value and values", rq: rec("append", "", `{"path":"l","value":1,"values":[2]}`), reply: `{"error":"INVALID_PAYLOAD"}`},
		{name: "append with neither", rq: rec("append", "", `{"path":"l"}`), reply: `{"error":"INVALID_PAYLOAD"}`},
		{name: "append values not an array", rq: rec("append", "", `{"path":"l","values":3}`), reply: `{"error":"INVALID_PAYLOAD"}`},
		{name: "insert without index", start: `{"l":[]}`, rq: rec("insert", "", `{"path":"l","value":1}`), reply: `{"error":"INVALID_PAYLOAD"}`},
		{name: "remove with neither index nor value", start: `{"l":[1]}`, rq: rec("remove", "", `{"path":"l"}`), reply: `{"error":"INVALID_PAYLOAD"}`},
		{name: "remove with both index and value", start: `{"l":[1]}`, rq: rec("remove", "", `{"path":"l","index":0,"value":1}`), reply: `{"error":"INVALID_PAYLOAD"}`},
		{name: "document nested deeper than 32", rq: rec("set", "", `{"value":`+strings.Repeat("[", 33)+strings.Repeat("]", 33)+`}`),
			reply: `{"error":"INVALID_PAYLOAD"}`},
		{name: "user property version not a number", start: `{"a":1}`, rq: recRequest{Op: "merge", Payload: `{"a":2}`, QoS: 1, Version: "one"},
			v5only: true, reply: `{"error":"INVALID_PAYLOAD"}`},
		{name: "payload and user property versions differ", start: `{"a":1}`, rq: recRequest{Op: "set", Payload: `{"value":2,"version":1}`, QoS: 1, Version: "2"},
			v5only: true, reply: `{"error":"INVALID_PAYLOAD"}`},

		// INVALID_PATH
		{name: "empty key", rq: rec("set", "", `{"path":"a..b","value":1}`), reply: `{"error":"INVALID_PATH"}`, msg: []string{"empty key"}},
		{name: "leading zero", rq: rec("set", "", `{"path":"a[01]","value":1}`), reply: `{"error":"INVALID_PATH"}`, msg: []string{"leading zero"}},
		{name: "unclosed bracket", rq: rec("append", "", `{"path":"a[","value":1}`), reply: `{"error":"INVALID_PATH"}`, msg: []string{"unclosed"}},
		// A long message is cut in the reason string at a character boundary.
		{name: "long path of 2-byte characters", rq: rec("set", "", `{"path":"`+strings.Repeat("é", 150)+`..b","value":1}`), reply: `{"error":"INVALID_PATH"}`, msg: []string{"empty key"}},
		{name: "long path, odd offset", rq: rec("set", "", `{"path":"x`+strings.Repeat("é", 150)+`..b","value":1}`), reply: `{"error":"INVALID_PATH"}`, msg: []string{"empty key"}},
		{name: "negative index in a path", rq: rec("set", "", `{"path":"a[-1]","value":1}`), reply: `{"error":"INVALID_PATH"}`},
		{name: "index above 10000", rq: rec("set", "", `{"path":"a[10001]","value":1}`), reply: `{"error":"INVALID_PATH"}`},
		{name: "key into a number", start: `{"a":1}`, rq: rec("set", "", `{"path":"a.b","value":2}`), reply: `{"error":"INVALID_PATH"}`, msg: []string{"a"}},
		{name: "index into an object", start: `{"a":{"b":1}}`, rq: rec("set", "", `{"path":"a[0]","value":2}`), reply: `{"error":"INVALID_PATH"}`},
		{name: "append to a number", start: `{"a":1}`, rq: rec("append", "", `{"path":"a","value":2}`), reply: `{"error":"INVALID_PATH"}`},
		{name: "remove from an object", start: `{"a":{"b":1}}`, rq: rec("remove", "", `{"path":"a","value":1}`), reply: `{"error":"INVALID_PATH"}`},
		{name: "remove past the end", start: `{"l":[1]}`, rq: rec("remove", "", `{"path":"l","index":1}`), reply: `{"error":"INVALID_PATH"}`},
		{name: "insert past the end", start: `{"l":[1]}`, rq: rec("insert", "", `{"path":"l","index":2,"value":0}`), reply: `{"error":"INVALID_PATH"}`},
		{name: "negative insert index", start: `{"l":[1]}`, rq: rec("insert", "", `{"path":"l","index":-1,"value":0}`), reply: `{"error":"INVALID_PATH"}`},

		// INVALID_NAME
		{name: "get of a name starting with $", rq: rec("get", "$config", ``), named: true, reply: `{"error":"INVALID_NAME"}`},
		{name: "set of a name starting with $", rq: rec("set", "$SYS/x", `{"value":1}`), named: true, reply: `{"error":"INVALID_NAME"}`},
		{name: "empty name", rq: rec("merge", "", `{"a":1}`), named: true, reply: `{"error":"INVALID_NAME"}`},

		// UNKNOWN_OPERATION
		{name: "unknown operation", rq: rec("patch", "", `{"a":2}`), reply: `{"error":"UNKNOWN_OPERATION"}`, msg: []string{"patch"}},
		{name: "operation in upper case", rq: rec("SET", "", `{"value":2}`), reply: `{"error":"UNKNOWN_OPERATION"}`},

		// NOT_FOUND
		{name: "get of a missing record", rq: rec("get", "", ``), reply: `{"error":"NOT_FOUND"}`},
		{name: "delete of a missing record", rq: rec("delete", "", ``), reply: `{"error":"NOT_FOUND"}`},
		{name: "delete of a missing member", start: `{"a":1}`, rq: rec("delete", "", `{"path":"b"}`), reply: `{"error":"NOT_FOUND","version":1}`},
		{name: "delete past an array's end", start: `{"l":[1]}`, rq: rec("delete", "", `{"path":"l[3]"}`), reply: `{"error":"NOT_FOUND","version":1}`},

		// VERSION_CONFLICT
		{name: "stale version", start: `{"a":1}`, rq: rec("set", "", `{"value":2,"version":7}`),
			reply: `{"error":"VERSION_CONFLICT","version":1,"value":{"a":1}}`},
		{name: "merge naming a version of a missing record", rq: recRequest{Op: "merge", Payload: `{"a":1}`, QoS: 1, Version: "2"},
			v5only: true, reply: `{"error":"VERSION_CONFLICT","version":0}`},

		// At QoS 2 the reason code is in PUBREC.
		{name: "QoS 2", start: `{"a":1}`, rq: recRequest{Op: "append", Payload: `{"path":"a","value":1}`, QoS: 2},
			reply: `{"error":"INVALID_PATH"}`},
		// At QoS 0 there is no acknowledgement, but there is a reply.
		{name: "QoS 0", rq: recRequest{Op: "get", QoS: 0}, reply: `{"error":"NOT_FOUND"}`},
	}
	for _, proto := range requesters {
		t.Run(proto.name, func(t *testing.T) {
			t.Parallel()
			tb := startBroker(t, brokerOpts{})
			r := proto.connect(t, tb)
			for i, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					if tt.v5only && proto.name != "5" {
						t.Skip("MQTT 3.1.1 has no user properties")
					}
					name := fmt.Sprintf("errors/%d", i)
					if tt.start != "" {
						set := rec("set", name, `{"value":`+tt.start+`}`)
						checkReply(t, set, r.send(t, set), `{"version":1}`)
					}
					rq := tt.rq
					if !tt.named {
						rq.Name = name
					}
					checkReply(t, rq, r.send(t, rq), tt.reply, tt.msg...)
					if !tt.named {
						doc, version := "", uint64(0)
						if tt.start != "" {
							doc, version = canonJSON(t, []byte(tt.start)), 1
						}
						checkRecord(t, r, name, doc, version)
					}
				})
			}
		})
	}
}

// A $rec publish goes to no subscriber; the reply goes to the requester
// alone: on the MQTT 5 Response Topic with the Correlation Data if the
// request has one, else on $reply/<client id>, at the request's QoS.
func TestRecordReplyRouting(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	watcher := connectV5(t, tb.MQTTAddr, nil)
	watcher.subscribeOpts(t,
		paho.SubscribeOptions{Topic: "$rec/#", QoS: 1},
		paho.SubscribeOptions{Topic: "routing/#", QoS: 1})

	v5 := newV5Requester(t, tb)
	v3 := newV3Requester(t, tb)
	for _, qos := range []byte{0, 1, 2} {
		t.Run(fmt.Sprintf("QoS %d", qos), func(t *testing.T) {
			for i, r := range []recRequester{v5, v3} {
				name := fmt.Sprintf("routing/%d/qos%d", i, qos)
				rq := recRequest{Op: "merge", Name: name, Payload: `{"q":1}`, QoS: qos}
				checkReply(t, rq, r.send(t, rq), `{"version":1}`) // send checks the routing
			}
		})
	}

	t.Run("MQTT 5 without a response topic", func(t *testing.T) {
		c := connectV5(t, tb.MQTTAddr, nil)
		c.subscribe(t, "$reply/"+c.ID, 2)
		rq := rec("get", "routing/none", "")
		resp, _ := c.pub(&paho.Publish{Topic: rq.topic(), QoS: 1})
		if resp == nil {
			t.Fatal("no PUBACK")
		}
		m := c.recv(t)
		if m.Topic != "$reply/"+c.ID || m.Properties.ContentType != "application/json" || m.QoS != 1 {
			t.Fatalf("reply on %s (content type %q, QoS %d), want $reply/%s (application/json, QoS 1)",
				m.Topic, m.Properties.ContentType, m.QoS, c.ID)
		}
		checkReply(t, rq, recReply{V5: true, Body: m.Payload, Reason: resp.ReasonCode, ReasonString: resp.Properties.ReasonString},
			`{"error":"NOT_FOUND"}`)
	})

	// The watcher sees the record changes on their own topics, never a
	// request.
	connectV5(t, tb.MQTTAddr, nil).publish(t, "routing/sentinel", 1, false, []byte("end"))
	for _, m := range watcher.recvUntil(t, "routing/sentinel") {
		if !strings.HasPrefix(m.Topic, "routing/") {
			t.Errorf("a third client received %s %q", m.Topic, m.Payload)
		}
	}
}

// recDelivery is what a subscriber should receive for one change: the
// record's document (canonical JSON), or "" for a deletion.
type recDelivery struct {
	doc     string
	version string
}

// Every change of a record, by a $rec operation or a retained publish from
// either protocol, publishes the whole document on the record's topic;
// MQTT 5 deliveries carry the version. A deletion is an empty message.
// Live subscribers get retain=false unless they asked for retain as
// published.
func TestRecordChangesPublished(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	const topic = "house/temp"
	plain := connectV5(t, tb.MQTTAddr, nil)
	plain.subscribe(t, "house/#", 1)
	rap := connectV5(t, tb.MQTTAddr, nil)
	rap.subscribeOpts(t, paho.SubscribeOptions{Topic: "house/#", QoS: 1, RetainAsPublished: true})
	v3sub := connectV3(t, tcpURL(tb.MQTTAddr), nil)
	v3sub.subscribe(t, "house/#", 1)

	r := newV5Requester(t, tb)
	v5pub := connectV5(t, tb.MQTTAddr, nil)
	v3pub := connectV3(t, tcpURL(tb.MQTTAddr), nil)
	changes := []struct {
		what   string
		change func(t *testing.T)
		want   recDelivery
	}{
		{"$rec/merge creates", func(t *testing.T) {
			rq := rec("merge", topic, `{"c":21}`)
			checkReply(t, rq, r.send(t, rq), `{"version":1}`)
		}, recDelivery{`{"c":21}`, "1"}},
		{"MQTT 5 retained publish", func(t *testing.T) {
			v5pub.publish(t, topic, 1, true, []byte(`{"c":22,"f":71.6}`))
		}, recDelivery{`{"c":22,"f":71.6}`, "2"}},
		{"$rec/set at a path", func(t *testing.T) {
			rq := rec("set", topic, `{"path":"f","value":null}`)
			checkReply(t, rq, r.send(t, rq), `{"version":3}`)
		}, recDelivery{`{"c":22,"f":null}`, "3"}},
		{"MQTT 3.1.1 retained publish", func(t *testing.T) {
			v3pub.publish(t, topic, 1, true, []byte(`{"c":23}`))
		}, recDelivery{`{"c":23}`, "4"}},
		{"$rec/append", func(t *testing.T) {
			rq := rec("append", topic, `{"path":"log","value":1}`)
			checkReply(t, rq, r.send(t, rq), `{"version":5}`)
		}, recDelivery{`{"c":23,"log":[1]}`, "5"}},
		{"$rec/insert", func(t *testing.T) {
			rq := rec("insert", topic, `{"path":"log","index":0,"value":0}`)
			checkReply(t, rq, r.send(t, rq), `{"version":6}`)
		}, recDelivery{`{"c":23,"log":[0,1]}`, "6"}},
		{"$rec/remove", func(t *testing.T) {
			rq := rec("remove", topic, `{"path":"log","value":0}`)
			checkReply(t, rq, r.send(t, rq), `{"version":7,"removed":1}`)
		}, recDelivery{`{"c":23,"log":[1]}`, "7"}},
		{"$rec/delete", func(t *testing.T) {
			rq := rec("delete", topic, ``)
			checkReply(t, rq, r.send(t, rq), `{"version":8}`)
		}, recDelivery{"", "8"}},
		{"retained publish after the deletion", func(t *testing.T) {
			v5pub.publish(t, topic, 1, true, []byte(`{"c":1}`))
		}, recDelivery{`{"c":1}`, "9"}},
		{"empty retained publish deletes", func(t *testing.T) {
			v3pub.publish(t, topic, 1, true, nil)
		}, recDelivery{"", "10"}},
		{"retained publish recreates", func(t *testing.T) {
			v5pub.publish(t, topic, 1, true, []byte(`[1,2]`))
		}, recDelivery{`[1,2]`, "11"}},
	}
	for _, ch := range changes {
		t.Run(ch.what, func(t *testing.T) {
			ch.change(t)
			for _, sub := range []struct {
				name   string
				c      testClient
				retain bool
			}{{"plain", plain, false}, {"retain as published", rap, true}, {"MQTT 3.1.1", v3sub, false}} {
				var got received
				var version string
				if c, ok := sub.c.(*v5Client); ok {
					m := c.recv(t)
					got = received{Topic: m.Topic, Payload: string(m.Payload), QoS: m.QoS, Retain: m.Retain}
					version = m.Properties.User.Get("version")
				} else {
					// MQTT 3.1.1 has no properties to carry the version.
					got, version = sub.c.next(t), ch.want.version
				}
				if got.Topic != topic || got.Retain != sub.retain || version != ch.want.version {
					t.Errorf("%s subscriber: %s retain=%v version=%q, want %s retain=%v version=%q",
						sub.name, got.Topic, got.Retain, version, topic, sub.retain, ch.want.version)
				}
				switch {
				case ch.want.doc == "" && got.Payload != "":
					t.Errorf("%s subscriber: deletion delivered as %q, want an empty payload", sub.name, got.Payload)
				case ch.want.doc != "" && canonJSON(t, []byte(got.Payload)) != ch.want.doc:
					t.Errorf("%s subscriber: %s, want %s", sub.name, got.Payload, ch.want.doc)
				}
			}
		})
	}

	// An empty retained publish on a missing record changes nothing, and
	// publishes nothing.
	v5pub.publish(t, "house/never", 1, true, nil)
	v5pub.publish(t, "house/sentinel", 1, false, []byte("end"))
	for _, c := range []testClient{plain, rap, v3sub} {
		if got := nextUntil(t, c, "house/sentinel"); len(got) != 0 {
			t.Errorf("deleting a missing record delivered %+v", got)
		}
	}

	// A new subscriber gets the record as stored: retained, canonical JSON.
	late := connectV5(t, tb.MQTTAddr, nil)
	late.subscribe(t, topic, 1)
	m := late.recv(t)
	if m.Topic != topic || !m.Retain || string(m.Payload) != `[1,2]` || m.Properties.User.Get("version") != "11" {
		t.Errorf("new subscriber: %s %q retain=%v version=%q, want %s [1,2] retained, version 11",
			m.Topic, m.Payload, m.Retain, m.Properties.User.Get("version"), topic)
	}
}

// MQTT 5 deliveries of a record carry its version also to a client that
// asked for no problem information (Request Problem Information 0): that
// only withholds reason strings and user properties from packets other
// than PUBLISH, CONNACK and DISCONNECT [MQTT-3.1.2-29].
func TestRecordVersionWithoutProblemInfo(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	sub := connectV5(t, tb.MQTTAddr, &paho.Connect{CleanStart: true, KeepAlive: 30,
		Properties: &paho.ConnectProperties{RequestProblemInfo: false}})
	sub.subscribe(t, "quiet/#", 1)
	connectV5(t, tb.MQTTAddr, nil).publish(t, "quiet/1", 1, true, []byte(`{"a":1}`))
	if m := sub.recv(t); m.Properties.User.Get("version") != "1" {
		t.Errorf("live delivery: user properties %v, want version 1", m.Properties.User)
	}
	late := connectV5(t, tb.MQTTAddr, &paho.Connect{CleanStart: true, KeepAlive: 30,
		Properties: &paho.ConnectProperties{RequestProblemInfo: false}})
	late.subscribe(t, "quiet/1", 1)
	if m := late.recv(t); m.Properties.User.Get("version") != "1" {
		t.Errorf("stored delivery: user properties %v, want version 1", m.Properties.User)
	}
}

// Records survive a restart with their value and version; a deleted record
// stays deleted and keeps counting versions.
func TestRecordsSurviveRestart(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	r := newV5Requester(t, tb)
	for _, rq := range []recRequest{
		rec("merge", "home/a", `{"t":20}`),
		rec("merge", "home/a", `{"t":21,"rooms":["hall"]}`),
		rec("append", "home/a", `{"path":"rooms","value":"attic"}`),
		rec("set", "home/gone", `{"value":"soon deleted"}`),
		rec("delete", "home/gone", ``),
	} {
		if rep := r.send(t, rq); bytes.Contains(rep.Body, []byte(`"error"`)) {
			t.Fatalf("%s: %s", rq, rep.Body)
		}
	}
	pub := connectV3(t, tcpURL(tb.MQTTAddr), nil)
	pub.publish(t, "home/b", 1, true, []byte(`{ "z": 1, "a": [true, null] }`))
	opaque := []byte{0xfb, 0xff, 0xbf, 0x00, 0x01, 0x02}
	pub.publish(t, "home/opaque", 1, true, opaque)

	tb.restart(t)

	r = newV5Requester(t, tb)
	want := []struct {
		name, doc string
		version   uint64
	}{
		{"home/a", `{"rooms":["hall","attic"],"t":21}`, 3},
		{"home/b", `{"a":[true,null],"z":1}`, 1},
		{"home/opaque", `"-_-_AAEC"`, 1}, // base64url
		{"home/gone", ``, 2},
	}
	for _, w := range want {
		checkRecord(t, r, w.name, w.doc, w.version)
	}

	// A new subscriber receives them as retained messages with their
	// version, documents as canonical JSON, opaque bytes as they were.
	connectV5(t, tb.MQTTAddr, nil).publish(t, "zz/sentinel", 1, true, []byte("end"))
	sub := connectV5(t, tb.MQTTAddr, nil)
	// One SUBSCRIBE: the sentinel's filter is served after home/#.
	sub.subscribeOpts(t, paho.SubscribeOptions{Topic: "home/#", QoS: 1}, paho.SubscribeOptions{Topic: "zz/sentinel", QoS: 1})
	got := map[string]*paho.Publish{}
	for _, m := range sub.recvUntil(t, "zz/sentinel") {
		if !m.Retain {
			t.Errorf("%s delivered with retain=false", m.Topic)
		}
		got[m.Topic] = m
	}
	for _, w := range []struct {
		topic, payload, version string
	}{
		{"home/a", `{"rooms":["hall","attic"],"t":21}`, "3"},
		{"home/b", `{"a":[true,null],"z":1}`, "1"},
		{"home/opaque", string(opaque), "1"},
	} {
		m, ok := got[w.topic]
		delete(got, w.topic)
		switch {
		case !ok:
			t.Errorf("new subscriber: no retained %s", w.topic)
		case string(m.Payload) != w.payload || m.Properties.User.Get("version") != w.version:
			t.Errorf("new subscriber: %s = %q version %q, want %q version %s",
				w.topic, m.Payload, m.Properties.User.Get("version"), w.payload, w.version)
		}
	}
	for topic, m := range got {
		t.Errorf("new subscriber: unexpected retained %s %q", topic, m.Payload)
	}

	// Versions carry on from where they were.
	rq := rec("merge", "home/a", `{"t":22}`)
	checkReply(t, rq, r.send(t, rq), `{"version":4}`)
	rq = rec("merge", "home/gone", `{"back":1}`)
	checkReply(t, rq, r.send(t, rq), `{"version":3}`)
}

// padName returns prefix padded with 'n' to n bytes.
func padName(prefix string, n int) string {
	return prefix + strings.Repeat("n", n-len(prefix))
}

// records.max_size and records.max_name_length bound every write: a $rec
// operation, and a retained publish (refused with the same reason code).
func TestRecordLimits(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{Records: broker.Records{MaxSize: 1024, MaxNameLen: 40}})
	big := strings.Repeat("x", 1100)
	half := strings.Repeat("y", 600)
	for _, proto := range requesters {
		t.Run(proto.name, func(t *testing.T) {
			r := proto.connect(t, tb)
			p := "limits/" + proto.name + "/"
			runSteps(t, r, p+"size", []recStep{
				{op: "set", payload: `{"value":"` + big + `"}`, reply: `{"error":"TOO_LARGE"}`, doc: ``, at: 0},
				{op: "merge", payload: `{"a":"` + half + `"}`, reply: `{"version":1}`, doc: `{"a":"` + half + `"}`, at: 1},
				// Each request is small; the document they would make is not.
				{op: "merge", payload: `{"b":"` + half + `"}`, reply: `{"error":"TOO_LARGE"}`, doc: `{"a":"` + half + `"}`, at: 1},
				{op: "append", payload: `{"path":"l","value":"` + half + `"}`, reply: `{"error":"TOO_LARGE"}`, doc: `{"a":"` + half + `"}`, at: 1},
			})

			rq := rec("merge", padName(p, 40), `{"ok":true}`)
			checkReply(t, rq, r.send(t, rq), `{"version":1}`)
			rq = rec("merge", padName(p, 41), `{"ok":true}`)
			checkReply(t, rq, r.send(t, rq), `{"error":"INVALID_NAME"}`)
			rq = rec("get", padName(p, 41), ``)
			checkReply(t, rq, r.send(t, rq), `{"error":"INVALID_NAME"}`)
		})
	}

	t.Run("retained publish", func(t *testing.T) {
		c := connectV5(t, tb.MQTTAddr, nil)
		c.subscribe(t, "$reply/"+c.ID, 1)
		tests := []struct {
			topic   string
			payload []byte
			code    string
		}{
			{"limits/retained/json", []byte(`{"v":"` + big + `"}`), "TOO_LARGE"},
			{"limits/retained/opaque", []byte(big), "TOO_LARGE"},
			{padName("limits/retained/", 41), []byte(`{"ok":true}`), "INVALID_NAME"},
		}
		for _, tt := range tests {
			resp, _ := c.pub(&paho.Publish{Topic: tt.topic, QoS: 1, Retain: true, Payload: tt.payload})
			if resp == nil || resp.ReasonCode != recReasons[tt.code] || !strings.HasPrefix(resp.Properties.ReasonString, tt.code) {
				t.Errorf("retained publish of %d bytes to %s: PUBACK %+v, want 0x%02x %s", len(tt.payload), tt.topic, resp, recReasons[tt.code], tt.code)
				continue
			}
			m := c.recv(t)
			var body struct{ Error, Name string }
			if err := json.Unmarshal(m.Payload, &body); err != nil || m.Topic != "$reply/"+c.ID || body.Error != tt.code || body.Name != tt.topic {
				t.Errorf("retained publish to %s: reply %s %s, want error %s for it on $reply/%s", tt.topic, m.Topic, m.Payload, tt.code, c.ID)
			}
		}
		r := newV5Requester(t, tb)
		checkRecord(t, r, "limits/retained/json", "", 0)
		checkRecord(t, r, "limits/retained/opaque", "", 0)
	})
}

// The default limits: 1 MiB values, measured as CBOR, and 256-byte names.
func TestRecordDefaultLimits(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{Limits: broker.Limits{MaxPacketSize: 4 << 20}})
	r := newV5Requester(t, tb)
	rq := rec("merge", padName("defaults/", 256), `{"ok":true}`)
	checkReply(t, rq, r.send(t, rq), `{"version":1}`)
	rq = rec("merge", padName("defaults/", 257), `{"ok":true}`)
	checkReply(t, rq, r.send(t, rq), `{"error":"INVALID_NAME"}`)

	almost := strings.Repeat("x", 1<<20-64)
	rq = rec("merge", "defaults/size", `{"a":"`+almost+`"}`)
	checkReply(t, rq, r.send(t, rq), `{"version":1}`)
	rq = rec("merge", "defaults/size", `{"b":"`+strings.Repeat("y", 100)+`"}`)
	checkReply(t, rq, r.send(t, rq), `{"error":"TOO_LARGE"}`)

	c := connectV5(t, tb.MQTTAddr, nil)
	resp, _ := c.pub(&paho.Publish{Topic: "defaults/opaque", QoS: 1, Retain: true, Payload: bytes.Repeat([]byte{0xff}, 1<<20+1)})
	if resp == nil || resp.ReasonCode != 0x97 {
		t.Errorf("retained opaque publish of 1 MiB + 1 byte: PUBACK %+v, want 0x97", resp)
	}
	c.publish(t, "defaults/opaque", 1, true, bytes.Repeat([]byte{0xff}, 1<<20))
}

// An opaque record (neither JSON nor CBOR) is read as base64url text in
// JSON; it has no fields, so only a whole-record write or delete applies.
func TestRecordOpaque(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	raw := []byte{0xfb, 0xff, 0xbf, 0x00, 0x01, 0x02} // "+/+/AAEC" in standard base64
	connectV5(t, tb.MQTTAddr, nil).publish(t, "blob/1", 1, true, raw)
	for _, proto := range requesters {
		t.Run(proto.name, func(t *testing.T) {
			r := proto.connect(t, tb)
			runSteps(t, r, "blob/1", []recStep{
				{op: "get", reply: `{"version":1,"value":"-_-_AAEC"}`, doc: `"-_-_AAEC"`, at: 1},
				{op: "merge", payload: `{"a":1}`, reply: `{"error":"INVALID_PAYLOAD"}`, doc: `"-_-_AAEC"`, at: 1},
				{op: "set", payload: `{"path":"a","value":1}`, reply: `{"error":"INVALID_PAYLOAD"}`, doc: `"-_-_AAEC"`, at: 1},
				{op: "set", payload: `{"value":{"a":1}}`, reply: `{"error":"INVALID_PAYLOAD"}`, doc: `"-_-_AAEC"`, at: 1},
			})
		})
	}
	r := newV5Requester(t, tb)
	runSteps(t, r, "blob/1", []recStep{
		{op: "delete", reply: `{"version":2}`, doc: ``, at: 2},
		// Once deleted, the record is no longer opaque.
		{op: "merge", payload: `{"a":1}`, reply: `{"version":3}`, doc: `{"a":1}`, at: 3},
	})
}

// A full store refuses a write with STORAGE_ERROR: over MQTT 5 with 0x97
// (quota exceeded), over MQTT 3.1.1 in the reply only. Nothing changes.
func TestRecordStoreFull(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{Store: storage.Options{MaxSize: storeCap}})
	_, refused := fillStore(t, connectV5(t, tb.MQTTAddr, nil))
	value := `{"value":"` + string(retainedPayload(7)) + `"}` // as large as the refused one
	for _, proto := range requesters {
		t.Run(proto.name, func(t *testing.T) {
			r := proto.connect(t, tb)
			rq := rec("set", refused, value)
			got := r.send(t, rq)
			want := `{"error":"STORAGE_ERROR"}`
			if got.V5 {
				if got.Reason != 0x97 || !strings.HasPrefix(got.ReasonString, "STORAGE_ERROR") {
					t.Errorf("%s: PUBACK 0x%02x %q, want 0x97 STORAGE_ERROR...", rq, got.Reason, got.ReasonString)
				}
				got.V5 = false // the reason code is not recReasons' 0x80
			}
			checkReply(t, rq, got, want)
			checkRecord(t, r, refused, "", 0)
		})
	}
}
