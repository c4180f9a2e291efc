package broker_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Listening ($listen/<filter>), end to end, against docs/PROTOCOL.md
// "## Listening": a listener is told of the first subscription of each
// overlapping filter and of the end of its last one, on the most specific
// topic both filters match, in its own codec.

// listenNote is one listening notification as a listener received it.
type listenNote struct {
	Topic      string
	Filter     string
	Subscribed bool
}

func (n listenNote) String() string {
	return fmt.Sprintf("%s {filter:%q subscribed:%v}", n.Topic, n.Filter, n.Subscribed)
}

// on and off are the notifications of filter's first subscription and of
// the end of its last one, published on topic ("$listen/" + ...).
func on(topic, filter string) listenNote  { return listenNote{topic, filter, true} }
func off(topic, filter string) listenNote { return listenNote{topic, filter, false} }

// decodeDoc decodes a JSON (or CBOR if isCBOR) object received on topic.
func decodeDoc(t testing.TB, topic string, payload []byte, isCBOR bool) map[string]any {
	t.Helper()
	var doc map[string]any
	var err error
	if isCBOR {
		err = cborDec.Unmarshal(payload, &doc)
	} else {
		err = json.Unmarshal(payload, &doc)
	}
	if err != nil {
		t.Fatalf("%s: payload %q (cbor %v) not decodable: %v", topic, payload, isCBOR, err)
	}
	return doc
}

// parseListenNote decodes a notification payload, which must be exactly
// {"filter": <text>, "subscribed": <bool>} in JSON (or CBOR if isCBOR).
func parseListenNote(t testing.TB, topic string, payload []byte, isCBOR bool) listenNote {
	t.Helper()
	doc := decodeDoc(t, topic, payload, isCBOR)
	filter, ok1 := doc["filter"].(string)
	subscribed, ok2 := doc["subscribed"].(bool)
	if !ok1 || !ok2 || len(doc) != 2 {
		t.Fatalf("notification on %s: payload %v, want exactly {filter: text, subscribed: bool}", topic, doc)
	}
	return listenNote{Topic: topic, Filter: filter, Subscribed: subscribed}
}

// nextNote receives the next message of an MQTT 5 JSON listener, which must
// be a notification with content type application/json.
func nextNote(t testing.TB, l *v5Client) listenNote {
	t.Helper()
	m := l.recv(t)
	if ct := m.Properties.ContentType; ct != "application/json" {
		t.Errorf("notification on %s: content type %q, want application/json", m.Topic, ct)
	}
	return parseListenNote(t, m.Topic, m.Payload, false)
}

// expectNote fails the test unless the next notification l receives is want.
func expectNote(t testing.TB, l *v5Client, want listenNote) {
	t.Helper()
	if got := nextNote(t, l); got != want {
		t.Fatalf("listener received %v, want %v", got, want)
	}
}

// listenSentinel proves that a listener received nothing: it makes a new
// subscription, of a filter the listener hears of, and returns what the
// listener received before that subscription's notification. The broker
// queues a notification before it acknowledges the (un)subscription or
// finishes the disconnect that caused it, and a listener's notifications
// leave in order, so anything caused earlier arrives first.
type listenSentinel struct {
	c      *v5Client
	format string // the sentinel filters, with a %d
	n      int
}

func newListenSentinel(t testing.TB, tb *testBroker, format string) *listenSentinel {
	t.Helper()
	return &listenSentinel{c: connectV5(t, tb.MQTTAddr, nil), format: format}
}

// before returns the notifications that came before the sentinel's, which
// next reads.
func (s *listenSentinel) before(t testing.TB, next func() listenNote) []listenNote {
	t.Helper()
	s.n++
	filter := fmt.Sprintf(s.format, s.n)
	s.c.subscribe(t, filter, 0)
	var got []listenNote
	for {
		n := next()
		if n.Filter == filter && n.Subscribed {
			return got
		}
		got = append(got, n)
	}
}

// expectNothing fails the test if l received anything before a sentinel.
func (s *listenSentinel) expectNothing(t testing.TB, l *v5Client, what string) {
	t.Helper()
	if got := s.before(t, func() listenNote { return nextNote(t, l) }); len(got) != 0 {
		t.Fatalf("%s: listener received %v, want nothing", what, got)
	}
}

// waitConnections waits until the broker has n connections: a connection
// counts until the broker has finished with its end (its subscriptions
// included), so this orders a disconnect before what the test does next.
func waitConnections(t testing.TB, tb *testBroker, n int) {
	t.Helper()
	tb.waitMetric(t, "hearth_connections", fmt.Sprint(n), func(v float64) bool { return v == float64(n) })
}

const listenNotifications = "hearth_listen_notifications_total"

// The first subscription of a filter is announced, and the end of its last
// one; subscriptions in between are not, nor is subscribing again.
func TestListenFirstAndLast(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	l := connectV5(t, tb.MQTTAddr, nil)
	l.subscribe(t, "$listen/sensors/+/temperature", 0)
	a := connectV5(t, tb.MQTTAddr, nil)
	b := connectV5(t, tb.MQTTAddr, nil)
	s := newListenSentinel(t, tb, "sensors/sentinel-%d/temperature")
	const f, topic = "sensors/k1/temperature", "$listen/sensors/k1/temperature"

	a.subscribe(t, f, 0)
	expectNote(t, l, on(topic, f))
	b.subscribe(t, f, 1)
	s.expectNothing(t, l, "a second subscription")
	a.subscribe(t, f, 1) // subscribing again replaces a's subscription
	s.expectNothing(t, l, "a subscription made again")
	a.unsubscribe(t, f)
	s.expectNothing(t, l, "the first subscriber unsubscribing")
	a.unsubscribe(t, f) // it has none left
	s.expectNothing(t, l, "unsubscribing a filter not subscribed")
	b.unsubscribe(t, f)
	expectNote(t, l, off(topic, f))
	b.subscribe(t, f, 0)
	expectNote(t, l, on(topic, f))

	// Every notification sent was received: 3 above and 4 sentinels.
	if got := tb.metric(t, listenNotifications); got != 7 {
		t.Errorf("%s = %v, want 7", listenNotifications, got)
	}
}

// Which subscriptions a listener hears of (overlap), and on which topic.
func TestListenOverlap(t *testing.T) {
	t.Parallel()
	type tcase struct {
		filter string // subscribed to
		topic  string // the notification's topic, "" if none is due
		named  string // the filter the notification names, if not filter
	}
	tests := []struct {
		name     string
		listen   string
		sentinel string // %d: a filter the listener hears of
		cases    []tcase
	}{
		{
			name: "sensors/+/temperature", listen: "sensors/+/temperature", sentinel: "sensors/sentinel-%d/temperature",
			cases: []tcase{
				{filter: "sensors/k1/temperature", topic: "$listen/sensors/k1/temperature"},
				{filter: "sensors/+/temperature", topic: "$listen/sensors//temperature"},
				{filter: "sensors/#", topic: "$listen/sensors//temperature"},
				{filter: "#", topic: "$listen/sensors//temperature"},
				{filter: "sensors/+/+", topic: "$listen/sensors//temperature"},
				{filter: "+/k1/temperature", topic: "$listen/sensors/k1/temperature"},
				{filter: "+/+/temperature", topic: "$listen/sensors//temperature"},
				{filter: "sensors/k1/#", topic: "$listen/sensors/k1/temperature"},
				{filter: "sensors/+/temperature/#", topic: "$listen/sensors//temperature"},
				{filter: "$share/g/sensors/k2/temperature", topic: "$listen/sensors/k2/temperature", named: "sensors/k2/temperature"},
				{filter: "$share/g/sensors/#", topic: "$listen/sensors//temperature", named: "sensors/#"},
				{filter: "sensors/k1/humidity"},
				{filter: "sensors/k1"},
				{filter: "sensors"},
				{filter: "sensors/k1/temperature/x"},
				{filter: "sensors/+/temperature/+"},
				{filter: "+/+"},
				{filter: "other/#"},
				{filter: "$SYS/#"},
				{filter: "$rpc/sensors/k1/temperature"},
				{filter: "$share/g/sensors/k1/humidity"},
			},
		},
		{
			// '#' does not hear of $ filters; a $ first level overlaps only
			// itself. Listen subscriptions are not reported.
			name: "#", listen: "#", sentinel: "sentinel/%d",
			cases: []tcase{
				{filter: "a/b", topic: "$listen/a/b"},
				{filter: "+/b", topic: "$listen//b"},
				{filter: "a/#", topic: "$listen/a"},
				{filter: "#", topic: "$listen/"},
				{filter: "$SYS/#"},
				{filter: "$rpc/x"},
				{filter: "$presence/+"},
				{filter: "$listen/a/b"},
				{filter: "$listen/#"},
			},
		},
		{
			name: "$presence/#", listen: "$presence/#", sentinel: "$presence/sentinel-%d",
			cases: []tcase{
				{filter: "$presence/+", topic: "$listen/$presence/"},
				{filter: "$presence/x", topic: "$listen/$presence/x"},
				{filter: "$share/g/$presence/+", topic: "$listen/$presence/", named: "$presence/+"},
				{filter: "#"},
				{filter: "+/x"},
				{filter: "$rpc/#"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tb := startBroker(t, brokerOpts{})
			l := connectV5(t, tb.MQTTAddr, nil)
			l.subscribe(t, "$listen/"+tt.listen, 0)
			s := newListenSentinel(t, tb, tt.sentinel)
			sub := connectV5(t, tb.MQTTAddr, nil)
			for _, c := range tt.cases {
				named := c.filter
				if c.named != "" {
					named = c.named
				}
				sub.subscribe(t, c.filter, 0)
				if c.topic == "" {
					got := s.before(t, func() listenNote { return nextNote(t, l) })
					if len(got) != 0 {
						t.Errorf("listener on %s, subscription %s: received %v, want nothing", tt.listen, c.filter, got)
					}
					sub.unsubscribe(t, c.filter)
					continue
				}
				if got, want := nextNote(t, l), on(c.topic, named); got != want {
					t.Errorf("listener on %s, subscription %s: received %v, want %v", tt.listen, c.filter, got, want)
				}
				sub.unsubscribe(t, c.filter)
				if got, want := nextNote(t, l), off(c.topic, named); got != want {
					t.Errorf("listener on %s, unsubscribing %s: received %v, want %v", tt.listen, c.filter, got, want)
				}
			}
			// Whatever was unsubscribed last is reported before this.
			if got := s.before(t, func() listenNote { return nextNote(t, l) }); len(got) != 0 {
				t.Errorf("listener on %s: received %v after the last case, want nothing", tt.listen, got)
			}
		})
	}
}

// A subscription ends with its session: at once for a clean session
// however the connection ends, at expiry for a persistent one, and at a
// clean takeover; a session resumed or taken over keeps it.
func TestListenDisconnect(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	l := connectV5(t, tb.MQTTAddr, nil)
	l.subscribe(t, "$listen/sensors/+/temperature", 0)
	s := newListenSentinel(t, tb, "sensors/sentinel-%d/temperature")
	base := 2 // the listener and the sentinel's client

	filterOf := func(name string) (string, string) {
		return "sensors/" + name + "/temperature", "$listen/sensors/" + name + "/temperature"
	}

	t.Run("5 clean session, DISCONNECT", func(t *testing.T) {
		f, topic := filterOf("v5-clean")
		c := connectV5(t, tb.MQTTAddr, nil)
		c.subscribe(t, f, 1)
		expectNote(t, l, on(topic, f))
		c.close()
		expectNote(t, l, off(topic, f))
	})
	t.Run("5 clean session, connection dropped", func(t *testing.T) {
		f, topic := filterOf("v5-dropped")
		c := connectV5(t, tb.MQTTAddr, nil)
		c.subscribe(t, f, 1)
		expectNote(t, l, on(topic, f))
		_ = c.conn.Close()
		expectNote(t, l, off(topic, f))
	})
	t.Run("3.1.1 clean session, DISCONNECT", func(t *testing.T) {
		f, topic := filterOf("v3-clean")
		c := connectV3(t, tcpURL(tb.MQTTAddr), nil)
		c.subscribe(t, f, 1)
		expectNote(t, l, on(topic, f))
		c.Disconnect(1000)
		expectNote(t, l, off(topic, f))
	})
	t.Run("3.1.1 clean session, connection dropped", func(t *testing.T) {
		f, topic := filterOf("v3-dropped")
		c := connectV3(t, tcpURL(tb.MQTTAddr), nil)
		c.subscribe(t, f, 1)
		expectNote(t, l, on(topic, f))
		c.dropConn(t)
		expectNote(t, l, off(topic, f))
	})
	t.Run("5 persistent session, until it expires", func(t *testing.T) {
		f, topic := filterOf("v5-persistent")
		id := clientID(t, "persistent")
		// Expiry 2s: the sentinel below has a second or more to beat it.
		c := connectV5(t, tb.MQTTAddr, persistentV5(id, 2))
		c.subscribe(t, f, 1)
		expectNote(t, l, on(topic, f))
		c.close()
		waitConnections(t, tb, base)
		s.expectNothing(t, l, "a persistent session's client disconnecting")
		expectNote(t, l, off(topic, f))
		tb.waitLog(t, "session expired", "client="+id)
	})
	t.Run("5 persistent session resumed, then clean takeover", func(t *testing.T) {
		f, topic := filterOf("v5-resumed")
		id := clientID(t, "persistent")
		c := connectV5(t, tb.MQTTAddr, persistentV5(id, 300))
		c.subscribe(t, f, 0)
		expectNote(t, l, on(topic, f))
		_ = c.conn.Close()
		waitConnections(t, tb, base)
		s.expectNothing(t, l, "a persistent session's connection dropped")

		c = connectV5(t, tb.MQTTAddr, persistentV5(id, 300))
		if !c.Connack.SessionPresent {
			t.Fatal("resume: session present = false")
		}
		s.expectNothing(t, l, "a persistent session resumed")

		// Taken over while connected, by a connection resuming the session.
		c2 := connectV5(t, tb.MQTTAddr, persistentV5(id, 300))
		if !c2.Connack.SessionPresent {
			t.Fatal("takeover: session present = false")
		}
		c.waitDone(t)
		waitConnections(t, tb, base+1)
		s.expectNothing(t, l, "a session taken over by a connection resuming it")

		// A clean start ends the session, and its subscriptions.
		cp := persistentV5(id, 300)
		cp.CleanStart = true
		c3 := connectV5(t, tb.MQTTAddr, cp)
		expectNote(t, l, off(topic, f))
		c2.waitDone(t)
		c3.subscribe(t, f, 0)
		expectNote(t, l, on(topic, f))
		c3.close()
		waitConnections(t, tb, base)
		s.expectNothing(t, l, "the persistent session's client disconnecting")
		// The session is persistent: clean it up with a clean start.
		cp.Properties.SessionExpiryInterval = ptr[uint32](0)
		c4 := connectV5(t, tb.MQTTAddr, cp)
		expectNote(t, l, off(topic, f))
		c4.close()
	})
	t.Run("5 clean takeover of a connected clean session", func(t *testing.T) {
		f, topic := filterOf("v5-takeover")
		id := clientID(t, "takeover")
		c := connectV5(t, tb.MQTTAddr, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30})
		c.subscribe(t, f, 0)
		expectNote(t, l, on(topic, f))
		c2 := connectV5(t, tb.MQTTAddr, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30})
		expectNote(t, l, off(topic, f))
		c.waitDone(t)
		c2.subscribe(t, f, 0)
		expectNote(t, l, on(topic, f))
		c2.close()
		expectNote(t, l, off(topic, f))
	})
	t.Run("3.1.1 persistent session, clean takeover", func(t *testing.T) {
		f, topic := filterOf("v3-persistent")
		id := clientID(t, "v3persistent")
		c := connectV3(t, tcpURL(tb.MQTTAddr), persistentV3(id))
		c.subscribe(t, f, 0)
		expectNote(t, l, on(topic, f))
		c.Disconnect(1000)
		waitConnections(t, tb, base)
		s.expectNothing(t, l, "an MQTT 3.1.1 persistent session's client disconnecting")
		c2 := connectV3(t, tcpURL(tb.MQTTAddr), func(o *mqtt.ClientOptions) { o.SetClientID(id).SetCleanSession(true) })
		expectNote(t, l, off(topic, f))
		c2.Disconnect(1000)
	})
	waitConnections(t, tb, base)
	if got := s.before(t, func() listenNote { return nextNote(t, l) }); len(got) != 0 {
		t.Errorf("listener received %v at the end, want nothing", got)
	}
}

// A persistent session's subscriptions are in use across a restart: a new
// listener is told of them, and of their end.
func TestListenRestoredSession(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	id := clientID(t, "persistent")
	const f = "sensors/restored/temperature"
	c := connectV5(t, tb.MQTTAddr, persistentV5(id, 300))
	c.subscribe(t, f, 1)
	c.close()
	waitConnections(t, tb, 0)
	tb.restart(t)

	l := connectV5(t, tb.MQTTAddr, nil)
	l.subscribe(t, "$listen/sensors/#", 0)
	expectNote(t, l, on("$listen/sensors/restored/temperature", f))
	cp := persistentV5(id, 0)
	cp.CleanStart = true
	connectV5(t, tb.MQTTAddr, cp)
	expectNote(t, l, off("$listen/sensors/restored/temperature", f))
}

// A persistent listener at QoS 1 has the changes made while it is away
// queued in its session, and they are counted as sent; at QoS 0 they are
// not sent, nor counted.
func TestListenOfflineListener(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	id1, id0 := clientID(t, "qos1"), clientID(t, "qos0")
	l1 := connectV5(t, tb.MQTTAddr, persistentV5(id1, 300))
	l1.subscribe(t, "$listen/sensors/+/temperature", 1)
	l1.close()
	l0 := connectV5(t, tb.MQTTAddr, persistentV5(id0, 300))
	l0.subscribe(t, "$listen/sensors/+/temperature", 0)
	l0.close()
	waitConnections(t, tb, 0)

	const f, topic = "sensors/k1/temperature", "$listen/sensors/k1/temperature"
	sub := connectV5(t, tb.MQTTAddr, nil)
	sub.subscribe(t, f, 0)
	sub.unsubscribe(t, f)
	if got := tb.metric(t, listenNotifications); got != 2 {
		t.Errorf("%s = %v with the listeners away, want 2 (queued for the QoS 1 listener)", listenNotifications, got)
	}

	s := newListenSentinel(t, tb, "sensors/sentinel-%d/temperature")
	l1 = connectV5(t, tb.MQTTAddr, persistentV5(id1, 300))
	expectNote(t, l1, on(topic, f))
	expectNote(t, l1, off(topic, f))
	l0 = connectV5(t, tb.MQTTAddr, persistentV5(id0, 300))
	if got := s.before(t, func() listenNote { return nextNote(t, l0) }); len(got) != 0 {
		t.Errorf("QoS 0 listener received %v after resuming, want nothing", got)
	}
	expectNote(t, l1, on("$listen/"+fmt.Sprintf(s.format, 1), fmt.Sprintf(s.format, 1)))
}

// rawPublishOf returns the topic and payload of a PUBLISH read by a raw
// client, failing the test if p is not one.
func rawPublishOf(t testing.TB, p rawPacket) (string, []byte) {
	t.Helper()
	if p.Type != typePublish || len(p.Body) < 2 {
		t.Fatalf("packet type %d (%x), want PUBLISH", p.Type, p.Body)
	}
	n := int(binary.BigEndian.Uint16(p.Body))
	rest := p.Body[2+n:]
	if p.Flags>>1&3 > 0 {
		rest = rest[2:]
	}
	return string(p.Body[2 : 2+n]), rest
}

// A listener is told, after its SUBACK, of every filter in use that
// overlaps its own, in filter order, on each SUBSCRIBE unless its Retain
// Handling says not to; a resumed session is not told again.
func TestListenLateJoiner(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	sub := connectV5(t, tb.MQTTAddr, nil)
	// In a scrambled order; two sessions share one filter, reported once.
	for _, f := range []string{"sensors/k2/temperature", "other/x", "sensors/#", "sensors/k1/humidity",
		"#", "sensors/k1/temperature", "sensors/+/+", "$share/g/sensors/k3/temperature", "$SYS/#"} {
		sub.subscribe(t, f, 0)
	}
	connectV3(t, tcpURL(tb.MQTTAddr), nil).subscribe(t, "sensors/k1/temperature", 0)
	state := []listenNote{
		on("$listen/sensors//temperature", "#"),
		on("$listen/sensors//temperature", "sensors/#"),
		on("$listen/sensors//temperature", "sensors/+/+"),
		on("$listen/sensors/k1/temperature", "sensors/k1/temperature"),
		on("$listen/sensors/k2/temperature", "sensors/k2/temperature"),
		on("$listen/sensors/k3/temperature", "sensors/k3/temperature"),
	}
	s := newListenSentinel(t, tb, "sensors/sentinel-%d/temperature")

	t.Run("3.1.1, raw: SUBACK first", func(t *testing.T) {
		raw := dialRaw(t, tb.MQTTAddr)
		raw.connect(t, clientID(t, "raw"), nil)
		raw.rawSubscribe(t, "$listen/sensors/+/temperature") // fails unless SUBACK comes first
		nextRaw := func() listenNote {
			p, err := raw.read(waitTimeout)
			if err != nil {
				t.Fatalf("raw listener: %v", err)
			}
			topic, payload := rawPublishOf(t, p)
			return parseListenNote(t, topic, payload, false)
		}
		var got []listenNote
		for range state {
			got = append(got, nextRaw())
		}
		if !slices.Equal(got, state) {
			t.Fatalf("late joiner received\n%v\nwant\n%v", got, state)
		}
		if more := s.before(t, nextRaw); len(more) != 0 {
			t.Fatalf("late joiner received %v after the state, want nothing", more)
		}
	})

	t.Run("5, Retain Handling", func(t *testing.T) {
		id := clientID(t, "listener")
		l := connectV5(t, tb.MQTTAddr, persistentV5(id, 300))
		next := func() listenNote { return nextNote(t, l) }
		const lf = "$listen/sensors/+/temperature"
		sentinels := func() []listenNote {
			// The sentinels made so far are in use too, in filter order
			// after those above.
			var out []listenNote
			for i := 1; i <= s.n; i++ {
				f := fmt.Sprintf(s.format, i)
				out = append(out, on("$listen/"+f, f))
			}
			return out
		}
		expectState := func(what string) {
			t.Helper()
			want := append(slices.Clone(state), sentinels()...)
			var got []listenNote
			for range want {
				got = append(got, next())
			}
			if !slices.Equal(got, want) {
				t.Fatalf("%s: received\n%v\nwant\n%v", what, got, want)
			}
			if more := s.before(t, next); len(more) != 0 {
				t.Fatalf("%s: received %v after the state, want nothing", what, more)
			}
		}

		l.subscribeOpts(t, paho.SubscribeOptions{Topic: lf, RetainHandling: 2})
		if got := s.before(t, next); len(got) != 0 {
			t.Fatalf("Retain Handling 2: received %v, want nothing", got)
		}
		l.subscribeOpts(t, paho.SubscribeOptions{Topic: lf, RetainHandling: 1})
		if got := s.before(t, next); len(got) != 0 {
			t.Fatalf("Retain Handling 1, subscribing again: received %v, want nothing", got)
		}
		l.subscribeOpts(t, paho.SubscribeOptions{Topic: lf, RetainHandling: 0})
		expectState("Retain Handling 0, subscribing again")
		l.unsubscribe(t, lf)
		l.subscribeOpts(t, paho.SubscribeOptions{Topic: lf, RetainHandling: 1})
		expectState("Retain Handling 1, a new subscription")

		// A resumed session is not told again.
		l.close()
		l = connectV5(t, tb.MQTTAddr, persistentV5(id, 300))
		if !l.Connack.SessionPresent {
			t.Fatal("listener resume: session present = false")
		}
		if got := s.before(t, func() listenNote { return nextNote(t, l) }); len(got) != 0 {
			t.Fatalf("resumed listener: received %v before the sentinel, want nothing", got)
		}
	})
}

// Notifications are in the listener's codec: CBOR for an MQTT 5 client
// declaring it, JSON for MQTT 3.1.1.
func TestListenCodecs(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	cborL := connectCodec(t, tb.MQTTAddr, "cbor")
	cborL.subscribe(t, "$listen/sensors/+/temperature", 0)
	v3L := connectV3(t, tcpURL(tb.MQTTAddr), nil)
	v3L.subscribe(t, "$listen/sensors/#", 1)
	sub := connectV5(t, tb.MQTTAddr, nil)

	const f = "sensors/k1/temperature"
	for _, want := range []listenNote{on("$listen/"+f, f), off("$listen/"+f, f)} {
		if want.Subscribed {
			sub.subscribe(t, f, 0)
		} else {
			sub.unsubscribe(t, f)
		}
		m := cborL.recv(t)
		if m.Properties.ContentType != "application/cbor" {
			t.Errorf("CBOR listener: content type %q, want application/cbor", m.Properties.ContentType)
		}
		if got := parseListenNote(t, m.Topic, m.Payload, true); got != want {
			t.Errorf("CBOR listener received %v, want %v", got, want)
		}
		m3 := v3L.recv(t)
		if got := parseListenNote(t, m3.Topic(), m3.Payload(), false); got != want {
			t.Errorf("MQTT 3.1.1 listener received %v, want %v", got, want)
		}
		if m3.Qos() != 1 {
			t.Errorf("MQTT 3.1.1 listener: notification at QoS %d, want its subscription's 1", m3.Qos())
		}
	}
}

// Only the broker publishes to $listen/...: a client's publish there is
// refused, reaches no listener, and is logged and counted as denied.
func TestListenPublishRefused(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	l := connectV5(t, tb.MQTTAddr, nil)
	l.subscribe(t, "$listen/sensors/+/temperature", 0)
	hash := connectV5(t, tb.MQTTAddr, nil) // a plain subscriber to the topic
	hash.subscribe(t, "$listen/#", 0)
	s := newListenSentinel(t, tb, "sensors/sentinel-%d/temperature")
	pub := connectV5(t, tb.MQTTAddr, nil)
	forged := []byte(`{"filter":"sensors/k1/temperature","subscribed":true}`)
	const topic = "$listen/sensors/k1/temperature"

	for _, p := range []struct {
		qos    byte
		retain bool
	}{{1, false}, {1, true}, {2, false}} {
		resp, err := pub.pub(&paho.Publish{Topic: topic, QoS: p.qos, Retain: p.retain, Payload: forged})
		if resp == nil || resp.ReasonCode != 0x87 {
			t.Errorf("MQTT 5 QoS %d retain %v publish to %s: %+v, %v; want refused with 0x87", p.qos, p.retain, topic, resp, err)
		}
	}
	pub.publish(t, topic, 0, false, forged) // dropped
	v3 := connectV3(t, tcpURL(tb.MQTTAddr), nil)
	v3.publish(t, topic, 0, false, forged) // dropped
	if !v3.IsConnectionOpen() {
		t.Error("MQTT 3.1.1 QoS 0 publish to $listen: disconnected, want dropped")
	}
	v3.Publish(topic, 1, false, forged) // no PUBACK: disconnected
	v3.waitLost(t)

	const denied = 6
	got := tb.waitMetric(t, errorsSeries("denied"), fmt.Sprint(denied), func(v float64) bool { return v >= denied })
	if got != denied {
		t.Errorf(`hearth_errors_total{kind="denied"} = %v, want %d`, got, denied)
	}
	tb.waitLog(t, "publish refused", "client="+pub.ID, "topic="+topic)
	if more := s.before(t, func() listenNote { return nextNote(t, l) }); len(more) != 0 {
		t.Errorf("listener received %v, want nothing", more)
	}
	// The $listen/# subscriber is a listener on '#' too: the first thing it
	// receives is the sentinel's notification.
	sentinel := fmt.Sprintf(s.format, s.n)
	if got, want := nextNote(t, hash), on("$listen/"+sentinel, sentinel); got != want {
		t.Errorf("a $listen/# subscriber received %v, want only the sentinel %v", got, want)
	}
	if got := tb.metric(t, listenNotifications); got != 2 {
		t.Errorf("%s = %v, want 2 (the sentinel's)", listenNotifications, got)
	}
}

// As for $SYS, an MQTT 3.1.1 client closed for a QoS 1 publish to
// $listen/... or $presence/<id> is a policy refusal: its connection is
// closed (3.1.1 has no server DISCONNECT), and it is counted as denied, not
// also as a protocol error, nor logged as one. $SYS/x shows the expected.
func TestListenPresenceRefusedV3NotProtocolError(t *testing.T) {
	t.Parallel()
	for _, topic := range []string{"$SYS/x", "$listen/sensors/k1/temperature", "$presence/someone"} {
		t.Run(topic, func(t *testing.T) {
			t.Parallel()
			tb := startBroker(t, brokerOpts{})
			c := dialRaw(t, tb.MQTTAddr)
			id := clientID(t, "v3")
			c.connect(t, id, nil)
			c.send(t, rawPublish(topic, 1, false, 1, []byte(`{"x":1}`)))
			if got := c.expectClosed(t); len(got) != 0 {
				t.Errorf("MQTT 3.1.1 client received %+v before the close, want nothing (no PUBACK, no DISCONNECT in 3.1.1)", got)
			}
			tb.waitLog(t, "client disconnected", "client="+id)
			m := tb.scrape(t)
			if got := m[errorsSeries("denied")]; got != 1 {
				t.Errorf(`hearth_errors_total{kind="denied"} = %v, want 1`, got)
			}
			if got := m[errorsSeries("protocol")]; got != 0 {
				t.Errorf(`hearth_errors_total{kind="protocol"} = %v, want 0: a refusal is not the client's protocol violation`, got)
			}
			if line, ok := tb.logs.find("client disconnected: protocol error", "client="+id); ok {
				t.Errorf("logged as a protocol error: %s", line)
			}
		})
	}
}

// A will is a client's publish too: it cannot forge a notification.
func TestListenWillRefused(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	l := connectV5(t, tb.MQTTAddr, nil)
	l.subscribe(t, "$listen/sensors/+/temperature", 0)
	s := newListenSentinel(t, tb, "sensors/sentinel-%d/temperature")
	forged := `{"filter":"sensors/k1/temperature","subscribed":true}`
	c := dialRaw(t, tb.MQTTAddr)
	c.connect(t, clientID(t, "mallory"), &rawWill{Topic: "$listen/sensors/k1/temperature", Payload: forged, QoS: 1})
	_ = c.Close()
	tb.waitLog(t, "client disconnected", "client=TestListenWillRefused-mallory")
	waitConnections(t, tb, 2)
	if got := s.before(t, func() listenNote { return nextNote(t, l) }); len(got) != 0 {
		t.Errorf("listener received %v from a will, want nothing", got)
	}
	if got := tb.metric(t, errorsSeries("denied")); got != 1 {
		t.Errorf(`hearth_errors_total{kind="denied"} = %v, want 1 (the will)`, got)
	}
}

// needMosquitto returns the path of each mosquitto client, or skips the
// test if one is missing, unless CI is set: there they are required.
func needMosquitto(t *testing.T, names ...string) []string {
	t.Helper()
	var paths []string
	for _, name := range names {
		p, err := exec.LookPath(name)
		if err != nil {
			msg := fmt.Sprintf("%s not found: install mosquitto-clients: %v", name, err)
			if os.Getenv("CI") != "" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
		paths = append(paths, p)
	}
	return paths
}

// mosquittoHostPort is the -h/-p arguments of addr.
func mosquittoHostPort(t *testing.T, addr string) []string {
	t.Helper()
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		t.Fatalf("address %q", addr)
	}
	return []string{"-h", addr[:i], "-p", addr[i+1:]}
}

// The example of docs/PROTOCOL.md, with mosquitto_sub as the listener.
func TestListenMosquittoSub(t *testing.T) {
	t.Parallel()
	bin := needMosquitto(t, "mosquitto_sub")[0]
	tb := startBroker(t, brokerOpts{})
	ctx, cancel := context.WithTimeout(context.Background(), 4*waitTimeout)
	defer cancel()
	args := append(mosquittoHostPort(t, tb.MQTTAddr), "-V", "mqttv5", "-i", clientID(t, "mosquitto"),
		"-t", "$listen/sensors/+/temperature", "-F", "%t %p", "-C", "2")
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tb.waitMetric(t, "hearth_subscriptions", "1", func(v float64) bool { return v == 1 })

	sub := connectV5(t, tb.MQTTAddr, nil)
	sub.subscribe(t, "sensors/k1/temperature", 0)
	sub.unsubscribe(t, "sensors/k1/temperature")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("mosquitto_sub: %v\n%s", err, stderr.String())
		}
	case <-time.After(2 * waitTimeout):
		cancel()
		t.Fatalf("mosquitto_sub did not get 2 notifications; output %q, stderr %q", out.String(), stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var got []listenNote
	for _, line := range lines {
		topic, payload, _ := strings.Cut(line, " ")
		got = append(got, parseListenNote(t, topic, []byte(payload), false))
	}
	want := []listenNote{
		on("$listen/sensors/k1/temperature", "sensors/k1/temperature"),
		off("$listen/sensors/k1/temperature", "sensors/k1/temperature"),
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("mosquitto_sub printed %q, want %v", out.String(), want)
	}
}

// A SUBSCRIBE carrying both a listen filter and a filter it overlaps tells
// the listener of that filter once, whichever comes first in the packet:
// as state after the SUBACK, not also as a change.
func TestListenAndSubscribeInOneSubscribe(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		order []string
		rh    byte // the listen subscription's Retain Handling: 1 is state too, for a new one
	}{{[]string{"$listen/a/#", "a/b"}, 0}, {[]string{"a/b", "$listen/a/#"}, 0}, {[]string{"$listen/a/#", "a/b"}, 1}} {
		order := tc.order
		t.Run(fmt.Sprintf("%s,rh%d", strings.Join(order, ","), tc.rh), func(t *testing.T) {
			t.Parallel()
			tb := startBroker(t, brokerOpts{})
			s := newListenSentinel(t, tb, "a/sentinel-%d")
			l := connectV5(t, tb.MQTTAddr, nil)
			var opts []paho.SubscribeOptions
			for _, f := range order {
				o := paho.SubscribeOptions{Topic: f, QoS: 0}
				if strings.HasPrefix(f, "$listen/") {
					o.RetainHandling = tc.rh
				}
				opts = append(opts, o)
			}
			l.subscribeOpts(t, opts...)
			got := s.before(t, func() listenNote { return nextNote(t, l) })
			if want := []listenNote{on("$listen/a/b", "a/b")}; !slices.Equal(got, want) {
				t.Fatalf("listener received %v before the sentinel, want %v exactly once", got, want)
			}
		})
	}
}

// A listen subscription with Retain Handling 2 is sent no state, but it is
// a listener all the same: it is told of the changes after it.
func TestListenRetainHandling2GetsChanges(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	sub := connectV5(t, tb.MQTTAddr, nil)
	sub.subscribe(t, "rh/old", 0)
	l := connectV5(t, tb.MQTTAddr, nil)
	l.subscribeOpts(t, paho.SubscribeOptions{Topic: "$listen/rh/#", QoS: 0, RetainHandling: 2})
	sub.subscribe(t, "rh/new", 0)
	expectNote(t, l, on("$listen/rh/new", "rh/new")) // not rh/old: no state
	sub.unsubscribe(t, "rh/old")
	expectNote(t, l, off("$listen/rh/old", "rh/old"))
	sub.unsubscribe(t, "rh/new")
	expectNote(t, l, off("$listen/rh/new", "rh/new"))
}
