package main

// End-to-end tests of records: retained messages as durable versioned
// documents, and the $rec/<op>/<name> operations on them, against the real
// binary. The helpers of e2e_test.go start it and run the clients.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	pahov3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/hearth-iot/hearth/broker/codec"
	"github.com/hearth-iot/hearth/storage"
)

// recV5Format makes mosquitto_sub print an MQTT 5 message's user
// properties, correlation data and content type before its payload, in the
// payload field of msgFormat's lines: recV5Fields splits them.
const recV5Format = "MSG|%q|%r|%t|%P|%D|%C|%p"

// recV5Message is a message printed with recV5Format.
type recV5Message struct {
	Topic, User, Correlation, ContentType, Payload string
	QoS                                            int
	Retain                                         bool
}

func recV5Fields(t *testing.T, m message) recV5Message {
	t.Helper()
	f := strings.SplitN(m.Payload, "|", 4)
	if len(f) != 4 {
		t.Fatalf("mosquitto_sub line %v does not have the fields of %q", m, recV5Format)
	}
	return recV5Message{Topic: m.Topic, QoS: m.QoS, Retain: m.Retain, User: f[0], Correlation: f[1], ContentType: f[2], Payload: f[3]}
}

// recWaitMessages waits until mosquitto_sub s has printed more than seen
// messages and returns the next one. s keeps running.
func recWaitMessages(t *testing.T, s *subscriber, seen int) message {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		s.mu.Lock()
		n := len(s.msgs)
		var m message
		if n > seen {
			m = s.msgs[seen]
		}
		s.mu.Unlock()
		if n > seen {
			return m
		}
		select {
		case <-s.exited:
			t.Fatalf("mosquitto_sub %q exited (%v) after %d messages, waiting for message %d:\n%s", s.args, s.err, n, seen+1, s.output())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto_sub %q printed no message %d within 20s:\n%s", s.args, seen+1, s.output())
		}
	}
}

// recReply decodes a JSON reply into a map, for replies whose message (for
// people) is not compared; numbers stay json.Number.
func recReply(t *testing.T, payload string) map[string]any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(payload))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("reply %q is not a JSON object: %v", payload, err)
	}
	return m
}

// recWantError checks an error reply: its fields but message, which must
// contain msgPart. An empty version means the reply must have none; value
// is compared as canonical JSON, empty meaning none.
func recWantError(t *testing.T, payload, op, name, code, msgPart, version, value string) {
	t.Helper()
	got := recReply(t, payload)
	msg, _ := got["message"].(string)
	if msg == "" || !strings.Contains(msg, msgPart) {
		t.Errorf("reply %s: message %q, want one containing %q", payload, msg, msgPart)
	}
	delete(got, "message")
	want := map[string]any{"op": op, "name": name, "error": code}
	if version != "" {
		want["version"] = json.Number(version)
	}
	if value != "" {
		want["value"] = recReply(t, `{"v":`+value+`}`)["v"]
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("error reply %s\nwant the fields (message aside) %v", payload, want)
	}
}

// TestRecordsWithMosquitto: records with nothing but the mosquitto clients,
// MQTT 3.1.1 unless MQTT 5 is needed. These are the examples of the
// protocol document.
func TestRecordsWithMosquitto(t *testing.T) {
	requireMosquitto(t)
	h := startHearth(t, t.TempDir())
	pub := func(t *testing.T, args ...string) {
		t.Helper()
		mosquittoPub(t, h.MQTT, "", args...)
	}
	changes := startSub(t, h.MQTT, "-t", "rooms/#")
	changes.WaitSubscribed()
	replies := startSub(t, h.MQTT, "-V", "mqttv5", "-t", "replies/x", "-F", recV5Format)
	replies.WaitSubscribed()
	nChanges, nReplies := 0, 0
	nextChange := func(t *testing.T) message {
		t.Helper()
		m := recWaitMessages(t, changes, nChanges)
		nChanges++
		return m
	}
	nextReply := func(t *testing.T) recV5Message {
		t.Helper()
		m := recV5Fields(t, recWaitMessages(t, replies, nReplies))
		nReplies++
		if m.Topic != "replies/x" || m.ContentType != "application/json" {
			t.Errorf("reply %+v, want one on replies/x with Content Type application/json", m)
		}
		return m
	}
	wantChange := func(t *testing.T, payload string) {
		t.Helper()
		wantMessages(t, []message{nextChange(t)}, message{Topic: "rooms/1", Payload: payload})
	}
	const doc3 = `{"hum":40,"tags":["kitchen"],"temp":21}`

	// Each step waits for what it causes, so the next one cannot overtake
	// it.
	pub(t, "-r", "-t", "rooms/1", "-m", `{"temp":21}`)
	wantChange(t, `{"temp":21}`)
	pub(t, "-t", "$rec/merge/rooms/1", "-m", `{"hum":40}`)
	wantChange(t, `{"hum":40,"temp":21}`)
	pub(t, "-t", "$rec/set/rooms/1", "-m", `{"path":"tags[0]","value":"kitchen"}`)
	wantChange(t, doc3)

	t.Run("get with a response topic", func(t *testing.T) {
		pub(t, "-V", "mqttv5", "-t", "$rec/get/rooms/1", "-n",
			"-D", "publish", "response-topic", "replies/x", "-D", "publish", "correlation-data", "42")
		r := nextReply(t)
		if want := `{"name":"rooms/1","op":"get","value":` + doc3 + `,"version":3}`; r.Payload != want {
			t.Errorf("get reply %s, want %s", r.Payload, want)
		}
		if r.Correlation != "42" {
			t.Errorf("get reply correlation data %q, want the request's %q", r.Correlation, "42")
		}
	})
	t.Run("stale version", func(t *testing.T) {
		pub(t, "-V", "mqttv5", "-t", "$rec/merge/rooms/1", "-m", `{"hum":45}`,
			"-D", "publish", "response-topic", "replies/x", "-D", "publish", "user-property", "version", "1")
		r := nextReply(t)
		recWantError(t, r.Payload, "merge", "rooms/1", "VERSION_CONFLICT", "version is 3, not 1", "3", doc3)
		if r.Correlation != "" {
			t.Errorf("reply correlation data %q to a request without one", r.Correlation)
		}
	})
	t.Run("invalid path", func(t *testing.T) {
		pub(t, "-V", "mqttv5", "-t", "$rec/set/rooms/1", "-m", `{"path":"tags[","value":1}`,
			"-D", "publish", "response-topic", "replies/x")
		// PROTOCOL.md: a failed request's reply has version "when the
		// record has one"; rooms/1 has version 3.
		recWantError(t, nextReply(t).Payload, "set", "rooms/1", "INVALID_PATH", "tags[", "", "")
	})
	t.Run("path that does not fit the document", func(t *testing.T) {
		pub(t, "-V", "mqttv5", "-t", "$rec/set/rooms/1", "-m", `{"path":"temp.x","value":1}`,
			"-D", "publish", "response-topic", "replies/x")
		recWantError(t, nextReply(t).Payload, "set", "rooms/1", "INVALID_PATH", "temp: is a number, not an object", "", "")
	})
	t.Run("conditional merge", func(t *testing.T) {
		pub(t, "-V", "mqttv5", "-t", "$rec/merge/rooms/1", "-m", `{"hum":41}`,
			"-D", "publish", "response-topic", "replies/x", "-D", "publish", "user-property", "version", "3")
		if r := nextReply(t); r.Payload != `{"name":"rooms/1","op":"merge","version":4}` {
			t.Errorf("merge reply %s, want version 4", r.Payload)
		}
		// The refused requests published nothing: this is the next change.
		wantChange(t, `{"hum":41,"tags":["kitchen"],"temp":21}`)
	})
	const doc4 = `{"hum":41,"tags":["kitchen"],"temp":21}`

	t.Run("new subscribers get the record retained", func(t *testing.T) {
		v3 := startSub(t, h.MQTT, "-t", "rooms/#", "-C", "1", "-W", "20")
		wantMessages(t, v3.Messages(1), message{Topic: "rooms/1", Payload: doc4, Retain: true})
		v5 := startSub(t, h.MQTT, "-V", "mqttv5", "-t", "rooms/#", "-C", "1", "-W", "20", "-F", recV5Format)
		got := recV5Fields(t, v5.Messages(1)[0])
		want := recV5Message{Topic: "rooms/1", Retain: true, User: "version:4", ContentType: "application/json", Payload: doc4}
		if got != want {
			t.Errorf("MQTT 5 retained delivery %+v, want %+v", got, want)
		}
	})
	t.Run("reply topic of MQTT 3.1.1", func(t *testing.T) {
		// The reply goes to $reply/<client id>, which only that client may
		// read; mosquitto_pub and mosquitto_sub are two clients, so paho
		// asks here.
		other := startSub(t, h.MQTT, "-t", "$reply/e2e-rec-v3")
		select {
		case <-other.exited:
		case <-time.After(20 * time.Second):
			t.Fatalf("mosquitto_sub of another client's reply topic still running after 20s:\n%s", other.output())
		}
		if out := other.output(); !strings.Contains(out, "All subscription requests were denied") {
			t.Errorf("mosquitto_sub of another client's reply topic:\n%s\nwant the subscription denied", out)
		}

		got := make(chan string, 4)
		opts := pahov3.NewClientOptions().AddBroker("tcp://" + h.MQTT).SetClientID("e2e-rec-v3").
			SetAutoReconnect(false).SetConnectTimeout(10 * time.Second).SetOrderMatters(false)
		c := pahov3.NewClient(opts)
		if tok := c.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
			t.Fatalf("MQTT 3.1.1 connect: %v", tok.Error())
		}
		defer c.Disconnect(250)
		tok := c.Subscribe("$reply/e2e-rec-v3", 1, func(_ pahov3.Client, m pahov3.Message) { got <- string(m.Payload()) })
		if !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe to its reply topic: %v", tok.Error())
		}
		request := func(topic, payload string) string {
			t.Helper()
			if tok := c.Publish(topic, 1, false, payload); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
				t.Fatalf("publish %s: %v", topic, tok.Error())
			}
			select {
			case r := <-got:
				return r
			case <-time.After(15 * time.Second):
				t.Fatalf("no reply on $reply/e2e-rec-v3 to %s within 15s", topic)
				return ""
			}
		}
		if r, want := request("$rec/get/rooms/1", ""), `{"name":"rooms/1","op":"get","value":`+doc4+`,"version":4}`; r != want {
			t.Errorf("get reply %s, want %s", r, want)
		}
		// MQTT 3.1.1 has no negative PUBACK: the reply carries the error
		// (with the record's version, as in "invalid path"), and the
		// connection stays.
		recWantError(t, request("$rec/merge/rooms/1", "not json"), "merge", "rooms/1", "INVALID_PAYLOAD", "", "", "")
		if r := request("$rec/get/rooms/1", ""); !strings.HasSuffix(r, `"version":4}`) {
			t.Errorf("get reply after the refused merge %s, want version 4", r)
		}
		if !c.IsConnectionOpen() {
			t.Error("the MQTT 3.1.1 connection was closed after a refused $rec request")
		}
	})

	// Nothing else changed.
	changes.mu.Lock()
	extra := slices.Clone(changes.msgs[nChanges:])
	changes.mu.Unlock()
	if len(extra) > 0 {
		t.Errorf("the rooms/# subscriber saw unexpected changes %v", extra)
	}
	if code := h.Stop(); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
}

// recClient sends $rec requests over MQTT 5 and reads their replies on its
// own Response Topic, told apart by Correlation Data.
type recClient struct {
	c     *paho.Client
	topic string
	seq   atomic.Int64

	mu      sync.Mutex
	waiting map[string]chan *paho.Publish
}

func newRecClient(t *testing.T, addr, id string) *recClient {
	t.Helper()
	r := &recClient{topic: "e2e/replies/" + id, waiting: map[string]chan *paho.Publish{}}
	r.c = connectV5(t, addr, id, nil)
	r.c.AddOnPublishReceived(func(p paho.PublishReceived) (bool, error) {
		if p.Packet.Topic != r.topic || p.Packet.Properties == nil {
			return false, nil
		}
		r.mu.Lock()
		ch := r.waiting[string(p.Packet.Properties.CorrelationData)]
		delete(r.waiting, string(p.Packet.Properties.CorrelationData))
		r.mu.Unlock()
		if ch != nil {
			ch <- p.Packet
		}
		return true, nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := r.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: r.topic, QoS: 1}}}); err != nil {
		t.Fatalf("subscribe %s: %v", r.topic, err)
	}
	return r
}

// do publishes payload to $rec/<op>/<name> at QoS 1, with the user property
// version if version is not empty, and returns the PUBACK reason code and
// the reply.
func (r *recClient) do(t *testing.T, op, name, payload, version string) (byte, string) {
	t.Helper()
	corr := strconv.FormatInt(r.seq.Add(1), 10)
	ch := make(chan *paho.Publish, 1)
	r.mu.Lock()
	r.waiting[corr] = ch
	r.mu.Unlock()
	props := &paho.PublishProperties{ResponseTopic: r.topic, CorrelationData: []byte(corr)}
	if version != "" {
		props.User = paho.UserProperties{{Key: "version", Value: version}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	resp, err := r.c.Publish(ctx, &paho.Publish{Topic: "$rec/" + op + "/" + name, QoS: 1, Payload: []byte(payload), Properties: props})
	if resp == nil {
		t.Fatalf("$rec/%s/%s: no PUBACK: %v", op, name, err)
	}
	select {
	case p := <-ch:
		if p.Properties.ContentType != "application/json" {
			t.Errorf("reply to $rec/%s/%s has Content Type %q, want application/json", op, name, p.Properties.ContentType)
		}
		return resp.ReasonCode, string(p.Payload)
	case <-time.After(15 * time.Second):
		t.Fatalf("no reply to $rec/%s/%s within 15s", op, name)
		return 0, ""
	}
}

// ok sends a request that must succeed with reply want.
func (r *recClient) ok(t *testing.T, op, name, payload, version, want string) {
	t.Helper()
	code, reply := r.do(t, op, name, payload, version)
	if code != 0 || reply != want {
		t.Errorf("$rec/%s/%s %s: PUBACK 0x%02x, reply %s; want 0x00, %s", op, name, payload, code, reply, want)
	}
}

// get returns the value and version of record name, or fails the test.
func (r *recClient) get(t *testing.T, name string) (map[string]any, uint64) {
	t.Helper()
	code, reply := r.do(t, "get", name, "", "")
	m := recReply(t, reply)
	version, err := strconv.ParseUint(fmt.Sprint(m["version"]), 10, 64)
	value, ok := m["value"].(map[string]any)
	if code != 0 || m["error"] != nil || err != nil || !ok {
		t.Fatalf("get %s: PUBACK 0x%02x, reply %s; want an object value and its version", name, code, reply)
	}
	return value, version
}

// recStored returns the document of record topic in the store of a
// stopped hearth, with its version; it fails the test unless the record is
// a structured one.
func recStored(t *testing.T, s *storage.Store, topic string) (any, uint64) {
	t.Helper()
	r, ok, err := s.Retained(topic)
	if err != nil || !ok {
		t.Fatalf("record %s: found %v, err %v", topic, ok, err)
	}
	if !r.Structured || r.Message.Topic != topic {
		t.Fatalf("record %s stored as %+v, want a structured record", topic, r)
	}
	v, err := codec.Decode(r.Message.Payload, codec.CBOR, codec.Limits{})
	if err != nil {
		t.Fatalf("record %s: stored value does not decode as CBOR: %v", topic, err)
	}
	return v, r.Version
}

// recStoredJSON is recStored's document as canonical JSON.
func recStoredJSON(t *testing.T, s *storage.Store, topic string) (string, uint64) {
	t.Helper()
	v, version := recStored(t, s, topic)
	j, err := codec.Encode(v, codec.JSON)
	if err != nil {
		t.Fatalf("record %s: %v", topic, err)
	}
	return string(j), version
}

func TestRecordsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	h := startHearth(t, dir)
	rc := newRecClient(t, h.MQTT, "e2e-rec-keep")
	rc.ok(t, "merge", "keep/a", `{"x":1}`, "", `{"name":"keep/a","op":"merge","version":1}`)
	rc.ok(t, "set", "keep/a", `{"path":"list","value":[1,2]}`, "", `{"name":"keep/a","op":"set","version":2}`)
	rc.ok(t, "append", "keep/a", `{"path":"list","value":3}`, "", `{"name":"keep/a","op":"append","version":3}`)
	rc.ok(t, "insert", "keep/a", `{"path":"list","index":0,"value":0}`, "", `{"name":"keep/a","op":"insert","version":4}`)
	rc.ok(t, "remove", "keep/a", `{"path":"list","index":1}`, "", `{"name":"keep/a","op":"remove","version":5}`)
	rc.ok(t, "delete", "keep/a", `{"path":"x"}`, "", `{"name":"keep/a","op":"delete","version":6}`)
	rc.ok(t, "remove", "keep/a", `{"path":"list","value":7}`, "", `{"name":"keep/a","op":"remove","removed":0,"version":6}`)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := rc.c.Publish(ctx, &paho.Publish{Topic: "keep/b", QoS: 1, Retain: true, Payload: []byte("plain text")}); err != nil {
		t.Fatalf("retained publish keep/b: %v", err)
	}
	rc.ok(t, "merge", "keep/c", `{"gone":true}`, "", `{"name":"keep/c","op":"merge","version":1}`)
	rc.ok(t, "delete", "keep/c", "", "", `{"name":"keep/c","op":"delete","version":2}`)
	rc.ok(t, "set", "keep/d", `{"value":{"n":1},"version":0}`, "", `{"name":"keep/d","op":"set","version":1}`)
	rc.ok(t, "merge", "keep/d", `{"n":2}`, "1", `{"name":"keep/d","op":"merge","version":2}`)
	if t.Failed() {
		t.FailNow()
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}

	h = startHearth(t, dir)
	rc = newRecClient(t, h.MQTT, "e2e-rec-keep-2")
	t.Run("get", func(t *testing.T) {
		rc.ok(t, "get", "keep/a", "", "", `{"name":"keep/a","op":"get","value":{"list":[0,2,3]},"version":6}`)
		plain := base64.RawURLEncoding.EncodeToString([]byte("plain text"))
		rc.ok(t, "get", "keep/b", "", "", `{"name":"keep/b","op":"get","value":"`+plain+`","version":1}`)
		rc.ok(t, "get", "keep/d", "", "", `{"name":"keep/d","op":"get","value":{"n":2},"version":2}`)
		// A deleted record keeps its version.
		code, reply := rc.do(t, "get", "keep/c", "", "")
		if code != 0x83 {
			t.Errorf("get of deleted keep/c: PUBACK 0x%02x, want 0x83", code)
		}
		recWantError(t, reply, "get", "keep/c", "NOT_FOUND", "keep/c", "2", "")
	})
	t.Run("retained with versions", func(t *testing.T) {
		type delivery struct {
			topic, version, contentType, payload string
			retain                               bool
		}
		got := make(chan delivery, 8)
		c := connectV5(t, h.MQTT, "e2e-rec-keep-sub", nil)
		c.AddOnPublishReceived(func(p paho.PublishReceived) (bool, error) {
			d := delivery{topic: p.Packet.Topic, payload: string(p.Packet.Payload), retain: p.Packet.Retain}
			if pr := p.Packet.Properties; pr != nil {
				d.version, d.contentType = pr.User.Get("version"), pr.ContentType
			}
			got <- d
			return true, nil
		})
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "keep/#", QoS: 1}}}); err != nil {
			t.Fatalf("subscribe keep/#: %v", err)
		}
		want := []delivery{
			{"keep/a", "6", "application/json", `{"list":[0,2,3]}`, true},
			{"keep/b", "1", "", "plain text", true},
			{"keep/d", "2", "application/json", `{"n":2}`, true},
		}
		var all []delivery
		for range want {
			select {
			case d := <-got:
				all = append(all, d)
			case <-time.After(15 * time.Second):
				t.Fatalf("retained messages of keep/#: got %+v, want %+v", all, want)
			}
		}
		slices.SortFunc(all, func(a, b delivery) int { return strings.Compare(a.topic, b.topic) })
		if !slices.Equal(all, want) {
			t.Errorf("retained messages of keep/#:\n  %+v\nwant\n  %+v", all, want)
		}
		// The deleted keep/c is not among them: a message after the
		// retained ones shows nothing else came.
		if _, err := c.Publish(ctx, &paho.Publish{Topic: "keep/zz-event", QoS: 1, Payload: []byte("after")}); err != nil {
			t.Fatal(err)
		}
		select {
		case d := <-got:
			if d.topic != "keep/zz-event" {
				t.Errorf("unexpected retained message %+v", d)
			}
		case <-time.After(15 * time.Second):
			t.Error("the event after the retained messages did not arrive")
		}
	})
	t.Run("versions continue", func(t *testing.T) {
		rc.ok(t, "merge", "keep/c", `{"back":true}`, "", `{"name":"keep/c","op":"merge","version":3}`)
		code, reply := rc.do(t, "set", "keep/d", `{"path":"n","value":3,"version":1}`, "")
		if code != 0x83 {
			t.Errorf("stale conditional set: PUBACK 0x%02x, want 0x83", code)
		}
		recWantError(t, reply, "set", "keep/d", "VERSION_CONFLICT", "version is 2, not 1", "2", `{"n":2}`)
	})
	if code := h.Stop(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}

	s := openTestStore(t, dir)
	defer closeTestStore(t, s)
	for _, w := range []struct {
		topic, value string
		version      uint64
	}{
		{"keep/a", `{"list":[0,2,3]}`, 6},
		{"keep/c", `{"back":true}`, 3},
		{"keep/d", `{"n":2}`, 2},
	} {
		if v, n := recStoredJSON(t, s, w.topic); v != w.value || n != w.version {
			t.Errorf("stored %s = %s version %d, want %s version %d", w.topic, v, n, w.value, w.version)
		}
	}
	if r, ok, err := s.Retained("keep/b"); err != nil || !ok || r.Structured || string(r.Message.Payload) != "plain text" || r.Version != 1 {
		t.Errorf("stored keep/b = %+v, %v, %v; want the opaque %q at version 1", r, ok, err, "plain text")
	}
}

// recMerger sends $rec/merge/crash/doc requests, each merging a field of
// its own, c<id>_<n>: n, from several goroutines over one connection, and
// records the fields sent and those whose PUBACK had reason code 0x00.
type recMerger struct {
	id   int
	next atomic.Int64 // the next n, kept across rounds

	mu    sync.Mutex
	sent  map[string]int64
	acked map[string]int64
}

func (m *recMerger) run(ctx context.Context, c *paho.Client, window int, total *atomic.Int64, wg *sync.WaitGroup) {
	for range window {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				n := m.next.Add(1)
				field := fmt.Sprintf("c%d_%d", m.id, n)
				m.mu.Lock()
				m.sent[field] = n
				m.mu.Unlock()
				pubCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
				resp, err := c.Publish(pubCtx, &paho.Publish{Topic: "$rec/merge/crash/doc", QoS: 1,
					Payload: fmt.Appendf(nil, `{%q:%d}`, field, n)})
				cancel()
				if err != nil || resp == nil || resp.ReasonCode != 0 {
					return // the broker is gone (or refused), or the round ended: stop
				}
				m.mu.Lock()
				m.acked[field] = n
				m.mu.Unlock()
				total.Add(1)
			}
		}()
	}
}

// TestRecordCrashSafety is TestCrashSafety for record operations: every
// acknowledged merge into one record survives a SIGKILL, and the version
// counts exactly the merges that are there.
func TestRecordCrashSafety(t *testing.T) {
	const (
		mergers = 8
		window  = 4 // concurrent merges per connection
		rounds  = 3
	)
	dir := t.TempDir()
	path := filepath.Join(dir, dbFile)
	ms := make([]*recMerger, mergers)
	for i := range ms {
		ms[i] = &recMerger{id: i, sent: map[string]int64{}, acked: map[string]int64{}}
	}
	// check compares a state of crash/doc with what was sent and acknowledged.
	check := func(what string, fields map[string]int64, version uint64) {
		t.Helper()
		sent, acked := map[string]int64{}, map[string]int64{}
		for _, m := range ms {
			m.mu.Lock()
			maps.Copy(sent, m.sent)
			maps.Copy(acked, m.acked)
			m.mu.Unlock()
		}
		lost := 0
		for f, n := range acked {
			if got, ok := fields[f]; !ok || got != n {
				if lost++; lost <= 10 {
					t.Errorf("%s: acknowledged merge %s: %d is not there (got %d, %v)", what, f, n, got, ok)
				}
			}
		}
		if lost > 0 {
			t.Errorf("%s: %d of %d acknowledged merges lost", what, lost, len(acked))
		}
		for f, n := range fields {
			if want, ok := sent[f]; !ok || want != n {
				t.Errorf("%s: field %s: %d was never sent (sent %d, %v)", what, f, n, want, ok)
			}
		}
		t.Logf("%s: %d fields at version %d; %d merges sent, %d acknowledged", what, len(fields), version, len(sent), len(acked))
		if version != uint64(len(fields)) {
			t.Errorf("%s: version %d, want %d: one per merge, and each merge adds one field", what, version, len(fields))
		}
	}
	// asFields turns a decoded document into its fields.
	asFields := func(what string, doc map[string]any) map[string]int64 {
		t.Helper()
		out := make(map[string]int64, len(doc))
		for k, v := range doc {
			var n int64
			var err error
			switch v := v.(type) {
			case int64:
				n = v
			case json.Number:
				n, err = v.Int64()
			default:
				err = fmt.Errorf("a %T", v)
			}
			if err != nil {
				t.Fatalf("%s: field %s = %v: %v", what, k, v, err)
			}
			out[k] = n
		}
		return out
	}

	h := startHearth(t, dir)
	for round := 1; round <= rounds; round++ {
		var total atomic.Int64
		var wg sync.WaitGroup
		ctx, cancel := context.WithCancel(context.Background())
		for _, m := range ms {
			c := connectV5(t, h.MQTT, fmt.Sprintf("e2e-rec-crash-%d-%d", round, m.id), nil)
			m.run(ctx, c, window, &total, &wg)
		}
		// Kill while they merge: after 1s once there are 300
		// acknowledgements; on a slow machine, after 15s with fewer.
		killedAfter, atKill := killWhileWriting(t, h, &total, &wg, cancel,
			time.Second, 15*time.Second, fmt.Sprintf("round %d: mergers", round))
		t.Logf("round %d: SIGKILL after %v with %d acks this round (%d by the time mergers stopped)",
			round, killedAfter.Round(time.Millisecond), atKill, total.Load())

		checkBolt(t, path)
		s := openTestStore(t, dir)
		v, storedVersion := recStored(t, s, "crash/doc")
		doc, isMap := v.(map[string]any)
		if !isMap {
			t.Fatalf("round %d: crash/doc after SIGKILL holds a %T, want a map", round, v)
		}
		stored := asFields("store after SIGKILL", doc)
		check(fmt.Sprintf("round %d: store after SIGKILL", round), stored, storedVersion)
		closeTestStore(t, s)
		if t.Failed() {
			t.FailNow()
		}

		// The restarted broker serves the same document.
		h = startHearth(t, dir)
		value, version := newRecClient(t, h.MQTT, fmt.Sprintf("e2e-rec-crash-get-%d", round)).get(t, "crash/doc")
		served := asFields("get after restart", value)
		if version != storedVersion || !maps.Equal(served, stored) {
			t.Errorf("round %d: get after restart: version %d with %d fields, want the stored version %d with %d fields",
				round, version, len(served), storedVersion, len(stored))
		}
		check(fmt.Sprintf("round %d: get after restart", round), served, version)
		if t.Failed() {
			t.FailNow()
		}
	}
	if code := h.Stop(); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	checkBolt(t, path)
	s := openTestStore(t, dir)
	defer closeTestStore(t, s)
	v, version := recStored(t, s, "crash/doc")
	doc, isMap := v.(map[string]any)
	if !isMap {
		t.Fatalf("crash/doc after a clean stop holds a %T, want a map", v)
	}
	check("store after a clean stop", asFields("store after a clean stop", doc), version)
}
