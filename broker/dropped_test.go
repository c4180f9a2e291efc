package broker_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/broker"
)

// rawSubscribe sends an MQTT 3.1.1 SUBSCRIBE (packet id 1) for filter at
// QoS 0 and waits for its SUBACK.
func (c *rawConn) rawSubscribe(t testing.TB, filter string) {
	t.Helper()
	body := appendString([]byte{0, 1}, filter)
	c.send(t, packet(0x82, append(body, 0)))
	p, err := c.read(waitTimeout)
	if err != nil || p.Type != 9 {
		t.Fatalf("SUBACK: %+v, %v", p, err)
	}
}

// A subscriber that stops reading loses the messages its outbound queue
// (limits.max_pending_writes) cannot hold: they are counted as dropped and
// logged, and the publisher and other subscribers are not held up.
func TestSlowSubscriberDrops(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{Limits: broker.Limits{MaxPendingWrites: 8}})
	stuck := dialRaw(t, tb.MQTTAddr)
	stuck.connect(t, "stuck-reader", nil)
	stuck.rawSubscribe(t, "flood/#")

	healthy := connectV5(t, tb.MQTTAddr, nil)
	healthy.subscribe(t, "flood/#", 0)
	pub := connectV5(t, tb.MQTTAddr, nil)

	// 8 MiB in 2 KiB messages: more than the loopback socket buffers hold,
	// so the stuck reader's queue fills. The publisher is never held up.
	payload := bytes.Repeat([]byte("x"), 2048)
	for range 4096 {
		pub.publish(t, "flood/x", 0, false, payload)
	}
	tb.waitMetric(t, errorsSeries("dropped"), ">= 1", func(v float64) bool { return v >= 1 })
	tb.waitLog(t, "messages dropped: client outbound queue full", "max_pending_writes=8") // rate-limited: names the first client to drop

	// The reading subscriber is still served: once its own small queue
	// drains, a new message reaches it. Publish the sentinel until it does.
	deadline := time.Now().Add(waitTimeout)
	for {
		pub.publish(t, "flood/end", 0, false, []byte("end"))
		select {
		case m := <-healthy.msgs:
			if m.Topic == "flood/end" {
				return
			}
			continue
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the reading subscriber received nothing after the flood")
		}
	}
}
