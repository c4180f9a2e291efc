package broker_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/hearth-iot/hearth/broker"
)

// rawSubscribeQoS is an MQTT 3.1.1 SUBSCRIBE of filter at qos.
func rawSubscribeQoS(filter string, qos byte, id uint16) []byte {
	body := appendString(binary.BigEndian.AppendUint16(nil, id), filter)
	return packet(0x82, append(body, qos))
}

// restoredInflight is the inflight count of the newest "restored state" log line.
func restoredInflight(t *testing.T, tb *testBroker) int {
	t.Helper()
	tb.waitLog(t, "restored state")
	var line string
	for _, l := range tb.logs.lines() { // the newest: restart logs it again
		if strings.Contains(l, "restored state") {
			line = l
		}
	}
	m := regexp.MustCompile(`inflight=(\d+)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("no inflight count in %q", line)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// Once the subscriber has sent PUBREC for an outgoing QoS 2 message, the
// broker must resend PUBREL, never the PUBLISH (MQTT 4.3.3), also when the
// session is resumed after a restart.
func TestPubrelSurvivesRestart(t *testing.T) {
	tb := startBroker(t, brokerOpts{})
	id := clientID(t, "qos2")
	c := dialRaw(t, tb.MQTTAddr)
	c.send(t, rawConnect(id, 30, false, nil))
	if p, err := c.read(waitTimeout); err != nil || p.Type != typeConnack {
		t.Fatalf("CONNACK: %+v, %v", p, err)
	}
	c.send(t, rawSubscribeQoS("qos2/#", 2, 1))
	if p, err := c.read(waitTimeout); err != nil || p.Type != 9 {
		t.Fatalf("SUBACK: %+v, %v", p, err)
	}
	connectV5(t, tb.MQTTAddr, nil).publish(t, "qos2/a", 2, false, []byte("exactly once"))
	p, err := c.read(waitTimeout)
	if err != nil || p.Type != typePublish {
		t.Fatalf("PUBLISH: %+v, %v", p, err)
	}
	pid := binary.BigEndian.Uint16(p.Body[2+len("qos2/a"):])
	c.send(t, packet(5<<4, binary.BigEndian.AppendUint16(nil, pid))) // PUBREC
	if p, err := c.read(waitTimeout); err != nil || p.Type != 6 {
		t.Fatalf("after PUBREC: %+v, %v, want PUBREL", p, err)
	}
	_ = c.Close() // without PUBCOMP
	tb.waitLog(t, "client disconnected", "client="+id)
	tb.restart(t)

	c = dialRaw(t, tb.MQTTAddr)
	c.send(t, rawConnect(id, 30, false, nil))
	if p, err := c.read(waitTimeout); err != nil || p.Type != typeConnack || p.Body[0]&1 != 1 {
		t.Fatalf("CONNACK on resume: %+v, %v, want session present", p, err)
	}
	p, err = c.read(waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if p.Type != 6 || binary.BigEndian.Uint16(p.Body) != pid {
		t.Fatalf("resumed after a restart: got packet type %d (body % x), want PUBREL for id %d", p.Type, p.Body, pid)
	}
}

// A resumed session whose resend fails part-way (here: the client now
// allows only small packets) keeps every queued message in the store.
func TestFailedResendKeepsQueuedMessages(t *testing.T) {
	tb := startBroker(t, brokerOpts{})
	id := clientID(t, "resend")
	c := connectV5(t, tb.MQTTAddr, persistentV5(id, 300))
	c.subscribe(t, "resend/#", 1)
	c.close()
	tb.waitLog(t, "client disconnected", "client="+id)
	pub := connectV5(t, tb.MQTTAddr, nil)
	for _, payload := range []string{"small-1", strings.Repeat("x", 2000), "small-3"} {
		pub.publish(t, "resend/a", 1, false, []byte(payload))
	}
	tb.waitMetric(t, "hearth_inflight_messages", "3", func(v float64) bool { return v == 3 })

	cp := persistentV5(id, 300)
	cp.Properties.MaximumPacketSize = ptr(uint32(500))
	_, _ = dialV5(t, tb.MQTTAddr, cp) // the resend fails on the second message
	tb.waitLog(t, "resend inflight")
	tb.restart(t)
	if got := restoredInflight(t, tb); got != 3 {
		t.Fatalf("restored %d queued messages, want 3", got)
	}
}

// A QoS 1 message dropped because the subscriber's outbound queue was
// full is gone from the store too: a restart restores what memory held.
func TestDroppedQueuedMessagesLeaveTheStore(t *testing.T) {
	tb := startBroker(t, brokerOpts{Limits: broker.Limits{MaxPendingWrites: 1}})
	id := clientID(t, "slow")
	slow := dialRaw(t, tb.MQTTAddr)
	slow.send(t, rawConnect(id, 60, false, nil))
	if p, err := slow.read(waitTimeout); err != nil || p.Type != typeConnack {
		t.Fatalf("CONNACK: %+v, %v", p, err)
	}
	slow.send(t, rawSubscribeQoS("slow/#", 1, 1))
	if p, err := slow.read(waitTimeout); err != nil || p.Type != 9 {
		t.Fatalf("SUBACK: %+v, %v", p, err)
	}
	// The slow client never reads again. QoS 0 traffic fills its queue.
	pubID := clientID(t, "pub")
	pub := dialRaw(t, tb.MQTTAddr)
	pub.send(t, rawConnect(pubID, 60, true, nil))
	if p, err := pub.read(waitTimeout); err != nil || p.Type != typeConnack {
		t.Fatalf("CONNACK: %+v, %v", p, err)
	}
	// Fill the queue first, so that the QoS 1 messages after it meet a full
	// queue whatever the timing.
	big := bytes.Repeat([]byte("x"), 64<<10)
	for range 200 {
		pub.send(t, rawPublish("slow/a", 0, false, 0, big))
	}
	tb.waitMetric(t, errorsSeries("dropped"), ">= 1", func(v float64) bool { return v >= 1 })
	for i := range 200 {
		pub.send(t, rawPublish("slow/b", 1, false, uint16(i+1), []byte(fmt.Sprint(i))))
	}
	_ = pub.Close() // the broker processes all it was sent, then the EOF
	tb.waitLog(t, "client disconnected", "client="+pubID)
	_ = slow.Close()
	tb.waitLog(t, "client disconnected", "client="+id)

	// What memory holds is what a resume resends; after a restart the
	// store must make the broker resend exactly as many.
	before := resentQoS1(t, tb, id)
	tb.restart(t)
	after := resentQoS1(t, tb, id)
	if before >= 200 {
		t.Fatalf("%d of 200 QoS 1 messages resent: the test did not drop any", before)
	}
	if after != before {
		t.Fatalf("resumed after a restart: %d QoS 1 messages resent, before the restart %d", after, before)
	}
}

// resentQoS1 resumes id's session, counts the QoS 1 PUBLISH packets the
// broker resends (without acknowledging them), and disconnects.
func resentQoS1(t *testing.T, tb *testBroker, id string) int {
	t.Helper()
	c := dialRaw(t, tb.MQTTAddr)
	c.send(t, rawConnect(id, 60, false, nil))
	if p, err := c.read(waitTimeout); err != nil || p.Type != typeConnack {
		t.Fatalf("CONNACK: %+v, %v", p, err)
	}
	n := 0
	for {
		p, err := c.read(2 * time.Second) // resends follow CONNACK at once
		if err != nil {
			break
		}
		if p.Type == typePublish && p.Flags&0x06 == 0x02 {
			n++
		}
	}
	_ = c.Close()
	tb.waitLog(t, "client disconnected", "client="+id, "remote="+c.LocalAddr().String())
	return n
}

// A successful QoS 1 publish is acknowledged with reason code 0x00 (MQTT
// 5.0 section 3.4.2.1); upstream mochi sent 0x01, a SUBACK code, whenever
// the PUBACK carried properties (it inherits the publish's).
func TestPubackSuccessCode(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	c := connectV5(t, tb.MQTTAddr, nil)
	for _, retain := range []bool{false, true} {
		resp, err := c.pub(&paho.Publish{Topic: "puback/code", QoS: 1, Retain: retain, Payload: []byte("x"),
			Properties: &paho.PublishProperties{User: paho.UserProperties{{Key: "k", Value: "v"}}}})
		if err != nil {
			t.Fatal(err)
		}
		if resp.ReasonCode != 0 {
			t.Errorf("PUBACK (retain %v) reason code = 0x%02x, want 0x00", retain, resp.ReasonCode)
		}
	}
}

// A subscriber that stops reading must not hold up publishers. mochi
// allocated the subscriber's packet id under the lock its writer holds
// while blocked on the full socket, so every QoS 1 publish to that
// subscriber waited for it (up to 1.5 times its keepalive).
func TestStuckSubscriberDoesNotBlockPublishers(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{Limits: broker.Limits{MaxPendingWrites: 1}})
	stuck := dialRaw(t, tb.MQTTAddr)
	stuck.connect(t, clientID(t, "stuck"), nil)
	stuck.send(t, rawSubscribeQoS("stuck/#", 1, 1))
	if p, err := stuck.read(waitTimeout); err != nil || p.Type != 9 {
		t.Fatalf("SUBACK: %+v, %v", p, err)
	}
	pub := connectV5(t, tb.MQTTAddr, nil)
	big := bytes.Repeat([]byte("x"), 64<<10)
	for range 200 { // fill the socket buffers and the queue: the writer blocks
		pub.publish(t, "stuck/a", 0, false, big)
	}
	tb.waitMetric(t, errorsSeries("dropped"), ">= 1", func(v float64) bool { return v >= 1 })
	for i := range 20 { // each waits for its PUBACK, within waitTimeout
		pub.publish(t, "stuck/b", 1, false, fmt.Appendf(nil, "%d", i))
	}
}
