package broker_test

import (
	"encoding/json"
	"testing"
)

// A will cannot write the broker's topics: mochi checks a client's own
// publishes against the ACL, not its will, so the hook refuses a will to
// $presence/<id> or $listen/... itself. The record is unchanged and no
// listener gets the forged notification.
func TestWillToBrokerTopicsRefused(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	victim := connectV5(t, tb.MQTTAddr, nil)
	watcher := connectV5(t, tb.MQTTAddr, nil)
	watcher.subscribe(t, "$presence/"+victim.ID, 0)
	watcher.subscribe(t, "$listen/forged/#", 0)
	if got := presenceOf(t, watcher.next(t)); got["online"] != true {
		t.Fatalf("victim's presence = %v, want online", got)
	}

	for _, topic := range []string{"$presence/" + victim.ID, "$listen/forged/x"} {
		c := dialRaw(t, tb.MQTTAddr)
		id := clientID(t, "forger")
		c.connect(t, id, &rawWill{Topic: topic, Payload: `{"online":false,"filter":"forged/x","subscribed":true}`, QoS: 1, Retain: true})
		_ = c.Close()
		tb.waitLog(t, "will refused", "client="+id, "topic="+topic)
	}

	// The next thing the watcher sees is the victim's real disconnect.
	victim.close()
	got := watcher.next(t)
	if got.Topic != "$presence/"+victim.ID {
		t.Fatalf("watcher got %+v, want the victim's presence change", got)
	}
	if doc := presenceOf(t, got); doc["online"] != false || doc["reason"] != "clean" {
		t.Fatalf("victim's presence = %v, want offline, reason clean (not the forged will)", doc)
	}
	if n := tb.metric(t, errorsSeries("denied")); n != 2 {
		t.Errorf("denied = %v, want 2", n)
	}
}

func presenceOf(t testing.TB, m received) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal([]byte(m.Payload), &doc); err != nil {
		t.Fatalf("presence %s: %q is not JSON: %v", m.Topic, m.Payload, err)
	}
	return doc
}
