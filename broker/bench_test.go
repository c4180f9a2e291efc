package broker_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/hearth-iot/hearth/storage"
)

// BenchmarkRetainedQoS1 measures durable retained publishes: MQTT 5
// clients publish retained QoS 1 messages to their own topics, each waiting
// for its PUBACK, which the broker sends only after the group commit
// holding the message is synced. One iteration is one publish. It runs with
// 1 and 16 publishers, each with no commit delay and with the default 1ms.
func BenchmarkRetainedQoS1(b *testing.B) {
	for _, clients := range []int{1, 16} {
		for _, d := range []struct {
			name  string
			delay time.Duration
		}{{"none", 0}, {"200us", 200 * time.Microsecond}, {"1ms", time.Millisecond}} {
			b.Run(fmt.Sprintf("publishers=%d/commit_delay=%s", clients, d.name), func(b *testing.B) {
				benchmarkRetainedQoS1(b, clients, storage.Options{CommitDelay: d.delay})
			})
		}
	}
}

func benchmarkRetainedQoS1(b *testing.B, clients int, store storage.Options) {
	tb := startBroker(b, brokerOpts{Store: store})
	pubs := make([]*v5Client, clients)
	for i := range pubs {
		pubs[i] = connectV5(b, tb.MQTTAddr, nil)
	}
	payload := make([]byte, 64)
	var next atomic.Int64
	var failed atomic.Value
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for c, pub := range pubs {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				topic := fmt.Sprintf("bench/%02d/%d", c, i%256)
				resp, err := pub.pub(&paho.Publish{Topic: topic, QoS: 1, Retain: true, Payload: payload})
				if err != nil || resp.ReasonCode >= 0x80 {
					failed.Store(fmt.Errorf("publish %s: %+v, %v", topic, resp, err))
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err := failed.Load(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	if commits := tb.metric(b, "hearth_store_commit_seconds_count"); commits > 0 {
		b.ReportMetric(float64(b.N)/commits, "msgs/commit")
	}
}

// BenchmarkEventQoS0Fanout measures QoS 0 event fan-out: one publisher,
// four subscribers. One iteration is one publish, delivered four times.
// The publisher stays at most a window ahead of the slowest subscriber, so
// that no message is dropped from a full outbound queue.
func BenchmarkEventQoS0Fanout(b *testing.B) {
	const subscribers, window = 4, 256
	tb := startBroker(b, brokerOpts{})
	counts := make([]*atomic.Int64, subscribers)
	for i := range counts {
		counts[i] = countingSubscriber(b, tb.MQTTAddr, "events/#")
	}
	pub := connectV5(b, tb.MQTTAddr, nil)
	payload := []byte(`{"sensor":"k1","temp":21.5}`)
	slowest := func() int64 {
		low := counts[0].Load()
		for _, c := range counts[1:] {
			low = min(low, c.Load())
		}
		return low
	}
	waitFor := func(n int64) {
		deadline := time.Now().Add(waitTimeout)
		for slowest() < n {
			if time.Now().After(deadline) {
				b.Fatalf("subscribers received %d of %d messages within %s", slowest(), n, waitTimeout)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}

	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if int64(i)-slowest() >= window {
			waitFor(int64(i) - window/2)
		}
		if _, err := pub.pub(&paho.Publish{Topic: "events/k1/temp", Payload: payload}); err != nil {
			b.Fatal(err)
		}
	}
	waitFor(int64(b.N))
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N*subscribers)/elapsed.Seconds(), "deliveries/s")
	if dropped := tb.metric(b, errorsSeries("dropped")); dropped != 0 {
		b.Fatalf("%v messages dropped", dropped)
	}
}

// countingSubscriber connects an MQTT 5 client subscribed to filter at
// QoS 0 that only counts what it receives.
func countingSubscriber(b *testing.B, addr, filter string) *atomic.Int64 {
	b.Helper()
	conn, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		b.Fatal(err)
	}
	n := new(atomic.Int64)
	c := paho.NewClient(paho.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(paho.PublishReceived) (bool, error) { n.Add(1); return true, nil },
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: clientID(b, "fanout"), CleanStart: true, KeepAlive: 30}); err != nil {
		b.Fatal(err)
	}
	closeClient := func() {
		_ = c.Disconnect(&paho.Disconnect{})
		<-c.Done()
	}
	trackClient(addr, closeClient)
	b.Cleanup(closeClient)
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter}}}); err != nil {
		b.Fatal(err)
	}
	return n
}
