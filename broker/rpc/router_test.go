package rpc_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/broker/rpc"
)

// never is a timeout no test waits for.
const never = time.Hour

// wait bounds how long a test waits for something that should happen
// promptly (a timer firing); it is never reached when the Router works.
const wait = 5 * time.Second

// start makes a call that the test ends on cleanup, so that no timer
// outlives it.
func start(t *testing.T, r *rpc.Router[string], name string, timeout time.Duration, data any) *rpc.Call[string] {
	t.Helper()
	c, err := r.Start(name, timeout, data)
	if err != nil {
		t.Fatalf("Start(%q, %v) = %v", name, timeout, err)
	}
	t.Cleanup(func() { r.End(c) })
	return c
}

// assign gives c to one of candidates and fails the test if none takes it.
func assign(t *testing.T, r *rpc.Router[string], c *rpc.Call[string], candidates ...string) string {
	t.Helper()
	p, err := r.Assign(c, candidates)
	if err != nil {
		t.Fatalf("Assign(call %d, %q) = %v, want a provider", c.ID(), candidates, err)
	}
	return p
}

// assignFails checks that Assign gives c to none of candidates, failing
// with want.
func assignFails(t *testing.T, r *rpc.Router[string], c *rpc.Call[string], want error, candidates ...string) {
	t.Helper()
	if p, err := r.Assign(c, candidates); !errors.Is(err, want) || p != "" {
		t.Errorf("Assign(call %d, %q) = %q, %v, want \"\", %v", c.ID(), candidates, p, err, want)
	}
}

func answer(t *testing.T, r *rpc.Router[string], c *rpc.Call[string], p string) {
	t.Helper()
	if _, err := r.Answer(c.ID(), p); err != nil {
		t.Fatalf("Answer(%d, %q) = %v, want nil", c.ID(), p, err)
	}
}

func wantPending(t *testing.T, r *rpc.Router[string], want int) {
	t.Helper()
	if got := r.Pending(); got != want {
		t.Errorf("Pending() = %d, want %d", got, want)
	}
}

func ids(calls []*rpc.Call[string]) []uint64 {
	out := make([]uint64, len(calls))
	for i, c := range calls {
		out[i] = c.ID()
	}
	return out
}

// Calls that are assigned and answered one at a time go to equally busy
// providers in turn, in the order the candidates are given.
func TestAssignTakesTurnsAmongEquallyBusyProviders(t *testing.T) {
	r := rpc.New[string](0, nil)
	providers := []string{"a", "b", "c"}
	const n = 300
	counts := map[string]int{}
	for i := range n {
		c := start(t, r, "sum", never, nil)
		p := assign(t, r, c, providers...)
		if want := providers[i%len(providers)]; p != want {
			t.Fatalf("call %d went to %q, want %q (turns so far %v)", i+1, p, want, counts)
		}
		counts[p]++
		answer(t, r, c, p)
	}
	for _, p := range providers {
		if counts[p] != n/len(providers) {
			t.Errorf("%q got %d of %d calls, want %d", p, counts[p], n, n/len(providers))
		}
	}
	wantPending(t, r, 0)
}

// The turn among equally busy providers is fair however calls arrive:
// in bursts (several in flight at once), or interleaved with calls to
// another procedure whose candidates are others. A round-robin over the
// ties gives every provider its share (exactly so in these cases); the
// tolerance only allows for a different but fair rotation.
func TestAssignTurnIsFairAcrossBurstsAndOtherProcedures(t *testing.T) {
	tests := []struct {
		name string
		// round lists the candidates of each call of a round.
		round [][]string
		// together holds a round's calls until all are assigned, then
		// answers them; otherwise each is answered before the next.
		together bool
		rounds   int
		want     map[string]int
	}{
		{
			name:     "bursts of two calls to the same three providers",
			round:    [][]string{{"a", "b", "c"}, {"a", "b", "c"}},
			together: true,
			rounds:   150,
			want:     map[string]int{"a": 100, "b": 100, "c": 100},
		},
		{
			name:     "calls to x (providers a, b) alternate with calls to y (provider c)",
			round:    [][]string{{"a", "b"}, {"c"}},
			together: false,
			rounds:   200,
			want:     map[string]int{"a": 100, "b": 100, "c": 200},
		},
		{
			name:     "calls to x (providers a, b, c) alternate with calls to y (provider d)",
			round:    [][]string{{"a", "b", "c"}, {"d"}},
			together: false,
			rounds:   300,
			want:     map[string]int{"a": 100, "b": 100, "c": 100, "d": 300},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rpc.New[string](0, nil)
			got := map[string]int{}
			type held struct {
				c *rpc.Call[string]
				p string
			}
			for range tt.rounds {
				var inFlight []held
				for i, cands := range tt.round {
					c := start(t, r, fmt.Sprintf("proc%d", i), never, nil)
					p := assign(t, r, c, cands...)
					got[p]++
					if tt.together {
						inFlight = append(inFlight, held{c, p})
					} else {
						answer(t, r, c, p)
					}
				}
				for _, h := range inFlight {
					answer(t, r, h.c, h.p)
				}
			}
			const tolerance = 10
			for p, want := range tt.want {
				if got[p] < want-tolerance || got[p] > want+tolerance {
					t.Errorf("%q got %d calls, want %d±%d (all: %v)", p, got[p], want, tolerance, got)
				}
			}
		})
	}
}

// A call goes to the least busy provider; ties are broken in turn, and a
// busier provider gets nothing while another is less busy.
func TestAssignPrefersLeastBusyProvider(t *testing.T) {
	r := rpc.New[string](0, nil)
	// a holds 2 calls and b holds 1, each given the only candidate.
	assign(t, r, start(t, r, "x", never, nil), "a")
	assign(t, r, start(t, r, "x", never, nil), "a")
	assign(t, r, start(t, r, "x", never, nil), "b")

	steps := []struct {
		name string
		want []string // any of these
	}{
		{"c holds nothing: c", []string{"c"}},
		{"b and c hold 1, a 2: b or c", []string{"b", "c"}},
		{"one of b, c holds 1, the others 2: that one", nil}, // the one of b, c not chosen above
		{"all hold 2: any", []string{"a", "b", "c"}},
	}
	busy := map[string]int{"a": 2, "b": 1}
	for _, s := range steps {
		want := s.want
		if want == nil {
			for _, p := range []string{"b", "c"} {
				if busy[p] == 1 {
					want = append(want, p)
				}
			}
		}
		p := assign(t, r, start(t, r, "x", never, nil), "a", "b", "c")
		if !slices.Contains(want, p) {
			t.Fatalf("%s: went to %q, want one of %q (busy before: %v)", s.name, p, want, busy)
		}
		busy[p]++
	}
}

// A provider that rejects a call is not given it again; once every
// candidate has been tried, Assign ends the call.
func TestRejectedProviderIsNotTriedAgain(t *testing.T) {
	t.Run("each candidate once, then the call ends", func(t *testing.T) {
		r := rpc.New[string](0, nil)
		c := start(t, r, "x", never, nil)
		candidates := []string{"a", "b", "c"}
		var tried []string
		for range candidates {
			p := assign(t, r, c, candidates...)
			if slices.Contains(tried, p) {
				t.Fatalf("call given to %q again after it rejected it (tried %q)", p, tried)
			}
			tried = append(tried, p)
			if got := r.Tried(c); got != len(tried) {
				t.Errorf("Tried = %d after %q, want %d", got, tried, len(tried))
			}
			got, err := r.Reject(c.ID(), p)
			if err != nil || got != c {
				t.Fatalf("Reject(%d, %q) = %p, %v, want the call, nil", c.ID(), p, got, err)
			}
			wantPending(t, r, 1)
		}
		if got := r.Tried(c); got != len(candidates) {
			t.Errorf("Tried = %d, want %d", got, len(candidates))
		}
		assignFails(t, r, c, rpc.ErrNoProvider, candidates...)
		wantPending(t, r, 0)
		assignFails(t, r, c, rpc.ErrEnded, candidates...)
		for _, p := range candidates {
			if _, err := r.Answer(c.ID(), p); !errors.Is(err, rpc.ErrEnded) {
				t.Errorf("Answer(%d, %q) after the call ended = %v, want ErrEnded", c.ID(), p, err)
			}
		}
		if r.End(c) {
			t.Error("End after Assign ended the call = true, want false")
		}
	})

	t.Run("skipped even when it is the least busy", func(t *testing.T) {
		r := rpc.New[string](0, nil)
		assign(t, r, start(t, r, "x", never, nil), "b")
		assign(t, r, start(t, r, "x", never, nil), "c")
		c := start(t, r, "x", never, nil)
		if p := assign(t, r, c, "a", "b", "c"); p != "a" {
			t.Fatalf("went to %q, want the idle a", p)
		}
		if _, err := r.Reject(c.ID(), "a"); err != nil {
			t.Fatalf("Reject by a = %v", err)
		}
		if p := assign(t, r, c, "a", "b", "c"); p == "a" {
			t.Fatalf("given back to a, which rejected it")
		}
	})

	t.Run("only the rejecter left: the call ends", func(t *testing.T) {
		r := rpc.New[string](0, nil)
		c := start(t, r, "x", never, nil)
		assign(t, r, c, "a")
		if _, err := r.Reject(c.ID(), "a"); err != nil {
			t.Fatalf("Reject by a = %v", err)
		}
		assignFails(t, r, c, rpc.ErrNoProvider, "a")
		wantPending(t, r, 0)
	})

	t.Run("no candidates: the call ends", func(t *testing.T) {
		r := rpc.New[string](0, nil)
		c := start(t, r, "x", never, nil)
		assignFails(t, r, c, rpc.ErrNoProvider)
		if got := r.Tried(c); got != 0 {
			t.Errorf("Tried = %d, want 0", got)
		}
		wantPending(t, r, 0)
		if _, err := r.Answer(c.ID(), "a"); !errors.Is(err, rpc.ErrEnded) {
			t.Errorf("Answer after = %v, want ErrEnded", err)
		}
	})
}

func TestAnswer(t *testing.T) {
	t.Run("by the holder: returns the call and ends it", func(t *testing.T) {
		r := rpc.New[string](0, nil)
		other := start(t, r, "x", never, nil)
		c := start(t, r, "x", never, "payload")
		p := assign(t, r, c, "a")
		wantPending(t, r, 2)
		got, err := r.Answer(c.ID(), p)
		if err != nil || got != c {
			t.Fatalf("Answer(%d, %q) = %p, %v, want %p, nil", c.ID(), p, got, err, c)
		}
		wantPending(t, r, 1)
		if got, err := r.Answer(c.ID(), p); !errors.Is(err, rpc.ErrEnded) || got != nil {
			t.Errorf("second Answer = %p, %v, want nil, ErrEnded", got, err)
		}
		if r.End(c) {
			t.Error("End after Answer = true, want false")
		}
		if r.End(other) != true {
			t.Error("End of the other call = false: Answer ended the wrong call")
		}
		if got := r.Release(p); got != nil {
			t.Errorf("Release(%q) after its only call was answered = %v, want nil", p, ids(got))
		}
	})

	t.Run("by a non-holder: ErrNotHolder, nothing changes", func(t *testing.T) {
		r := rpc.New[string](0, nil)
		c := start(t, r, "x", never, nil)
		assign(t, r, c, "a")
		for _, p := range []string{"b", ""} {
			if got, err := r.Answer(c.ID(), p); !errors.Is(err, rpc.ErrNotHolder) || got != nil {
				t.Errorf("Answer(%d, %q) = %p, %v, want nil, ErrNotHolder", c.ID(), p, got, err)
			}
		}
		wantPending(t, r, 1)
		answer(t, r, c, "a")
		wantPending(t, r, 0)
	})

	t.Run("held by none after Reject: ErrNotHolder", func(t *testing.T) {
		r := rpc.New[string](0, nil)
		c := start(t, r, "x", never, nil)
		assign(t, r, c, "a")
		if _, err := r.Reject(c.ID(), "a"); err != nil {
			t.Fatalf("Reject = %v", err)
		}
		for _, p := range []string{"a", "b", ""} {
			if _, err := r.Answer(c.ID(), p); !errors.Is(err, rpc.ErrNotHolder) {
				t.Errorf("Answer(%d, %q) = %v, want ErrNotHolder", c.ID(), p, err)
			}
		}
		wantPending(t, r, 1)
		// still assignable to another
		answer(t, r, c, assign(t, r, c, "a", "b"))
	})

	t.Run("never assigned: ErrNotHolder", func(t *testing.T) {
		r := rpc.New[string](0, nil)
		c := start(t, r, "x", never, nil)
		if _, err := r.Answer(c.ID(), ""); !errors.Is(err, rpc.ErrNotHolder) {
			t.Errorf("Answer by the zero provider = %v, want ErrNotHolder", err)
		}
		wantPending(t, r, 1)
	})

	t.Run("ids never issued: ErrUnknown", func(t *testing.T) {
		r := rpc.New[string](0, nil)
		c := start(t, r, "x", never, nil)
		assign(t, r, c, "a")
		for _, id := range []uint64{0, c.ID() + 1, 1 << 63, ^uint64(0)} {
			if got, err := r.Answer(id, "a"); !errors.Is(err, rpc.ErrUnknown) || got != nil {
				t.Errorf("Answer(%d) = %p, %v, want nil, ErrUnknown", id, got, err)
			}
		}
		wantPending(t, r, 1)
		answer(t, r, c, "a")
	})
}

// Reject fails as Answer does, changing nothing.
func TestRejectFailsAsAnswerDoes(t *testing.T) {
	r := rpc.New[string](0, nil)
	ended := start(t, r, "x", never, nil)
	answer(t, r, ended, assign(t, r, ended, "a"))
	c := start(t, r, "x", never, nil)
	assign(t, r, c, "a")

	tests := []struct {
		name string
		id   uint64
		p    string
		want error
	}{
		{"id 0", 0, "a", rpc.ErrUnknown},
		{"id above any issued", c.ID() + 1, "a", rpc.ErrUnknown},
		{"ended call", ended.ID(), "a", rpc.ErrEnded},
		{"non-holder", c.ID(), "b", rpc.ErrNotHolder},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := r.Reject(tt.id, tt.p); !errors.Is(err, tt.want) || got != nil {
				t.Errorf("Reject(%d, %q) = %p, %v, want nil, %v", tt.id, tt.p, got, err, tt.want)
			}
			wantPending(t, r, 1)
		})
	}
	answer(t, r, c, "a") // a still holds it
}

func TestRelease(t *testing.T) {
	t.Run("returns the provider's calls oldest first, for others", func(t *testing.T) {
		r := rpc.New[string](0, nil)
		const n = 40
		var calls []*rpc.Call[string]
		for range n {
			calls = append(calls, start(t, r, "x", never, nil))
		}
		// a gets the odd ids, newest first; b gets 2; the other even ids
		// are held by none.
		var want []uint64
		for i := n - 1; i >= 0; i-- {
			if id := calls[i].ID(); id%2 == 1 {
				assign(t, r, calls[i], "a")
				want = append([]uint64{id}, want...)
			}
		}
		assign(t, r, calls[1], "b")

		got := r.Release("a")
		if !slices.Equal(ids(got), want) {
			t.Fatalf("Release(a) = %v, want %v", ids(got), want)
		}
		for i, c := range got {
			if c != calls[c.ID()-1] {
				t.Errorf("Release(a)[%d] is not the call Start returned with id %d", i, c.ID())
			}
		}
		wantPending(t, r, n)
		for _, c := range got {
			if _, err := r.Answer(c.ID(), "a"); !errors.Is(err, rpc.ErrNotHolder) {
				t.Errorf("Answer(%d, a) after Release(a) = %v, want ErrNotHolder", c.ID(), err)
			}
		}
		if got := r.Release("a"); got != nil {
			t.Errorf("second Release(a) = %v, want nil", ids(got))
		}
		// Given to others, never back to a, although a is now idle.
		last := len(got) - 1
		for _, c := range got[:last] {
			if p := assign(t, r, c, "a", "b", "c"); p == "a" {
				t.Errorf("call %d given back to a after Release(a)", c.ID())
			}
		}
		assignFails(t, r, got[last], rpc.ErrNoProvider, "a")
		// b's call was not touched.
		answer(t, r, calls[1], "b")
	})

	t.Run("a provider holding nothing: nil", func(t *testing.T) {
		r := rpc.New[string](0, nil)
		c := start(t, r, "x", never, nil)
		assign(t, r, c, "a")
		for _, p := range []string{"b", "nobody", ""} {
			if got := r.Release(p); got != nil {
				t.Errorf("Release(%q) = %v, want nil", p, ids(got))
			}
		}
		answer(t, r, c, "a") // a still holds it
		if got := r.Release("a"); got != nil {
			t.Errorf("Release(a) after it answered = %v, want nil", ids(got))
		}
	})

	t.Run("a call it rejected is not returned", func(t *testing.T) {
		r := rpc.New[string](0, nil)
		c := start(t, r, "x", never, nil)
		assign(t, r, c, "a")
		if _, err := r.Reject(c.ID(), "a"); err != nil {
			t.Fatal(err)
		}
		if got := r.Release("a"); got != nil {
			t.Errorf("Release(a) after Reject = %v, want nil", ids(got))
		}
	})
}

func TestTimeout(t *testing.T) {
	const timeout = 20 * time.Millisecond
	tests := []struct {
		name   string
		before func(t *testing.T, r *rpc.Router[string], c *rpc.Call[string]) // before the deadline
		fires  bool
	}{
		{"never assigned", func(*testing.T, *rpc.Router[string], *rpc.Call[string]) {}, true},
		{"held by a", func(t *testing.T, r *rpc.Router[string], c *rpc.Call[string]) { assign(t, r, c, "a") }, true},
		{"rejected, held by none", func(t *testing.T, r *rpc.Router[string], c *rpc.Call[string]) {
			assign(t, r, c, "a")
			if _, err := r.Reject(c.ID(), "a"); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"answered", func(t *testing.T, r *rpc.Router[string], c *rpc.Call[string]) {
			answer(t, r, c, assign(t, r, c, "a"))
		}, false},
		{"ended", func(t *testing.T, r *rpc.Router[string], c *rpc.Call[string]) {
			if !r.End(c) {
				t.Fatal("End = false")
			}
		}, false},
		{"ended by Assign with no candidate left", func(t *testing.T, r *rpc.Router[string], c *rpc.Call[string]) {
			assignFails(t, r, c, rpc.ErrNoProvider)
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			type report struct {
				c        *rpc.Call[string]
				inFlight bool // End(c) inside onTimeout: the call should have ended
			}
			reports := make(chan report, 10)
			var r *rpc.Router[string]
			r = rpc.New(0, func(c *rpc.Call[string]) {
				reports <- report{c, r.End(c)}
			})
			c := start(t, r, "x", timeout, nil)
			tt.before(t, r, c)

			if !tt.fires {
				select {
				case rep := <-reports:
					t.Fatalf("onTimeout called with call %d, which ended before its deadline", rep.c.ID())
				case <-time.After(5 * timeout):
				}
				return
			}

			select {
			case rep := <-reports:
				if rep.c != c {
					t.Fatalf("onTimeout called with call %d, want %d", rep.c.ID(), c.ID())
				}
				if rep.inFlight {
					t.Error("onTimeout called before the call ended: End in it = true")
				}
			case <-time.After(wait):
				t.Fatalf("onTimeout not called %v after a %v timeout", wait, timeout)
			}
			wantPending(t, r, 0)
			for _, p := range []string{"a", "b"} {
				if _, err := r.Answer(c.ID(), p); !errors.Is(err, rpc.ErrEnded) {
					t.Errorf("Answer(%d, %q) after timeout = %v, want ErrEnded", c.ID(), p, err)
				}
			}
			if r.End(c) {
				t.Error("End after timeout = true, want false")
			}
			assignFails(t, r, c, rpc.ErrEnded, "b")
			if got := r.Release("a"); got != nil {
				t.Errorf("Release(a) after its call timed out = %v, want nil", ids(got))
			}
			select {
			case rep := <-reports:
				t.Errorf("onTimeout called again, with call %d", rep.c.ID())
			case <-time.After(5 * timeout):
			}
		})
	}
}

func TestEnd(t *testing.T) {
	r := rpc.New[string](0, nil)
	c := start(t, r, "x", never, nil)
	assign(t, r, c, "a")
	other := start(t, r, "x", never, nil)

	if !r.End(c) {
		t.Fatal("first End = false, want true")
	}
	wantPending(t, r, 1)
	if r.End(c) {
		t.Error("second End = true, want false")
	}
	assignFails(t, r, c, rpc.ErrEnded, "a", "b")
	if _, err := r.Answer(c.ID(), "a"); !errors.Is(err, rpc.ErrEnded) {
		t.Errorf("Answer by its former holder = %v, want ErrEnded", err)
	}
	if got := r.Release("a"); got != nil {
		t.Errorf("Release(a) after its call ended = %v, want nil", ids(got))
	}
	// a holds nothing now, so it is as idle as b.
	if p := assign(t, r, other, "b", "a"); p != "b" && p != "a" {
		t.Errorf("went to %q", p)
	}
	wantPending(t, r, 1)
}

func TestMaxPending(t *testing.T) {
	t.Run("New(2, nil): a third call is refused until one ends", func(t *testing.T) {
		tests := []struct {
			name string
			end  func(t *testing.T, r *rpc.Router[string], c *rpc.Call[string])
		}{
			{"by End", func(t *testing.T, r *rpc.Router[string], c *rpc.Call[string]) { r.End(c) }},
			{"by Answer", func(t *testing.T, r *rpc.Router[string], c *rpc.Call[string]) {
				answer(t, r, c, assign(t, r, c, "a"))
			}},
			{"by Assign with none left", func(t *testing.T, r *rpc.Router[string], c *rpc.Call[string]) {
				assignFails(t, r, c, rpc.ErrNoProvider)
			}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := rpc.New[string](2, nil)
				first := start(t, r, "x", never, nil)
				start(t, r, "x", never, nil)
				c, err := r.Start("x", never, nil)
				if !errors.Is(err, rpc.ErrBusy) || c != nil {
					t.Fatalf("third Start = %v, %v, want nil, ErrBusy", c, err)
				}
				wantPending(t, r, 2)
				tt.end(t, r, first)
				third := start(t, r, "x", never, nil)
				if third.ID() != 3 {
					t.Errorf("call after ErrBusy has id %d, want 3 (a refused Start issues no id)", third.ID())
				}
				if _, err := r.Start("x", never, nil); !errors.Is(err, rpc.ErrBusy) {
					t.Errorf("Start with 2 in flight again = %v, want ErrBusy", err)
				}
			})
		}
	})

	for _, maxPending := range []int{0, -1} {
		t.Run(fmt.Sprintf("New(%d, nil) allows 10000", maxPending), func(t *testing.T) {
			r := rpc.New[string](maxPending, nil)
			var calls []*rpc.Call[string]
			t.Cleanup(func() {
				for _, c := range calls { // so that no timer outlives the test
					r.End(c)
				}
			})
			for i := range 10000 {
				c, err := r.Start("x", never, nil)
				if err != nil {
					t.Fatalf("Start %d = %v", i+1, err)
				}
				calls = append(calls, c)
			}
			wantPending(t, r, 10000)
			for id := uint64(1); id <= 10000; id++ {
				// Each is held by none: ErrNotHolder proves it is in flight.
				if _, err := r.Answer(id, "a"); !errors.Is(err, rpc.ErrNotHolder) {
					t.Fatalf("Answer(%d) = %v, want ErrNotHolder", id, err)
				}
			}
		})
	}
}

func TestIDsNameAndData(t *testing.T) {
	r := rpc.New[string](0, nil)
	type payload struct{ n int }
	before := time.Now()
	for i := range 5 {
		name := fmt.Sprintf("proc/%d", i)
		data := &payload{i}
		c := start(t, r, name, never, data)
		if want := uint64(i + 1); c.ID() != want {
			t.Errorf("call %d: ID() = %d, want %d", i, c.ID(), want)
		}
		if c.Name() != name {
			t.Errorf("call %d: Name() = %q, want %q", i, c.Name(), name)
		}
		if c.Data != data {
			t.Errorf("call %d: Data = %v, want the value given to Start", i, c.Data)
		}
		if s := c.Started(); s.Before(before) || s.After(time.Now()) {
			t.Errorf("call %d: Started() = %v, not during Start", i, s)
		}
		got, err := r.Answer(c.ID(), assign(t, r, c, "a"))
		if err != nil || got.Name() != name || got.Data != data {
			t.Errorf("call %d: Answer returned %v, %v, want the call with its name and data", i, got, err)
		}
	}
	// ids are not reused after calls end
	if c := start(t, r, "", never, nil); c.ID() != 6 || c.Name() != "" || c.Data != nil {
		t.Errorf("sixth call: ID %d, Name %q, Data %v; want 6, \"\", nil", c.ID(), c.Name(), c.Data)
	}
}

// Many goroutines start, assign, answer, reject and release calls on
// shared providers while short timeouts fire. Every call ends exactly
// once: answered, timed out, or ended by Assign with no provider left.
func TestConcurrentCallsEachEndExactlyOnce(t *testing.T) {
	const (
		workers    = 8
		iterations = 3000
	)
	shared := []string{"p0", "p1", "p2", "p3"}

	type tracker struct {
		short bool // times out in 1ms; the others never do
		cands []string
		ends  atomic.Int32
	}
	var started, answered, noProvider, timedOut, endedTwice, longTimedOut atomic.Int64
	ended := func(tr *tracker) {
		if tr.ends.Add(1) != 1 {
			endedTwice.Add(1)
		}
	}
	r := rpc.New(0, func(c *rpc.Call[string]) {
		tr := c.Data.(*tracker)
		timedOut.Add(1)
		ended(tr)
		if !tr.short {
			longTimedOut.Add(1)
		}
	})

	var mu sync.Mutex
	var all []*rpc.Call[string]
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 42))

			// drive routes c until it ends, is abandoned to its timer or
			// passes to another worker; it returns calls it took over.
			drive := func(c *rpc.Call[string]) []*rpc.Call[string] {
				tr := c.Data.(*tracker)
				for {
					p, err := r.Assign(c, tr.cands)
					switch {
					case err == nil:
					case errors.Is(err, rpc.ErrNoProvider):
						noProvider.Add(1)
						ended(tr)
						return nil
					case errors.Is(err, rpc.ErrEnded) && tr.short: // timed out
						return nil
					default:
						t.Errorf("Assign(%d) = %v (short %v)", c.ID(), err, tr.short)
						return nil
					}
					x := rng.IntN(100)
					switch {
					case tr.short && x < 10:
						return nil // left to time out, unless p is released
					case x < 55:
						_, err := r.Answer(c.ID(), p)
						switch {
						case err == nil:
							answered.Add(1)
							ended(tr)
						// p was released: another worker has the call, and
						// may have ended it already; or it timed out.
						case errors.Is(err, rpc.ErrNotHolder), errors.Is(err, rpc.ErrEnded):
						default:
							t.Errorf("Answer(%d, %q) = %v (short %v)", c.ID(), p, err, tr.short)
						}
						return nil
					case x < 85:
						_, err := r.Reject(c.ID(), p)
						switch {
						case err == nil:
							continue
						case errors.Is(err, rpc.ErrNotHolder), errors.Is(err, rpc.ErrEnded):
						default:
							t.Errorf("Reject(%d, %q) = %v (short %v)", c.ID(), p, err, tr.short)
						}
						return nil
					default:
						got := r.Release(p)
						if !slices.IsSorted(ids(got)) {
							t.Errorf("Release(%q) = %v, not oldest first", p, ids(got))
						}
						return got // c among them unless it timed out or was released already
					}
				}
			}

			for i := range iterations {
				tr := &tracker{}
				timeout := time.Minute
				if i%3 == 0 {
					tr.short, timeout = true, time.Millisecond
				}
				if i%2 == 0 {
					tr.cands = shared
				} else {
					k := rng.IntN(len(shared) - 1)
					tr.cands = shared[k : k+2]
				}
				c, err := r.Start("op", timeout, tr)
				if err != nil {
					t.Errorf("Start = %v", err)
					return
				}
				started.Add(1)
				mu.Lock()
				all = append(all, c)
				mu.Unlock()
				for queue := []*rpc.Call[string]{c}; len(queue) > 0; {
					c := queue[0]
					queue = append(queue[1:], drive(c)...)
				}
			}
		}()
	}
	wg.Wait()

	// Abandoned short calls end when their timers fire.
	deadline := time.Now().Add(wait)
	for r.Pending() != 0 || timedOut.Load()+answered.Load()+noProvider.Load() != started.Load() {
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	wantPending(t, r, 0)
	t.Logf("%d calls: %d answered, %d timed out, %d ended with no provider left",
		started.Load(), answered.Load(), timedOut.Load(), noProvider.Load())
	if got := timedOut.Load() + answered.Load() + noProvider.Load(); got != started.Load() {
		t.Errorf("timed out + answered + no provider = %d, want the %d started", got, started.Load())
	}
	if n := endedTwice.Load(); n != 0 {
		t.Errorf("%d calls ended twice", n)
	}
	if n := longTimedOut.Load(); n != 0 {
		t.Errorf("%d calls with a 1m timeout reported timed out", n)
	}
	for _, c := range all {
		if n := c.Data.(*tracker).ends.Load(); n != 1 {
			t.Errorf("call %d ended %d times, want 1", c.ID(), n)
		}
	}
	if answered.Load() == 0 || timedOut.Load() == 0 || noProvider.Load() == 0 {
		t.Errorf("not every ending exercised: %d answered, %d timed out, %d no provider",
			answered.Load(), timedOut.Load(), noProvider.Load())
	}

	// No provider is left holding anything: all are idle, so four new
	// calls go to the four providers, one each.
	for _, p := range shared {
		if got := r.Release(p); got != nil {
			t.Errorf("Release(%q) at the end = %v, want nil", p, ids(got))
		}
	}
	seen := map[string]bool{}
	for range shared {
		p := assign(t, r, start(t, r, "op", never, nil), shared...)
		if seen[p] {
			t.Errorf("%q given a second call while another provider was idle: busy count leaked", p)
		}
		seen[p] = true
	}
}

// Stop ends every call without a timeout callback: nothing fires after a
// shutdown.
func TestStop(t *testing.T) {
	var fired atomic.Int32
	r := rpc.New[string](0, func(*rpc.Call[string]) { fired.Add(1) })
	a, _ := r.Start("x", 20*time.Millisecond, nil)
	b, _ := r.Start("y", 20*time.Millisecond, nil)
	if _, err := r.Assign(a, []string{"p"}); err != nil {
		t.Fatal(err)
	}
	r.Stop()
	if n := r.Pending(); n != 0 {
		t.Fatalf("Pending after Stop = %d, want 0", n)
	}
	if _, err := r.Answer(a.ID(), "p"); !errors.Is(err, rpc.ErrEnded) {
		t.Errorf("Answer after Stop: %v, want ErrEnded", err)
	}
	if r.End(b) {
		t.Errorf("End after Stop = true, want false")
	}
	time.Sleep(100 * time.Millisecond) // past both timeouts
	if n := fired.Load(); n != 0 {
		t.Errorf("onTimeout called %d times after Stop, want 0", n)
	}
}
