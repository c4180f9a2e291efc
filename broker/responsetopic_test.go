package broker_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/eclipse/paho.golang/paho"
)

// The Response Topic of a request (docs/PROTOCOL.md "Reply topics", "RPC"
// and "Records"): the broker replies on a topic of the requester's choosing,
// without the checks of a client's publish, so it must refuse one it would
// not let the requester publish to itself: a topic filter (+, #), or a $
// topic other than the requester's own $reply/<id> (and below it). Such a
// request is refused with DENIED, on $reply/<requester id>, and nothing is
// published on the refused topic.

// responseTopicsRefused are Response Topics the broker does not reply on,
// other being another client's id.
func responseTopicsRefused(other string) []string {
	return []string{
		"$listen/sensors/x",   // a forged listening notification
		"$presence/kitchen-1", // a forged presence record
		"$rpc/other",          // a request to every provider of $rpc/other
		"$SYS/x",              // the broker's own
		"a/+/b",               // not a topic name
		"a/#",                 // not a topic name
		"$reply/" + other,     // another client's replies
	}
}

// wantDenied waits for the DENIED error reply to a request of c that named
// the Response Topic topic: on $reply/<c's id>, with the request's
// Correlation Data corr, the user property error=DENIED, and the body
// {"op": op, "name": name, "error": "DENIED", "message": <naming topic>}.
func wantDenied(t testing.TB, c *rpcClient, corr []byte, op, name, topic string) {
	t.Helper()
	m := c.next(t)
	if m.Topic != "$reply/"+c.ID || !bytes.Equal(m.Corr, corr) {
		t.Fatalf("Response Topic %q, %s %s: reply %s, want it on $reply/%s with correlation %q", topic, op, name, m, c.ID, corr)
	}
	if codes := m.User.GetAll("error"); len(codes) != 1 || codes[0] != "DENIED" {
		t.Errorf("Response Topic %q, %s %s: error user properties %q, want [DENIED]", topic, op, name, codes)
	}
	body, err := docMap(m.Payload, m.ContentType, false)
	if err != nil {
		t.Fatalf("Response Topic %q, %s %s: reply %s: %v", topic, op, name, m, err)
	}
	msg, _ := body["message"].(string)
	if body["error"] != "DENIED" || body["op"] != op || body["name"] != name || len(body) != 4 ||
		!strings.Contains(msg, fmt.Sprintf("%q", topic)) {
		t.Errorf("Response Topic %q, %s %s: reply %s, want {op: %q, name: %q, error: DENIED, message: <naming the topic>}",
			topic, op, name, jsonText(body), op, name)
	}
}

// A request whose Response Topic the broker will not reply on is refused,
// whatever it asks for: an RPC request (which no provider is given), a
// record read or write (the record unchanged), $presence/get. Nothing is
// published on the refused topic: listeners, presence watchers, providers,
// subscribers of a filter and the owner of another $reply topic receive
// nothing. The requester's own $reply/<id> and below it are accepted.
func TestResponseTopicRefused(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	prov := newRPCClient(t, tb, rpcOpts{role: "prov", filters: []string{"$rpc/rt/svc"}})
	other := newRPCClient(t, tb, rpcOpts{role: "other", filters: []string{"$rpc/other"}})
	reqID := clientID(t, "req")
	req := newRPCClient(t, tb, rpcOpts{id: reqID, filters: []string{"$reply/" + reqID + "/x"}})
	if ack, err := req.send("rt/rec", 1, true, []byte(`{"v":1}`), nil); err != nil || ack.Code != 0 {
		t.Fatalf("set rt/rec: %v, acknowledged 0x%02x %q", err, ack.Code, ack.Reason)
	}
	s := newListenSentinel(t, tb, "rt-sentinel/%d")

	// Everything that could receive something published on a refused
	// topic, subscribed at QoS 0 (no delivery of theirs is inflight when
	// they subscribe), and nothing connects after them.
	listener := connectV5(t, tb.MQTTAddr, nil)
	roundTrip(t, listener) // its presence record is written
	roundTrip(t, s.c)
	watcher := connectV5(t, tb.MQTTAddr, nil)
	for _, f := range []string{"$presence/#", "a/#", "$SYS/x", "sentinel"} {
		watcher.subscribe(t, f, 0)
	}
	syncRetained(t, watcher) // the presence records so far
	listener.subscribe(t, "$listen/#", 0)
	// untilSentinel returns what the listener received before a new
	// sentinel subscription's notification.
	untilSentinel := func() []*paho.Publish {
		t.Helper()
		s.n++
		f := fmt.Sprintf(s.format, s.n)
		s.c.subscribe(t, f, 0)
		var got []*paho.Publish
		for {
			m := listener.recv(t)
			if m.Topic == "$listen/"+f {
				return got
			}
			got = append(got, m)
		}
	}
	untilSentinel() // the filters in use

	seq := 0
	send := func(topic string, payload string, rt string) (rpcAck, []byte) {
		t.Helper()
		seq++
		corr := fmt.Appendf(nil, "rt-%d", seq)
		ack, err := req.send(topic, 1, false, []byte(payload), &paho.PublishProperties{ResponseTopic: rt, CorrelationData: corr})
		if err != nil {
			t.Fatalf("%s with Response Topic %q: %v", topic, rt, err)
		}
		return ack, corr
	}
	requests := []struct {
		topic, payload, op, name string
	}{
		{"$rpc/rt/svc", `{"q":1}`, "rpc", "rt/svc"},
		{"$rec/get/rt/rec", "", "get", "rt/rec"},
		{"$rec/set/rt/rec", `{"value":{"v":2}}`, "set", "rt/rec"},
		{"$presence/get", "", "get", "$presence"},
	}
	for _, rt := range responseTopicsRefused(other.ID) {
		for _, rq := range requests {
			ack, corr := send(rq.topic, rq.payload, rt)
			if ack.Code != 0x87 || !strings.HasPrefix(ack.Reason, "DENIED: ") || !strings.Contains(ack.Reason, fmt.Sprintf("%q", rt)) {
				t.Errorf("%s with Response Topic %q: acknowledged 0x%02x %q, want 0x87 \"DENIED: ...\" naming the topic", rq.topic, rt, ack.Code, ack.Reason)
			}
			wantDenied(t, req, corr, rq.op, rq.name, rt)
		}
	}
	checkRPCMetrics(t, tb, map[string]float64{rpcErrSeries("DENIED"): float64(len(responseTopicsRefused(other.ID)))})

	// Nothing was published on the refused topics, and no provider was
	// given a request.
	if got := untilSentinel(); len(got) != 0 {
		for _, m := range got {
			t.Errorf("the $listen/# listener received %s %q", m.Topic, m.Payload)
		}
	}
	req.mustSend(t, 0, "sentinel", []byte("end"), nil)
	for _, m := range watcher.recvUntil(t, "sentinel") {
		t.Errorf("the $presence/#, a/#, $SYS/x subscriber received %s %q", m.Topic, m.Payload)
	}
	prov.expectEnd(t)
	other.expectEnd(t)
	req.expectEnd(t)

	// The requester's own reply topic, and below it, are accepted.
	for _, rt := range []string{"$reply/" + req.ID, "$reply/" + req.ID + "/x"} {
		ack, corr := send("$rpc/rt/svc", `{"q":2}`, rt)
		if ack.Code != 0 {
			t.Fatalf("request with Response Topic %q: acknowledged 0x%02x %q, want 0x00", rt, ack.Code, ack.Reason)
		}
		r := prov.request(t)
		if r.Data != `{"q":2}` || !bytes.Equal(r.Corr, corr) {
			t.Errorf("provider got %+v, want {\"q\":2} with correlation %q", r, corr)
		}
		prov.mustAnswer(t, r.ID, `{"ok":true}`)
		m := req.next(t)
		if m.Topic != rt || !bytes.Equal(m.Corr, corr) || len(m.User.GetAll("error")) != 0 {
			t.Fatalf("answer %s, want it on %s with correlation %q", m, rt, corr)
		}
		if got, err := docText(m.Payload, m.ContentType, false); err != nil || got != `{"ok":true}` {
			t.Errorf("answer %s (%v), want {\"ok\":true}", m, err)
		}

		ack, corr = send("$rec/get/rt/rec", "", rt)
		m = req.next(t)
		if ack.Code != 0 || m.Topic != rt || !bytes.Equal(m.Corr, corr) {
			t.Fatalf("$rec/get with Response Topic %q: acknowledged 0x%02x %q, reply %s", rt, ack.Code, ack.Reason, m)
		}
		// The refused writes changed nothing.
		if got, want := canonJSON(t, m.Payload), `{"name":"rt/rec","op":"get","value":{"v":1},"version":1}`; got != want {
			t.Errorf("$rec/get: %s, want %s", got, want)
		}

		ack, corr = send("$presence/get", "", rt)
		m = req.next(t)
		if ack.Code != 0 || m.Topic != rt || !bytes.Equal(m.Corr, corr) {
			t.Fatalf("$presence/get with Response Topic %q: acknowledged 0x%02x %q, reply %s", rt, ack.Code, ack.Reason, m)
		}
		body, err := docMap(m.Payload, m.ContentType, false)
		clients, _ := body["clients"].([]any)
		if err != nil || body["op"] != "get" || body["name"] != "$presence" || !containsAny(clients, req.ID) {
			t.Errorf("$presence/get: %s (%v), want the online clients, %s among them", m.Payload, err, req.ID)
		}
	}
	prov.expectEnd(t)
	other.expectEnd(t)
	req.expectEnd(t)
}

func containsAny(list []any, v any) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
