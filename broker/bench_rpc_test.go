package broker_test

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// BenchmarkRPC measures RPC round trips through Hearth against the same
// MQTT 5 request/response through a bare mochi broker (mochi v2.7.9 as
// Hearth embeds it, with only an allow-all hook), side by side in one run:
// the cost of Hearth's routing. rpcRequesters MQTT 5 requesters each keep
// one QoS 1 request outstanding (a closed loop), with a Response Topic of
// their own and a unique Correlation Data, and wait for its answer; echo
// providers answer each request at QoS 1 by publishing its payload to its
// Response Topic with its Correlation Data. One iteration is one round
// trip: request published, acknowledged and answered.
//
// broker=hearth: the providers subscribe $rpc/bench/echo and the
// requesters publish there; Hearth gives each request to one provider
// (least busy, then in turn) with the Response Topic $rpc-response/<id>,
// and delivers the answer to the requester's Response Topic. broker=mochi:
// the direct equivalent, with no broker in between but mochi's own routing:
// one provider subscribes bench/echo, or eight share $share/bench/bench/echo
// so that each request reaches one of them.
//
// It reports round trips per second and the median and 99th percentile
// round-trip latency, and fails unless every requester got exactly one
// answer, with its own Correlation Data and payload, to each request.
func BenchmarkRPC(b *testing.B) {
	for _, providers := range []int{1, 8} {
		for _, kind := range []string{"mochi", "hearth"} {
			b.Run(fmt.Sprintf("providers=%d/broker=%s", providers, kind), func(b *testing.B) {
				var addr, topic, filter string
				var tb *testBroker
				if kind == "mochi" {
					addr, topic, filter = startBareMochi(b), "bench/echo", "bench/echo"
					if providers > 1 {
						filter = "$share/bench/bench/echo"
					}
				} else {
					tb = startBroker(b, brokerOpts{})
					addr, topic, filter = tb.MQTTAddr, "$rpc/bench/echo", "$rpc/bench/echo"
				}
				benchmarkRPC(b, addr, topic, filter, providers)
				if tb != nil {
					// Every request went through the router and was answered
					// by a provider: none timed out, failed or was rerouted.
					for _, series := range []string{"hearth_rpc_requests_total", "hearth_rpc_answers_total"} {
						if got := tb.metric(b, series); got != float64(b.N) {
							b.Errorf("%s = %v, want %d", series, got, b.N)
						}
					}
				}
			})
		}
	}
}

// rpcRequesters is the number of concurrent requesters, each with one
// request outstanding at a time.
const rpcRequesters = 8

// benchmarkRPC runs b.N round trips: requests published to topic, answered
// by the given number of echo providers subscribed to filter.
func benchmarkRPC(b *testing.B, addr, topic, filter string, providers int) {
	run := &rpcRun{abort: make(chan struct{})}
	for range providers {
		startEchoProvider(b, addr, filter, run)
	}
	reqs := make([]*v5Client, rpcRequesters)
	for i := range reqs {
		reqs[i] = connectV5(b, addr, nil)
		reqs[i].subscribe(b, "bench/reply/"+reqs[i].ID, 1)
	}
	latencies := make([]time.Duration, b.N)
	var next atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for _, req := range reqs {
		wg.Go(func() { run.request(b, req, topic, &next, latencies) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err := run.err(); err != nil {
		b.Fatal(err)
	}
	// Exactly once: a second answer to a request before the last would
	// have been taken for the answer to the next one; give one to the
	// last request a moment to show up.
	time.Sleep(50 * time.Millisecond)
	for _, req := range reqs {
		select {
		case m := <-req.msgs:
			b.Fatalf("requester %s: an answer after its last request's: %s, correlation %q, payload %q",
				req.ID, m.Topic, correlationOf(m), m.Payload)
		default:
		}
	}
	slices.Sort(latencies)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "rt/s")
	b.ReportMetric(microseconds(latencies[(len(latencies)-1)/2]), "p50-µs")
	b.ReportMetric(microseconds(latencies[(len(latencies)-1)*99/100]), "p99-µs")
}

func microseconds(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// rpcRun is one run's failure, shared by its requesters and providers: the
// first error stops them all.
type rpcRun struct {
	once   sync.Once
	abort  chan struct{}
	failed atomic.Value // error
}

func (r *rpcRun) fail(err error) {
	r.once.Do(func() {
		r.failed.Store(err)
		close(r.abort)
	})
}

func (r *rpcRun) err() error {
	if err, ok := r.failed.Load().(error); ok {
		return err
	}
	return nil
}

// request is one requester's closed loop: it takes iterations from next
// until b.N are taken, publishing a request for each and waiting for its
// answer on bench/reply/<its client id>, and records each round trip in
// latencies (at the iteration's index).
func (r *rpcRun) request(b *testing.B, c *v5Client, topic string, next *atomic.Int64, latencies []time.Duration) {
	replyTopic := "bench/reply/" + c.ID
	prefix := c.ID + "/"
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for seq := 0; ; seq++ {
		i := next.Add(1)
		if i > int64(b.N) {
			return
		}
		corr := []byte(prefix + strconv.Itoa(seq))
		payload := fmt.Appendf(nil, `{"seq":%d,"sensor":"k1","temp":21.5}`, i)
		start := time.Now()
		resp, err := c.pub(&paho.Publish{
			Topic: topic, QoS: 1, Payload: payload,
			Properties: &paho.PublishProperties{ResponseTopic: replyTopic, CorrelationData: corr},
		})
		if err != nil || resp.ReasonCode != 0 {
			r.fail(fmt.Errorf("requester %s: request %d: %+v, %v", c.ID, seq, resp, err))
			return
		}
		timer.Reset(waitTimeout)
		var m *paho.Publish
		select {
		case m = <-c.msgs:
		case <-r.abort:
			return
		case <-timer.C:
			r.fail(fmt.Errorf("requester %s: no answer to request %d within %s", c.ID, seq, waitTimeout))
			return
		}
		latencies[i-1] = time.Since(start)
		if err := checkAnswer(m, replyTopic, prefix, seq, payload); err != nil {
			r.fail(fmt.Errorf("requester %s: %w", c.ID, err))
			return
		}
	}
}

// checkAnswer checks that m is the answer to request seq of the requester
// whose Correlation Data start with prefix.
func checkAnswer(m *paho.Publish, replyTopic, prefix string, seq int, payload []byte) error {
	if m.Topic != replyTopic {
		return fmt.Errorf("an answer on %s, want %s", m.Topic, replyTopic)
	}
	if m.Properties != nil {
		if code := m.Properties.User.Get("error"); code != "" {
			return fmt.Errorf("request %d: error reply %s: %s", seq, code, m.Payload)
		}
	}
	corr := correlationOf(m)
	n, err := strconv.Atoi(string(bytes.TrimPrefix(corr, []byte(prefix))))
	switch {
	case !bytes.HasPrefix(corr, []byte(prefix)) || err != nil || n > seq:
		return fmt.Errorf("request %d: an answer with correlation %q, not one of this requester's requests", seq, corr)
	case n < seq:
		return fmt.Errorf("request %d: a second answer to request %d", seq, n)
	case !bytes.Equal(m.Payload, payload):
		return fmt.Errorf("request %d: answer %q, want the request's payload %q", seq, m.Payload, payload)
	}
	return nil
}

func correlationOf(m *paho.Publish) []byte {
	if m.Properties == nil {
		return nil
	}
	return m.Properties.CorrelationData
}

// startEchoProvider connects a provider subscribed to filter at QoS 1 that
// answers each request with its payload, published at QoS 1 to its
// Response Topic with its Correlation Data. It answers up to rpcRequesters
// requests at once, each waiting for its PUBACK, so that it is not what
// limits the round trips.
func startEchoProvider(b *testing.B, addr, filter string, run *rpcRun) {
	b.Helper()
	c := connectV5(b, addr, nil)
	c.subscribe(b, filter, 1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range rpcRequesters {
		wg.Go(func() {
			for {
				var m *paho.Publish
				select {
				case m = <-c.msgs:
				case <-stop:
					return
				case <-run.abort:
					return
				}
				if m.Properties == nil || m.Properties.ResponseTopic == "" {
					run.fail(fmt.Errorf("provider %s: a request on %s without a Response Topic", c.ID, m.Topic))
					return
				}
				resp, err := c.pub(&paho.Publish{
					Topic: m.Properties.ResponseTopic, QoS: 1, Payload: m.Payload,
					Properties: &paho.PublishProperties{CorrelationData: m.Properties.CorrelationData},
				})
				if err != nil || resp.ReasonCode != 0 {
					run.fail(fmt.Errorf("provider %s: answer to %s: %+v, %v", c.ID, m.Properties.ResponseTopic, resp, err))
					return
				}
			}
		})
	}
	// Registered after the client's cleanup, so it runs first: the
	// workers stop before their client disconnects.
	b.Cleanup(func() {
		close(stop)
		wg.Wait()
	})
}
