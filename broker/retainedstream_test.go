package broker_test

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/hearth-iot/hearth/broker"
	"github.com/hearth-iot/hearth/broker/codec"
	"github.com/hearth-iot/hearth/broker/record"
	"github.com/hearth-iot/hearth/storage"
)

// A new subscription's retained messages are streamed from the store, paced
// to the client: however many records match, each arrives once, in topic
// order, and none is dropped for a full queue.

// putRecords writes n records prefix/00000 ... through the broker's own API,
// from a few goroutines at once, with the JSON value {"i":<index>} padded
// to about size bytes.
func putRecords(t *testing.T, tb *testBroker, prefix string, n, size int) {
	t.Helper()
	pad := string(bytes.Repeat([]byte("x"), max(0, size-20)))
	var wg sync.WaitGroup
	const writers = 8
	for w := range writers {
		wg.Go(func() {
			for i := w; i < n; i += writers {
				p := fmt.Sprintf(`{"i":%d,"pad":%q}`, i, pad)
				_, err := tb.B.Records().Apply(record.Op{Kind: record.Put, Name: recordName(prefix, i), Writer: "test",
					Payload: codec.NewPayload([]byte(p), codec.JSON, codec.Limits{})})
				if err != nil {
					t.Errorf("put %s: %v", recordName(prefix, i), err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

func recordName(prefix string, i int) string { return fmt.Sprintf("%s/%05d", prefix, i) }

// Many more records than a client's outbound queue and inflight window hold
// all reach a new subscriber, at QoS 0 (MQTT 3.1.1) and QoS 1 (MQTT 5),
// once each and in topic order, with nothing dropped. Subscribing again
// sends them all again.
func TestRetainedStreamBeyondQueue(t *testing.T) {
	t.Parallel()
	const n = 3000
	tb := startBroker(t, brokerOpts{Limits: broker.Limits{MaxPendingWrites: 16, MaxInflight: 32}})
	putRecords(t, tb, "many", n, 64)
	tb.restart(t) // an empty record cache: the scan must not fill it

	check := func(t *testing.T, next func() (topic string, retain bool, version string)) {
		t.Helper()
		for i := range n {
			topic, retain, version := next()
			if want := recordName("many", i); topic != want || !retain || version != "1" {
				t.Fatalf("retained message %d: %s (retain %v, version %q); want %s, retained, version 1", i, topic, retain, version, want)
			}
		}
	}
	v5 := connectV5(t, tb.MQTTAddr, nil)
	v3 := connectV3(t, tcpURL(tb.MQTTAddr), nil)
	v5.subscribe(t, "many/#", 1)
	v3.subscribe(t, "many/+", 0)
	var wg sync.WaitGroup
	wg.Go(func() {
		check(t, func() (string, bool, string) {
			m := v5.recv(t)
			return m.Topic, m.Retain, userProperty(m, "version")
		})
	})
	check(t, func() (string, bool, string) {
		m := v3.recv(t)
		return m.Topic(), m.Retained(), "1" // MQTT 3.1.1 has no properties
	})
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	// Every QoS 1 delivery acknowledged first: mochi shares one packet id
	// namespace between the client's SUBSCRIBE and its own PUBLISHes.
	tb.waitMetric(t, "hearth_inflight_messages", "0", func(v float64) bool { return v == 0 })
	v5.subscribe(t, "many/#", 1) // again: MQTT-3.8.4-3 sends the retained messages again
	check(t, func() (string, bool, string) {
		m := v5.recv(t)
		return m.Topic, m.Retain, userProperty(m, "version")
	})
	tb.waitMetric(t, "hearth_retained_streams", "0", func(v float64) bool { return v == 0 })
	if got := tb.metric(t, "hearth_retained_sent_total"); got != 3*n {
		t.Errorf("hearth_retained_sent_total = %v, want %d", got, 3*n)
	}
	if got := tb.metric(t, errorsSeries("dropped")); got != 0 {
		t.Errorf("%s = %v, want 0: the stream must wait for room, not overflow", errorsSeries("dropped"), got)
	}
	// The scan went around the record cache, not through it.
	if got := tb.metric(t, "hearth_record_cache_records"); got > n/10 {
		t.Errorf("hearth_record_cache_records = %v after streaming %d records: the scan filled the cache", got, n)
	}
}

// Changes published while a subscription's retained messages are streaming
// never arrive before an older version of the same record, nor twice: per
// record, the versions a subscriber sees strictly go up (a version published
// live while the stream runs is not streamed again), and the last is the
// current one.
func TestRetainedStreamKeepsVersionOrder(t *testing.T) {
	t.Parallel()
	const n, changed = 1500, 300
	// The default queue (1024) holds the stream's 64 and all 600 live
	// changes: a live QoS 0 change that found the queue full would be
	// dropped, as MQTT allows, and the last version seen would be older.
	tb := startBroker(t, brokerOpts{})
	putRecords(t, tb, "live", n, 64)

	sub := connectV5(t, tb.MQTTAddr, nil)
	sub.subscribe(t, "live/#", 1)
	// Change records from the end of the topic order, which the stream
	// reaches last, while it runs.
	var writes sync.WaitGroup
	for w := range 4 {
		writes.Go(func() {
			for i := n - 1 - w; i >= n-changed; i -= 4 {
				for range 2 {
					_, err := tb.B.Records().Apply(record.Op{Kind: record.Merge, Name: recordName("live", i), Writer: "test",
						Value: map[string]any{"changed": true}})
					if err != nil {
						t.Errorf("merge: %v", err)
						return
					}
				}
			}
		})
	}
	writes.Wait()
	tb.waitMetric(t, "hearth_retained_streams", "0", func(v float64) bool { return v == 0 })
	end := connectV5(t, tb.MQTTAddr, nil)
	end.publish(t, "live/~end", 1, false, []byte("end")) // an event: after everything queued before it

	if got := tb.metric(t, errorsSeries("dropped")); got != 0 {
		t.Fatalf("%s = %v: live changes were dropped for a full queue, so the test cannot judge the order", errorsSeries("dropped"), got)
	}
	last := map[string]uint64{}
	for _, m := range sub.recvUntil(t, "live/~end") {
		v, err := strconv.ParseUint(userProperty(m, "version"), 10, 64)
		if err != nil {
			t.Fatalf("%s: version %q", m.Topic, userProperty(m, "version"))
		}
		if v <= last[m.Topic] {
			// Equal: a version published live while the stream ran, and
			// then streamed again.
			t.Fatalf("%s: version %d after version %d", m.Topic, v, last[m.Topic])
		}
		last[m.Topic] = v
	}
	if len(last) != n {
		t.Fatalf("%d records seen, want %d", len(last), n)
	}
	for i := range n {
		name := recordName("live", i)
		want := uint64(1)
		if i >= n-changed {
			want = 3 // the put and two merges
		}
		if last[name] != want {
			t.Errorf("%s: last version seen %d, current %d", name, last[name], want)
		}
	}
}

// rawSubscriber connects an MQTT 3.1.1 client over a bare socket and
// subscribes it to filter at QoS 0, reading CONNACK and SUBACK and nothing
// more: a client that has stopped reading.
func rawSubscriber(t *testing.T, addr, id, filter string) *rawConn {
	t.Helper()
	c := dialRaw(t, addr)
	c.connect(t, id, nil)
	c.rawSubscribe(t, filter)
	return c
}

// A client that leaves while its retained messages are streaming ends the
// stream: nothing keeps reading the store for it.
func TestRetainedStreamEndsWithClient(t *testing.T) {
	t.Parallel()
	const n = 2000
	tb := startBroker(t, brokerOpts{})
	putRecords(t, tb, "gone", n, 16<<10) // 32 MB: more than the socket buffers take

	conn := rawSubscriber(t, tb.MQTTAddr, "stream-gone", "gone/#")
	tb.waitMetric(t, "hearth_retained_streams", "1", func(v float64) bool { return v == 1 })
	_ = conn.Close()
	tb.waitMetric(t, "hearth_retained_streams", "0", func(v float64) bool { return v == 0 })
	if sent := tb.metric(t, "hearth_retained_sent_total"); sent >= n {
		t.Errorf("hearth_retained_sent_total = %v: all %d records went to a client that read none", sent, n)
	}
}

// Unsubscribing ends the stream of that subscription, even while the client
// is not reading.
func TestRetainedStreamEndsOnUnsubscribe(t *testing.T) {
	t.Parallel()
	const n = 2000
	tb := startBroker(t, brokerOpts{})
	putRecords(t, tb, "unsub", n, 16<<10)

	conn := rawSubscriber(t, tb.MQTTAddr, "stream-unsub", "unsub/#")
	tb.waitMetric(t, "hearth_retained_streams", "1", func(v float64) bool { return v == 1 })
	conn.send(t, packet(0xa2, appendString([]byte{0, 2}, "unsub/#")))
	tb.waitMetric(t, "hearth_retained_streams", "0", func(v float64) bool { return v == 0 })
	if sent := tb.metric(t, "hearth_retained_sent_total"); sent >= n {
		t.Errorf("hearth_retained_sent_total = %v: all %d records went to a client that read none", sent, n)
	}
}

// The retained messages of one SUBSCRIBE's filters come in the order of the
// filters, and before those of the next SUBSCRIBE.
func TestRetainedStreamSubscribeOrder(t *testing.T) {
	t.Parallel()
	const n = 200
	tb := startBroker(t, brokerOpts{Limits: broker.Limits{MaxPendingWrites: 16}})
	for _, p := range []string{"ord/a", "ord/b", "ord/c"} {
		putRecords(t, tb, p, n, 64)
	}
	sub := connectV5(t, tb.MQTTAddr, nil)
	// QoS 0: no QoS 1 delivery may hold a packet id that the next
	// SUBSCRIBE's could collide with (mochi shares one namespace).
	sub.subscribeOpts(t, paho.SubscribeOptions{Topic: "ord/b/#"}, paho.SubscribeOptions{Topic: "ord/a/#"})
	sub.subscribe(t, "ord/c/#", 0)
	for _, p := range []string{"ord/b", "ord/a", "ord/c"} {
		for i := range n {
			if m := sub.recv(t); m.Topic != recordName(p, i) {
				t.Fatalf("got %s, want %s", m.Topic, recordName(p, i))
			}
		}
	}
}

// A filter "x/#" also matches "x" (MQTT 4.7.1.2), which sorts before the
// topics under "x/": it comes first.
func TestRetainedStreamHashMatchesParent(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	pub := connectV5(t, tb.MQTTAddr, nil)
	for _, topic := range []string{"hp", "hp/b", "hp/b/c", "hpx", "hp-end"} {
		pub.publish(t, topic, 1, true, []byte(`{"t":"`+topic+`"}`))
	}
	sub := connectV5(t, tb.MQTTAddr, nil)
	// QoS 0: no QoS 1 delivery may hold a packet id that the next
	// SUBSCRIBE's could collide with (mochi shares one namespace).
	sub.subscribe(t, "hp/#", 0)
	sub.subscribe(t, "hp-end", 0)
	var got []string
	for _, m := range sub.recvUntil(t, "hp-end") {
		got = append(got, m.Topic)
	}
	if want := []string{"hp", "hp/b", "hp/b/c"}; !slices.Equal(got, want) {
		t.Fatalf("retained messages for hp/#: %q, want %q", got, want)
	}
}

// A subscription replaced by one with other options ends the stream of the
// old one: here MQTT 5 retain handling 2 (no retained messages) at QoS 0
// replaces a QoS 1 subscription whose stream is stalled on a client that
// reads nothing.
func TestRetainedStreamEndsWhenSubscriptionReplaced(t *testing.T) {
	t.Parallel()
	const n = 2000
	tb := startBroker(t, brokerOpts{})
	putRecords(t, tb, "repl", n, 16<<10)

	c := dialRaw(t, tb.MQTTAddr)
	c.send(t, rawConnectV5("stream-replaced"))
	if p, err := c.read(waitTimeout); err != nil || p.Type != typeConnack || len(p.Body) < 2 || p.Body[1] != 0 {
		t.Fatalf("CONNACK: %+v, %v", p, err)
	}
	subscribe := func(id byte, options byte) {
		body := appendString([]byte{0, id, 0}, "repl/#") // packet id, no properties
		c.send(t, packet(0x82, append(body, options)))
	}
	subscribe(1, 1) // QoS 1, retain handling 0
	tb.waitMetric(t, "hearth_retained_streams", "1", func(v float64) bool { return v == 1 })
	subscribe(2, 0x20) // QoS 0, retain handling 2
	tb.waitMetric(t, "hearth_retained_streams", "0", func(v float64) bool { return v == 0 })
	if sent := tb.metric(t, "hearth_retained_sent_total"); sent >= n {
		t.Errorf("hearth_retained_sent_total = %v: all %d records went to a client that read none", sent, n)
	}
}

// A record created by a QoS 0 retained publish that is not durable yet
// (here: the store waits a second before each commit) reaches a new
// subscriber too.
func TestRetainedStreamSendsPendingRecords(t *testing.T) {
	t.Parallel()
	// Long enough that the record is still pending however slow the machine.
	tb := startBroker(t, brokerOpts{Store: storage.Options{CommitDelay: 20 * time.Second}})
	pub := connectV5(t, tb.MQTTAddr, nil)
	pub.publish(t, "pend/new", 0, true, []byte(`{"v":1}`))
	deadline := time.Now().Add(waitTimeout)
	// Pending, and published: no longer being applied (a subscription
	// made before its publish would get it live, not retained).
	for len(tb.B.Records().Pending()) == 0 || tb.B.Records().Busy("pend/new") {
		if time.Now().After(deadline) {
			t.Fatal("the QoS 0 retained publish never became a pending record")
		}
		time.Sleep(time.Millisecond)
	}
	sub := connectV5(t, tb.MQTTAddr, nil)
	sub.subscribe(t, "pend/#", 1)
	m := sub.recv(t)
	if m.Topic != "pend/new" || string(m.Payload) != `{"v":1}` || !m.Retain || userProperty(m, "version") != "1" {
		t.Fatalf("got %s %q (retain %v, version %q), want pend/new {\"v\":1} retained at version 1",
			m.Topic, m.Payload, m.Retain, userProperty(m, "version"))
	}
	if _, ok, err := tb.Store.Record("pend/new"); err != nil || ok {
		t.Fatalf("pend/new in the store already (%v, %v): the test did not see a pending record", ok, err)
	}
}
