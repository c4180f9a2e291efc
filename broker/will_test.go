package broker_test

import (
	"testing"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/hearth-iot/hearth/storage"
)

// A connection that ends without DISCONNECT publishes its will.
func TestWillOnConnectionLoss(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	watcher := connectV5(t, tb.MQTTAddr, nil)
	watcher.subscribe(t, "wills/#", 2)

	t.Run("paho 3.1.1 client, TCP closed", func(t *testing.T) {
		c := connectV3(t, tcpURL(tb.MQTTAddr), func(o *mqtt.ClientOptions) {
			o.SetWill("wills/paho", "paho gone", 1, false)
		})
		c.dropConn(t)
		if got, want := watcher.next(t), (received{Topic: "wills/paho", Payload: "paho gone", QoS: 1}); got != want {
			t.Fatalf("received %+v, want %+v", got, want)
		}
		tb.waitLog(t, "will published", "client="+c.ID)
	})

	t.Run("raw 3.1.1 CONNECT, TCP closed", func(t *testing.T) {
		c := dialRaw(t, tb.MQTTAddr)
		c.connect(t, "raw-will", &rawWill{Topic: "wills/raw", Payload: "raw gone", QoS: 2})
		_ = c.Close()
		if got, want := watcher.next(t), (received{Topic: "wills/raw", Payload: "raw gone", QoS: 2}); got != want {
			t.Fatalf("received %+v, want %+v", got, want)
		}
	})

	t.Run("retained will is stored", func(t *testing.T) {
		c := dialRaw(t, tb.MQTTAddr)
		c.connect(t, "raw-retained-will", &rawWill{Topic: "wills/retained", Payload: "last words", QoS: 1, Retain: true})
		_ = c.Close()
		if got, want := watcher.next(t), (received{Topic: "wills/retained", Payload: "last words", QoS: 1}); got != want {
			t.Fatalf("received %+v, want %+v", got, want)
		}
		late := connectV5(t, tb.MQTTAddr, nil)
		late.subscribe(t, "wills/retained", 1)
		if got, want := late.next(t), (received{Topic: "wills/retained", Payload: "last words", QoS: 1, Retain: true}); got != want {
			t.Fatalf("new subscriber received %+v, want %+v", got, want)
		}
	})

	tb.stop(t)
	tb.inspectStore(t, func(st *storage.Store) {
		r, ok, err := st.Retained("wills/retained")
		if err != nil || !ok || string(r.Message.Payload) != "last words" || r.Message.QoS != 1 {
			t.Fatalf("store: retained will = %+v, %v, %v; want \"last words\" at QoS 1", r.Message, ok, err)
		}
	})
}

// A client that disconnects with DISCONNECT does not publish its will.
func TestNoWillOnNormalDisconnect(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	watcher := connectV5(t, tb.MQTTAddr, nil)
	watcher.subscribe(t, "wills/#", 1)
	watcher.subscribe(t, "sentinel", 1)
	pub := connectV5(t, tb.MQTTAddr, nil)

	t.Run("5", func(t *testing.T) {
		c := connectV5(t, tb.MQTTAddr, &paho.Connect{
			CleanStart:  true,
			KeepAlive:   30,
			WillMessage: &paho.WillMessage{Topic: "wills/v5", Payload: []byte("v5 gone"), QoS: 1},
		})
		c.close()
		tb.waitLog(t, "client disconnected", "client="+c.ID, "reason=disconnect")
		pub.publish(t, "sentinel", 1, false, []byte("end"))
		if got := nextUntil(t, watcher, "sentinel"); len(got) != 0 {
			t.Fatalf("received %+v, want no will after DISCONNECT", got)
		}
	})

	t.Run("3.1.1", func(t *testing.T) {
		c := connectV3(t, tcpURL(tb.MQTTAddr), func(o *mqtt.ClientOptions) {
			o.SetWill("wills/v3", "v3 gone", 1, false)
		})
		c.Disconnect(1000)
		tb.waitLog(t, "client disconnected", "client="+c.ID, "reason=disconnect")
		pub.publish(t, "sentinel", 1, false, []byte("end"))
		if got := nextUntil(t, watcher, "sentinel"); len(got) != 0 {
			t.Fatalf("received %+v, want no will after DISCONNECT", got)
		}
	})
	if n := tb.logCount("will published"); n != 0 {
		t.Errorf("%d \"will published\" log lines, want 0", n)
	}
}
