package record_test

import (
	"context"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/broker/record"
	"github.com/hearth-iot/hearth/storage"
)

// run runs recs.Run until the test ends, and checks it then returns nil.
func run(t *testing.T, recs *record.Records) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- recs.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Run did not return within 5s of its context ending")
		}
	})
}

// expiring is a Put of a small document with message expiry at (unix
// seconds; 0 never).
func expiring(name string, at int64) record.Op {
	op := record.Op{Kind: record.Put, Name: name, Payload: jsonPayload(`{"on":true}`)}
	op.Message.Expiry = at
	return op
}

// waitTombstone waits until name is a tombstone in st.
func waitTombstone(t *testing.T, st *storage.Store, name string) storage.Retained {
	t.Helper()
	var s storage.Retained
	waitFor(t, 5*time.Second, name+" is not deleted", func() bool {
		s, _ = storedRecord(t, st, name)
		return s.Deleted
	})
	return s
}

// Run deletes a record once its message expiry has passed, leaving a
// tombstone that is published; a record rewritten without expiry before
// then is left alone.
func TestExpiryDeletesRecord(t *testing.T) {
	e := newEnv(t, record.Options{})
	now := time.Now().Unix()
	apply(t, e.recs, expiring("exp/kept", 0))
	apply(t, e.recs, expiring("exp/gone", now)) // gone after this second
	// Rewritten before Run starts, so that no sweep can come between; its
	// first version expires before exp/gone, so it is swept first.
	apply(t, e.recs, expiring("exp/rewritten", now-1))
	apply(t, e.recs, expiring("exp/rewritten", 0))
	if n := e.recs.Count(); n != 3 {
		t.Fatalf("Count() = %d, want 3", n)
	}
	run(t, e.recs)

	s := waitTombstone(t, e.store, "exp/gone")
	if s.Version != 2 {
		t.Errorf("tombstone of exp/gone at version %d, want 2", s.Version)
	}
	// The tombstone is published, and counted, once its write returns:
	// just after the store shows it.
	waitFor(t, 5*time.Second, "exp/gone's tombstone is not published", func() bool { return len(e.pub.of("exp/gone")) >= 2 })
	calls := e.pub.of("exp/gone")
	if len(calls) != 2 || !calls[1].rec.Deleted || calls[1].rec.Version != 2 || calls[1].payload != nil {
		t.Errorf("published for exp/gone: %+v; want v1, then the v2 tombstone with no payload", calls)
	}
	if n := e.recs.Count(); n != 2 {
		t.Errorf("Count() = %d after the expiry, want 2", n)
	}
	wantCode(t, getErr(e.recs, "exp/gone"), record.CodeNotFound)

	for _, name := range []string{"exp/rewritten", "exp/kept"} {
		if s, _ := storedRecord(t, e.store, name); s.Deleted {
			t.Errorf("%s was deleted at version %d", name, s.Version)
		}
		if _, err := e.recs.Get(name); err != nil {
			t.Errorf("Get(%s): %v", name, err)
		}
	}
	if vs := e.pub.versions("exp/rewritten"); len(vs) != 2 {
		t.Errorf("published versions of exp/rewritten: %v, want [1 2]", vs)
	}
	e.pub.checkDurable(t)
}

// Run deletes the expired records it finds in the store when it starts.
func TestExpiryOfStoredRecords(t *testing.T) {
	st := openStore(t, storage.Options{})
	before := newRecords(t, st, newPublisher(nil), record.Options{})
	apply(t, before, expiring("old/expired", time.Now().Unix()-1))
	apply(t, before, expiring("old/live", 0))

	pub := newPublisher(st)
	recs := newRecords(t, st, pub, record.Options{})
	if n := recs.Count(); n != 2 {
		t.Fatalf("Count() = %d, want 2: an expired record counts until it is deleted", n)
	}
	wantCode(t, getErr(recs, "old/expired"), record.CodeNotFound)
	run(t, recs)

	if s := waitTombstone(t, st, "old/expired"); s.Version != 2 {
		t.Errorf("tombstone at version %d, want 2", s.Version)
	}
	waitFor(t, 5*time.Second, "old/expired's tombstone is not published", func() bool { return len(pub.versions("old/expired")) >= 1 })
	if n := recs.Count(); n != 1 {
		t.Errorf("Count() = %d after the expiry, want 1", n)
	}
	if vs := pub.versions("old/expired"); len(vs) != 1 || vs[0] != 2 {
		t.Errorf("published versions %v, want [2]", vs)
	}
}

// A record whose expiry has passed does not exist for readers even before
// Run deletes it; operations treat it as missing, but continue its count.
func TestExpiredBeforeSweep(t *testing.T) {
	clk := &clock{now: time.Unix(1_900_000_000, 0)}
	e := newEnv(t, record.Options{Now: clk.Now})
	at := clk.Now().Unix() + 10
	for _, name := range []string{"x/get", "x/merge", "x/delete", "x/delete-ignore", "x/delete-at-version"} {
		apply(t, e.recs, expiring(name, at))
	}

	clk.Add(10 * time.Second) // the expiry second itself: still there
	if got, err := e.recs.Get("x/get"); err != nil || got.Version != 1 {
		t.Fatalf("Get in the expiry second = v%d, %v; want v1", got.Version, err)
	}
	clk.Add(time.Second)
	gerr := wantCode(t, getErr(e.recs, "x/get"), record.CodeNotFound)
	if gerr.Current == nil || gerr.Current.Version != 1 {
		t.Errorf("NOT_FOUND Current = %+v, want version 1", gerr.Current)
	}
	if s, _ := storedRecord(t, e.store, "x/get"); s.Deleted || s.Version != 1 {
		t.Errorf("stored v%d deleted %v; want v1 still stored", s.Version, s.Deleted)
	}
	if n := e.recs.Count(); n != 5 {
		t.Errorf("Count() = %d, want 5: expired records count until deleted", n)
	}

	res := apply(t, e.recs, record.Op{Kind: record.Merge, Name: "x/merge", Value: map[string]any{"b": int64(1)}})
	if res.Record.Version != 2 || !sameDoc(res.Record.Value, map[string]any{"b": int64(1)}) {
		t.Errorf("Merge into expired record = v%d %s; want v2 {\"b\":1}, from an empty document", res.Record.Version, jsonOf(res.Record.Value))
	}

	_, err := e.recs.Apply(record.Op{Kind: record.Delete, Name: "x/delete"})
	wantCode(t, err, record.CodeNotFound)

	if res := apply(t, e.recs, record.Op{Kind: record.Delete, Name: "x/delete-ignore", IgnoreMissing: true}); res.Changed {
		t.Errorf("Delete ignoring missing of an expired record changed it to v%d", res.Record.Version)
	}

	res = apply(t, e.recs, record.Op{Kind: record.Delete, Name: "x/delete-at-version", Conditional: true, IfVersion: 1})
	if !res.Changed || !res.Record.Deleted || res.Record.Version != 2 {
		t.Errorf("conditional Delete of an expired record = %+v; want the v2 tombstone", res.Record)
	}
	if n := e.recs.Count(); n != 4 {
		t.Errorf("Count() = %d, want 4", n)
	}
}

// The expiry of an asynchronous change whose write failed must not delete
// the record that a later change stored with the same version number.
func TestExpiryOfFailedAsyncChange(t *testing.T) {
	base := openStore(t, storage.Options{})
	st := &failingNotifyStore{Store: base, release: make(chan struct{})}
	errs := make(chan string, 10)
	pub := newPublisher(base)
	recs := newRecords(t, st, pub, record.Options{OnError: func(name string, _ error) { errs <- name }})
	now := time.Now().Unix()

	apply(t, recs, expiring("victim", 0))
	// v2, expired already, is published but its write fails.
	async := expiring("victim", now-2)
	async.Async = true
	if res := apply(t, recs, async); res.Record.Version != 2 {
		t.Fatalf("async Put = v%d, want v2", res.Record.Version)
	}
	close(st.release)
	select {
	case name := <-errs:
		if name != "victim" {
			t.Fatalf("OnError(%q), want victim", name)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("OnError not called")
	}
	// A new v2, without expiry, is stored.
	if res := apply(t, recs, expiring("victim", 0)); res.Record.Version != 2 {
		t.Fatalf("Put after the failure = v%d, want v2 (stored v1 + 1)", res.Record.Version)
	}
	// A sentinel due after the failed change tells when Run has dealt with it.
	apply(t, recs, expiring("sentinel", now-1))
	run(t, recs)
	waitTombstone(t, base, "sentinel")

	if s, _ := storedRecord(t, base, "victim"); s.Deleted {
		t.Errorf("victim deleted at v%d by the expiry of the failed v2; the stored v2 has no expiry", s.Version)
	}
	if _, err := recs.Get("victim"); err != nil {
		t.Errorf("Get(victim): %v", err)
	}
}
