package broker_test

import (
	"testing"

	"github.com/hearth-iot/hearth/storage"
)

// An expired session leaves nothing behind: not its subscriptions in the
// topic index (mochi drops only the client), not its stored state.
func TestExpiredSessionLeavesNothing(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	id := clientID(t, "expiring")
	c := connectV5(t, tb.MQTTAddr, persistentV5(id, 1))
	c.subscribe(t, "expiry/a", 1)
	c.subscribe(t, "expiry/b/#", 1)
	if got := tb.metric(t, "hearth_subscriptions"); got != 2 {
		t.Fatalf("hearth_subscriptions = %v after subscribing, want 2", got)
	}
	c.close()
	tb.waitLog(t, "session expired", "client="+id)
	tb.waitMetric(t, "hearth_subscriptions", "0", func(v float64) bool { return v == 0 })
	tb.waitMetric(t, "hearth_sessions", "0", func(v float64) bool { return v == 0 })

	tb.stop(t)
	tb.inspectStore(t, func(s *storage.Store) {
		subs, err := s.Subscriptions()
		if err != nil {
			t.Fatal(err)
		}
		sessions, err := s.Sessions()
		if err != nil {
			t.Fatal(err)
		}
		if len(subs) != 0 || len(sessions) != 0 {
			t.Errorf("store after expiry: %d sessions, %d subscriptions, want none", len(sessions), len(subs))
		}
	})
}
