package broker_test

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/hearth-iot/hearth/broker"
	"github.com/hearth-iot/hearth/storage"
)

// RPC end to end, continued (helpers in rpc_test.go): rerouting, no
// provider, timeouts, concurrency, refused requests and answers,
// hide_requester, max_pending and the metrics.

// drop ends c's connection: abruptly (the TCP connection closes, no
// DISCONNECT), or cleanly.
func (c *rpcClient) drop(t testing.TB, abrupt bool) {
	t.Helper()
	switch {
	case c.v5 != nil && abrupt:
		_ = c.v5.conn.Close()
	case c.v5 != nil:
		c.v5.close()
	case abrupt:
		c.v3.dropConn(t)
	default:
		c.v3.Disconnect(250)
	}
}

// lastUsed makes p the provider given a request most recently, so that the
// next request to a name it shares with providers never given one goes to
// one of those ("least recently"). p must provide $rpc/warmup.
func lastUsed(t testing.TB, req, p *rpcClient) {
	t.Helper()
	req.mustCall(t, 0, "warmup", `"w"`, 99, 0)
	r := p.request(t)
	p.mustAnswer(t, r.ID, `"w"`)
	req.wantAnswer(t, "warmup", 99, `"w"`)
}

// rpcSeries returns the hearth_rpc_* series of /metrics that are not zero,
// but for the latency histogram's buckets and sum.
func rpcSeries(m map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		if strings.HasPrefix(k, "hearth_rpc_") && v != 0 &&
			!strings.HasPrefix(k, "hearth_rpc_answer_seconds_bucket") && k != "hearth_rpc_answer_seconds_sum" {
			out[k] = v
		}
	}
	return out
}

func rpcErrSeries(code string) string { return `hearth_rpc_errors_total{code="` + code + `"}` }
func rpcRerouteSeries(reason string) string {
	return `hearth_rpc_reroutes_total{reason="` + reason + `"}`
}

// checkRPCMetrics waits (a few seconds at most) until the hearth_rpc_*
// series are exactly want (zero ones left out), and fails if they are not.
func checkRPCMetrics(t testing.TB, tb *testBroker, want map[string]float64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := rpcSeries(tb.scrape(t))
		if fmt.Sprint(got) == fmt.Sprint(want) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("RPC metrics:\n got %v\nwant %v", got, want)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A provider that rejects passes the request on to the next one not yet
// tried; an answer from the rejecting provider is then DENIED. When every
// provider rejects, the requester gets NO_PROVIDER.
func TestRPCRerouteOnReject(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name               string
		first, second, req rpcOpts
		allReject          bool
	}{
		{name: "5 rejects, 3.1.1 answers", second: rpcOpts{v3: true}},
		{name: "3.1.1 rejects, 5 answers", first: rpcOpts{v3: true}, req: rpcOpts{v3: true}},
		{name: "all reject, 5 requester", second: rpcOpts{v3: true}, allReject: true},
		{name: "all reject, 3.1.1 requester", first: rpcOpts{v3: true}, req: rpcOpts{v3: true}, allReject: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tb := startBroker(t, brokerOpts{})
			tt.first.filters = []string{"$rpc/shop/buy"}
			tt.second.filters = []string{"$rpc/shop/buy", "$rpc/warmup"}
			first, second := newRPCClient(t, tb, tt.first), newRPCClient(t, tb, tt.second)
			req := newRPCClient(t, tb, tt.req)
			lastUsed(t, req, second)

			req.mustCall(t, 0, "shop/buy", `{"item":"tea"}`, 1, 0)
			p, r1 := firstRequest(t, first, second)
			if p != first {
				t.Fatalf("the request went to %s, which was given one last: want %s, never given one", p.ID, first.ID)
			}
			first.mustAnswerError(t, r1.ID, "REJECTED", "")
			r2 := second.request(t)
			if r2.ID != r1.ID || r2.Name != "shop/buy" || r2.Data != `{"item":"tea"}` || r2.Client != req.ID {
				t.Fatalf("the second provider got %+v, want request %s from %s with {\"item\":\"tea\"}", r2, r1.ID, req.ID)
			}
			if tt.allReject {
				second.mustAnswerError(t, r2.ID, "REJECTED", "busy")
				req.wantError(t, "shop/buy", 1, "NO_PROVIDER", `no provider left for "shop/buy": 2 tried, each rejected it or went away`)
			} else {
				denied := "request " + r1.ID + " is not yours to answer: it was not given to you, or was passed on"
				ack, err := first.answer(r1.ID, `{"by":"first"}`)
				if err != nil || first.v5 != nil && (ack.Code != 0x87 || ack.Reason != "DENIED: "+denied) {
					t.Errorf("answer of the provider that rejected: %v, acknowledged 0x%02x %q; want 0x87 DENIED", err, ack.Code, ack.Reason)
				}
				first.wantRefused(t, r1.ID, "DENIED", denied)
				second.mustAnswer(t, r2.ID, `{"by":"second"}`)
				req.wantAnswer(t, "shop/buy", 1, `{"by":"second"}`)
			}
			for _, c := range []*rpcClient{req, first, second} {
				c.expectEnd(t)
			}
		})
	}
}

// A provider that disconnects holding a request, abruptly or cleanly,
// passes it to the next provider; the last one leaving means NO_PROVIDER.
func TestRPCRerouteOnDisconnect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		first, second rpcOpts
		req           rpcOpts
		abrupt        bool
		alone         bool // no second provider
	}{
		{name: "5 connection lost", second: rpcOpts{v3: true}, abrupt: true},
		{name: "5 disconnect", second: rpcOpts{v3: true}, req: rpcOpts{v3: true}},
		{name: "3.1.1 connection lost", first: rpcOpts{v3: true}, abrupt: true, req: rpcOpts{v3: true}},
		{name: "3.1.1 disconnect", first: rpcOpts{v3: true}},
		{name: "last provider lost", abrupt: true, alone: true},
		{name: "last provider disconnects", first: rpcOpts{v3: true}, req: rpcOpts{v3: true}, alone: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tb := startBroker(t, brokerOpts{})
			tt.first.filters = []string{"$rpc/door/open"}
			first := newRPCClient(t, tb, tt.first)
			req := newRPCClient(t, tb, tt.req)
			var second *rpcClient
			if !tt.alone {
				tt.second.filters = []string{"$rpc/door/open", "$rpc/warmup"}
				second = newRPCClient(t, tb, tt.second)
				lastUsed(t, req, second)
			}
			req.mustCall(t, 0, "door/open", `{"door":"front"}`, 1, 0)
			r1 := first.request(t)
			first.drop(t, tt.abrupt)
			if tt.alone {
				req.wantError(t, "door/open", 1, "NO_PROVIDER", `no provider left for "door/open": 1 tried, each rejected it or went away`)
				req.expectEnd(t)
				return
			}
			r2 := second.request(t)
			if r2.ID != r1.ID || r2.Data != `{"door":"front"}` || r2.Client != req.ID {
				t.Fatalf("the second provider got %+v, want request %s with {\"door\":\"front\"} from %s", r2, r1.ID, req.ID)
			}
			second.mustAnswer(t, r2.ID, `"opened"`)
			req.wantAnswer(t, "door/open", 1, `"opened"`)
			req.expectEnd(t)
			second.expectEnd(t)
		})
	}
}

// A request to a name no connected client provides fails at once: MQTT 5
// QoS 1 gets PUBACK 0x10, every requester an error reply.
func TestRPCNoProvider(t *testing.T) {
	t.Parallel()
	const msg = `no provider for "nobody/home"`
	tests := []struct {
		name string
		o    rpcOpts
		qos  byte
		ack  byte
	}{
		{"5 QoS 1", rpcOpts{}, 1, 0x10},
		{"5 QoS 1 without problem information", rpcOpts{noProblemInfo: true}, 1, 0x10},
		{"5 QoS 0", rpcOpts{}, 0, 0},
		{"5 QoS 2", rpcOpts{}, 2, 0}, // the PUBCOMP after PUBREC 0x10
		{"5 envelope", rpcOpts{envelope: true}, 1, 0x10},
		{"3.1.1", rpcOpts{v3: true}, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tb := startBroker(t, brokerOpts{})
			other := newRPCClient(t, tb, rpcOpts{filters: []string{"$rpc/nobody/else", "$rpc/other/#"}})
			req := newRPCClient(t, tb, tt.o)
			for seq := 1; seq <= 2; seq++ {
				payload := []byte(`"anyone?"`)
				var props *paho.PublishProperties
				if req.envelope {
					payload = fmt.Appendf(nil, `{"id":%d,"data":"anyone?"}`, seq)
				} else {
					props = &paho.PublishProperties{ResponseTopic: "rpcres/" + req.ID, CorrelationData: req.corr(seq)}
				}
				ack, err := req.send("$rpc/nobody/home", tt.qos, false, payload, props)
				reason := ""
				if tt.ack != 0 && !tt.o.noProblemInfo {
					reason = "NO_PROVIDER: " + msg
				}
				if err != nil || ack.Code != tt.ack || ack.Reason != reason {
					t.Errorf("request %d at QoS %d: %v, acknowledged 0x%02x %q; want 0x%02x %q", seq, tt.qos, err, ack.Code, ack.Reason, tt.ack, reason)
				}
				if r := req.wantError(t, "nobody/home", seq, "NO_PROVIDER", msg); r.Message != msg || r.QoS != min(tt.qos, 1) {
					t.Errorf("error reply %+v, want message %q at QoS %d (the request's, capped by the subscription's 1)", r, msg, min(tt.qos, 1))
				}
			}
			other.expectEnd(t)
			req.expectEnd(t)
		})
	}
}

// A provider that is offline (a persistent session, disconnected) is not
// chosen, and is not queued the request; once back it is a provider again.
func TestRPCOfflineProviderNotChosen(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	p5 := newRPCClient(t, tb, rpcOpts{expiry: 600, filters: []string{"$rpc/away/x"}})
	p3 := newRPCClient(t, tb, rpcOpts{v3: true, expiry: 600, filters: []string{"$rpc/away/x"}})
	p5.drop(t, false)
	p3.drop(t, false)
	req := newRPCClient(t, tb, rpcOpts{})
	tb.waitMetric(t, "hearth_connections", "1", func(v float64) bool { return v == 1 })
	if got := tb.metric(t, "hearth_sessions"); got != 3 {
		t.Fatalf("hearth_sessions = %v, want 3: the two offline providers' and the requester's", got)
	}

	req.mustCall(t, 0x10, "away/x", `1`, 1, 0)
	req.wantError(t, "away/x", 1, "NO_PROVIDER", `no provider for "away/x"`)

	back := connectV5(t, tb.MQTTAddr, persistentV5(p5.ID, 600))
	if !back.Connack.SessionPresent {
		t.Fatal("the provider's session is gone")
	}
	p5 = &rpcClient{ID: p5.ID, v5: back}
	p5.expectEnd(t) // nothing was queued for it
	for seq := 2; seq <= 3; seq++ {
		req.mustCall(t, 0, "away/x", strconv.Itoa(seq), seq, 0)
		r := p5.request(t)
		p5.mustAnswer(t, r.ID, r.Data)
		req.wantAnswer(t, "away/x", seq, strconv.Itoa(seq))
	}
	req.expectEnd(t)
}

// timeoutOf reads the duration of a TIMEOUT message.
func timeoutOf(t testing.TB, msg string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(strings.TrimPrefix(msg, "no answer within "))
	if err != nil || !strings.HasPrefix(msg, "no answer within ") {
		t.Fatalf("TIMEOUT message %q, want \"no answer within <duration>\"", msg)
	}
	return d
}

// A request asking for 300 ms that no provider answers gets TIMEOUT; the
// provider's late answer is refused and reaches no one.
func TestRPCTimeout(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		req, prov rpcOpts
	}{
		{"5", rpcOpts{}, rpcOpts{}},
		{"3.1.1", rpcOpts{v3: true}, rpcOpts{v3: true}},
		{"5 to 3.1.1", rpcOpts{}, rpcOpts{v3: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tb := startBroker(t, brokerOpts{})
			tt.prov.filters = []string{"$rpc/slow/op"}
			prov := newRPCClient(t, tb, tt.prov)
			req := newRPCClient(t, tb, tt.req)
			req.mustCall(t, 0, "slow/op", `"x"`, 1, 300)
			r := prov.request(t)
			if r.ID != "1" || r.Data != `"x"` || r.Client != req.ID {
				t.Errorf("provider got %+v, want request 1 with \"x\" from %s", r, req.ID)
			}
			res := req.wantError(t, "slow/op", 1, "TIMEOUT", "no answer within ")
			if d := timeoutOf(t, res.Message); d < 300*time.Millisecond {
				t.Errorf("TIMEOUT after %s, want at least the 300ms asked for", d)
			}
			const late = "request 1 has ended already (answered, timed out or failed): answer dropped"
			ack, err := prov.answer(r.ID, `"late"`)
			if err != nil || prov.v5 != nil && (ack.Code != 0x83 || ack.Reason != "UNKNOWN_REQUEST: "+late) {
				t.Errorf("late answer: %v, acknowledged 0x%02x %q; want 0x83 UNKNOWN_REQUEST", err, ack.Code, ack.Reason)
			}
			prov.wantRefused(t, r.ID, "UNKNOWN_REQUEST", late)
			req.expectEnd(t)
			prov.expectEnd(t)
		})
	}
}

// rpc.timeout bounds every request, also one asking for more.
func TestRPCConfiguredTimeout(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{RPC: broker.RPC{Timeout: 300 * time.Millisecond}})
	prov := newRPCClient(t, tb, rpcOpts{filters: []string{"$rpc/slow/#"}})
	r5 := newRPCClient(t, tb, rpcOpts{})
	r3 := newRPCClient(t, tb, rpcOpts{v3: true})
	r5.mustCall(t, 0, "slow/a", `1`, 1, 0)
	r5.mustCall(t, 0, "slow/a", `2`, 2, 60000)
	r3.mustCall(t, 0, "slow/b", `3`, 3, 60000)
	for range 3 {
		prov.request(t)
	}
	seen := map[int]bool{}
	for _, w := range []struct {
		c    *rpcClient
		name string
	}{{r5, "slow/a"}, {r5, "slow/a"}, {r3, "slow/b"}} {
		res := w.c.result(t, w.name, -1) // r5's two time out in either order
		if seen[res.Seq] || res.Code != "TIMEOUT" {
			t.Fatalf("request %d (seen before: %v): got %+v, want TIMEOUT", res.Seq, seen[res.Seq], res)
		}
		seen[res.Seq] = true
		if d := timeoutOf(t, res.Message); d < 300*time.Millisecond || d > 5*time.Second {
			t.Errorf("request %d: TIMEOUT after %s, want rpc.timeout's 300ms (give or take the machine's noise)", res.Seq, d)
		}
	}
	checkRPCMetrics(t, tb, map[string]float64{"hearth_rpc_requests_total": 3, rpcErrSeries("TIMEOUT"): 3})
}

// Many requesters at once, each with many requests in flight, to three
// providers: every requester gets every answer, with its own correlation
// data or id, exactly once.
func TestRPCConcurrent(t *testing.T) {
	t.Parallel()
	const requesters, perRequester = 8, 50
	tb := startBroker(t, brokerOpts{})
	provs := []*rpcClient{
		newRPCClient(t, tb, rpcOpts{filters: []string{"$rpc/calc/echo"}}),
		newRPCClient(t, tb, rpcOpts{v3: true, filters: []string{"$rpc/calc/echo"}}),
		newRPCClient(t, tb, rpcOpts{cbor: true, filters: []string{"$rpc/calc/+"}}),
	}
	var stops []func() map[string]int
	for i, p := range provs {
		stops = append(stops, serveEcho(t, p, fmt.Sprint("p", i)))
	}
	reqs := make([]*rpcClient, requesters)
	for i := range reqs {
		reqs[i] = newRPCClient(t, tb, []rpcOpts{{}, {v3: true}, {envelope: true}, {cbor: true}}[i%4])
	}
	t.Run("requesters", func(t *testing.T) {
		for i, req := range reqs {
			t.Run(strconv.Itoa(i), func(t *testing.T) {
				t.Parallel()
				data := func(seq int) string { return fmt.Sprintf(`{"r":%d,"seq":%d}`, i, seq) }
				for seq := 1; seq <= perRequester; seq++ {
					req.mustCall(t, 0, "calc/echo", data(seq), seq, 0)
				}
				seen := map[int]bool{}
				for range perRequester {
					res := req.result(t, "calc/echo", -1)
					if seen[res.Seq] {
						t.Fatalf("request %d answered twice", res.Seq)
					}
					seen[res.Seq] = true
					if by := byOf(t, res.Data); res.Data != echoed(by, data(res.Seq)) {
						t.Fatalf("request %d: answer %s, want an echo of %s", res.Seq, res.Data, data(res.Seq))
					}
				}
				req.expectEnd(t)
			})
		}
	})
	total := 0
	for i, stop := range stops {
		n := stop()["calc/echo"]
		if n == 0 {
			t.Errorf("provider p%d served no request", i)
		}
		total += n
	}
	if total != requesters*perRequester {
		t.Errorf("the providers served %d requests, want %d", total, requesters*perRequester)
	}
	checkRPCMetrics(t, tb, map[string]float64{
		"hearth_rpc_requests_total": requesters * perRequester, "hearth_rpc_answers_total": requesters * perRequester,
		"hearth_rpc_answer_seconds_count": requesters * perRequester,
	})
}

// Malformed requests are refused with an error reply (and over MQTT 5 at
// QoS 1 the reason code); none reaches a provider, and the broker goes on
// serving the same requester.
func TestRPCBadRequests(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	stop := serveEcho(t, newRPCClient(t, tb, rpcOpts{filters: []string{"$rpc/#"}}), "p")
	r5 := newRPCClient(t, tb, rpcOpts{})
	r5e := newRPCClient(t, tb, rpcOpts{envelope: true})
	r3 := newRPCClient(t, tb, rpcOpts{v3: true})
	long := strings.Repeat("n", 257)
	const (
		notObject  = "without a Response Topic, a request or answer is a JSON or CBOR object"
		notMap     = "without a Response Topic, a request or answer is an object"
		badTimeout = "timeout must be a whole number of milliseconds from 1"
		badID      = "id must be a string or a number"
		noName     = "a request needs a name: $rpc/<name>"
		longName   = "a name of 257 bytes, more than the limit of 256"
	)
	tests := []struct {
		name        string
		c           *rpcClient
		topic       string
		payload     string
		contentType string // MQTT 5
		timeout     string // MQTT 5 user property, if not ""
		code, msg   string
		ack         byte // MQTT 5
	}{
		{"3.1.1 not JSON", r3, "$rpc/bad/a", "hello", "", "", "INVALID_PAYLOAD", notObject, 0},
		{"3.1.1 empty", r3, "$rpc/bad/a", "", "", "", "INVALID_PAYLOAD", notObject, 0},
		{"3.1.1 JSON array", r3, "$rpc/bad/a", "[1,2]", "", "", "INVALID_PAYLOAD", notMap, 0},
		{"3.1.1 JSON string", r3, "$rpc/bad/a", `"s"`, "", "", "INVALID_PAYLOAD", notMap, 0},
		{"3.1.1 unknown field", r3, "$rpc/bad/a", `{"data":1,"extra":2}`, "", "", "INVALID_PAYLOAD",
			`unknown field "extra": a request is {"id": ..., "data": ..., "timeout": ms}`, 0},
		{"3.1.1 id true", r3, "$rpc/bad/a", `{"id":true}`, "", "", "INVALID_PAYLOAD", badID, 0},
		{"3.1.1 id object", r3, "$rpc/bad/a", `{"id":{"n":1}}`, "", "", "INVALID_PAYLOAD", badID, 0},
		{"3.1.1 id null", r3, "$rpc/bad/a", `{"id":null}`, "", "", "INVALID_PAYLOAD", badID, 0},
		{"3.1.1 timeout 0", r3, "$rpc/bad/a", `{"timeout":0}`, "", "", "INVALID_PAYLOAD", badTimeout, 0},
		{"3.1.1 timeout x", r3, "$rpc/bad/a", `{"timeout":"x"}`, "", "", "INVALID_PAYLOAD", badTimeout, 0},
		{"3.1.1 timeout 1.5", r3, "$rpc/bad/a", `{"timeout":1.5}`, "", "", "INVALID_PAYLOAD", badTimeout, 0},
		{"3.1.1 timeout -1", r3, "$rpc/bad/a", `{"timeout":-1}`, "", "", "INVALID_PAYLOAD", badTimeout, 0},
		{"3.1.1 no name", r3, "$rpc/", `{}`, "", "", "INVALID_NAME", noName, 0},
		{"3.1.1 long name", r3, "$rpc/" + long, `{}`, "", "", "INVALID_NAME", longName, 0},
		{"5 timeout 0", r5, "$rpc/bad/a", `1`, "", "0", "INVALID_PAYLOAD", `user property timeout "0" is not a whole number of milliseconds from 1`, 0x99},
		{"5 timeout x", r5, "$rpc/bad/a", `1`, "", "x", "INVALID_PAYLOAD", `user property timeout "x" is not a whole number of milliseconds from 1`, 0x99},
		{"5 timeout -5", r5, "$rpc/bad/a", `1`, "", "-5", "INVALID_PAYLOAD", `user property timeout "-5" is not a whole number of milliseconds from 1`, 0x99},
		{"5 timeout 1.5", r5, "$rpc/bad/a", `1`, "", "1.5", "INVALID_PAYLOAD", `user property timeout "1.5" is not a whole number of milliseconds from 1`, 0x99},
		{"5 content type contradicted", r5, "$rpc/bad/a", `not json`, "application/json", "", "INVALID_PAYLOAD",
			"codec: invalid payload: content type application/json but payload is not json", 0x99},
		{"5 no name", r5, "$rpc/", `1`, "", "", "INVALID_NAME", noName, 0x90},
		{"5 long name", r5, "$rpc/" + long, `1`, "", "", "INVALID_NAME", longName, 0x90},
		{"5 envelope array", r5e, "$rpc/bad/a", `[1]`, "", "", "INVALID_PAYLOAD", notMap, 0x99},
		{"5 envelope unknown field", r5e, "$rpc/bad/a", `{"timeout":5,"x":1}`, "", "", "INVALID_PAYLOAD",
			`unknown field "x": a request is {"id": ..., "data": ..., "timeout": ms}`, 0x99},
		{"5 envelope no name", r5e, "$rpc/", `{}`, "", "", "INVALID_NAME", noName, 0x90},
	}
	counts := map[string]float64{}
	good := 0
	for i, tt := range tests {
		seq := 100 + i
		name := strings.TrimPrefix(tt.topic, "$rpc/")
		var props *paho.PublishProperties
		if tt.c.v5 != nil {
			props = &paho.PublishProperties{ContentType: tt.contentType}
			if !tt.c.envelope {
				props.ResponseTopic, props.CorrelationData = "rpcres/"+tt.c.ID, tt.c.corr(seq)
			}
			if tt.timeout != "" {
				props.User = paho.UserProperties{{Key: "timeout", Value: tt.timeout}}
			}
		}
		ack, err := tt.c.send(tt.topic, 1, false, []byte(tt.payload), props)
		if err != nil || ack.Code != tt.ack || tt.ack != 0 && ack.Reason != tt.code+": "+tt.msg {
			t.Errorf("%s: %v, acknowledged 0x%02x %q; want 0x%02x %q", tt.name, err, ack.Code, ack.Reason, tt.ack, tt.code+": "+tt.msg)
		}
		replySeq := seq
		if tt.c.envelope {
			replySeq = 0 // the envelope had no id (or none that was valid)
		}
		res, err := tt.c.parseResult(tt.c.next(t), name, replySeq)
		if err != nil || res.Code != tt.code || res.Message != tt.msg {
			t.Errorf("%s: reply %+v (%v), want %s %q", tt.name, res, err, tt.code, tt.msg)
		}
		counts[tt.code]++
		good++
		tt.c.mustCall(t, 0, "bad/echo", strconv.Itoa(i), seq, 0)
		tt.c.wantAnswer(t, "bad/echo", seq, echoed("p", strconv.Itoa(i)))
	}
	if got := stop(); len(got) != 1 || got["bad/echo"] != good {
		t.Errorf("the provider served %v, want only the %d good requests", got, good)
	}
	checkRPCMetrics(t, tb, map[string]float64{
		"hearth_rpc_requests_total": float64(good), "hearth_rpc_answers_total": float64(good), "hearth_rpc_answer_seconds_count": float64(good),
		rpcErrSeries("INVALID_PAYLOAD"): counts["INVALID_PAYLOAD"], rpcErrSeries("INVALID_NAME"): counts["INVALID_NAME"],
	})
}

// The error reply to a malformed envelope that had an id carries that id
// (docs/PROTOCOL.md: "with id for an envelope that had one"), whichever
// field is wrong.
func TestRPCEnvelopeErrorKeepsID(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	req := newRPCClient(t, tb, rpcOpts{v3: true})
	missing := 0
	const n = 100
	for seq := 1; seq <= n; seq++ {
		payload := fmt.Sprintf(`{"id":%d,"oops":true}`, seq)
		if seq%2 == 0 {
			payload = fmt.Sprintf(`{"id":%d,"timeout":0}`, seq)
		}
		req.mustSend(t, 0, "$rpc/env/id", []byte(payload), nil)
		m := req.next(t)
		res, err := req.parseResult(m, "env/id", seq)
		if err != nil {
			if missing++; missing <= 3 {
				t.Logf("%s: %v", payload, err)
			}
			continue
		}
		if res.Code != "INVALID_PAYLOAD" {
			t.Errorf("%s: got %+v, want INVALID_PAYLOAD", payload, res)
		}
	}
	if missing > 0 {
		t.Errorf("BUG: %d of %d error replies to malformed envelopes with an id lack that id (it depends on the order in which the broker visits the envelope's fields)", missing, n)
	}
}

// rpcPair is a broker with an MQTT 5 and an MQTT 3.1.1 provider of
// $rpc/p5/# and $rpc/p3/#, and a requester of each version.
type rpcPair struct {
	tb       *testBroker
	p5, p3   *rpcClient
	req5, r3 *rpcClient
}

func newRPCPair(t *testing.T) *rpcPair {
	t.Helper()
	tb := startBroker(t, brokerOpts{})
	return &rpcPair{tb: tb,
		p5:   newRPCClient(t, tb, rpcOpts{filters: []string{"$rpc/p5/#"}}),
		p3:   newRPCClient(t, tb, rpcOpts{v3: true, filters: []string{"$rpc/p3/#"}}),
		req5: newRPCClient(t, tb, rpcOpts{}),
		r3:   newRPCClient(t, tb, rpcOpts{v3: true}),
	}
}

// stillServes checks that both providers still serve both requesters.
func (rp *rpcPair) stillServes(t *testing.T) {
	t.Helper()
	seq := 1000
	for _, req := range []*rpcClient{rp.req5, rp.r3} {
		for _, p := range []*rpcClient{rp.p5, rp.p3} {
			seq++
			name := map[bool]string{true: "p3/later", false: "p5/later"}[p.v3 != nil]
			req.mustCall(t, 0, name, strconv.Itoa(seq), seq, 0)
			r := p.request(t)
			p.mustAnswer(t, r.ID, r.Data)
			req.wantAnswer(t, name, seq, strconv.Itoa(seq))
		}
	}
	for _, c := range []*rpcClient{rp.p5, rp.p3, rp.req5, rp.r3} {
		c.expectEnd(t)
	}
}

// Answers the broker does not take: each provider is told why (its reply
// topic, and over MQTT 5 the PUBACK), the request is unaffected, and the
// broker goes on serving.
func TestRPCBadAnswers(t *testing.T) {
	t.Parallel()
	// refused sends an answer (payload, MQTT 5 user property error if not
	// "") to $rpc-response/<rest> from p and checks its refusal.
	refused := func(t *testing.T, p *rpcClient, rest, payload, errProp string, ack byte, code, msg string) {
		t.Helper()
		var props *paho.PublishProperties
		if errProp != "" {
			props = &paho.PublishProperties{User: paho.UserProperties{{Key: "error", Value: errProp}}}
		}
		got, err := p.send("$rpc-response/"+rest, 1, false, []byte(payload), props)
		if err != nil || p.v5 != nil && (got.Code != ack || got.Reason != code+": "+msg) {
			t.Errorf("answer %s %q: %v, acknowledged 0x%02x %q; want 0x%02x %q", rest, payload, err, got.Code, got.Reason, ack, code+": "+msg)
		}
		p.wantRefused(t, rest, code, msg)
	}

	t.Run("unknown id", func(t *testing.T) {
		t.Parallel()
		rp := newRPCPair(t)
		for _, p := range []*rpcClient{rp.p5, rp.p3} {
			refused(t, p, "999", `{"data":1}`, "", 0x83, "UNKNOWN_REQUEST", "no request 999")
			refused(t, p, "0", `{"data":1}`, "", 0x83, "UNKNOWN_REQUEST", "no request 0")
		}
		rp.stillServes(t)
	})
	t.Run("id not a number", func(t *testing.T) {
		t.Parallel()
		rp := newRPCPair(t)
		for _, p := range []*rpcClient{rp.p5, rp.p3} {
			refused(t, p, "abc", `{"data":1}`, "", 0x83, "UNKNOWN_REQUEST", `"abc" is not a request id`)
			refused(t, p, "", `{"data":1}`, "", 0x83, "UNKNOWN_REQUEST", `"" is not a request id`)
			refused(t, p, "-1", `{"data":1}`, "", 0x83, "UNKNOWN_REQUEST", `"-1" is not a request id`)
		}
		rp.stillServes(t)
	})
	t.Run("answered twice", func(t *testing.T) {
		t.Parallel()
		rp := newRPCPair(t)
		for i, p := range []*rpcClient{rp.p5, rp.p3} {
			name := map[bool]string{true: "p3/twice", false: "p5/twice"}[p.v3 != nil]
			rp.req5.mustCall(t, 0, name, `"q"`, i+1, 0)
			r := p.request(t)
			p.mustAnswer(t, r.ID, `"first"`)
			rp.req5.wantAnswer(t, name, i+1, `"first"`)
			refused(t, p, r.ID, `{"data":"second"}`, "", 0x83, "UNKNOWN_REQUEST",
				"request "+r.ID+" has ended already (answered, timed out or failed): answer dropped")
			rp.req5.expectEnd(t) // exactly one answer
		}
		rp.stillServes(t)
	})
	t.Run("not the holder", func(t *testing.T) {
		t.Parallel()
		rp := newRPCPair(t)
		rp.r3.mustCall(t, 0, "p5/held", `"q"`, 1, 0)
		r := rp.p5.request(t)
		refused(t, rp.p3, r.ID, `{"data":"mine"}`, "", 0x87, "DENIED",
			"request "+r.ID+" is not yours to answer: it was not given to you, or was passed on")
		rp.p5.mustAnswer(t, r.ID, `"holder's"`)
		rp.r3.wantAnswer(t, "p5/held", 1, `"holder's"`)
		rp.stillServes(t)
	})
	t.Run("malformed 3.1.1 answers", func(t *testing.T) {
		t.Parallel()
		rp := newRPCPair(t)
		rp.req5.mustCall(t, 0, "p3/x", `"q"`, 1, 0)
		r := rp.p3.request(t)
		const unknown = `: an answer is {"data": ...} or {"error": ..., "message": ...}`
		for _, bad := range []struct{ payload, msg string }{
			{"not json", "without a Response Topic, a request or answer is a JSON or CBOR object"},
			{"", "without a Response Topic, a request or answer is a JSON or CBOR object"},
			{"[1]", "without a Response Topic, a request or answer is an object"},
			{"{}", "an answer has either data or error"},
			{`{"data":1,"error":"E"}`, "an answer has either data or error"},
			{`{"result":1}`, `unknown field "result"` + unknown},
			{`{"error":"lower"}`, "error must be a code: 1 to 64 of A-Z, 0-9 and _"},
			{`{"error":5}`, "error must be a code: 1 to 64 of A-Z, 0-9 and _"},
			{`{"error":"` + strings.Repeat("E", 65) + `"}`, "error must be a code: 1 to 64 of A-Z, 0-9 and _"},
			{`{"data":1,"message":"m"}`, "message goes with error, not data"},
			{`{"error":"E","message":5}`, "message must be text"},
		} {
			refused(t, rp.p3, r.ID, bad.payload, "", 0x99, "INVALID_PAYLOAD", bad.msg)
		}
		rp.p3.mustAnswer(t, r.ID, `"fixed"`)
		rp.req5.wantAnswer(t, "p3/x", 1, `"fixed"`)
		rp.stillServes(t)
	})
	t.Run("bad MQTT 5 error codes", func(t *testing.T) {
		t.Parallel()
		rp := newRPCPair(t)
		rp.r3.mustCall(t, 0, "p5/x", `"q"`, 1, 0)
		r := rp.p5.request(t)
		for _, code := range []string{"bad code", "lower", strings.Repeat("E", 65), "É"} {
			refused(t, rp.p5, r.ID, "why", code, 0x99, "INVALID_PAYLOAD", fmt.Sprintf("error code %q: use 1 to 64 of A-Z, 0-9 and _", code))
		}
		rp.p5.mustAnswer(t, r.ID, `"fixed"`)
		rp.r3.wantAnswer(t, "p5/x", 1, `"fixed"`)
		rp.stillServes(t)
	})
	t.Run("empty MQTT 5 error code", func(t *testing.T) {
		t.Parallel()
		rp := newRPCPair(t)
		rp.req5.mustCall(t, 0, "p5/x", `"q"`, 1, 0)
		r := rp.p5.request(t)
		got, err := rp.p5.send("$rpc-response/"+r.ID, 1, false, []byte("why"),
			&paho.PublishProperties{User: paho.UserProperties{{Key: "error", Value: ""}}})
		if err != nil || got.Code != 0x99 {
			t.Errorf("answer with the user property error = \"\": %v, acknowledged 0x%02x %q; want 0x99 INVALID_PAYLOAD (a bad error code)", err, got.Code, got.Reason)
		}
		if err == nil && got.Code == 0 {
			t.Fatalf("BUG: the broker took an answer with an empty error code; the requester got %s", rp.req5.next(t))
		}
		rp.p5.wantRefused(t, r.ID, "INVALID_PAYLOAD", `error code "": use 1 to 64 of A-Z, 0-9 and _`)
		rp.p5.mustAnswer(t, r.ID, `"fixed"`)
		rp.req5.wantAnswer(t, "p5/x", 1, `"fixed"`)
		rp.stillServes(t)
	})
	t.Run("refusal to the answer's Response Topic", func(t *testing.T) {
		t.Parallel()
		rp := newRPCPair(t)
		got, err := rp.p5.send("$rpc-response/77", 1, false, []byte("x"),
			&paho.PublishProperties{ResponseTopic: "rpcres/" + rp.p5.ID, CorrelationData: []byte("mine")})
		if err != nil || got.Code != 0x83 {
			t.Errorf("answer to 77: %v, acknowledged 0x%02x", err, got.Code)
		}
		rp.p5.wantRefusedOn(t, "rpcres/"+rp.p5.ID, []byte("mine"), "$rpc-response/77", "UNKNOWN_REQUEST", "no request 77")
		rp.stillServes(t)
	})
}

// A provider's own error code reaches the requester as an error reply with
// the provider's message (as text, at most 1024 bytes).
func TestRPCProviderError(t *testing.T) {
	t.Parallel()
	rp := newRPCPair(t)
	seq := 0
	for _, req := range []*rpcClient{rp.req5, rp.r3} {
		for _, p := range []*rpcClient{rp.p5, rp.p3} {
			seq++
			name := map[bool]string{true: "p3/shop/buy", false: "p5/shop/buy"}[p.v3 != nil]
			req.mustCall(t, 0, name, `{"item":"tea"}`, seq, 0)
			r := p.request(t)
			p.mustAnswerError(t, r.ID, "OUT_OF_STOCK", "none left")
			if res := req.wantError(t, name, seq, "OUT_OF_STOCK", "none left"); res.Message != "none left" {
				t.Errorf("message %q, want \"none left\"", res.Message)
			}
		}
	}
	// No message (3.1.1), a long one (MQTT 5, truncated).
	rp.req5.mustCall(t, 0, "p3/quiet", `1`, 10, 0)
	r := rp.p3.request(t)
	rp.p3.mustAnswerError(t, r.ID, "E_9", "")
	if res := rp.req5.wantError(t, "p3/quiet", 10, "E_9", ""); res.Message != "" {
		t.Errorf("message %q, want none", res.Message)
	}
	rp.r3.mustCall(t, 0, "p5/loud", `1`, 11, 0)
	r = rp.p5.request(t)
	rp.p5.mustAnswerError(t, r.ID, "LOUD", strings.Repeat("x", 2000))
	if res := rp.r3.wantError(t, "p5/loud", 11, "LOUD", ""); res.Message != strings.Repeat("x", 1024) {
		t.Errorf("message of %d bytes, want the first 1024 of 2000", len(res.Message))
	}
	checkRPCMetrics(t, rp.tb, map[string]float64{
		"hearth_rpc_requests_total": 6, "hearth_rpc_answers_total": 6, rpcErrSeries("PROVIDER_ERROR"): 6,
	})
	rp.stillServes(t)
}

// With rpc.hide_requester, providers are not told who asked.
func TestRPCHideRequester(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{RPC: broker.RPC{HideRequester: true}})
	p5 := newRPCClient(t, tb, rpcOpts{filters: []string{"$rpc/p5"}})
	p3 := newRPCClient(t, tb, rpcOpts{v3: true, filters: []string{"$rpc/p3"}})
	r5 := newRPCClient(t, tb, rpcOpts{user: "ann"})
	r3 := newRPCClient(t, tb, rpcOpts{v3: true, user: "bob"})
	trace := paho.UserProperties{{Key: "trace", Value: "t1"}}
	seq := 0
	for _, req := range []*rpcClient{r5, r3} {
		var user paho.UserProperties
		if req.v5 != nil {
			user = trace
		}
		seq++
		req.mustCall(t, 0, "p5", `{"q":1}`, seq, 0, user...)
		r := p5.request(t)
		if r.HasClient || r.HasUser || !userEq(r.Extra, user) {
			t.Errorf("MQTT 5 provider got user properties requester-client %q (%v), requester-user %q (%v), others %v; want only %v",
				r.Client, r.HasClient, r.User, r.HasUser, r.Extra, user)
		}
		p5.mustAnswer(t, r.ID, `"ok"`)
		req.wantAnswer(t, "p5", seq, `"ok"`)

		seq++
		req.mustCall(t, 0, "p3", `{"q":1}`, seq, 0, user...)
		r = p3.request(t)
		if got, want := canonJSON(t, r.Raw), `{"data":{"q":1},"id":"`+r.ID+`","name":"p3"}`; got != want {
			t.Errorf("MQTT 3.1.1 provider got %s, want %s", got, want)
		}
		p3.mustAnswer(t, r.ID, `"ok"`)
		req.wantAnswer(t, "p3", seq, `"ok"`)
	}
}

// The requester-client and requester-user a provider is told are the
// broker's: a requester cannot pass its own off as them.
func TestRPCRequesterCannotBeForged(t *testing.T) {
	t.Parallel()
	for _, hide := range []bool{false, true} {
		t.Run(fmt.Sprint("hide_requester=", hide), func(t *testing.T) {
			t.Parallel()
			tb := startBroker(t, brokerOpts{RPC: broker.RPC{HideRequester: hide}})
			p := newRPCClient(t, tb, rpcOpts{filters: []string{"$rpc/admin/reset"}})
			req := newRPCClient(t, tb, rpcOpts{})
			req.mustCall(t, 0, "admin/reset", `1`, 1, 0,
				paho.UserProperty{Key: "requester-client", Value: "admin"}, paho.UserProperty{Key: "requester-user", Value: "root"})
			m := p.next(t)
			clients, users := m.User.GetAll("requester-client"), m.User.GetAll("requester-user")
			var want []string
			if !hide {
				want = []string{req.ID}
			}
			if fmt.Sprint(clients) != fmt.Sprint(want) || len(users) != 0 {
				t.Errorf("BUG: the provider was told requester-client %q and requester-user %q; want %q and none (the requester has no user name): a requester can forge who it is",
					clients, users, want)
			}
			r, _ := strings.CutPrefix(m.RespTopic, "$rpc-response/")
			p.mustAnswer(t, r, `"done"`)
			req.wantAnswer(t, "admin/reset", 1, `"done"`)
		})
	}
}

// rpc.max_pending requests in flight: further ones are refused with
// TOO_MANY_REQUESTS (0x97) until one ends.
func TestRPCTooManyRequests(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{RPC: broker.RPC{MaxPending: 2}})
	p := newRPCClient(t, tb, rpcOpts{filters: []string{"$rpc/busy"}})
	r5 := newRPCClient(t, tb, rpcOpts{})
	r3 := newRPCClient(t, tb, rpcOpts{v3: true})
	r5.mustCall(t, 0, "busy", `1`, 1, 0)
	r3.mustCall(t, 0, "busy", `2`, 2, 0)
	held := []rpcReq{p.request(t), p.request(t)}
	const msg = "2 requests in flight: try again later"
	r5.mustCall(t, 0x97, "busy", `3`, 3, 0)
	r5.wantError(t, "busy", 3, "TOO_MANY_REQUESTS", msg)
	r3.mustCall(t, 0, "busy", `4`, 4, 0)
	r3.wantError(t, "busy", 4, "TOO_MANY_REQUESTS", msg)

	p.mustAnswer(t, held[0].ID, held[0].Data)
	first := map[string]*rpcClient{"1": r5, "2": r3}[held[0].Data]
	first.wantAnswer(t, "busy", map[string]int{"1": 1, "2": 2}[held[0].Data], held[0].Data)
	r5.mustCall(t, 0, "busy", `5`, 5, 0)
	r := p.request(t)
	p.mustAnswer(t, r.ID, r.Data)
	r5.wantAnswer(t, "busy", 5, `5`)
	p.mustAnswer(t, held[1].ID, held[1].Data)
	second := map[string]*rpcClient{"1": r5, "2": r3}[held[1].Data]
	second.wantAnswer(t, "busy", map[string]int{"1": 1, "2": 2}[held[1].Data], held[1].Data)
	checkRPCMetrics(t, tb, map[string]float64{
		"hearth_rpc_requests_total": 3, "hearth_rpc_answers_total": 3, "hearth_rpc_answer_seconds_count": 3,
		rpcErrSeries("TOO_MANY_REQUESTS"): 2,
	})
}

// The RPC metrics count exactly what happened: requests, answers (results
// and provider errors), errors by code, reroutes by reason.
func TestRPCMetrics(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	ok := newRPCClient(t, tb, rpcOpts{filters: []string{"$rpc/m/ok", "$rpc/m/err"}})
	rejA := newRPCClient(t, tb, rpcOpts{filters: []string{"$rpc/m/reject", "$rpc/m/none"}})
	rejB := newRPCClient(t, tb, rpcOpts{v3: true, filters: []string{"$rpc/m/reject", "$rpc/m/none"}})
	dropA := newRPCClient(t, tb, rpcOpts{v3: true, filters: []string{"$rpc/m/drop"}})
	dropB := newRPCClient(t, tb, rpcOpts{filters: []string{"$rpc/m/drop"}})
	slow := newRPCClient(t, tb, rpcOpts{filters: []string{"$rpc/m/slow"}})
	req := newRPCClient(t, tb, rpcOpts{})
	checkRPCMetrics(t, tb, map[string]float64{})

	// 1: answered.
	req.mustCall(t, 0, "m/ok", `1`, 1, 0)
	r := ok.request(t)
	ok.mustAnswer(t, r.ID, `1`)
	req.wantAnswer(t, "m/ok", 1, `1`)
	// 2: no provider at once.
	req.mustCall(t, 0x10, "m/nobody", `2`, 2, 0)
	req.wantError(t, "m/nobody", 2, "NO_PROVIDER", "")
	// 3: rejected once, then answered.
	req.mustCall(t, 0, "m/reject", `3`, 3, 0)
	p, r := firstRequest(t, rejA, rejB)
	p.mustAnswerError(t, r.ID, "REJECTED", "")
	other := map[*rpcClient]*rpcClient{rejA: rejB, rejB: rejA}[p]
	r = other.request(t)
	other.mustAnswer(t, r.ID, `3`)
	req.wantAnswer(t, "m/reject", 3, `3`)
	// 4: its provider disconnects, the next answers.
	req.mustCall(t, 0, "m/drop", `4`, 4, 0)
	p, _ = firstRequest(t, dropA, dropB)
	p.drop(t, true)
	other = map[*rpcClient]*rpcClient{dropA: dropB, dropB: dropA}[p]
	r = other.request(t)
	other.mustAnswer(t, r.ID, `4`)
	req.wantAnswer(t, "m/drop", 4, `4`)
	// 5: timed out, then answered late.
	req.mustCall(t, 0, "m/slow", `5`, 5, 300)
	r = slow.request(t)
	req.wantError(t, "m/slow", 5, "TIMEOUT", "no answer within ")
	if ack, err := slow.answer(r.ID, `5`); err != nil || ack.Code != 0x83 {
		t.Errorf("late answer: %v, acknowledged 0x%02x, want 0x83", err, ack.Code)
	}
	slow.wantRefused(t, r.ID, "UNKNOWN_REQUEST", "request "+r.ID+" has ended already (answered, timed out or failed): answer dropped")
	// 6: every provider rejects.
	req.mustCall(t, 0, "m/none", `6`, 6, 0)
	for range 2 {
		p, r = firstRequest(t, rejA, rejB)
		p.mustAnswerError(t, r.ID, "REJECTED", "")
	}
	req.wantError(t, "m/none", 6, "NO_PROVIDER", `no provider left for "m/none": 2 tried`)
	// 7: the provider's own error.
	req.mustCall(t, 0, "m/err", `7`, 7, 0)
	r = ok.request(t)
	ok.mustAnswerError(t, r.ID, "OUT_OF_STOCK", "none left")
	req.wantError(t, "m/err", 7, "OUT_OF_STOCK", "none left")
	// 8: refused before routing.
	req.mustSend(t, 0x90, "$rpc/", []byte("8"), &paho.PublishProperties{ResponseTopic: "rpcres/" + req.ID, CorrelationData: req.corr(8)})
	req.wantError(t, "", 8, "INVALID_NAME", "")

	checkRPCMetrics(t, tb, map[string]float64{
		"hearth_rpc_requests_total":       7,
		"hearth_rpc_answers_total":        4, // 1, 3, 4 and 7
		"hearth_rpc_answer_seconds_count": 3,
		rpcErrSeries("NO_PROVIDER"):       2,
		rpcErrSeries("TIMEOUT"):           1,
		rpcErrSeries("UNKNOWN_REQUEST"):   1,
		rpcErrSeries("PROVIDER_ERROR"):    1,
		rpcErrSeries("INVALID_NAME"):      1,
		// A rejection is counted as a reroute also when no provider is
		// left to take the request (the second rejection of 6).
		rpcRerouteSeries("rejected"):     3,
		rpcRerouteSeries("disconnected"): 1,
	})
	req.expectEnd(t)
}

// sendBadAnswer sends p's MQTT 5 answer to request id with payload and
// Content Type contentType, and checks it is refused with INVALID_PAYLOAD:
// PUBACK 0x99 and the error reply on p's $reply topic, with message msg.
func sendBadAnswer(t *testing.T, p *rpcClient, id, payload, contentType, msg string) {
	t.Helper()
	got, err := p.send("$rpc-response/"+id, 1, false, []byte(payload), &paho.PublishProperties{ContentType: contentType})
	if err != nil || got.Code != 0x99 || got.Reason != "INVALID_PAYLOAD: "+msg {
		t.Errorf("answer %q (content type %q): %v, acknowledged 0x%02x %q; want 0x99 %q",
			payload, contentType, err, got.Code, got.Reason, "INVALID_PAYLOAD: "+msg)
	}
	p.wantRefused(t, id, "INVALID_PAYLOAD", msg)
}

// An MQTT 5 answer that contradicts its Content Type, or that an envelope
// requester needs decoded and that does not decode (a duplicate key), is
// refused with INVALID_PAYLOAD; the request stays pending, and the
// provider's corrected answer reaches the requester, once.
func TestRPCBadAnswerPayloads(t *testing.T) {
	t.Parallel()
	const (
		notJSON = "the answer: codec: invalid payload: content type application/json but payload is not json"
		notCBOR = "the answer: codec: invalid payload: content type application/cbor but payload is not cbor"
		dupKey  = `the answer: codec: invalid payload: duplicate JSON object key "a"`
	)
	t.Run("for an envelope requester", func(t *testing.T) {
		t.Parallel()
		rp := newRPCPair(t)
		for seq, req := range map[int]*rpcClient{1: rp.r3, 2: newRPCClient(t, rp.tb, rpcOpts{envelope: true})} {
			name := fmt.Sprintf("p5/envelope/%d", seq)
			req.mustCall(t, 0, name, `"q"`, seq, 60000)
			r := rp.p5.request(t)
			sendBadAnswer(t, rp.p5, r.ID, "not json", "application/json", notJSON)
			sendBadAnswer(t, rp.p5, r.ID, `{"a":1,"a":2}`, "application/json", dupKey)
			sendBadAnswer(t, rp.p5, r.ID, `{"a":1,"a":2}`, "", dupKey)
			rp.p5.mustAnswer(t, r.ID, `{"a":2}`)
			req.wantAnswer(t, name, seq, `{"a":2}`)
			req.expectEnd(t) // exactly once
		}
		rp.stillServes(t)
	})
	t.Run("for an MQTT 5 requester", func(t *testing.T) {
		t.Parallel()
		rp := newRPCPair(t)
		rp.req5.mustCall(t, 0, "p5/direct", `"q"`, 1, 60000)
		r := rp.p5.request(t)
		sendBadAnswer(t, rp.p5, r.ID, "not json", "application/json", notJSON)
		sendBadAnswer(t, rp.p5, r.ID, "\xff\xff", "application/cbor", notCBOR)
		rp.p5.mustAnswer(t, r.ID, `{"a":2}`)
		rp.req5.wantAnswer(t, "p5/direct", 1, `{"a":2}`)
		rp.req5.expectEnd(t) // exactly once
		rp.stillServes(t)
	})
}

// An envelope request (no Response Topic) from an MQTT 5 client is refused
// for a bad timeout user property as a request with a Response Topic is.
func TestRPCEnvelopeBadTimeoutProperty(t *testing.T) {
	t.Parallel()
	rp := newRPCPair(t)
	req := newRPCClient(t, rp.tb, rpcOpts{envelope: true})
	for i, v := range []string{"x", "0", "-5", "1.5"} {
		msg := fmt.Sprintf("user property timeout %q is not a whole number of milliseconds from 1", v)
		// The id is echoed although the property is read before the rest.
		ack, err := req.send("$rpc/p5/x", 1, false, fmt.Appendf(nil, `{"id":%d,"data":1}`, i+1),
			&paho.PublishProperties{User: paho.UserProperties{{Key: "timeout", Value: v}}})
		if err != nil || ack.Code != 0x99 || ack.Reason != "INVALID_PAYLOAD: "+msg {
			t.Errorf("envelope with timeout %q: %v, acknowledged 0x%02x %q; want 0x99 INVALID_PAYLOAD: %s", v, err, ack.Code, ack.Reason, msg)
		}
		if res := req.wantError(t, "p5/x", i+1, "INVALID_PAYLOAD", msg); res.Message != msg {
			t.Errorf("envelope with timeout %q: message %q, want %q", v, res.Message, msg)
		}
		checkRPCMetrics(t, rp.tb, map[string]float64{rpcErrSeries("INVALID_PAYLOAD"): float64(i + 1)})
	}
	rp.p5.expectEnd(t) // given no request
	req.mustCall(t, 0, "p5/x", `1`, 1, 0)
	r := rp.p5.request(t)
	rp.p5.mustAnswer(t, r.ID, `2`)
	req.wantAnswer(t, "p5/x", 1, `2`)
	rp.stillServes(t)
}

// A JSON request that does not decode (a duplicate key), which an MQTT
// 3.1.1 provider would need decoded in its envelope, is INVALID_PAYLOAD for
// the requester (not NO_PROVIDER), and counted so.
func TestRPCUndecodableRequestToV3Provider(t *testing.T) {
	t.Parallel()
	rp := newRPCPair(t)
	const msg = `the request is not valid json, which an MQTT 3.1.1 provider needs decoded: codec: invalid payload: duplicate JSON object key "a"`
	for seq, ct := range []string{"", "application/json"} {
		seq++
		ack, err := rp.req5.send("$rpc/p3/dup", 1, false, []byte(`{"a":1,"a":2}`), &paho.PublishProperties{
			ContentType: ct, ResponseTopic: "rpcres/" + rp.req5.ID, CorrelationData: rp.req5.corr(seq)})
		if err != nil || ack.Code != 0x99 || ack.Reason != "INVALID_PAYLOAD: "+msg {
			t.Errorf("request %d (content type %q): %v, acknowledged 0x%02x %q; want 0x99 INVALID_PAYLOAD: %s", seq, ct, err, ack.Code, ack.Reason, msg)
		}
		rp.req5.wantError(t, "p3/dup", seq, "INVALID_PAYLOAD", msg)
	}
	checkRPCMetrics(t, rp.tb, map[string]float64{"hearth_rpc_requests_total": 2, rpcErrSeries("INVALID_PAYLOAD"): 2})
	rp.p3.expectEnd(t) // given nothing
	rp.stillServes(t)
}

// A provider's own error code is counted as PROVIDER_ERROR, also when it is
// one of the broker's codes: TIMEOUT counts only the broker's timeouts.
func TestRPCProviderErrorWithBrokerCode(t *testing.T) {
	t.Parallel()
	rp := newRPCPair(t)
	tests := []struct {
		p          *rpcClient
		name, code string
	}{
		{rp.p5, "p5/t", "TIMEOUT"},
		{rp.p3, "p3/t", "TIMEOUT"},
		{rp.p5, "p5/n", "NO_PROVIDER"},
		{rp.p3, "p3/n", "INVALID_PAYLOAD"},
	}
	for i, tt := range tests {
		seq := i + 1
		rp.req5.mustCall(t, 0, tt.name, `1`, seq, 0)
		r := tt.p.request(t)
		tt.p.mustAnswerError(t, r.ID, tt.code, "the provider's own")
		if res := rp.req5.wantError(t, tt.name, seq, tt.code, "the provider's own"); res.Message != "the provider's own" {
			t.Errorf("%s: message %q, want the provider's", tt.code, res.Message)
		}
	}
	n := float64(len(tests))
	checkRPCMetrics(t, rp.tb, map[string]float64{
		"hearth_rpc_requests_total": n, "hearth_rpc_answers_total": n, rpcErrSeries("PROVIDER_ERROR"): n,
	})
	rp.stillServes(t)
}

// Requests do not outlive the broker: a QoS 1 request a persistent MQTT
// 3.1.1 provider had not acknowledged when the broker stopped is not sent
// to it again when it resumes its session after the restart (its call is
// gone, and an answer could be taken for a new call's with the same id),
// and it is removed from the store.
func TestRPCStaleRequestNotResentAfterRestart(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{RPC: broker.RPC{Timeout: 5 * time.Minute}})
	id := clientID(t, "raw-prov")
	connect := func() (*rawConn, bool) {
		t.Helper()
		c := dialRaw(t, tb.MQTTAddr)
		c.send(t, rawConnect(id, 30, false, nil))
		p, err := c.read(waitTimeout)
		if err != nil || p.Type != typeConnack || len(p.Body) != 2 || p.Body[1] != 0 {
			t.Fatalf("CONNACK: %+v, %v", p, err)
		}
		return c, p.Body[0]&1 == 1
	}
	readPublish := func(c *rawConn) (string, uint16) {
		t.Helper()
		p, err := c.read(waitTimeout)
		if err != nil {
			t.Fatalf("raw provider: %v", err)
		}
		topic, _ := rawPublishOf(t, p)
		if p.Flags>>1&3 != 1 {
			t.Fatalf("PUBLISH %s at QoS %d, want 1", topic, p.Flags>>1&3)
		}
		return topic, binary.BigEndian.Uint16(p.Body[2+len(topic):])
	}
	prov, _ := connect()
	for i, f := range []string{"$rpc/x", "sentinel"} {
		prov.send(t, rawSubscribeQoS(f, 1, uint16(i+1)))
		if p, err := prov.read(waitTimeout); err != nil || p.Type != 9 || len(p.Body) != 3 || p.Body[2] != 1 {
			t.Fatalf("SUBACK for %s: %+v, %v", f, p, err)
		}
	}
	req := newRPCClient(t, tb, rpcOpts{})
	req.mustCall(t, 0, "x", `"stale"`, 1, 600000)
	if topic, _ := readPublish(prov); topic != "$rpc/x" {
		t.Fatalf("the provider got %s, want the request on $rpc/x", topic)
	}
	// Not acknowledged: the request is inflight in the provider's session,
	// and in the store once the broker stops.
	tb.restart(t)
	if got := restoredInflight(t, tb); got != 1 {
		t.Fatalf("the store held %d inflight messages at the restart, want the request's 1", got)
	}
	// The restart removed it from the store. (Checked before the provider
	// resumes: a new delivery may reuse the request's packet id, replacing
	// its stored copy.)
	tb.stop(t)
	tb.inspectStore(t, func(st *storage.Store) {
		inflight, err := st.Inflight()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range inflight {
			if strings.HasPrefix(m.Message.Topic, "$rpc/") {
				t.Errorf("after a restart, the store still holds the request %s for %s", m.Message.Topic, m.ClientID)
			}
		}
	})
	tb.open(t)

	prov, present := connect()
	if !present {
		t.Fatal("the provider's session is gone after the restart")
	}
	connectV5(t, tb.MQTTAddr, nil).publish(t, "sentinel", 1, false, []byte("after"))
	topic, pid := readPublish(prov)
	if topic != "sentinel" {
		t.Fatalf("the resumed provider was sent %s first, want the sentinel: a request of the broker's previous run was resent", topic)
	}
	prov.send(t, packet(0x40, binary.BigEndian.AppendUint16(nil, pid))) // PUBACK
}
