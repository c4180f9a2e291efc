package broker_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/hearth-iot/hearth/storage"
)

// storeCap is a data file cap that opens and fills after a few 64 KiB
// retained messages: bbolt grows the file in doubling steps, so at 512 KiB
// the step to 1 MiB fails.
const storeCap = 512 << 10

func retainedPayload(i int) []byte {
	return bytes.Repeat(fmt.Appendf(nil, "%08d", i), 8<<10) // 64 KiB
}

// fillStore publishes 64 KiB retained QoS 1 messages to full/<i> until the
// broker refuses one with 0x97. It returns the accepted topics and the
// refused one.
func fillStore(t testing.TB, c *v5Client) (accepted map[string][]byte, refused string) {
	t.Helper()
	accepted = map[string][]byte{}
	for i := range 64 {
		topic := fmt.Sprintf("full/%d", i)
		payload := retainedPayload(i)
		resp, err := c.pub(&paho.Publish{Topic: topic, QoS: 1, Retain: true, Payload: payload})
		switch {
		case resp == nil:
			t.Fatalf("publish %s: %v", topic, err)
		case resp.ReasonCode == 0x97:
			if err == nil {
				t.Fatalf("publish %s: PUBACK 0x97 without an error from the client", topic)
			}
			return accepted, topic
		case resp.ReasonCode >= 0x80:
			t.Fatalf("publish %s: PUBACK 0x%02x, want success or 0x97 (quota exceeded)", topic, resp.ReasonCode)
		}
		accepted[topic] = payload
	}
	t.Fatalf("store still accepting after %d retained messages of 64 KiB with MaxSize %d", len(accepted), storeCap)
	return nil, ""
}

// When the store is full, a retained QoS 1 publish is refused (MQTT 5:
// PUBACK 0x97, MQTT 3.1.1: disconnected) and changes nothing; what was
// acknowledged stays retained, also across a restart.
func TestStoreFull(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{Store: storage.Options{MaxSize: storeCap}})
	c := connectV5(t, tb.MQTTAddr, nil)
	c.publish(t, "full-sentinel", 1, true, []byte("end"))
	accepted, refused := fillStore(t, c)
	t.Logf("%d retained messages of 64 KiB accepted, %s refused", len(accepted), refused)
	if len(accepted) == 0 {
		t.Fatal("the first retained message was refused: storeCap is too small")
	}
	tb.waitLog(t, "record operation refused", "record="+refused, "code=STORAGE_ERROR", "reason_code=0x97")

	// The refusing client stays connected, and non-retained traffic flows.
	c.subscribe(t, "full-live", 1)
	c.publish(t, "full-live", 1, false, []byte("not stored"))
	if got, want := c.next(t), (received{Topic: "full-live", Payload: "not stored", QoS: 1}); got != want {
		t.Fatalf("after the refusal: received %+v, want %+v", got, want)
	}

	// MQTT 3.1.1 has no negative PUBACK: the publisher is disconnected.
	v3 := connectV3(t, tcpURL(tb.MQTTAddr), nil)
	v3.Publish("full/v3", 1, true, retainedPayload(99))
	v3.waitLost(t)
	tb.waitLog(t, "record operation refused", "record=full/v3", "code=STORAGE_ERROR")

	// Overwriting an accepted topic when full either succeeds or leaves the
	// old value: never a mix. (A success frees room: this goes last.)
	resp, _ := c.pub(&paho.Publish{Topic: "full/0", QoS: 1, Retain: true, Payload: []byte("overwrite")})
	switch {
	case resp == nil:
		t.Fatal("overwrite full/0: no answer")
	case resp.ReasonCode < 0x80:
		accepted["full/0"] = []byte("overwrite")
	case resp.ReasonCode != 0x97:
		t.Fatalf("overwrite full/0: PUBACK 0x%02x, want success or 0x97", resp.ReasonCode)
	}

	checkRetained := func(t *testing.T) {
		sub := connectV5(t, tb.MQTTAddr, nil)
		sub.subscribeOpts(t, paho.SubscribeOptions{Topic: "full/#"}, paho.SubscribeOptions{Topic: "full-sentinel"})
		got := map[string][]byte{}
		for _, m := range sub.recvUntil(t, "full-sentinel") {
			got[m.Topic] = m.Payload
		}
		for topic, want := range accepted {
			if !bytes.Equal(got[topic], want) {
				t.Errorf("retained %s: %d bytes %.16q, want %d bytes %.16q", topic, len(got[topic]), got[topic], len(want), want)
			}
			delete(got, topic)
		}
		for topic := range got {
			t.Errorf("retained %s, which was refused", topic)
		}
	}
	t.Run("retained after refusals", checkRetained)
	if v := tb.metric(t, errorsSeries("store_full")); v < 2 {
		t.Errorf("%s = %v, want >= 2 (one v5 and one v3 refusal)", errorsSeries("store_full"), v)
	}
	if v := tb.metric(t, errorsSeries("store")); v != 0 {
		t.Errorf("%s = %v, want 0: a full store is store_full", errorsSeries("store"), v)
	}

	tb.restart(t)
	t.Run("retained after restart", checkRetained)
}

// An MQTT 3.1.1 client that the broker disconnects because its retained
// publish could not be stored did not send DISCONNECT, so its will is
// published [MQTT-3.1.2-8], and the log does not call it a normal
// disconnect.
func TestStoreFullDisconnectPublishesWill(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{Store: storage.Options{MaxSize: storeCap}})
	watcher := connectV5(t, tb.MQTTAddr, nil)
	watcher.subscribe(t, "wills/#", 1)
	watcher.subscribe(t, "sentinel", 1)
	fillStore(t, connectV5(t, tb.MQTTAddr, nil))

	v3 := connectV3(t, tcpURL(tb.MQTTAddr), func(o *mqtt.ClientOptions) {
		o.SetWill("wills/full", "gone: store full", 1, false)
	})
	v3.Publish("full/v3", 1, true, retainedPayload(99))
	v3.waitLost(t)
	line := tb.waitLog(t, "client disconnected", "client="+v3.ID)

	connectV5(t, tb.MQTTAddr, nil).publish(t, "sentinel", 1, false, []byte("end"))
	got := nextUntil(t, watcher, "sentinel")
	if want := []received{{Topic: "wills/full", Payload: "gone: store full", QoS: 1}}; len(got) != 1 || got[0] != want[0] {
		t.Errorf("watcher received %+v, want the will %+v", got, want)
	}
	if hasAll(line, []string{"reason=disconnect"}) {
		t.Errorf("log %q calls the broker's refusal a normal disconnect", line)
	}
}
