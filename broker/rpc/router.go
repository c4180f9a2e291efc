package rpc

import (
	"cmp"
	"slices"
	"sync"
	"time"
)

// A Call is one request in flight. Its fields other than Data are the
// Router's; read them only through the methods.
type Call[P comparable] struct {
	id   uint64
	name string
	// Data is the caller's: what it needs to send the request and to
	// answer the requester. Set before Start returns, read-only after.
	Data any

	holder  P // the provider sent the call, or the zero P while none
	held    bool
	tried   []P
	timer   *time.Timer
	started time.Time
}

// ID is the call's id, unique for the Router's life, from 1.
func (c *Call[P]) ID() uint64 { return c.id }

// Name is the procedure name the call was made to.
func (c *Call[P]) Name() string { return c.name }

// Started is when the call was made.
func (c *Call[P]) Started() time.Time { return c.started }

// Router holds the calls in flight. P identifies a provider (the broker
// uses its connection). It is safe for concurrent use.
type Router[P comparable] struct {
	max       int
	onTimeout func(*Call[P])

	mu    sync.Mutex
	last  uint64 // the last id issued
	calls map[uint64]*Call[P]
	busy  map[P]int    // calls held, by provider
	used  map[P]uint64 // when each provider was last given a call, in assignments
	clock uint64       // assignments made
}

// New returns a Router; onTimeout is called with each call whose deadline
// passes before it ends, once the call has ended.
func New[P comparable](maxPending int, onTimeout func(*Call[P])) *Router[P] {
	if maxPending <= 0 {
		maxPending = 10000
	}
	return &Router[P]{
		max:       maxPending,
		onTimeout: onTimeout,
		calls:     make(map[uint64]*Call[P]),
		busy:      make(map[P]int),
		used:      make(map[P]uint64),
	}
}

// Start makes a call to name that ends after timeout unless answered
// first. It fails with ErrBusy when MaxPending calls are in flight.
func (r *Router[P]) Start(name string, timeout time.Duration, data any) (*Call[P], error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.calls) >= r.max {
		return nil, ErrBusy
	}
	r.last++
	c := &Call[P]{id: r.last, name: name, Data: data, started: time.Now()}
	r.calls[c.id] = c
	c.timer = time.AfterFunc(timeout, func() { r.expire(c) })
	return c, nil
}

func (r *Router[P]) expire(c *Call[P]) {
	if r.End(c) && r.onTimeout != nil {
		r.onTimeout(c)
	}
}

// Assign gives c to one of candidates: the least busy not yet tried, and
// among equally busy ones the one given a call least recently (the first
// in candidates' order among those never given one). It fails with
// ErrNoProvider, ending c, if none is left, and with ErrEnded if c has
// ended already (timed out). A holder c still has is released first.
func (r *Router[P]) Assign(c *Call[P], candidates []P) (P, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var zero P
	if r.calls[c.id] != c {
		return zero, ErrEnded
	}
	r.release(c)
	best, found := zero, false
	for _, p := range candidates {
		if r.tried(c, p) {
			continue
		}
		if !found || r.busy[p] < r.busy[best] || r.busy[p] == r.busy[best] && r.used[p] < r.used[best] {
			best, found = p, true
		}
	}
	if !found {
		r.end(c)
		return zero, ErrNoProvider
	}
	r.clock++
	r.used[best] = r.clock
	c.holder, c.held = best, true
	c.tried = append(c.tried, best)
	r.busy[best]++
	return best, nil
}

func (r *Router[P]) tried(c *Call[P], p P) bool {
	for _, t := range c.tried {
		if t == p {
			return true
		}
	}
	return false
}

// release makes c's holder no longer hold it.
func (r *Router[P]) release(c *Call[P]) {
	if !c.held {
		return
	}
	if n := r.busy[c.holder] - 1; n > 0 {
		r.busy[c.holder] = n
	} else {
		delete(r.busy, c.holder)
	}
	var zero P
	c.holder, c.held = zero, false
}

func (r *Router[P]) end(c *Call[P]) {
	r.release(c)
	delete(r.calls, c.id)
	c.timer.Stop()
}

// lookup returns the call id held by p, or the reason it cannot answer it.
func (r *Router[P]) lookup(id uint64, p P) (*Call[P], error) {
	c, ok := r.calls[id]
	switch {
	case !ok && (id == 0 || id > r.last):
		return nil, ErrUnknown
	case !ok:
		return nil, ErrEnded
	case !c.held || c.holder != p:
		return nil, ErrNotHolder
	}
	return c, nil
}

// Answer ends the call id, answered by p, and returns it. It fails with
// ErrUnknown, ErrEnded or ErrNotHolder, changing nothing.
func (r *Router[P]) Answer(id uint64, p P) (*Call[P], error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := r.lookup(id, p)
	if err != nil {
		return nil, err
	}
	r.end(c)
	return c, nil
}

// Held returns the call id if p holds it, without ending it: for checking
// an answer before taking it. It fails as Answer does.
func (r *Router[P]) Held(id uint64, p P) (*Call[P], error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lookup(id, p)
}

// Reject takes the call id back from p, which will not be given it again,
// and returns it for Assign. It fails as Answer does.
func (r *Router[P]) Reject(id uint64, p P) (*Call[P], error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := r.lookup(id, p)
	if err != nil {
		return nil, err
	}
	r.release(c)
	return c, nil
}

// Release takes back every call p holds (p is gone), oldest first, for
// Assign, and forgets p.
func (r *Router[P]) Release(p P) []*Call[P] {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.used, p)
	if r.busy[p] == 0 {
		return nil
	}
	var out []*Call[P]
	for _, c := range r.calls {
		if c.held && c.holder == p {
			r.release(c)
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b *Call[P]) int { return cmp.Compare(a.id, b.id) })
	return out
}

// End ends c without an answer and reports whether it was in flight.
func (r *Router[P]) End(c *Call[P]) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.calls[c.id] != c {
		return false
	}
	r.end(c)
	return true
}

// Tried is the number of providers c has been given.
func (r *Router[P]) Tried(c *Call[P]) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(c.tried)
}

// Stop ends every call in flight without calling onTimeout, for a broker
// shutting down: no timer fires after it.
func (r *Router[P]) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.calls {
		r.end(c)
	}
}

// Pending is the number of calls in flight.
func (r *Router[P]) Pending() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}
