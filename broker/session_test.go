package broker_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/hearth-iot/hearth/broker"
	"github.com/hearth-iot/hearth/storage"
)

// persistentV5 is a CONNECT resuming (or starting) the session of id.
func persistentV5(id string, expiry uint32) *paho.Connect {
	return &paho.Connect{
		ClientID:   id,
		CleanStart: false,
		KeepAlive:  30,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: ptr(expiry)},
	}
}

func persistentV3(id string) func(*mqtt.ClientOptions) {
	return func(o *mqtt.ClientOptions) { o.SetClientID(id).SetCleanSession(false) }
}

// QoS 1 messages queued for a disconnected persistent session survive a
// restart and are delivered when the client resumes its session.
func TestPersistentSessionAcrossRestart(t *testing.T) {
	t.Parallel()
	const n = 5
	tests := []struct {
		name string
		// subscribe connects a persistent session subscribed to topic at
		// QoS 1 and disconnects it; resume reconnects it after the restart
		// and returns whether the session was present, and the client.
		subscribe func(t *testing.T, tb *testBroker, id, topic string)
		resume    func(t *testing.T, tb *testBroker, id string) (bool, testClient)
	}{
		{
			name: "3.1.1",
			subscribe: func(t *testing.T, tb *testBroker, id, topic string) {
				c := connectV3(t, tcpURL(tb.MQTTAddr), persistentV3(id))
				c.subscribe(t, topic, 1)
				c.Disconnect(1000)
			},
			resume: func(t *testing.T, tb *testBroker, id string) (bool, testClient) {
				c, tok, err := dialV3(t, tcpURL(tb.MQTTAddr), persistentV3(id))
				if err != nil {
					t.Fatalf("reconnect: %v", err)
				}
				return tok.SessionPresent(), c
			},
		},
		{
			name: "5",
			subscribe: func(t *testing.T, tb *testBroker, id, topic string) {
				c := connectV5(t, tb.MQTTAddr, persistentV5(id, 300))
				c.subscribe(t, topic, 1)
				c.close()
			},
			resume: func(t *testing.T, tb *testBroker, id string) (bool, testClient) {
				c := connectV5(t, tb.MQTTAddr, persistentV5(id, 300))
				return c.Connack.SessionPresent, c
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tb := startBroker(t, brokerOpts{})
			id := clientID(t, "persistent")
			topic := "sess/" + tt.name
			tt.subscribe(t, tb, id, topic)
			tb.waitLog(t, "client disconnected", "client="+id)

			pub := connectV5(t, tb.MQTTAddr, nil)
			var want []received
			for i := range n {
				payload := fmt.Sprintf("queued-%d", i)
				pub.publish(t, topic, 1, false, []byte(payload))
				want = append(want, received{Topic: topic, Payload: payload, QoS: 1})
			}

			tb.restart(t)
			tb.waitLog(t, "restored state", "sessions=1", "subscriptions=1", fmt.Sprintf("inflight=%d", n))

			present, c := tt.resume(t, tb, id)
			if !present {
				t.Fatal("reconnect: session present = false, want true")
			}
			var got []received
			for range n {
				got = append(got, c.next(t))
			}
			// Compared as sets: mochi resends a session's queued messages
			// sorted by their creation second, in map order within one
			// second, although MQTT-4.6.0-1 asks for the original order.
			slices.SortFunc(got, func(a, b received) int { return strings.Compare(a.Payload, b.Payload) })
			if !slices.Equal(got, want) {
				t.Fatalf("after restart received\n%+v\nwant\n%+v", got, want)
			}

			// The restored subscription also routes new messages.
			pub = connectV5(t, tb.MQTTAddr, nil)
			pub.publish(t, topic, 1, false, []byte("live"))
			if got, want := c.next(t), (received{Topic: topic, Payload: "live", QoS: 1}); got != want {
				t.Fatalf("after restart, live message: received %+v, want %+v", got, want)
			}
		})
	}
}

// An MQTT 5 clean start discards the stored session with its queued
// messages and subscriptions.
func TestCleanStartDiscardsSession(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	id := clientID(t, "persistent")
	c := connectV5(t, tb.MQTTAddr, persistentV5(id, 300))
	c.subscribe(t, "sess/old", 1)
	c.close()
	tb.waitLog(t, "client disconnected", "client="+id)
	pub := connectV5(t, tb.MQTTAddr, nil)
	for i := range 3 {
		pub.publish(t, "sess/old", 1, false, fmt.Appendf(nil, "queued-%d", i))
	}
	fannedOut(t, pub)

	cp := persistentV5(id, 300)
	cp.CleanStart = true
	c = connectV5(t, tb.MQTTAddr, cp)
	if c.Connack.SessionPresent {
		t.Fatal("clean start: session present = true, want false")
	}
	c.subscribe(t, "sentinel", 1)
	pub.publish(t, "sess/old", 1, false, []byte("after clean start"))
	pub.publish(t, "sentinel", 1, false, []byte("end"))
	if got := nextUntil(t, c, "sentinel"); len(got) != 0 {
		t.Fatalf("received %+v, want nothing of the discarded session", got)
	}
	c.close()
	tb.waitLog(t, "client disconnected", "client="+id, "reason=disconnect")

	tb.stop(t)
	tb.inspectStore(t, func(st *storage.Store) {
		subs, err := st.Subscriptions()
		if err != nil {
			t.Fatal(err)
		}
		var filters []string
		for _, s := range subs {
			if s.ClientID == id {
				filters = append(filters, s.Filter)
			}
		}
		if !slices.Equal(filters, []string{"sentinel"}) {
			t.Errorf("store: subscriptions of %s = %q, want [sentinel]", id, filters)
		}
		inflight, err := st.Inflight()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range inflight {
			// The sentinel may be stored unacknowledged: DISCONNECT can
			// overtake the client's PUBACK.
			if m.ClientID == id && m.Message.Topic != "sentinel" {
				t.Errorf("store: inflight message on %s (%q) of the discarded session", m.Message.Topic, m.Message.Payload)
			}
		}
	})
}

// sessionDisconnected returns when the stopped broker's store says id's
// session was disconnected.
func sessionDisconnected(t *testing.T, tb *testBroker, id string) time.Time {
	t.Helper()
	var at int64
	tb.inspectStore(t, func(st *storage.Store) {
		sessions, err := st.Sessions()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range sessions {
			if s.ClientID == id {
				at = s.Disconnected
			}
		}
	})
	if at == 0 {
		t.Fatalf("store: no disconnected session %s", id)
	}
	return time.Unix(at, 0)
}

// An MQTT 5 session's expiry keeps running while the broker is down.
func TestSessionExpiryCountsDowntime(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		expiry  uint32
		present bool
	}{
		{"expired while down", 2, false},
		{"still valid", 60, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tb := startBroker(t, brokerOpts{})
			id := clientID(t, "persistent")
			c := connectV5(t, tb.MQTTAddr, persistentV5(id, tt.expiry))
			c.subscribe(t, "sess/expiry", 1)
			c.close()
			tb.waitLog(t, "client disconnected", "client="+id)

			tb.stop(t)
			disconnected := sessionDisconnected(t, tb, id)
			time.Sleep(time.Until(disconnected.Add(3 * time.Second)))
			tb.open(t)

			c = connectV5(t, tb.MQTTAddr, persistentV5(id, 60))
			if c.Connack.SessionPresent != tt.present {
				t.Fatalf("session present = %v, want %v (expiry %ds, down 3s)", c.Connack.SessionPresent, tt.present, tt.expiry)
			}
		})
	}
}

// Limits.MaxSessionExpiry is the expiry of an MQTT 3.1.1 persistent
// session, counted from its last disconnect (doc.go), also across a restart.
func TestV3SessionExpiryCountsFromDisconnectAcrossRestart(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{Limits: broker.Limits{MaxSessionExpiry: 4 * time.Second}})
	id := clientID(t, "persistent")
	c := connectV3(t, tcpURL(tb.MQTTAddr), persistentV3(id))
	c.subscribe(t, "sess/v3expiry", 1)
	c.Disconnect(1000)
	tb.waitLog(t, "client disconnected", "client="+id)

	tb.stop(t)
	disconnected := sessionDisconnected(t, tb, id)
	// Restart 3s after the disconnect: 1s of the 4s expiry is left.
	time.Sleep(time.Until(disconnected.Add(3*time.Second + 300*time.Millisecond)))
	tb.open(t)
	tb.waitLog(t, "restored state", "sessions=1")

	// 7s after the disconnect the session has expired, allowing a second
	// for whole-second timestamps and one for mochi's expiry sweep.
	time.Sleep(time.Until(disconnected.Add(7 * time.Second)))
	_, tok, err := dialV3(t, tcpURL(tb.MQTTAddr), persistentV3(id))
	if err != nil {
		t.Fatal(err)
	}
	if tok.SessionPresent() {
		t.Fatalf("session present %s after the disconnect, with a %s session expiry", time.Since(disconnected).Round(time.Second), 4*time.Second)
	}
}
