package broker_test

import (
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/eclipse/paho.golang/paho"
)

// Many clients writing one record at once lose no update: every change is
// applied, counted in the version, and published in version order.

const (
	concurrentClients = 20
	concurrentWrites  = 25 // per client
)

// writeConcurrently connects concurrentClients MQTT 5 clients, then has
// each publish concurrentWrites QoS 1 requests built by payload, all at
// once, and waits for every PUBACK, failing the test unless each is 0x00.
func writeConcurrently(t *testing.T, tb *testBroker, topic string, payload func(client, write int) string) {
	t.Helper()
	clients := make([]*v5Client, concurrentClients)
	for i := range clients {
		clients[i] = connectV5(t, tb.MQTTAddr, nil)
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() {
			<-start
			for j := range concurrentWrites {
				p := payload(i, j)
				resp, err := c.pub(&paho.Publish{Topic: topic, QoS: 1, Payload: []byte(p)})
				if err != nil || resp == nil || resp.ReasonCode != 0 {
					t.Errorf("client %d: %s %s: PUBACK %+v, %v", i, topic, p, resp, err)
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	// Writes that queue behind a commit of the same record share the next
	// one: if none did, the writes were not concurrent at all.
	if n := tb.metric(t, "hearth_record_changes_combined_total"); n == 0 {
		t.Errorf("hearth_record_changes_combined_total = 0: no write waited for another")
	}
}

// recordValue reads a record with $rec/get and returns its version and the
// JSON of its value.
func recordValue(t *testing.T, tb *testBroker, name string) (uint64, json.RawMessage) {
	t.Helper()
	rq := rec("get", name, "")
	rep := newV5Requester(t, tb).send(t, rq)
	var body struct {
		Version uint64
		Value   json.RawMessage
		Error   string
	}
	if err := json.Unmarshal(rep.Body, &body); err != nil || body.Error != "" {
		t.Fatalf("%s: reply %s (%v)", rq, rep.Body, err)
	}
	return body.Version, body.Value
}

// checkVersionOrder reads the deliveries of every change of topic from sub
// and checks that their versions are 1, 2, ... n in that order.
func checkVersionOrder(t *testing.T, sub *v5Client, topic string, n int) {
	t.Helper()
	for want := 1; want <= n; want++ {
		m := sub.recv(t)
		v, err := strconv.Atoi(m.Properties.User.Get("version"))
		if m.Topic != topic || err != nil || v != want {
			t.Fatalf("delivery %d: %s version %q, want %s version %d", want, m.Topic, m.Properties.User.Get("version"), topic, want)
		}
	}
}

// Concurrent merges of distinct fields into one record: the result holds
// every field, and the version counts every merge.
func TestRecordConcurrentMerges(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	const name = "shared/doc"
	sub := connectV5(t, tb.MQTTAddr, nil)
	sub.subscribe(t, name, 1)

	writeConcurrently(t, tb, "$rec/merge/"+name, func(i, j int) string {
		return fmt.Sprintf(`{"c%02d":{"w%02d":%d}}`, i, j, i*100+j)
	})
	if t.Failed() {
		t.FailNow()
	}

	version, value := recordValue(t, tb, name)
	if want := uint64(concurrentClients * concurrentWrites); version != want {
		t.Errorf("version %d after %d merges", version, want)
	}
	var doc map[string]map[string]int
	if err := json.Unmarshal(value, &doc); err != nil {
		t.Fatalf("value %s: %v", value, err)
	}
	missing := 0
	for i := range concurrentClients {
		for j := range concurrentWrites {
			if v, ok := doc[fmt.Sprintf("c%02d", i)][fmt.Sprintf("w%02d", j)]; !ok || v != i*100+j {
				missing++
			}
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d merged fields lost or wrong: %s", missing, concurrentClients*concurrentWrites, value)
	}
	checkVersionOrder(t, sub, name, concurrentClients*concurrentWrites)
}

// Concurrent appends to one list: every element is there once, each
// client's in the order it sent them, and the version counts every append.
func TestRecordConcurrentAppends(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	const name = "shared/list"
	sub := connectV5(t, tb.MQTTAddr, nil)
	sub.subscribe(t, name, 1)

	writeConcurrently(t, tb, "$rec/append/"+name, func(i, j int) string {
		return fmt.Sprintf(`{"path":"items","value":[%d,%d]}`, i, j)
	})
	if t.Failed() {
		t.FailNow()
	}

	version, value := recordValue(t, tb, name)
	if want := uint64(concurrentClients * concurrentWrites); version != want {
		t.Errorf("version %d after %d appends", version, want)
	}
	var doc struct{ Items [][2]int }
	if err := json.Unmarshal(value, &doc); err != nil {
		t.Fatalf("value %s: %v", value, err)
	}
	if len(doc.Items) != concurrentClients*concurrentWrites {
		t.Errorf("%d elements after %d appends", len(doc.Items), concurrentClients*concurrentWrites)
	}
	next := make([]int, concurrentClients) // each client's next expected write
	for k, it := range doc.Items {
		i, j := it[0], it[1]
		switch {
		case i < 0 || i >= concurrentClients:
			t.Fatalf("element %d is %v: no client %d", k, it, i)
		case j != next[i]:
			t.Fatalf("element %d is %v: client %d's next append was %d", k, it, i, next[i])
		}
		next[i]++
	}
	checkVersionOrder(t, sub, name, concurrentClients*concurrentWrites)
}
