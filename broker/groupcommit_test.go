package broker_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/eclipse/paho.golang/paho"
)

// Concurrent retained QoS 1 publishes share group commits: every PUBACK
// waits for its sync, yet there are fewer commits than publishes, and every
// acknowledged value is there after a restart.
func TestRetainedGroupCommit(t *testing.T) {
	t.Parallel()
	const clients, each = 32, 20
	tb := startBroker(t, brokerOpts{})
	pubs := make([]*v5Client, clients)
	for i := range pubs {
		pubs[i] = connectV5(t, tb.MQTTAddr, nil)
	}
	want := map[string]string{}
	for c := range clients {
		for j := range each {
			want[fmt.Sprintf("gc/%02d/%02d", c, j)] = fmt.Sprintf("value %d.%d", c, j)
		}
	}

	start := make(chan struct{})
	errs := make(chan error, clients*each)
	var wg sync.WaitGroup
	for c, pub := range pubs {
		wg.Go(func() {
			<-start
			for j := range each {
				topic := fmt.Sprintf("gc/%02d/%02d", c, j)
				resp, err := pub.pub(&paho.Publish{Topic: topic, QoS: 1, Retain: true, Payload: []byte(want[topic])})
				if err != nil || resp.ReasonCode >= 0x80 {
					errs <- fmt.Errorf("publish %s: %+v, %v", topic, resp, err)
				}
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}

	m := tb.scrape(t)
	commits, changes := m["hearth_store_commit_seconds_count"], m["hearth_store_commit_changes_sum"]
	t.Logf("%d retained publishes in %v commits", clients*each, commits)
	if commits < 1 || commits >= clients*each {
		t.Errorf("%v commits for %d concurrent retained publishes, want fewer: batches", commits, clients*each)
	}
	// Each client's presence record was written when it connected, before
	// its publishes, and so committed before the last of them.
	if changes != clients*each+clients {
		t.Errorf("%v changes committed, want %d publishes and %d presence records", changes, clients*each, clients)
	}

	pubs[0].publish(t, "gc-sentinel", 1, true, []byte("end"))
	tb.restart(t)
	if got := tb.metric(t, "hearth_retained_messages"); got != clients*each+1+clients {
		t.Errorf("after restart: hearth_retained_messages = %v, want %d and %d presence records", got, clients*each+1, clients)
	}
	sub := connectV5(t, tb.MQTTAddr, nil)
	sub.subscribeOpts(t, paho.SubscribeOptions{Topic: "gc/#"}, paho.SubscribeOptions{Topic: "gc-sentinel"})
	got := map[string]string{}
	for _, r := range nextUntil(t, sub, "gc-sentinel") {
		if !r.Retain {
			t.Errorf("%s delivered without the retain flag", r.Topic)
		}
		got[r.Topic] = r.Payload
	}
	for topic, payload := range want {
		if got[topic] != payload {
			t.Errorf("after restart: %s = %q, want %q", topic, got[topic], payload)
		}
	}
	if len(got) != len(want) {
		t.Errorf("after restart: %d retained gc/ topics, want %d", len(got), len(want))
	}
}
