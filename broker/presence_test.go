package broker_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/hearth-iot/hearth/broker"
	"github.com/hearth-iot/hearth/storage"
)

// Presence ($presence/<client id>), end to end, against docs/PROTOCOL.md
// "## Presence": the broker's record of each client being online, why it
// went offline, its correction after a crash, its expiry, and
// $presence/get.

// presence is a presence record's document.
type presence struct {
	Online   bool
	Since    time.Time
	Protocol string
	User     string // "" if absent
	Reason   string // "" if absent
}

func (p presence) String() string {
	s := fmt.Sprintf("{online:%v protocol:%q", p.Online, p.Protocol)
	if p.User != "" {
		s += fmt.Sprintf(" user:%q", p.User)
	}
	if p.Reason != "" {
		s += fmt.Sprintf(" reason:%q", p.Reason)
	}
	return s + " since:" + p.Since.Format(time.RFC3339Nano) + "}"
}

// same reports whether p is want, since aside.
func (p presence) same(want presence) bool {
	p.Since, want.Since = time.Time{}, time.Time{}
	return p == want
}

// presenceSince is the form of "since": RFC 3339, UTC, milliseconds.
var presenceSince = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$`)

// parsePresence decodes a presence document (JSON, or CBOR if isCBOR) and
// checks its form: online, since and protocol, user if given, and reason
// exactly when offline; nothing else.
func parsePresence(t testing.TB, topic string, payload []byte, isCBOR bool) presence {
	t.Helper()
	doc := decodeDoc(t, topic, payload, isCBOR)
	var p presence
	var ok bool
	bad := func(what string) {
		t.Helper()
		t.Fatalf("%s: %s in %v", topic, what, doc)
	}
	if p.Online, ok = doc["online"].(bool); !ok {
		bad("online is not a bool")
	}
	since, ok := doc["since"].(string)
	if !ok || !presenceSince.MatchString(since) {
		bad("since is not RFC 3339 UTC with milliseconds")
	}
	var err error
	if p.Since, err = time.Parse(time.RFC3339Nano, since); err != nil {
		bad("since does not parse")
	}
	if p.Protocol, ok = doc["protocol"].(string); !ok {
		bad("protocol is not text")
	}
	keys := 3
	if u, present := doc["user"]; present {
		if p.User, ok = u.(string); !ok || p.User == "" {
			bad("user is not a non-empty text")
		}
		keys++
	}
	if r, present := doc["reason"]; present {
		if p.Reason, ok = r.(string); !ok {
			bad("reason is not text")
		}
		keys++
	}
	if p.Online == (p.Reason != "") {
		bad("reason must be given exactly when offline")
	}
	if len(doc) != keys {
		bad("unexpected fields")
	}
	return p
}

// nextPresence receives the next message of an MQTT 5 JSON client, which
// must be the presence record of id.
func nextPresence(t testing.TB, c *v5Client, id string) (presence, *paho.Publish) {
	t.Helper()
	m := c.recv(t)
	if m.Topic != "$presence/"+id {
		t.Fatalf("received %s %q, want $presence/%s", m.Topic, m.Payload, id)
	}
	if ct := m.Properties.ContentType; ct != "application/json" {
		t.Errorf("$presence/%s: content type %q, want application/json", id, ct)
	}
	return parsePresence(t, m.Topic, m.Payload, false), m
}

// expectPresence receives id's next presence record on c and checks it is
// want (since aside), with since in [after, now]; it returns the record.
func expectPresence(t testing.TB, c *v5Client, id string, want presence, after time.Time) presence {
	t.Helper()
	got, _ := nextPresence(t, c, id)
	if !got.same(want) {
		t.Fatalf("$presence/%s = %v, want %v", id, got, want)
	}
	checkSince(t, id, got, after)
	return got
}

// checkSince checks that p.Since is in [after, now], to the millisecond.
func checkSince(t testing.TB, id string, p presence, after time.Time) {
	t.Helper()
	if now := time.Now(); p.Since.Before(after.Truncate(time.Millisecond)) || p.Since.After(now) {
		t.Errorf("$presence/%s: since %s, want between %s and %s", id, p.Since.Format(time.RFC3339Nano),
			after.UTC().Format(time.RFC3339Nano), now.UTC().Format(time.RFC3339Nano))
	}
}

var readySeq atomic.Int64

// syncRetained returns once c has been sent the retained messages of its
// subscriptions so far, and returns the messages received until then. The
// records of a new subscription are streamed after its SUBACK, and those of
// one SUBSCRIBE come before those of the next: c subscribes to a record of
// its own and waits for it. A record created while a stream runs may reach
// the subscriber twice, live and streamed (see the report), so the tests
// create the records they watch before subscribing or after this.
func syncRetained(t testing.TB, c *v5Client) []*paho.Publish {
	t.Helper()
	topic := fmt.Sprintf("ready/%s/%d", c.ID, readySeq.Add(1))
	c.publish(t, topic, 1, true, []byte("ready"))
	c.subscribe(t, topic, 0)
	return c.recvUntil(t, topic)
}

// roundTrip returns once the broker has processed a packet of c's, and so
// has finished with its CONNECT, its presence record included.
func roundTrip(t testing.TB, c testClient) {
	t.Helper()
	c.publish(t, "round-trip", 1, false, nil)
}

// watchPresence connects an MQTT 5 client subscribed to $presence/<id> and
// returns it with id's presence record if there was one.
func watchPresence(t testing.TB, tb *testBroker, id string) (*v5Client, *presence) {
	t.Helper()
	w := connectV5(t, tb.MQTTAddr, nil)
	w.subscribe(t, "$presence/"+id, 0)
	got := syncRetained(t, w)
	switch {
	case len(got) == 0:
		return w, nil
	case len(got) == 1 && got[0].Topic == "$presence/"+id && got[0].Retain:
		p := parsePresence(t, got[0].Topic, got[0].Payload, false)
		return w, &p
	}
	t.Fatalf("subscribing to $presence/%s: received %d messages, first %s %q", id, len(got), got[0].Topic, got[0].Payload)
	return nil, nil
}

// onlineRec and offlineRec are the records the tests expect.
func onlineRec(protocol, user string) presence {
	return presence{Online: true, Protocol: protocol, User: user}
}
func offlineRec(protocol, user, reason string) presence {
	return presence{Online: false, Protocol: protocol, User: user, Reason: reason}
}

// ptrString formats a property that may be absent.
func ptrString[T any](p *T) string {
	if p == nil {
		return "absent"
	}
	return fmt.Sprint(*p)
}

// rawConnectOpts is a CONNECT of any protocol level, written by hand.
type rawConnectOpts struct {
	level     byte // 3 (MQIsdp), 4 or 5
	id        string
	keepalive uint16
	user      string
	will      *rawWill
}

func (o rawConnectOpts) packet() []byte {
	name := "MQTT"
	if o.level == 3 {
		name = "MQIsdp"
	}
	body := appendString(nil, name)
	body = append(body, o.level)
	flags := byte(0x02) // clean
	if o.will != nil {
		flags |= 0x04 | o.will.QoS<<3
		if o.will.Retain {
			flags |= 0x20
		}
	}
	if o.user != "" {
		flags |= 0x80
	}
	body = append(body, flags)
	body = binary.BigEndian.AppendUint16(body, o.keepalive)
	if o.level == 5 {
		body = append(body, 0) // no properties
	}
	body = appendString(body, o.id)
	if o.will != nil {
		if o.level == 5 {
			body = append(body, 0) // no will properties
		}
		body = appendString(body, o.will.Topic)
		body = appendString(body, o.will.Payload)
	}
	if o.user != "" {
		body = appendString(body, o.user)
	}
	return packet(typeConnect<<4, body)
}

// rawDial connects o over a bare socket and expects a successful CONNACK.
// Unless tracked, the harness does not know the connection: stopping the
// broker leaves it to the broker to close.
func rawDial(t testing.TB, addr string, o rawConnectOpts, tracked bool) *rawConn {
	t.Helper()
	var c *rawConn
	if tracked {
		c = dialRaw(t, addr)
	} else {
		conn, err := net.DialTimeout("tcp", addr, waitTimeout)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		c = &rawConn{Conn: conn, r: bufio.NewReader(conn)}
	}
	c.send(t, o.packet())
	p, err := c.read(waitTimeout)
	if err != nil || p.Type != typeConnack || len(p.Body) < 2 || p.Body[1] != 0 {
		t.Fatalf("CONNACK of %+v: %+v, %v", o, p, err)
	}
	return c
}

// A client's presence record says it is online from its CONNECT on, with
// its protocol and user name; watchers get it live, new subscribers as a
// retained message.
func TestPresenceOnline(t *testing.T) {
	t.Parallel()
	pt := t // the clients outlive the subtests: their going offline is not the subject
	tb := startBroker(t, brokerOpts{})
	w := connectV5(t, tb.MQTTAddr, nil)
	wRAP := connectV5(t, tb.MQTTAddr, nil) // Retain As Published
	wCBOR := connectCodec(t, tb.MQTTAddr, "cbor")
	watchers := []*v5Client{w, wRAP, wCBOR}
	for _, c := range watchers {
		roundTrip(t, c)
	}
	w.subscribe(t, "$presence/+", 0)
	wRAP.subscribeOpts(t, paho.SubscribeOptions{Topic: "$presence/+", QoS: 0, RetainAsPublished: true})
	wCBOR.subscribe(t, "$presence/+", 0)
	// Each watcher is sent the three watchers' records, retained.
	for _, c := range watchers {
		var ids []string
		for _, m := range syncRetained(t, c) {
			if !m.Retain || !strings.HasPrefix(m.Topic, "$presence/") {
				t.Fatalf("new subscriber received %s retain %v, want a retained presence record", m.Topic, m.Retain)
			}
			ids = append(ids, strings.TrimPrefix(m.Topic, "$presence/"))
		}
		// Compared as sets: the stream sends stored records in topic
		// order, then those whose (asynchronous) write is still pending.
		want := []string{w.ID, wRAP.ID, wCBOR.ID}
		slices.Sort(want)
		slices.Sort(ids)
		if !slices.Equal(ids, want) {
			t.Fatalf("new subscriber received the records of %q, want %q", ids, want)
		}
	}

	tests := []struct {
		name     string
		protocol string
		user     string
		connect  func(id, user string)
	}{
		{"5 with a user name", "5", "ann", func(id, user string) {
			connectV5(pt, tb.MQTTAddr, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30, Username: user, UsernameFlag: true})
		}},
		{"5 without", "5", "", func(id, _ string) {
			connectV5(pt, tb.MQTTAddr, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30})
		}},
		{"3.1.1 with a user name", "3.1.1", "bob", func(id, user string) {
			connectV3(pt, tcpURL(tb.MQTTAddr), func(o *mqtt.ClientOptions) { o.SetClientID(id).SetUsername(user) })
		}},
		{"3.1.1 without", "3.1.1", "", func(id, _ string) {
			connectV3(pt, tcpURL(tb.MQTTAddr), func(o *mqtt.ClientOptions) { o.SetClientID(id) })
		}},
		{"3.1 with a user name", "3.1", "cy", func(id, user string) {
			rawDial(pt, tb.MQTTAddr, rawConnectOpts{level: 3, id: id, keepalive: 30, user: user}, true)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := clientID(t, "x")
			want := onlineRec(tt.protocol, tt.user)
			start := time.Now()
			tt.connect(id, tt.user)

			got, m := nextPresence(t, w, id)
			if !got.same(want) {
				t.Fatalf("$presence/%s = %v, want %v", id, got, want)
			}
			checkSince(t, id, got, start)
			if m.Retain || m.QoS != 0 {
				t.Errorf("live record: retain %v QoS %d, want retain false (not Retain As Published), QoS 0", m.Retain, m.QoS)
			}
			m = wRAP.recv(t)
			if m.Topic != "$presence/"+id || !m.Retain {
				t.Errorf("Retain As Published watcher: %s retain %v, want $presence/%s retained", m.Topic, m.Retain, id)
			}
			if p := parsePresence(t, m.Topic, m.Payload, false); p != got {
				t.Errorf("Retain As Published watcher: %v, want %v", p, got)
			}
			m = wCBOR.recv(t)
			if m.Topic != "$presence/"+id || m.Properties.ContentType != "application/cbor" {
				t.Errorf("CBOR watcher: %s content type %q, want $presence/%s in application/cbor", m.Topic, m.Properties.ContentType, id)
			}
			if p := parsePresence(t, m.Topic, m.Payload, true); p != got {
				t.Errorf("CBOR watcher: %v, want %v", p, got)
			}

			late, existing := watchPresence(pt, tb, id)
			if existing == nil || *existing != got {
				t.Errorf("new subscriber: %v, want %v retained", existing, got)
			}
			// The watchers also see the new subscriber come online.
			for _, c := range watchers {
				if m := c.recv(t); m.Topic != "$presence/"+late.ID {
					t.Fatalf("watcher received %s, want $presence/%s", m.Topic, late.ID)
				}
			}
		})
	}

	// A client id holding a wildcard, or too long for a record name, has
	// no record; the next client's record is the next thing seen.
	t.Run("no record", func(t *testing.T) {
		before := tb.metric(t, "hearth_retained_messages")
		roundTrip(t, connectV3(pt, tcpURL(tb.MQTTAddr), func(o *mqtt.ClientOptions) { o.SetClientID("with+plus") }))
		roundTrip(t, connectV3(pt, tcpURL(tb.MQTTAddr), func(o *mqtt.ClientOptions) { o.SetClientID("with#hash") }))
		roundTrip(t, connectV5(pt, tb.MQTTAddr, &paho.Connect{ClientID: strings.Repeat("l", 250), CleanStart: true, KeepAlive: 30}))
		if got := tb.metric(t, "hearth_retained_messages"); got != before {
			t.Errorf("hearth_retained_messages = %v, want %v: a record was created", got, before)
		}
		last := connectV5(pt, tb.MQTTAddr, nil)
		for _, c := range watchers {
			if m := c.recv(t); m.Topic != "$presence/"+last.ID {
				t.Fatalf("watcher received %s %q, want $presence/%s", m.Topic, m.Payload, last.ID)
			}
		}
	})
}

// A client id holding "/" has its record deeper, at $presence/<id>: a
// $presence/# watcher sees it, as the doc says, and $presence/+ does not.
func TestPresenceSlashInClientID(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	all, one := connectV5(t, tb.MQTTAddr, nil), connectV5(t, tb.MQTTAddr, nil)
	for w, filter := range map[*v5Client]string{all: "$presence/#", one: "$presence/+"} {
		roundTrip(t, w)
		w.subscribe(t, filter, 0)
		syncRetained(t, w)
	}
	roundTrip(t, connectV3(t, tcpURL(tb.MQTTAddr), func(o *mqtt.ClientOptions) { o.SetClientID("kitchen/1") }))
	last := connectV5(t, tb.MQTTAddr, nil)
	for w, want := range map[*v5Client][]string{all: {"$presence/kitchen/1"}, one: nil} {
		var topics []string
		for {
			m := w.recv(t)
			if m.Topic == "$presence/"+last.ID {
				break
			}
			topics = append(topics, m.Topic)
		}
		if !slices.Equal(topics, want) {
			t.Errorf("a watcher received %q before the next client's record, want %q", topics, want)
		}
	}
}

// A client going offline is recorded with why, and the record then expires
// after presence.keep_offline (7 days by default).
func TestPresenceOfflineReasons(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{Limits: broker.Limits{KeepaliveMin: time.Second}})
	will := func(id string) *rawWill { return &rawWill{Topic: "wills/" + id, Payload: "gone " + id, QoS: 1} }
	v5will := func(id string) *paho.WillMessage {
		return &paho.WillMessage{Topic: "wills/" + id, Payload: []byte("gone " + id), QoS: 1}
	}
	tests := []struct {
		name, protocol, reason string
		withWill               bool
		// connect connects id; leave makes it go offline.
		connect func(t *testing.T, id string) (leave func())
	}{
		{name: "5 DISCONNECT", protocol: "5", reason: "clean", connect: func(t *testing.T, id string) func() {
			c := connectV5(t, tb.MQTTAddr, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30, WillMessage: v5will(id)})
			return c.close
		}},
		{name: "3.1.1 DISCONNECT", protocol: "3.1.1", reason: "clean", connect: func(t *testing.T, id string) func() {
			c := connectV3(t, tcpURL(tb.MQTTAddr), func(o *mqtt.ClientOptions) { o.SetClientID(id).SetWill("wills/"+id, "gone", 1, false) })
			return func() { c.Disconnect(1000) }
		}},
		{name: "5 DISCONNECT 0x04 with a will", protocol: "5", reason: "will", withWill: true, connect: func(t *testing.T, id string) func() {
			c := connectV5(t, tb.MQTTAddr, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30, WillMessage: v5will(id)})
			return func() { _ = c.Disconnect(&paho.Disconnect{ReasonCode: 0x04}) }
		}},
		{name: "5 DISCONNECT 0x04 without a will", protocol: "5", reason: "error", connect: func(t *testing.T, id string) func() {
			c := connectV5(t, tb.MQTTAddr, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30})
			return func() { _ = c.Disconnect(&paho.Disconnect{ReasonCode: 0x04}) }
		}},
		{name: "5 dropped with a will", protocol: "5", reason: "will", withWill: true, connect: func(t *testing.T, id string) func() {
			c := connectV5(t, tb.MQTTAddr, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30, WillMessage: v5will(id)})
			return func() { _ = c.conn.Close() }
		}},
		{name: "3.1.1 dropped with a will", protocol: "3.1.1", reason: "will", withWill: true, connect: func(t *testing.T, id string) func() {
			c := rawDial(t, tb.MQTTAddr, rawConnectOpts{level: 4, id: id, keepalive: 30, will: will(id)}, true)
			return func() { _ = c.Close() }
		}},
		{name: "5 dropped without a will", protocol: "5", reason: "error", connect: func(t *testing.T, id string) func() {
			c := connectV5(t, tb.MQTTAddr, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30})
			return func() { _ = c.conn.Close() }
		}},
		{name: "3.1.1 dropped without a will", protocol: "3.1.1", reason: "error", connect: func(t *testing.T, id string) func() {
			c := connectV3(t, tcpURL(tb.MQTTAddr), func(o *mqtt.ClientOptions) { o.SetClientID(id) })
			return func() { c.dropConn(t) }
		}},
		{name: "3.1.1 protocol error with a will", protocol: "3.1.1", reason: "will", withWill: true, connect: func(t *testing.T, id string) func() {
			c := rawDial(t, tb.MQTTAddr, rawConnectOpts{level: 4, id: id, keepalive: 30, will: will(id)}, true)
			return func() { c.send(t, rawPublish("sensors/+/temp", 1, false, 7, []byte("21"))) }
		}},
		{name: "5 protocol error", protocol: "5", reason: "error", connect: func(t *testing.T, id string) func() {
			c := connectV5(t, tb.MQTTAddr, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30})
			return func() { _, _ = c.pub(&paho.Publish{Topic: "sensors/#", Payload: []byte("21")}) }
		}},
		{name: "3.1.1 keepalive expired", protocol: "3.1.1", reason: "timeout", connect: func(t *testing.T, id string) func() {
			rawDial(t, tb.MQTTAddr, rawConnectOpts{level: 4, id: id, keepalive: 1}, true)
			return func() {} // and then silence
		}},
		{name: "5 keepalive expired with a will", protocol: "5", reason: "timeout", withWill: true, connect: func(t *testing.T, id string) func() {
			rawDial(t, tb.MQTTAddr, rawConnectOpts{level: 5, id: id, keepalive: 1, will: will(id)}, true)
			return func() {}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			id := clientID(t, "x")
			w, _ := watchPresence(t, tb, id)
			wills := connectV5(t, tb.MQTTAddr, nil)
			wills.subscribe(t, "wills/"+id, 0)
			wills.subscribe(t, "sentinel/"+id, 0)

			start := time.Now()
			leave := tt.connect(t, id)
			expectPresence(t, w, id, onlineRec(tt.protocol, ""), start)
			start = time.Now()
			leave()
			got, m := nextPresence(t, w, id)
			if want := offlineRec(tt.protocol, "", tt.reason); !got.same(want) {
				t.Errorf("$presence/%s = %v, want %v", id, got, want)
			}
			checkSince(t, id, got, start)
			if e := m.Properties.MessageExpiry; e == nil || *e != 7*24*3600 {
				t.Errorf("offline record: message expiry %v, want %d s (presence.keep_offline)", ptrString(e), 7*24*3600)
			}

			// The will was published if the reason says so.
			connectV5(t, tb.MQTTAddr, nil).publish(t, "sentinel/"+id, 1, false, []byte("end"))
			var topics []string
			for _, m := range nextUntil(t, wills, "sentinel/"+id) {
				topics = append(topics, m.Topic)
			}
			if want := []string(nil); tt.withWill {
				want = []string{"wills/" + id}
				if !slices.Equal(topics, want) {
					t.Errorf("will subscriber received %q, want %q", topics, want)
				}
			} else if len(topics) != 0 {
				t.Errorf("will subscriber received %q, want no will", topics)
			}
		})
	}
}

// shutdownOnly stops the broker as the harness does, except that it leaves
// the connections it does not know about to the broker's shutdown.
func shutdownOnly(t *testing.T, tb *testBroker) {
	t.Helper()
	if err := tb.shutdown(); err != nil {
		t.Fatal(err)
	}
}

// A clean shutdown records every connected client offline ("shutdown");
// a client already offline keeps its record.
func TestPresenceShutdown(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	x3 := rawDial(t, tb.MQTTAddr, rawConnectOpts{level: 4, id: "x-3", keepalive: 30, user: "ann"}, false)
	x5 := rawDial(t, tb.MQTTAddr, rawConnectOpts{level: 5, id: "x-5", keepalive: 30}, false)
	gone := connectV5(t, tb.MQTTAddr, &paho.Connect{ClientID: "gone", CleanStart: true, KeepAlive: 30})
	gone.close()
	waitConnections(t, tb, 2)
	stopped := time.Now()
	shutdownOnly(t, tb)

	// x-5 is told why (MQTT 5 DISCONNECT 0x8B); x-3's connection is closed.
	var types []string
	for _, p := range x5.expectClosed(t) {
		types = append(types, fmt.Sprintf("type %d body %x", p.Type, p.Body))
	}
	if len(types) != 1 || !strings.HasPrefix(types[0], "type 14 body 8b") {
		t.Errorf("MQTT 5 client at shutdown received %q, want DISCONNECT 0x8b", types)
	}
	x3.expectClosed(t)

	tb.open(t)
	w := connectV5(t, tb.MQTTAddr, nil)
	for _, want := range []struct {
		id   string
		want presence
	}{
		{"x-3", offlineRec("3.1.1", "ann", "shutdown")},
		{"x-5", offlineRec("5", "", "shutdown")},
		{"gone", offlineRec("5", "", "clean")},
	} {
		w.subscribe(t, "$presence/"+want.id, 0)
		got, m := nextPresence(t, w, want.id)
		if !got.same(want.want) || !m.Retain {
			t.Errorf("after restart: $presence/%s = %v (retain %v), want %v retained", want.id, got, m.Retain, want.want)
		}
		if want.id != "gone" {
			checkSince(t, want.id, got, stopped)
		} else if !got.Since.Before(stopped) {
			t.Errorf("after restart: $presence/gone since %s, want before the shutdown", got.Since)
		}
	}
}

// The same for MQTT 5 clients that close their connection as soon as they
// read the DISCONNECT 0x8B, as clients do. The broker writes DISCONNECT
// before it marks the connection as shut down, so a prompt close can win
// and the disconnect is taken for a lost connection ("error"). The race is
// narrow: a few rounds of many clients catch it often, not always.
func TestPresenceShutdownPromptClose(t *testing.T) {
	t.Parallel()
	const rounds, clients = 4, 200
	tb := startBroker(t, brokerOpts{})
	for round := range rounds {
		for i := range clients {
			c := rawDial(t, tb.MQTTAddr, rawConnectOpts{level: 5, id: fmt.Sprintf("r%d-%03d", round, i), keepalive: 30}, false)
			go func() {
				_, _ = c.read(2 * waitTimeout) // the DISCONNECT
				_ = c.Close()
			}()
		}
		waitConnections(t, tb, clients)
		shutdownOnly(t, tb)
		tb.open(t)

		w := connectV5(t, tb.MQTTAddr, nil)
		w.subscribe(t, "$presence/+", 0)
		var wrong []string
		n := 0
		for _, m := range syncRetained(t, w) {
			id := strings.TrimPrefix(m.Topic, "$presence/")
			if !strings.HasPrefix(id, fmt.Sprintf("r%d-", round)) {
				continue
			}
			n++
			if p := parsePresence(t, m.Topic, m.Payload, false); !p.same(offlineRec("5", "", "shutdown")) {
				line, _ := tb.logs.find("client disconnected", "client="+id+" ")
				wrong = append(wrong, fmt.Sprintf("%s: %v (log: %s)", id, p, line))
			}
		}
		if n != clients {
			t.Fatalf("round %d: %d records of the round's clients, want %d", round, n, clients)
		}
		if len(wrong) > 0 {
			t.Fatalf("round %d: %d of %d clients not recorded as shutdown:\n%s", round, len(wrong), clients, strings.Join(wrong, "\n"))
		}
		w.close()
		waitConnections(t, tb, 0)
	}
}

// presenceCrash stops the broker as a crash would for the store: it is
// closed first, so that nothing the broker writes as it stops (the
// disconnects of its clients) reaches the disk. A clean store close keeps
// what was already written, as a kill -9 after the group commit would.
func presenceCrash(t *testing.T, tb *testBroker) {
	t.Helper()
	tb.running = false
	brokers.Delete(tb.MQTTAddr)
	brokers.Delete(tb.HTTPAddr)
	if err := tb.Store.Close(); err != nil {
		t.Fatalf("store close: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = tb.B.Shutdown(ctx) // its writes fail: the store is closed
}

// After a crash, every record still online is marked offline ("restart")
// before the broker accepts connections, until its client reconnects.
func TestPresenceRestartAfterCrash(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	x := connectV5(t, tb.MQTTAddr, &paho.Connect{ClientID: "x", CleanStart: true, KeepAlive: 30, Username: "ann", UsernameFlag: true})
	roundTrip(t, x)
	w, existing := watchPresence(t, tb, "x")
	if existing == nil || !existing.same(onlineRec("5", "ann")) {
		t.Fatalf("$presence/x = %v, want online", existing)
	}
	y := connectV3(t, tcpURL(tb.MQTTAddr), func(o *mqtt.ClientOptions) { o.SetClientID("y") })
	y.Disconnect(1000)
	waitConnections(t, tb, 2)

	presenceCrash(t, tb)
	tb.inspectStore(t, func(st *storage.Store) {
		// What a crash leaves: the records still say online.
		for _, name := range []string{"$presence/x", "$presence/" + w.ID} {
			r, ok, err := st.Record(name)
			if !ok || err != nil || r.Deleted {
				t.Fatalf("store after the crash: %s: %v, %v", name, ok, err)
			}
			if p := parsePresence(t, name, r.Message.Payload, true); !p.Online {
				t.Fatalf("store after the crash: %s = %v, want online (the crash simulation failed)", name, p)
			}
		}
	})
	started := time.Now()
	tb.open(t)
	// x and the watcher were online; y was not.
	tb.waitLog(t, "restored state", "presence_marked_offline=2")

	w, got := watchPresence(t, tb, "x")
	if want := offlineRec("5", "ann", "restart"); got == nil || !got.same(want) {
		t.Fatalf("after the crash: $presence/x = %v, want %v", got, want)
	}
	checkSince(t, "x", *got, started)
	_, got = watchPresence(t, tb, "y")
	if want := offlineRec("3.1.1", "", "clean"); got == nil || !got.same(want) {
		t.Errorf("after the crash: $presence/y = %v, want %v as it was", got, want)
	}

	x.waitDone(t)
	start := time.Now()
	connectV5(t, tb.MQTTAddr, &paho.Connect{ClientID: "x", CleanStart: true, KeepAlive: 30})
	expectPresence(t, w, "x", onlineRec("5", ""), start)
}

// A session taken over by a new connection with the same client id stays
// online: no offline record in between.
func TestPresenceTakeover(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, protocol string
		connect        func(t *testing.T, tb *testBroker, id string)
	}{
		{"5 resuming", "5", func(t *testing.T, tb *testBroker, id string) {
			connectV5(t, tb.MQTTAddr, persistentV5(id, 300))
		}},
		{"5 clean start", "5", func(t *testing.T, tb *testBroker, id string) {
			connectV5(t, tb.MQTTAddr, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30})
		}},
		{"3.1.1 persistent", "3.1.1", func(t *testing.T, tb *testBroker, id string) {
			connectV3(t, tcpURL(tb.MQTTAddr), persistentV3(id))
		}},
		{"3.1.1 clean", "3.1.1", func(t *testing.T, tb *testBroker, id string) {
			connectV3(t, tcpURL(tb.MQTTAddr), func(o *mqtt.ClientOptions) { o.SetClientID(id) })
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tb := startBroker(t, brokerOpts{})
			id := clientID(t, "x")
			w, _ := watchPresence(t, tb, id)
			w.subscribe(t, "sentinel", 0)

			start := time.Now()
			tt.connect(t, tb, id)
			first := expectPresence(t, w, id, onlineRec(tt.protocol, ""), start)
			start = time.Now()
			tt.connect(t, tb, id)
			second := expectPresence(t, w, id, onlineRec(tt.protocol, ""), start)
			if second.Since.Before(first.Since) {
				t.Errorf("takeover: since %s, before the first connection's %s", second.Since, first.Since)
			}
			// The replaced connection has ended: nothing more came of it.
			waitConnections(t, tb, 2)
			connectV5(t, tb.MQTTAddr, nil).publish(t, "sentinel", 1, false, []byte("end"))
			if got := nextUntil(t, w, "sentinel"); len(got) != 0 {
				t.Errorf("after the takeover: watcher received %+v, want nothing", got)
			}
			if _, got := watchPresence(t, tb, id); got == nil || *got != second {
				t.Errorf("after the takeover: $presence/%s = %v, want %v", id, got, second)
			}
		})
	}
}

// presenceGetReply is a decoded reply to $presence/get.
type presenceGetReply struct {
	body   map[string]any
	reason byte // the MQTT 5 PUBACK's reason code
}

// presenceGetter sends $presence/get requests at QoS 1.
type presenceGetter interface {
	get(t testing.TB, payload string) presenceGetReply
}

type v5Getter struct {
	c   *v5Client
	seq int
}

func (g *v5Getter) get(t testing.TB, payload string) presenceGetReply {
	t.Helper()
	g.seq++
	corr := fmt.Appendf(nil, "c%d", g.seq)
	resp, err := g.c.pub(&paho.Publish{Topic: "$presence/get", QoS: 1, Payload: []byte(payload),
		Properties: &paho.PublishProperties{ResponseTopic: "replies/" + g.c.ID, CorrelationData: corr}})
	if resp == nil {
		t.Fatalf("$presence/get %q: no PUBACK: %v", payload, err)
	}
	m := g.c.recv(t)
	if m.Topic != "replies/"+g.c.ID || !bytes.Equal(m.Properties.CorrelationData, corr) {
		t.Fatalf("$presence/get %q: reply on %s with correlation %q, want replies/%s with %q", payload, m.Topic, m.Properties.CorrelationData, g.c.ID, corr)
	}
	var body map[string]any
	if err := json.Unmarshal(m.Payload, &body); err != nil {
		t.Fatalf("$presence/get %q: reply %q: %v", payload, m.Payload, err)
	}
	return presenceGetReply{body: body, reason: resp.ReasonCode}
}

type v3Getter struct{ c *v3Client }

func (g *v3Getter) get(t testing.TB, payload string) presenceGetReply {
	t.Helper()
	g.c.publish(t, "$presence/get", 1, false, []byte(payload))
	m := g.c.recv(t)
	if m.Topic() != "$reply/"+g.c.ID {
		t.Fatalf("$presence/get %q: reply on %s, want $reply/%s", payload, m.Topic(), g.c.ID)
	}
	var body map[string]any
	if err := json.Unmarshal(m.Payload(), &body); err != nil {
		t.Fatalf("$presence/get %q: reply %q: %v", payload, m.Payload(), err)
	}
	if !g.c.IsConnectionOpen() {
		t.Fatalf("$presence/get %q: disconnected", payload)
	}
	return presenceGetReply{body: body}
}

// A publish to $presence/get is answered with the sorted ids of the clients
// connected now, optionally those with a prefix; anything but an empty
// payload or {"prefix": text} is refused with INVALID_PAYLOAD.
func TestPresenceGet(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	w := connectV5(t, tb.MQTTAddr, &paho.Connect{ClientID: "w", CleanStart: true, KeepAlive: 30})
	w.subscribe(t, "$presence/+", 0)
	connectV5(t, tb.MQTTAddr, &paho.Connect{ClientID: "a-1", CleanStart: true, KeepAlive: 30})
	connectV3(t, tcpURL(tb.MQTTAddr), func(o *mqtt.ClientOptions) { o.SetClientID("a-2") })
	connectV5(t, tb.MQTTAddr, &paho.Connect{ClientID: "b-1", CleanStart: true, KeepAlive: 30})
	connectV5(t, tb.MQTTAddr, persistentV5("a-3", 300)).close()
	connectV3(t, tcpURL(tb.MQTTAddr), persistentV3("a-4")).Disconnect(1000)
	connectV5(t, tb.MQTTAddr, &paho.Connect{ClientID: "a-5", CleanStart: true, KeepAlive: 30}).close()
	g5 := connectV5(t, tb.MQTTAddr, &paho.Connect{ClientID: "req-5", CleanStart: true, KeepAlive: 30})
	g5.subscribe(t, "replies/req-5", 1)
	g3 := connectV3(t, tcpURL(tb.MQTTAddr), func(o *mqtt.ClientOptions) { o.SetClientID("req-3") })
	g3.subscribe(t, "$reply/req-3", 1)
	waitConnections(t, tb, 6)
	all := []any{"a-1", "a-2", "b-1", "req-3", "req-5", "w"}

	getters := []struct {
		name string
		g    presenceGetter
	}{{"5", &v5Getter{c: g5}}, {"3.1.1", &v3Getter{c: g3}}}
	tests := []struct {
		payload string
		clients []any  // the reply's clients
		err     string // or its error code
	}{
		{payload: "", clients: all},
		{payload: `{"prefix":"a-"}`, clients: []any{"a-1", "a-2"}},
		{payload: `{"prefix":""}`, clients: all},
		{payload: `{"prefix":"req-"}`, clients: []any{"req-3", "req-5"}},
		{payload: `{"prefix":"a-1"}`, clients: []any{"a-1"}},
		{payload: `{"prefix":"zzz"}`, clients: []any{}},
		{payload: `[1]`, err: "INVALID_PAYLOAD"},
		{payload: `{"x":1}`, err: "INVALID_PAYLOAD"},
		{payload: `{"prefix":1}`, err: "INVALID_PAYLOAD"},
		{payload: `{"prefix":"a-","x":1}`, err: "INVALID_PAYLOAD"},
		{payload: `null`, err: "INVALID_PAYLOAD"},
		{payload: `"a-"`, err: "INVALID_PAYLOAD"},
		{payload: `not json`, err: "INVALID_PAYLOAD"},
	}
	for _, gg := range getters {
		t.Run(gg.name, func(t *testing.T) {
			for _, tt := range tests {
				got := gg.g.get(t, tt.payload)
				want := map[string]any{"op": "get", "name": "$presence"}
				var wantReason byte
				if tt.err != "" {
					want["error"] = tt.err
					if msg, ok := got.body["message"].(string); !ok || msg == "" {
						t.Errorf("$presence/get %q: error reply %v without a message", tt.payload, got.body)
					}
					delete(got.body, "message")
					wantReason = 0x99
				} else {
					want["clients"] = tt.clients
				}
				if !reflect.DeepEqual(got.body, want) {
					t.Errorf("$presence/get %q: reply %v, want %v", tt.payload, got.body, want)
				}
				if gg.name == "5" && got.reason != wantReason {
					t.Errorf("$presence/get %q: PUBACK 0x%02x, want 0x%02x", tt.payload, got.reason, wantReason)
				}
			}
		})
	}

	// The requests went to no subscriber of $presence/+.
	last := connectV5(t, tb.MQTTAddr, nil)
	for {
		m := w.recv(t)
		if m.Topic == "$presence/get" {
			t.Fatalf("a $presence/+ subscriber received the request %q", m.Payload)
		}
		if m.Topic == "$presence/"+last.ID {
			break
		}
	}
}

// The example of docs/PROTOCOL.md, with mosquitto_rr as the requester.
func TestPresenceGetMosquittoRR(t *testing.T) {
	t.Parallel()
	bin := needMosquitto(t, "mosquitto_rr")[0]
	tb := startBroker(t, brokerOpts{})
	for _, id := range []string{"kitchen-2", "kitchen-1", "hall-1"} {
		connectV5(t, tb.MQTTAddr, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
	defer cancel()
	args := append(mosquittoHostPort(t, tb.MQTTAddr), "-V", "mqttv5", "-i", "rr-me", "-W", "10",
		"-t", "$presence/get", "-e", "replies/me", "-m", `{"prefix":"kitchen-"}`)
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_rr: %v: %s", err, out)
	}
	var got map[string]any
	if err := json.Unmarshal(bytes.TrimSpace(out), &got); err != nil {
		t.Fatalf("mosquitto_rr printed %q: %v", out, err)
	}
	want := map[string]any{"op": "get", "name": "$presence", "clients": []any{"kitchen-1", "kitchen-2"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("mosquitto_rr printed %s, want %v", out, want)
	}
}

// An offline client's record expires presence.keep_offline after it went
// offline; reconnecting replaces it, and the old expiry then deletes
// nothing.
func TestPresenceKeepOffline(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{PresenceKeepOffline: 2 * time.Second})
	w := connectV5(t, tb.MQTTAddr, nil)
	roundTrip(t, w)
	w.subscribe(t, "$presence/+", 0)
	if got := syncRetained(t, w); len(got) != 1 || got[0].Topic != "$presence/"+w.ID {
		t.Fatalf("new subscriber received %d messages, want its own record", len(got))
	}

	// x goes offline and stays away: its record goes.
	x := connectV5(t, tb.MQTTAddr, &paho.Connect{ClientID: "x", CleanStart: true, KeepAlive: 30})
	expectPresence(t, w, "x", onlineRec("5", ""), time.Time{})
	x.close()
	wentOffline := time.Now()
	got, m := nextPresence(t, w, "x")
	if !got.same(offlineRec("5", "", "clean")) {
		t.Fatalf("$presence/x = %v, want offline (clean)", got)
	}
	if e := m.Properties.MessageExpiry; e == nil || *e != 2 {
		t.Errorf("offline record: message expiry %s, want 2 s", ptrString(e))
	}
	// y goes offline and comes back at once: its record stays.
	y := connectV5(t, tb.MQTTAddr, &paho.Connect{ClientID: "y", CleanStart: true, KeepAlive: 30})
	expectPresence(t, w, "y", onlineRec("5", ""), time.Time{})
	y.close()
	if got, _ := nextPresence(t, w, "y"); !got.same(offlineRec("5", "", "clean")) {
		t.Fatalf("$presence/y = %v, want offline (clean)", got)
	}
	connectV5(t, tb.MQTTAddr, &paho.Connect{ClientID: "y", CleanStart: true, KeepAlive: 30})
	yOnline, m := nextPresence(t, w, "y")
	if !yOnline.same(onlineRec("5", "")) || m.Properties.MessageExpiry != nil {
		t.Fatalf("$presence/y = %v with expiry %v, want online without expiry", yOnline, m.Properties.MessageExpiry)
	}

	// The deletion: an empty retained message on $presence/x, within a
	// few seconds of the expiry (whole seconds, then the expiry sweep).
	m = w.recv(t)
	if m.Topic != "$presence/x" || len(m.Payload) != 0 {
		t.Fatalf("watcher received %s %q, want the deletion of $presence/x", m.Topic, m.Payload)
	}
	if d := time.Since(wentOffline); d < time.Second || d > 6*time.Second {
		t.Errorf("$presence/x deleted %s after x went offline, want about 2s", d)
	}

	// A new subscriber finds no record of x, and y's online one.
	late := connectV5(t, tb.MQTTAddr, nil)
	nextPresence(t, w, late.ID)
	late.subscribe(t, "$presence/x", 0)
	late.subscribe(t, "$presence/y", 0)
	if got, _ := nextPresence(t, late, "y"); got != yOnline {
		t.Errorf("$presence/y = %v, want %v", got, yOnline)
	}
	// y's old offline version has expired by now; the record is untouched.
	time.Sleep(time.Until(wentOffline.Add(4 * time.Second)))
	w.subscribe(t, "$presence/y", 0)
	if got, _ := nextPresence(t, w, "y"); got != yOnline {
		t.Errorf("$presence/y after its old version's expiry = %v, want %v", got, yOnline)
	}
	// The presence records of w, y and late, and w's ready record.
	if got := tb.metric(t, "hearth_retained_messages"); got != 4 {
		t.Errorf("hearth_retained_messages = %v, want 4", got)
	}
}

// Only the broker publishes to $presence/<client id>: a client's publish
// there is refused and changes nothing; $presence/get is a request.
func TestPresencePublishRefused(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	roundTrip(t, connectV5(t, tb.MQTTAddr, &paho.Connect{ClientID: "x", CleanStart: true, KeepAlive: 30}))
	w := connectV5(t, tb.MQTTAddr, nil)
	w.subscribe(t, "$presence/x", 0)
	before, m := nextPresence(t, w, "x")
	version := userProperty(m, "version")
	w.subscribe(t, "sentinel", 0)

	pub := connectV5(t, tb.MQTTAddr, nil)
	forged := []byte(`{"online":false,"since":"2020-01-01T00:00:00.000Z","protocol":"5","reason":"clean"}`)
	for _, p := range []struct {
		topic  string
		qos    byte
		retain bool
	}{{"$presence/x", 1, true}, {"$presence/x", 1, false}, {"$presence/x", 2, true}, {"$presence/nobody", 1, true}} {
		resp, _ := pub.pub(&paho.Publish{Topic: p.topic, QoS: p.qos, Retain: p.retain, Payload: forged})
		if resp == nil || resp.ReasonCode != 0x87 {
			t.Errorf("MQTT 5 QoS %d retain %v publish to %s: %+v, want refused with 0x87", p.qos, p.retain, p.topic, resp)
		}
	}
	pub.publish(t, "$presence/x", 0, true, forged)   // dropped
	pub.publish(t, "$presence/x", 0, true, []byte{}) // dropped: no deletion either
	v3 := connectV3(t, tcpURL(tb.MQTTAddr), nil)
	v3.publish(t, "$presence/x", 0, true, forged)
	v3.Publish("$presence/x", 1, true, forged)
	v3.waitLost(t)

	// $presence/get is not refused.
	if resp, err := pub.pub(&paho.Publish{Topic: "$presence/get", QoS: 1}); err != nil || resp.ReasonCode != 0 {
		t.Errorf("MQTT 5 QoS 1 publish to $presence/get: %+v, %v; want PUBACK 0x00", resp, err)
	}

	const denied = 8
	if got := tb.waitMetric(t, errorsSeries("denied"), fmt.Sprint(denied), func(v float64) bool { return v >= denied }); got != denied {
		t.Errorf(`hearth_errors_total{kind="denied"} = %v, want %d`, got, denied)
	}
	tb.waitLog(t, "publish refused: $presence and $listen topics are the broker's", "client="+pub.ID, "topic=$presence/x")
	pub.publish(t, "sentinel", 1, false, []byte("end"))
	if got := nextUntil(t, w, "sentinel"); len(got) != 0 {
		t.Errorf("watcher received %+v, want nothing", got)
	}
	late := connectV5(t, tb.MQTTAddr, nil)
	late.subscribe(t, "$presence/x", 0)
	after, m := nextPresence(t, late, "x")
	if after != before || userProperty(m, "version") != version {
		t.Errorf("$presence/x = %v version %s, want unchanged %v version %s", after, userProperty(m, "version"), before, version)
	}
	late.subscribe(t, "$presence/nobody", 0)
	late.subscribe(t, "sentinel", 0)
	pub.publish(t, "sentinel", 1, false, []byte("end"))
	if got := nextUntil(t, late, "sentinel"); len(got) != 0 {
		t.Errorf("$presence/nobody: received %+v, want no record", got)
	}
}

// A will is a client's publish too: it cannot write another client's
// presence record.
func TestPresenceWillRefused(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	roundTrip(t, connectV5(t, tb.MQTTAddr, &paho.Connect{ClientID: "victim", CleanStart: true, KeepAlive: 30}))
	w, before := watchPresence(t, tb, "victim")
	if before == nil || !before.Online {
		t.Fatalf("$presence/victim = %v, want online", before)
	}
	w.subscribe(t, "sentinel", 0)

	forged := `{"online":false,"since":"2020-01-01T00:00:00.000Z","protocol":"5","reason":"clean"}`
	for _, retain := range []bool{true, false} {
		c := rawDial(t, tb.MQTTAddr, rawConnectOpts{level: 4, id: fmt.Sprintf("mallory-%v", retain), keepalive: 30,
			will: &rawWill{Topic: "$presence/victim", Payload: forged, QoS: 1, Retain: retain}}, true)
		_ = c.Close()
	}
	waitConnections(t, tb, 2)
	connectV5(t, tb.MQTTAddr, nil).publish(t, "sentinel", 1, false, []byte("end"))
	if got := nextUntil(t, w, "sentinel"); len(got) != 0 {
		t.Errorf("$presence/victim watcher received %+v from wills, want nothing", got)
	}
	if _, after := watchPresence(t, tb, "victim"); after == nil || *after != *before {
		t.Errorf("$presence/victim = %v after the wills, want unchanged %v", after, before)
	}
	if got := tb.metric(t, errorsSeries("denied")); got != 2 {
		t.Errorf(`hearth_errors_total{kind="denied"} = %v, want 2 (the wills)`, got)
	}
}

// A client whose id is "get" has no presence record: $presence/get is the
// request topic, and a record there would be delivered to every watcher
// as if it were one. $presence/get requests still work, and list it.
func TestPresenceClientNamedGet(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	w := connectV5(t, tb.MQTTAddr, nil)
	roundTrip(t, w)
	w.subscribe(t, "$presence/#", 0)
	if got := syncRetained(t, w); len(got) != 1 || got[0].Topic != "$presence/"+w.ID {
		t.Fatalf("new watcher received %d messages, want its own record", len(got))
	}
	// sentinel connects a client and returns what w received before its
	// presence record.
	sentinel := func() []string {
		t.Helper()
		c := connectV5(t, tb.MQTTAddr, nil)
		var got []string
		for {
			m := w.recv(t)
			if m.Topic == "$presence/"+c.ID {
				return got
			}
			got = append(got, fmt.Sprintf("%s %q", m.Topic, m.Payload))
		}
	}

	get := connectV5(t, tb.MQTTAddr, &paho.Connect{ClientID: "get", CleanStart: true, KeepAlive: 30})
	roundTrip(t, get)
	if got := sentinel(); len(got) != 0 {
		t.Errorf("client get connected: the $presence/# watcher received %v, want nothing", got)
	}
	get.subscribe(t, "replies/get", 0)
	w.subscribe(t, "replies/"+w.ID, 0)
	for _, c := range []*v5Client{get, w} {
		got := (&v5Getter{c: c}).get(t, `{"prefix":"get"}`)
		want := map[string]any{"op": "get", "name": "$presence", "clients": []any{"get"}}
		if !reflect.DeepEqual(got.body, want) || got.reason != 0 {
			t.Errorf("$presence/get from %s: reply %v, PUBACK 0x%02x; want %v, 0x00", c.ID, got.body, got.reason, want)
		}
	}

	get.close()
	waitConnections(t, tb, 2)
	if got := sentinel(); len(got) != 0 {
		t.Errorf("client get disconnected: the $presence/# watcher received %v, want nothing", got)
	}
	late := connectV5(t, tb.MQTTAddr, nil)
	late.subscribe(t, "$presence/get", 0)
	if got := syncRetained(t, late); len(got) != 0 {
		t.Errorf("a new subscriber to $presence/get received %s %q, want no record", got[0].Topic, got[0].Payload)
	}
}
