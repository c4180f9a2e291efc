package auth

import (
	"container/list"
	"net"
	"net/netip"
	"sync"
	"time"
)

// RateLimiter limits failed logins per remote address. After max failures
// from an address within window (counted from its first failure), Allowed
// refuses that address until the window has passed, so that no more than
// max guesses per window are checked from it.
//
// It remembers at most capacity addresses, evicting the one whose last
// failure is oldest: memory stays bounded under a flood of addresses, at
// the price that an attacker with many addresses can push a blocked one
// out. Addresses count per host, not port; IPv6 hosts are counted per
// address too, not per prefix, since a home network's devices share one
// /64 and one failing device must not lock out the others.
type RateLimiter struct {
	max      int
	window   time.Duration
	capacity int

	mu      sync.Mutex
	entries map[string]*list.Element // host -> *failures in lru
	lru     *list.List               // front: most recent failure
}

type failures struct {
	host  string
	count int
	start time.Time // the window's first failure
}

// Defaults of NewRateLimiter.
const (
	DefaultMaxFailures   = 5
	DefaultFailureWindow = time.Minute
	DefaultRateCapacity  = 10000
)

// NewRateLimiter returns a RateLimiter allowing maxFailures per window,
// remembering capacity addresses. Zero or negative values take the
// defaults: 5 failures, 1 minute, 10000 addresses.
func NewRateLimiter(maxFailures int, window time.Duration, capacity int) *RateLimiter {
	if maxFailures <= 0 {
		maxFailures = DefaultMaxFailures
	}
	if window <= 0 {
		window = DefaultFailureWindow
	}
	if capacity <= 0 {
		capacity = DefaultRateCapacity
	}
	return &RateLimiter{max: maxFailures, window: window, capacity: capacity,
		entries: map[string]*list.Element{}, lru: list.New()}
}

// Allowed reports whether a login from remote (host:port, or a bare host)
// may be checked at now.
func (r *RateLimiter) Allowed(remote string, now time.Time) bool {
	host := hostOf(remote)
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.entries[host]
	if !ok {
		return true
	}
	f := e.Value.(*failures)
	if !now.Before(f.start.Add(r.window)) {
		r.lru.Remove(e)
		delete(r.entries, host)
		return true
	}
	return f.count < r.max
}

// Failed records a failed login from remote at now.
func (r *RateLimiter) Failed(remote string, now time.Time) {
	host := hostOf(remote)
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.entries[host]; ok {
		f := e.Value.(*failures)
		if !now.Before(f.start.Add(r.window)) {
			f.count, f.start = 0, now
		}
		f.count++
		r.lru.MoveToFront(e)
		return
	}
	if r.lru.Len() >= r.capacity {
		oldest := r.lru.Back()
		r.lru.Remove(oldest)
		delete(r.entries, oldest.Value.(*failures).host)
	}
	r.entries[host] = r.lru.PushFront(&failures{host: host, count: 1, start: now})
}

// Succeeded forgets remote's failures: a user who mistyped and then got
// in starts afresh. (An attacker holding one valid account could interleave
// logins to reset the count; the limit is against guessing from an address
// with no credentials at all.)
func (r *RateLimiter) Succeeded(remote string) {
	host := hostOf(remote)
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.entries[host]; ok {
		r.lru.Remove(e)
		delete(r.entries, host)
	}
}

// Len is how many addresses the limiter remembers.
func (r *RateLimiter) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lru.Len()
}

// hostOf is remote's host in a canonical form: the port dropped, an
// IPv4-mapped IPv6 address as IPv4, a zone dropped.
func hostOf(remote string) string {
	host := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		host = h
	} else if len(host) > 2 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap().WithZone("").String()
	}
	return host
}
