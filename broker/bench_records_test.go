package broker_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// BenchmarkRecordMerge measures durable record merges: 16 MQTT 5 clients
// send QoS 1 $rec/merge requests, each waiting for its PUBACK, which comes
// only after the merged document is on disk. One iteration is one merge.
// With records=distinct each client merges into its own record (group
// commit shares syncs across records); with records=one all merge into the
// same record (the record layer combines the waiting merges into one write).
func BenchmarkRecordMerge(b *testing.B) {
	for _, shared := range []bool{false, true} {
		name := "records=distinct"
		if shared {
			name = "records=one"
		}
		b.Run(name, func(b *testing.B) {
			const clients = 16
			tb := startBroker(b, brokerOpts{})
			pubs := make([]*v5Client, clients)
			for i := range pubs {
				pubs[i] = connectV5(b, tb.MQTTAddr, nil)
			}
			var next atomic.Int64
			var failed atomic.Value
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for c, pub := range pubs {
				wg.Go(func() {
					topic := fmt.Sprintf("$rec/merge/bench/%02d", c)
					if shared {
						topic = "$rec/merge/bench/shared"
					}
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						payload := fmt.Appendf(nil, `{"c%02d":{"n":%d,"at":"2026-11-23T12:00:00Z"}}`, c, i)
						resp, err := pub.pub(&paho.Publish{Topic: topic, QoS: 1, Payload: payload})
						if err != nil || resp.ReasonCode != 0 {
							failed.Store(fmt.Errorf("merge %s: %+v, %v", topic, resp, err))
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
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "merges/s")
			if commits := tb.metric(b, "hearth_store_commit_seconds_count"); commits > 0 {
				b.ReportMetric(float64(b.N)/commits, "merges/commit")
			}
		})
	}
}

// BenchmarkEventFanout compares QoS 0 event fan-out through Hearth with the
// same through a bare mochi broker (mochi v2.7.9 as Hearth embeds it, with
// only an allow-all hook), side by side in one run: one publisher, four
// subscribers, a 27-byte JSON payload. With broker=hearth-cbor two of the
// four subscribers declare codec=cbor, so each message is also transcoded
// (once). One iteration is one publish, delivered four times.
func BenchmarkEventFanout(b *testing.B) {
	for _, kind := range []string{"mochi", "hearth", "hearth-cbor"} {
		b.Run("broker="+kind, func(b *testing.B) {
			addr := ""
			if kind == "mochi" {
				addr = startBareMochi(b)
			} else {
				addr = startBroker(b, brokerOpts{}).MQTTAddr
			}
			benchmarkFanout(b, addr, kind == "hearth-cbor")
		})
	}
}

func benchmarkFanout(b *testing.B, addr string, mixed bool) {
	const subscribers, window = 4, 256
	counts := make([]*atomic.Int64, subscribers)
	for i := range counts {
		codec := ""
		if mixed && i%2 == 1 {
			codec = "cbor"
		}
		counts[i] = countingCodecSubscriber(b, addr, "events/#", codec)
	}
	pub := connectV5(b, addr, nil)
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
}

// countingCodecSubscriber connects an MQTT 5 client subscribed to filter at
// QoS 0 that only counts what it receives, declaring codec (if set) in its
// CONNECT user properties.
func countingCodecSubscriber(b *testing.B, addr, filter, codec string) *atomic.Int64 {
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
	cp := &paho.Connect{ClientID: clientID(b, "fanout"), CleanStart: true, KeepAlive: 30}
	if codec != "" {
		cp.Properties = &paho.ConnectProperties{User: paho.UserProperties{{Key: "codec", Value: codec}}}
	}
	if _, err := c.Connect(ctx, cp); err != nil {
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

// allowHook admits every client and every topic: the least a bare mochi
// broker needs to serve.
type allowHook struct{ mqtt.HookBase }

func (allowHook) ID() string { return "allow" }
func (allowHook) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}
func (allowHook) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }
func (allowHook) OnACLCheck(*mqtt.Client, string, bool) bool              { return true }

// startBareMochi runs a mochi broker with default options on a free
// loopback port and returns its address.
func startBareMochi(b *testing.B) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // mochi binds it again: a port free a moment ago
	srv := mqtt.New(&mqtt.Options{Logger: slog.New(slog.DiscardHandler)})
	if err := srv.AddHook(new(allowHook), nil); err != nil {
		b.Fatal(err)
	}
	if err := srv.AddListener(listeners.NewTCP(listeners.Config{ID: "bench", Address: addr})); err != nil {
		b.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = srv.Close() })
	return addr
}

// BenchmarkRetainedSubscribe measures how fast a new subscriber receives
// many retained messages: each iteration connects a client, subscribes it
// to a filter matching retainedBenchRecords records and waits for all of
// them. Bare mochi sends them from memory, all at once (its outbound queue,
// 8192 by default, holds them); Hearth streams them from the store, paced
// to the client, with its default 1024-packet queue.
func BenchmarkRetainedSubscribe(b *testing.B) {
	const records = 5000
	for _, kind := range []string{"mochi", "hearth"} {
		b.Run("broker="+kind, func(b *testing.B) {
			addr := ""
			if kind == "mochi" {
				addr = startBareMochi(b)
			} else {
				addr = startBroker(b, brokerOpts{}).MQTTAddr
			}
			publishRetained(b, addr, "retained", records)
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				n := countingCodecSubscriber(b, addr, "retained/#", "")
				deadline := time.Now().Add(waitTimeout)
				for n.Load() < records {
					if time.Now().After(deadline) {
						b.Fatalf("received %d of %d retained messages within %s", n.Load(), records, waitTimeout)
					}
					time.Sleep(100 * time.Microsecond)
				}
			}
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N*records)/elapsed.Seconds(), "records/s")
		})
	}
}

// publishRetained publishes n retained QoS 1 JSON messages prefix/00000 ...
// from 8 clients at once, and returns when all are acknowledged.
func publishRetained(b *testing.B, addr, prefix string, n int) {
	b.Helper()
	const clients = 8
	var wg sync.WaitGroup
	for c := range clients {
		pub := connectV5(b, addr, nil)
		wg.Go(func() {
			for i := c; i < n; i += clients {
				p := fmt.Sprintf(`{"sensor":%d,"temp":21.5,"unit":"C","site":"greenhouse"}`, i)
				resp, err := pub.pub(&paho.Publish{Topic: fmt.Sprintf("%s/%05d", prefix, i), QoS: 1, Retain: true, Payload: []byte(p)})
				if err != nil || resp.ReasonCode != 0 {
					b.Errorf("publish: %+v, %v", resp, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
}
