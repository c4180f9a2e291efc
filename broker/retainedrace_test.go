package broker_test

import (
	"fmt"
	"sync"
	"testing"
)

// Retained values replaced while another client subscribes over them: every
// subscription scans the retained index as it changes. Under -race this
// catches mochi reading retained paths without the index lock (replacing an
// existing topic's value takes only read locks on the way down).
func TestRetainedScanWhilePublishing(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	pub := connectV5(t, tb.MQTTAddr, nil)
	sub := connectV5(t, tb.MQTTAddr, nil)
	const n = 10
	done := make(chan struct{})
	go func() { // each subscription delivers the retained messages: drain them
		for {
			select {
			case <-sub.msgs:
			case <-done:
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for i := range n {
		pub.publish(t, fmt.Sprintf("scan/%d", i), 0, true, []byte("v"))
	}
	wg.Go(func() {
		for round := range 100 {
			for i := range n {
				pub.publish(t, fmt.Sprintf("scan/%d", i), 0, true, fmt.Appendf(nil, "v%d", round))
			}
		}
	})
	for range 30 {
		sub.subscribe(t, "scan/#", 0)
		sub.unsubscribe(t, "scan/#")
	}
	wg.Wait()
	close(done)
	pub.publish(t, "scan/last", 1, true, []byte("v")) // QoS 1: acknowledged once retained

	late := connectV5(t, tb.MQTTAddr, nil)
	late.subscribe(t, "scan/#", 0)
	got := map[string]bool{}
	for len(got) < n+1 {
		got[late.recv(t).Topic] = true
	}
}
