package broker_test

import (
	"fmt"
	"slices"
	"testing"
)

// Delivery QoS is the minimum of the publish QoS and the subscription QoS,
// across both protocol versions in both directions.
func TestPublishSubscribeQoS(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	for _, pubProto := range protocols {
		for _, subProto := range protocols {
			pub := pubProto.connect(t, tb)
			sub := subProto.connect(t, tb)
			topic := func(pubQoS, subQoS byte) string {
				return fmt.Sprintf("qos/pub%s-%d/sub%s-%d", pubProto.name, pubQoS, subProto.name, subQoS)
			}
			// Subscribe before any delivery: mochi checks a client's packet
			// ids against the QoS 1/2 messages it is sending that client.
			for pubQoS := byte(0); pubQoS <= 2; pubQoS++ {
				for subQoS := byte(0); subQoS <= 2; subQoS++ {
					sub.subscribe(t, topic(pubQoS, subQoS), subQoS)
				}
			}
			for pubQoS := byte(0); pubQoS <= 2; pubQoS++ {
				for subQoS := byte(0); subQoS <= 2; subQoS++ {
					topic := topic(pubQoS, subQoS)
					t.Run(topic[len("qos/"):], func(t *testing.T) {
						payload := "payload of " + topic
						pub.publish(t, topic, pubQoS, false, []byte(payload))
						got := sub.next(t)
						want := received{Topic: topic, Payload: payload, QoS: min(pubQoS, subQoS), Retain: false}
						if got != want {
							t.Fatalf("received %+v, want %+v", got, want)
						}
					})
				}
			}
		}
	}
}

func TestWildcards(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	pub := connectV5(t, tb.MQTTAddr, nil)
	tests := []struct {
		filter, topic string
		match         bool
	}{
		{"sensors/+/temp", "sensors/k1/temp", true},
		{"sensors/+/temp", "sensors/k1/hum", false},
		{"sensors/+/temp", "sensors/k1/x/temp", false},
		{"sensors/+/temp", "sensors/temp", false},
		{"sensors/+", "sensors/", true}, // an empty level is a level
		{"sensors/#", "sensors", true},  // # also matches the parent level
		{"sensors/#", "sensors/k1/temp", true},
		{"sensors/#", "other/k1/temp", false},
		{"+/+", "a/b", true},
		{"+", "a/b", false},
		{"#", "anything/at/all", true},
		{"#", "$hearth/x", false}, // [MQTT-4.7.2-1]: wildcards first do not match $ topics
		{"+/x", "$hearth/x", false},
		{"$hearth/#", "$hearth/x", true},
		{"Sensors/#", "sensors/k1", false}, // topics are case-sensitive
	}
	for i, tt := range tests {
		t.Run(fmt.Sprintf("%s~%s", tt.filter, tt.topic), func(t *testing.T) {
			sub := connectV5(t, tb.MQTTAddr, nil)
			sentinel := fmt.Sprintf("sentinel/%d", i)
			sub.subscribe(t, tt.filter, 1)
			sub.subscribe(t, sentinel, 1)
			pub.publish(t, tt.topic, 1, false, []byte("m"))
			pub.publish(t, sentinel, 1, false, []byte("end"))
			got := nextUntil(t, sub, sentinel)
			var want []received
			if tt.match {
				want = []received{{Topic: tt.topic, Payload: "m", QoS: 1}}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("received %+v, want %+v", got, want)
			}
		})
	}
}

// A subscription to # does not receive the broker's $SYS topics, which an
// explicit $SYS subscription does (as retained messages).
func TestHashDoesNotMatchSys(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	pub := connectV5(t, tb.MQTTAddr, nil)

	sys := connectV5(t, tb.MQTTAddr, nil)
	sys.subscribe(t, "$SYS/broker/version", 0)
	if got := sys.next(t); got.Topic != "$SYS/broker/version" || got.Payload == "" || !got.Retain {
		t.Fatalf("$SYS subscription received %+v, want the retained broker version", got)
	}

	all := connectV5(t, tb.MQTTAddr, nil)
	all.subscribe(t, "#", 0)
	pub.publish(t, "sentinel", 1, false, []byte("end"))
	if got := nextUntil(t, all, "sentinel"); len(got) != 0 {
		t.Fatalf("# received %+v before the sentinel, want nothing", got)
	}
}

// Each message published to a shared subscription's topic goes to exactly
// one member of the group, whatever the members' protocol versions.
func TestSharedSubscription(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	const n = 40
	members := []testClient{
		connectV5(t, tb.MQTTAddr, nil),
		connectV3(t, tcpURL(tb.MQTTAddr), nil),
		connectV5(t, tb.MQTTAddr, nil),
	}
	for _, m := range members {
		m.subscribe(t, "$share/workers/jobs", 1)
		m.subscribe(t, "jobs/done", 1)
	}
	plain := connectV5(t, tb.MQTTAddr, nil) // not shared: gets every message
	plain.subscribe(t, "jobs", 1)
	plain.subscribe(t, "jobs/done", 1)

	pub := connectV5(t, tb.MQTTAddr, nil)
	for i := range n {
		pub.publish(t, "jobs", 1, false, fmt.Appendf(nil, "job-%d", i))
	}
	pub.publish(t, "jobs/done", 1, false, []byte("end"))

	seen := map[string]int{}
	for i, m := range members {
		got := nextUntil(t, m, "jobs/done")
		t.Logf("member %d received %d messages", i, len(got))
		for _, r := range got {
			if r.Topic != "jobs" || r.QoS != 1 {
				t.Errorf("member %d received %+v, want topic jobs at QoS 1", i, r)
			}
			seen[r.Payload]++
		}
	}
	for i := range n {
		p := fmt.Sprintf("job-%d", i)
		if seen[p] != 1 {
			t.Errorf("%s delivered %d times to the group, want exactly once", p, seen[p])
		}
		delete(seen, p)
	}
	if len(seen) != 0 {
		t.Errorf("group received unexpected messages %v", seen)
	}
	if got := nextUntil(t, plain, "jobs/done"); len(got) != n {
		t.Errorf("non-shared subscriber received %d messages, want %d", len(got), n)
	}
}
