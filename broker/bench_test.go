package broker_test

import (
	"fmt"
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
