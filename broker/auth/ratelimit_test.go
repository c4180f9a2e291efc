package auth

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestRateLimiter(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	// An op is a failure (fail), a success (ok) or a check (want) at a
	// second after t0.
	type op struct {
		kind   string // "fail", "ok", "want", "deny"
		remote string
		sec    float64
	}
	const a, a2, b = "192.0.2.1:5000", "192.0.2.1:6000", "192.0.2.2:5000"
	fails := func(remote string, n int, sec float64) []op {
		var ops []op
		for range n {
			ops = append(ops, op{"fail", remote, sec})
		}
		return ops
	}
	tests := []struct {
		name     string
		max      int
		window   time.Duration
		capacity int
		ops      []op
	}{
		{"allowed with no failures", 3, time.Minute, 10, []op{{"want", a, 0}}},
		{"allowed below the limit", 3, time.Minute, 10, append(fails(a, 2, 0), op{"want", a, 1})},
		{"refused at the limit", 3, time.Minute, 10, append(fails(a, 3, 0), op{"deny", a, 1})},
		{"refused until the window passes", 3, time.Minute, 10, append(fails(a, 3, 0),
			op{"deny", a, 59.9}, op{"want", a, 60})},
		{"window counts from the first failure", 3, time.Minute, 10, []op{
			{"fail", a, 0}, {"fail", a, 30}, {"fail", a, 59}, {"deny", a, 59.5}, {"want", a, 60},
			// A new window starts with the next failure.
			{"fail", a, 61}, {"fail", a, 62}, {"want", a, 63}, {"fail", a, 64}, {"deny", a, 65}, {"want", a, 121}}},
		{"failures spread over windows", 3, time.Minute, 10, []op{
			{"fail", a, 0}, {"fail", a, 30}, {"fail", a, 61}, {"want", a, 62}, {"fail", a, 62}, {"want", a, 63}}},
		{"per address, not per port", 3, time.Minute, 10, append(fails(a, 3, 0), op{"deny", a2, 1}, op{"want", b, 1})},
		{"IPv6 and bare hosts", 2, time.Minute, 10, []op{
			{"fail", "[2001:db8::1]:1883", 0}, {"fail", "2001:db8::1", 0}, {"deny", "[2001:db8::1]:9", 1},
			{"deny", "[2001:db8::1]", 1}, {"want", "[2001:db8::2]:1883", 1}}},
		{"IPv4-mapped IPv6 is IPv4", 2, time.Minute, 10, []op{
			{"fail", "[::ffff:192.0.2.1]:1", 0}, {"fail", a, 0}, {"deny", "192.0.2.1", 1}}},
		{"success forgets failures", 3, time.Minute, 10, append(fails(a, 2, 0),
			op{"ok", a, 1}, op{"fail", a, 2}, op{"fail", a, 2}, op{"want", a, 3}, op{"fail", a, 3}, op{"deny", a, 4})},
		{"success of another address forgets nothing", 2, time.Minute, 10, append(fails(a, 2, 0),
			op{"ok", b, 1}, op{"deny", a, 1})},
		{"capacity evicts the oldest", 1, time.Minute, 2, []op{
			{"fail", a, 0}, {"fail", b, 1}, {"deny", a, 2}, {"deny", b, 2},
			{"fail", "192.0.2.3:1", 3}, // evicts a, whose last failure is oldest
			{"want", a, 4}, {"deny", b, 4}, {"deny", "192.0.2.3:1", 4}}},
		{"a new failure makes an address recent", 1, time.Minute, 2, []op{
			{"fail", a, 0}, {"fail", b, 1}, {"fail", a, 2}, // a is now the most recent
			{"fail", "192.0.2.3:1", 3}, // evicts b
			{"deny", a, 4}, {"want", b, 4}}},
		{"defaults", 0, 0, 0, append(fails(a, 4, 0), op{"want", a, 1}, op{"fail", a, 1}, op{"deny", a, 59}, op{"want", a, 60})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewRateLimiter(tt.max, tt.window, tt.capacity)
			for i, o := range tt.ops {
				switch o.kind {
				case "fail":
					r.Failed(o.remote, at(o.sec))
				case "ok":
					r.Succeeded(o.remote)
				case "want", "deny":
					if got := r.Allowed(o.remote, at(o.sec)); got != (o.kind == "want") {
						t.Fatalf("op %d: Allowed(%s) at %vs = %v, want %v", i, o.remote, o.sec, got, !got)
					}
				}
			}
		})
	}
}

func TestRateLimiterMemoryBounded(t *testing.T) {
	r := NewRateLimiter(5, time.Minute, 100)
	now := time.Now()
	for i := range 10000 {
		r.Failed(fmt.Sprintf("10.0.%d.%d:1883", i/256, i%256), now)
		// Checking an unknown address must not add it.
		r.Allowed(fmt.Sprintf("10.1.%d.%d:1883", i/256, i%256), now)
	}
	if n := r.Len(); n != 100 {
		t.Errorf("%d addresses remembered, want the capacity 100", n)
	}
	// Expired entries are dropped when seen.
	r.Allowed("10.0.39.15:1883", now.Add(time.Hour)) // the last one added
	if n := r.Len(); n != 99 {
		t.Errorf("%d addresses after one expired, want 99", n)
	}
}

func TestRateLimiterConcurrent(t *testing.T) {
	r := NewRateLimiter(1000, time.Minute, 50)
	now := time.Now()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				remote := fmt.Sprintf("10.0.0.%d:1", (g*500+i)%80)
				r.Failed(remote, now)
				r.Allowed(remote, now)
				if i%7 == 0 {
					r.Succeeded(remote)
				}
			}
		}()
	}
	wg.Wait()
	if n := r.Len(); n > 50 {
		t.Errorf("%d addresses remembered, above the capacity 50", n)
	}
}
