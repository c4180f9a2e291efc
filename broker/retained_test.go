package broker_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/hearth-iot/hearth/storage"
)

// fannedOut returns once every publish pub made so far has been queued for
// the subscriptions that existed then. mochi sends PUBACK before it fans
// a message out, so a subscription made right after a PUBACK can receive
// the message twice: retained, and then live. The publisher's packets are
// processed in order, so once a later publish is acknowledged, the earlier
// fan-outs are done.
func fannedOut(t testing.TB, pub testClient) {
	t.Helper()
	pub.publish(t, "sync/fanned-out", 1, false, []byte("sync"))
}

// A new subscription receives the retained message with the retain flag
// set; a live message to a subscribed topic arrives without it.
func TestRetainedDeliveredOnSubscribe(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	pub := connectV5(t, tb.MQTTAddr, nil)
	for _, proto := range protocols {
		t.Run(proto.name, func(t *testing.T) {
			topic := "ret/on-subscribe/" + proto.name
			pub.publish(t, topic, 1, true, []byte("first"))
			fannedOut(t, pub)

			sub := proto.connect(t, tb)
			sub.subscribe(t, topic, 1)
			if got, want := sub.next(t), (received{Topic: topic, Payload: "first", QoS: 1, Retain: true}); got != want {
				t.Fatalf("on subscribe: received %+v, want %+v", got, want)
			}

			pub.publish(t, topic, 1, true, []byte("second"))
			if got, want := sub.next(t), (received{Topic: topic, Payload: "second", QoS: 1, Retain: false}); got != want {
				t.Fatalf("live: received %+v, want %+v", got, want)
			}
			fannedOut(t, pub)

			late := proto.connect(t, tb)
			late.subscribe(t, topic, 0)
			if got, want := late.next(t), (received{Topic: topic, Payload: "second", QoS: 0, Retain: true}); got != want {
				t.Fatalf("second subscriber: received %+v, want %+v", got, want)
			}
		})
	}
}

// A retained publish with an empty payload deletes the retained message, in
// memory and in the store, at QoS 0 and 1 and from either protocol.
func TestRetainedDeleteWithEmptyPayload(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	sentinel := "ret/del/sentinel"
	connectV5(t, tb.MQTTAddr, nil).publish(t, sentinel, 1, true, []byte("end"))

	var deleted []string
	for _, proto := range protocols {
		for _, qos := range []byte{0, 1} {
			name := fmt.Sprintf("%s/qos%d", proto.name, qos)
			t.Run(name, func(t *testing.T) {
				topic := "ret/del/" + name
				pub := proto.connect(t, tb)
				pub.publish(t, topic, qos, true, []byte("doomed"))
				pub.publish(t, topic, qos, true, nil)
				fannedOut(t, pub)

				sub := connectV5(t, tb.MQTTAddr, nil)
				sub.subscribeOpts(t, paho.SubscribeOptions{Topic: topic, QoS: 1}, paho.SubscribeOptions{Topic: sentinel, QoS: 1})
				if got := nextUntil(t, sub, sentinel); len(got) != 0 {
					t.Fatalf("received %+v for a deleted retained message", got)
				}
				deleted = append(deleted, topic)
			})
		}
	}

	tb.stop(t)
	tb.inspectStore(t, func(st *storage.Store) {
		for _, topic := range deleted {
			if r, ok, err := st.Retained(topic); err != nil || ok {
				t.Errorf("store: %s = %+v, %v, %v; want no value", topic, r.Message, ok, err)
			}
		}
		if r, ok, err := st.Retained(sentinel); err != nil || !ok || string(r.Message.Payload) != "end" {
			t.Errorf("store: %s = %q, %v, %v; want \"end\"", sentinel, r.Message.Payload, ok, err)
		}
	})
}

// An MQTT 5 message expiry interval removes a retained message once it
// passes, from memory and from the store. Without one, a retained message
// has no expiry at all: Hearth turns off mochi's default 24h maximum.
func TestRetainedMessageExpiry(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	pub := connectV5(t, tb.MQTTAddr, nil)
	const expiring, keep = "ret/exp/short", "ret/exp/keep"
	for _, p := range []*paho.Publish{
		{Topic: expiring, QoS: 1, Retain: true, Payload: []byte("brief"), Properties: &paho.PublishProperties{MessageExpiry: ptr[uint32](1)}},
		{Topic: keep, QoS: 1, Retain: true, Payload: []byte("lasting")},
	} {
		if resp, err := pub.pub(p); err != nil || resp.ReasonCode >= 0x80 {
			t.Fatalf("publish %s: %+v, %v", p.Topic, resp, err)
		}
	}
	fannedOut(t, pub)

	// Fetch both retained messages with a fresh subscription; keep is the
	// sentinel, as it is delivered after expiring (one SUBSCRIBE, in order).
	sub := connectV5(t, tb.MQTTAddr, nil)
	fetch := func() (exp, kept *paho.Publish) {
		// QoS 0: nothing stays inflight, so the UNSUBSCRIBE's packet id is
		// never one mochi is still using towards this client.
		sub.subscribeOpts(t, paho.SubscribeOptions{Topic: expiring, QoS: 0}, paho.SubscribeOptions{Topic: keep, QoS: 0})
		for {
			m := sub.recv(t)
			if m.Topic == keep {
				sub.unsubscribe(t, expiring, keep)
				return exp, m
			}
			exp = m
		}
	}
	exp, kept := fetch()
	if exp == nil || string(exp.Payload) != "brief" || !exp.Retain {
		t.Fatalf("before expiry: got %+v, want the retained %s", exp, expiring)
	}
	if e := exp.Properties.MessageExpiry; e == nil || *e > 1 {
		t.Errorf("before expiry: message expiry %v, want at most 1s left", e)
	}
	if e := kept.Properties.MessageExpiry; e != nil {
		t.Errorf("%s delivered with message expiry %d, want none (no 24h default)", keep, *e)
	}

	deadline := time.Now().Add(waitTimeout)
	for {
		exp, kept = fetch()
		if exp == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still retained %s after publishing with a 1s expiry", expiring, waitTimeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if string(kept.Payload) != "lasting" || !kept.Retain {
		t.Fatalf("%s: got %+v, want the retained \"lasting\"", keep, kept)
	}
	// keep, and the presence records of pub and sub.
	tb.waitMetric(t, "hearth_retained_messages", "3", func(v float64) bool { return v == 3 })

	tb.stop(t)
	tb.inspectStore(t, func(st *storage.Store) {
		if _, ok, err := st.Retained(expiring); err != nil || ok {
			t.Errorf("store: %s present=%v err=%v, want it removed on expiry", expiring, ok, err)
		}
		r, ok, err := st.Retained(keep)
		if err != nil || !ok {
			t.Fatalf("store: %s present=%v err=%v", keep, ok, err)
		}
		if r.Message.Expiry != 0 || r.Message.Properties.MessageExpiryInterval != 0 {
			t.Errorf("store: %s expiry %d interval %d, want 0 and 0", keep, r.Message.Expiry, r.Message.Properties.MessageExpiryInterval)
		}
	})
}

// Retained messages survive a restart byte for byte, with their QoS and
// MQTT 5 properties; deleted ones stay deleted.
func TestRetainedAcrossRestart(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	big := make([]byte, 100<<10)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	type value struct {
		qos     byte
		payload []byte
	}
	want := map[string]value{
		"keep/a":            {0, []byte("alpha")},
		"keep/b":            {1, []byte{0, 1, 2, 0xff}},
		"keep/c":            {2, big},
		"keep/ünï/cödé":     {1, []byte("utf-8 topic")},
		"keep/props":        {1, []byte(`{"t":21.5}`)},
		"keep/v3":           {1, []byte("from 3.1.1")},
		"keep/deleted-here": {1, nil},
	}
	v5 := connectV5(t, tb.MQTTAddr, nil)
	v3 := connectV3(t, tcpURL(tb.MQTTAddr), nil)
	for topic, v := range want {
		switch topic {
		case "keep/props":
			p := &paho.Publish{Topic: topic, QoS: v.qos, Retain: true, Payload: v.payload, Properties: &paho.PublishProperties{
				ContentType: "application/json",
				User:        paho.UserProperties{{Key: "unit", Value: "C"}},
			}}
			if resp, err := v5.pub(p); err != nil || resp.ReasonCode >= 0x80 {
				t.Fatalf("publish %s: %+v, %v", topic, resp, err)
			}
		case "keep/v3":
			v3.publish(t, topic, v.qos, true, v.payload)
		case "keep/deleted-here":
			v5.publish(t, topic, 1, true, []byte("short-lived"))
			v5.publish(t, topic, 1, true, nil)
		default:
			v5.publish(t, topic, v.qos, true, v.payload)
		}
	}
	delete(want, "keep/deleted-here")
	v5.publish(t, "zz/sentinel", 1, true, []byte("end"))
	records := len(want) + 1 + 2 // and the presence records of v5 and v3
	if got := tb.metric(t, "hearth_retained_messages"); got != float64(records) {
		t.Errorf("before restart: hearth_retained_messages = %v, want %d", got, records)
	}

	tb.restart(t)

	if got := tb.metric(t, "hearth_retained_messages"); got != float64(records) {
		t.Errorf("after restart: hearth_retained_messages = %v, want %d", got, records)
	}
	sub := connectV5(t, tb.MQTTAddr, nil)
	// One SUBSCRIBE: mochi checks a client's packet ids against the QoS 1/2
	// messages it is sending that client, so a second SUBSCRIBE while the
	// retained messages are unacknowledged may be refused with 0x91.
	sub.subscribeOpts(t, paho.SubscribeOptions{Topic: "keep/#", QoS: 2}, paho.SubscribeOptions{Topic: "zz/sentinel", QoS: 2})
	var got []string
	for {
		m := sub.recv(t)
		if m.Topic == "zz/sentinel" {
			break
		}
		got = append(got, m.Topic)
		w, ok := want[m.Topic]
		switch {
		case !ok:
			t.Errorf("unexpected retained message on %s: %q", m.Topic, m.Payload)
			continue
		case !bytes.Equal(m.Payload, w.payload):
			t.Errorf("%s: payload of %d bytes differs from the %d published", m.Topic, len(m.Payload), len(w.payload))
		case m.QoS != w.qos || !m.Retain:
			t.Errorf("%s: QoS %d retain %v, want QoS %d retain true", m.Topic, m.QoS, m.Retain, w.qos)
		}
		if m.Topic == "keep/props" {
			if m.Properties.ContentType != "application/json" || m.Properties.User.Get("unit") != "C" {
				t.Errorf("%s: properties %+v, want content type and user property kept", m.Topic, m.Properties)
			}
		}
	}
	slices.Sort(got)
	var wantTopics []string
	for topic := range want {
		wantTopics = append(wantTopics, topic)
	}
	slices.Sort(wantTopics)
	if !slices.Equal(got, wantTopics) {
		t.Errorf("retained topics after restart %v, want %v", got, wantTopics)
	}
}
