package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestGroupCommit(t *testing.T) {
	const (
		writers       = 64
		writesEach    = 8
		changesPerReq = 2
	)
	var txs, changes atomic.Int64
	s := openTest(t, Options{
		CommitDelay: 2 * time.Millisecond,
		OnCommit: func(n int, _ time.Duration, err error) {
			if err != nil {
				t.Errorf("commit failed: %v", err)
				return
			}
			txs.Add(1)
			changes.Add(int64(n))
		},
	})

	start := make(chan struct{})
	errs := make(chan error, writers*writesEach)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			<-start
			for i := range writesEach {
				id := fmt.Sprintf("client-%02d-%d", w, i)
				errs <- s.Write(context.Background(),
					PutSession(Session{ClientID: id, ProtocolVersion: 5}),
					PutSubscription(Subscription{ClientID: id, Filter: "f/" + id, QoS: 1}),
				)
			}
		})
	}
	close(start)
	wait(t, &wg)
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Write: %v", err)
		}
	}

	got := readAll(t, s)
	if len(got.Sessions) != writers*writesEach || len(got.Subscriptions) != writers*writesEach {
		t.Fatalf("store holds %d sessions and %d subscriptions, want %d each",
			len(got.Sessions), len(got.Subscriptions), writers*writesEach)
	}
	for i, sess := range got.Sessions {
		sub := got.Subscriptions[i]
		if sub.ClientID != sess.ClientID || sub.Filter != "f/"+sess.ClientID || sess.ProtocolVersion != 5 {
			t.Fatalf("record %d: session %+v, subscription %+v", i, sess, sub)
		}
	}

	// Write returned only after OnCommit ran for its transaction.
	if c := changes.Load(); c != writers*writesEach*changesPerReq {
		t.Errorf("OnCommit counted %d changes, want %d", c, writers*writesEach*changesPerReq)
	}
	n := txs.Load()
	if n < 1 || n >= writers*writesEach {
		t.Errorf("%d transactions for %d Write calls: want batching (1 <= n < %d)", n, writers*writesEach, writers*writesEach)
	}
	t.Logf("%d Write calls in %d transactions", writers*writesEach, n)
}

// MaxBatch caps the changes in one transaction; with a negative
// CommitDelay batches form from the requests already waiting.
func TestMaxBatch(t *testing.T) {
	s, log := holdCommitter(t, Options{MaxBatch: 4, CommitDelay: -1})
	for i := range 10 {
		if err := s.WriteAsync(PutSession(Session{ClientID: fmt.Sprint("c", i)})); err != nil {
			t.Fatal(err)
		}
	}
	waitQueued(t, s, 10)
	log.release()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	sizes, failed, _, asyncErr := log.snapshot()
	if want := []int{1, 4, 4, 2}; !slices.Equal(sizes, want) || len(failed) != 0 || len(asyncErr) != 0 {
		t.Fatalf("commits %v (failed %v, async errors %v), want %v", sizes, failed, asyncErr, want)
	}
}

// An invalid request in a batch fails alone; the rest of the batch commits
// in one transaction.
func TestFailureIsolation(t *testing.T) {
	s, log := holdCommitter(t, Options{})
	ctx := context.Background()

	const valid = 8
	type result struct {
		name string
		err  error
	}
	results := make(chan result, valid+3)
	var wg sync.WaitGroup
	write := func(name string, changes ...Change) {
		wg.Go(func() { results <- result{name, s.Write(ctx, changes...)} })
	}
	for i := range valid {
		id := fmt.Sprint("ok-", i)
		write(id, PutSession(Session{ClientID: id}), PutSubscription(Subscription{ClientID: id, Filter: "t"}))
	}
	write("invalid", PutSession(Session{Listener: "no id"}))
	write("mixed", PutSession(Session{ClientID: "mixed"}), PutSession(Session{}))
	write("mixed-retained", PutRetained(Message{Topic: "mixed"}, time.Unix(1, 0)), PutSubscription(Subscription{ClientID: "x"}))
	waitQueued(t, s, valid+3)
	log.release()
	wait(t, &wg)
	close(results)

	for r := range results {
		switch r.name {
		case "invalid", "mixed", "mixed-retained":
			if !errors.Is(r.err, ErrInvalid) {
				t.Errorf("%s: Write = %v, want ErrInvalid", r.name, r.err)
			}
		default:
			if r.err != nil {
				t.Errorf("%s: Write = %v, want nil", r.name, r.err)
			}
		}
	}

	got := readAll(t, s)
	var ids []string
	for _, v := range got.Sessions {
		ids = append(ids, v.ClientID)
	}
	want := []string{"ok-0", "ok-1", "ok-2", "ok-3", "ok-4", "ok-5", "ok-6", "ok-7"}
	if !slices.Equal(ids, want) {
		t.Errorf("sessions %q, want %q", ids, want)
	}
	if len(got.Subscriptions) != valid {
		t.Errorf("%d subscriptions, want %d", len(got.Subscriptions), valid)
	}
	if len(got.Retained) != 1 || got.Retained[0].Message.Topic != "hold" {
		t.Errorf("retained %+v, want only the hold message", got.Retained)
	}
	// The valid requests committed together, in the batch after the hold.
	if sizes, failed, _, _ := log.snapshot(); !slices.Equal(sizes, []int{1, 2 * valid}) || len(failed) != 0 {
		t.Errorf("commits %v (failed %v), want [1 %d]", sizes, failed, 2*valid)
	}
}

func TestWriteAsyncError(t *testing.T) {
	log := newCommitLog(false)
	s := openTest(t, log.options(Options{}))
	if err := s.WriteAsync(PutSession(Session{})); err != nil {
		t.Fatalf("WriteAsync returned %v; the error belongs to OnError", err)
	}
	if err := s.WriteAsync(PutSession(Session{ClientID: "fine"})); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteAsync(PutInflight("", Message{}), PutSession(Session{ClientID: "never"})); err != nil {
		t.Fatal(err)
	}
	path := s.Path()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, _, _, asyncErr := log.snapshot()
	if len(asyncErr) != 2 {
		t.Fatalf("OnError called %d times (%v), want 2", len(asyncErr), asyncErr)
	}
	for _, err := range asyncErr {
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("OnError got %v, want ErrInvalid", err)
		}
	}
	sessions, err := openAt(t, path, Options{}).Sessions()
	if err != nil || len(sessions) != 1 || sessions[0].ClientID != "fine" {
		t.Fatalf("Sessions = %+v, %v; want only \"fine\"", sessions, err)
	}
}

// fillUntilFull writes distinct retained topics with 4000-byte payloads
// until a Write fails, and returns the acknowledged topics and the error.
func fillUntilFull(t *testing.T, s *Store, payload []byte) (acked []string, failedTopic string, err error) {
	t.Helper()
	for i := range 10000 {
		topic := fmt.Sprintf("fill/%04d", i)
		err = s.Write(context.Background(), PutRetained(Message{Topic: topic, Payload: payload}, time.Unix(int64(i), 0)))
		if err != nil {
			return acked, topic, err
		}
		acked = append(acked, topic)
	}
	t.Fatalf("store never filled up after %d writes", len(acked))
	return nil, "", nil
}

func TestFull(t *testing.T) {
	const maxSize = 512 << 10
	payload := bytes.Repeat([]byte("0123456789abcdef"), 250) // 4000 bytes
	log := newCommitLog(false)
	s := openTest(t, log.options(Options{MaxSize: maxSize, CommitDelay: -1}))
	path := s.Path()

	acked, failedTopic, err := fillUntilFull(t, s, payload)
	if !errors.Is(err, ErrFull) {
		t.Fatalf("Write #%d = %v, want ErrFull", len(acked), err)
	}
	// Roughly: the cap holds some hundred 4 KB values, not a handful.
	if len(acked) < 50 {
		t.Fatalf("only %d writes before ErrFull with MaxSize %d", len(acked), maxSize)
	}
	if _, _, commitErr, _ := log.snapshot(); len(commitErr) != 1 || !errors.Is(commitErr[0], ErrFull) {
		t.Errorf("OnCommit errors %v, want one ErrFull", commitErr)
	}

	check := func(t *testing.T, s *Store) {
		t.Helper()
		all, err := s.RetainedMessages()
		if err != nil {
			t.Fatalf("RetainedMessages: %v", err)
		}
		sortRetained(all)
		if len(all) != len(acked) {
			t.Fatalf("%d retained messages, want %d", len(all), len(acked))
		}
		for i, r := range all {
			if r.Message.Topic != acked[i] || !bytes.Equal(r.Message.Payload, payload) || r.Version != 1 {
				t.Fatalf("retained %d: topic %q version %d, %d-byte payload; want %q version 1",
					i, r.Message.Topic, r.Version, len(r.Message.Payload), acked[i])
			}
		}
		if _, found, err := s.Retained(failedTopic); err != nil || found {
			t.Fatalf("Retained(%q) of the failed write: found %v, err %v", failedTopic, found, err)
		}
	}
	t.Run("after ErrFull", func(t *testing.T) { check(t, s) })

	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() > maxSize {
		t.Fatalf("file size %v (err %v), want at most %d", fi.Size(), err, maxSize)
	}
	t.Run("reopened same size", func(t *testing.T) {
		s := openAt(t, path, Options{MaxSize: maxSize})
		check(t, s)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("reopened larger", func(t *testing.T) {
		s := openAt(t, path, Options{MaxSize: 4 * maxSize})
		check(t, s)
		// The write that failed fits now.
		if err := s.Write(context.Background(), PutRetained(Message{Topic: failedTopic, Payload: payload}, time.Unix(1, 0))); err != nil {
			t.Fatalf("Write after growing MaxSize: %v", err)
		}
		if r, found, err := s.Retained(failedTopic); err != nil || !found || r.Version != 1 {
			t.Fatalf("Retained(%q) = %+v, %v, %v", failedTopic, r, found, err)
		}
	})
}

// When a batch does not fit, its requests are retried one by one, so that
// those that fit still succeed.
func TestFullBatchRetriedAlone(t *testing.T) {
	const maxSize = 1 << 20
	s, log := holdCommitter(t, Options{MaxSize: maxSize})
	ctx := context.Background()
	big := make([]byte, 2*maxSize)

	var wg sync.WaitGroup
	var bigErr, smallErr, asyncSmallErr error
	wg.Go(func() {
		bigErr = s.Write(ctx, PutRetained(Message{Topic: "big", Payload: big}, time.Unix(1, 0)))
	})
	waitQueued(t, s, 1)
	wg.Go(func() {
		smallErr = s.Write(ctx, PutSession(Session{ClientID: "small"}), PutRetained(Message{Topic: "small"}, time.Unix(1, 0)))
	})
	waitQueued(t, s, 2)
	asyncSmallErr = s.WriteAsync(PutSession(Session{ClientID: "async"}))
	waitQueued(t, s, 3)
	log.release()
	wait(t, &wg)

	if !errors.Is(bigErr, ErrFull) {
		t.Errorf("big Write = %v, want ErrFull", bigErr)
	}
	if smallErr != nil || asyncSmallErr != nil {
		t.Errorf("small writes = %v, %v; want nil", smallErr, asyncSmallErr)
	}
	if err := s.Write(ctx, PutSession(Session{ClientID: "after"})); err != nil {
		t.Errorf("Write after ErrFull: %v", err)
	}

	got := readAll(t, s)
	var ids []string
	for _, v := range got.Sessions {
		ids = append(ids, v.ClientID)
	}
	if want := []string{"after", "async", "small"}; !slices.Equal(ids, want) {
		t.Errorf("sessions %q, want %q", ids, want)
	}
	var topics []string
	for _, r := range got.Retained {
		topics = append(topics, r.Message.Topic)
	}
	if want := []string{"hold", "small"}; !slices.Equal(topics, want) {
		t.Errorf("retained topics %q, want %q", topics, want)
	}

	// Hold, the failed batch of 4 changes, then big (fails), small and
	// async alone, then "after".
	sizes, failed, commitErr, asyncErr := log.snapshot()
	if !slices.Equal(sizes, []int{1, 2, 1, 1}) || !slices.Equal(failed, []int{4, 1}) {
		t.Errorf("commits %v, failed %v; want [1 2 1 1], [4 1]", sizes, failed)
	}
	for _, err := range commitErr {
		if !errors.Is(err, ErrFull) {
			t.Errorf("OnCommit error %v, want ErrFull", err)
		}
	}
	if len(asyncErr) != 0 {
		t.Errorf("OnError got %v", asyncErr)
	}
}

func TestCloseDrainsAsync(t *testing.T) {
	const n = 2000
	log := newCommitLog(false)
	s := openTest(t, log.options(Options{CommitDelay: 5 * time.Millisecond}))
	path := s.Path()
	for i := range n {
		err := s.WriteAsync(
			PutSession(Session{ClientID: fmt.Sprintf("c%04d", i)}),
			PutInflight(fmt.Sprintf("c%04d", i), Message{Type: 3, PacketID: uint16(i)}),
		)
		if err != nil {
			t.Fatalf("WriteAsync %d: %v", i, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	sizes, failed, _, asyncErr := log.snapshot()
	total := 0
	for _, n := range sizes {
		total += n
	}
	if total != 2*n || len(failed) != 0 || len(asyncErr) != 0 {
		t.Fatalf("committed %d changes (failed %v, errors %v), want %d", total, failed, asyncErr, 2*n)
	}

	got := readAll(t, openAt(t, path, Options{}))
	if len(got.Sessions) != n || len(got.Inflight) != n {
		t.Fatalf("reopened store holds %d sessions, %d inflight; want %d each", len(got.Sessions), len(got.Inflight), n)
	}
	for i := range n {
		id := fmt.Sprintf("c%04d", i)
		if got.Sessions[i].ClientID != id || got.Inflight[i].ClientID != id || got.Inflight[i].Message.PacketID != uint16(i) {
			t.Fatalf("record %d: %+v, %+v", i, got.Sessions[i], got.Inflight[i])
		}
	}
}

func TestClosed(t *testing.T) {
	s := openTest(t, Options{})
	if err := s.Write(context.Background(), PutSession(Session{ClientID: "c"})); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if s.Ready() {
		t.Error("Ready() = true after Close")
	}

	tests := []struct {
		name string
		call func() error
	}{
		{"Write", func() error { return s.Write(context.Background(), PutSession(Session{ClientID: "d"})) }},
		{"WriteAsync", func() error { return s.WriteAsync(PutSession(Session{ClientID: "d"})) }},
		{"Sessions", func() error { _, err := s.Sessions(); return err }},
		{"Subscriptions", func() error { _, err := s.Subscriptions(); return err }},
		{"Inflight", func() error { _, err := s.Inflight(); return err }},
		{"RetainedMessages", func() error { _, err := s.RetainedMessages(); return err }},
		{"Retained", func() error { _, _, err := s.Retained("t"); return err }},
		{"Record", func() error { _, _, err := s.Record("t"); return err }},
		{"RetainedMatching", func() error { return s.RetainedMatching("", func(Retained) bool { return true }) }},
		{"RetainedCount", func() error { _, err := s.RetainedCount(); return err }},
		{"RetainedTopics", func() error { _, _, err := s.RetainedTopics("", "", 10, nil); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, ErrClosed) {
				t.Fatalf("%s after Close = %v, want ErrClosed", tt.name, err)
			}
		})
	}
}

// Writes racing with Close either succeed, and are then on disk, or fail
// with ErrClosed.
func TestCloseConcurrentWrites(t *testing.T) {
	s := openTest(t, Options{})
	path := s.Path()
	const writers = 16
	var acked atomic.Int64
	ackedTopics := make([][]string, writers)
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := 0; ; i++ {
				topic := fmt.Sprintf("w%02d/%d", w, i)
				var err error
				if i%2 == 0 {
					err = s.Write(context.Background(), PutRetained(Message{Topic: topic}, time.Unix(1, 0)))
				} else {
					err = s.WriteAsync(PutRetained(Message{Topic: topic}, time.Unix(1, 0)))
				}
				if err != nil {
					errs[w] = err
					return
				}
				ackedTopics[w] = append(ackedTopics[w], topic)
				acked.Add(1)
			}
		})
	}
	for deadline := time.Now().Add(10 * time.Second); acked.Load() < 200; {
		if time.Now().After(deadline) {
			t.Fatalf("only %d writes acknowledged", acked.Load())
		}
		time.Sleep(100 * time.Microsecond)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wait(t, &wg)

	all, err := openAt(t, path, Options{}).RetainedMessages()
	if err != nil {
		t.Fatal(err)
	}
	stored := make(map[string]bool, len(all))
	for _, r := range all {
		stored[r.Message.Topic] = true
	}
	for w := range writers {
		if !errors.Is(errs[w], ErrClosed) {
			t.Errorf("writer %d ended with %v, want ErrClosed", w, errs[w])
		}
		for _, topic := range ackedTopics[w] {
			if !stored[topic] {
				t.Errorf("acknowledged %q is missing after Close", topic)
			}
		}
	}
}

func TestWriteContext(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()

	t.Run("canceled before Write", func(t *testing.T) {
		// The committer is busy, so the outcome cannot be a commit.
		s, _ := holdCommitter(t, Options{})
		if err := writeWithin(t, s, canceled, PutSession(Session{ClientID: "c"})); !errors.Is(err, context.Canceled) {
			t.Fatalf("Write = %v, want context.Canceled", err)
		}
	})

	t.Run("canceled with queue full", func(t *testing.T) {
		s, log := holdCommitter(t, Options{QueueLen: 1})
		if err := s.WriteAsync(PutSession(Session{ClientID: "queued"})); err != nil {
			t.Fatal(err)
		}
		waitQueued(t, s, 1)
		if err := writeWithin(t, s, canceled, PutSession(Session{ClientID: "dropped"})); !errors.Is(err, context.Canceled) {
			t.Fatalf("Write = %v, want context.Canceled", err)
		}
		log.release()
		if err := s.Write(context.Background(), PutSession(Session{ClientID: "last"})); err != nil {
			t.Fatal(err)
		}
		got := readAll(t, s)
		if want := []Session{{ClientID: "last"}, {ClientID: "queued"}}; !reflect.DeepEqual(got.Sessions, want) {
			t.Fatalf("Sessions = %+v, want %+v", got.Sessions, want)
		}
	})

	t.Run("canceled while waiting", func(t *testing.T) {
		s, log := holdCommitter(t, Options{})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Write(ctx, PutSession(Session{ClientID: "late"})) }()
		waitQueued(t, s, 1)
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Write = %v, want context.Canceled", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Write did not return after its context was canceled")
		}
		// As documented, the queued change is still applied.
		log.release()
		if err := s.Write(context.Background(), PutSession(Session{ClientID: "next"})); err != nil {
			t.Fatal(err)
		}
		got := readAll(t, s)
		if want := []Session{{ClientID: "late"}, {ClientID: "next"}}; !reflect.DeepEqual(got.Sessions, want) {
			t.Fatalf("Sessions = %+v, want %+v", got.Sessions, want)
		}
	})
}

// The committer adds no wait unless asked: batches form from what queued
// during the previous commit, which measured faster than any wait
// (docs/BENCHMARKS.md). Zero and negative delays both mean no wait.
func TestNoCommitDelayByDefault(t *testing.T) {
	for _, d := range []time.Duration{0, -1} {
		if got := (&Options{CommitDelay: d}).withDefaults().CommitDelay; got > 0 {
			t.Errorf("CommitDelay %v becomes %v, want no wait", d, got)
		}
	}
	if got := (&Options{CommitDelay: time.Millisecond}).withDefaults().CommitDelay; got != time.Millisecond {
		t.Errorf("CommitDelay 1ms becomes %v", got)
	}
}

// WriteNotify reports each request's own result to its callback, applied
// in queue order with the other writes, and never to OnError.
func TestWriteNotify(t *testing.T) {
	log := newCommitLog(false)
	s := openTest(t, log.options(Options{}))
	var mu sync.Mutex
	results := map[string]error{}
	note := func(name string) func(error) {
		return func(err error) {
			mu.Lock()
			defer mu.Unlock()
			results[name] = err
		}
	}
	rec := func(v, base uint64) Change {
		return PutRecord(Retained{Message: Message{Topic: "n", Payload: []byte{byte(v)}}, Version: v}, base)
	}
	// Each change's base is the version the one queued before it makes:
	// they succeed only if applied in queue order.
	if err := s.WriteNotify(note("first"), rec(1, 0)); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteNotify(note("stale"), rec(2, 0)); err != nil { // base 0: the first made it 1
		t.Fatal(err)
	}
	if err := s.WriteNotify(note("second"), rec(2, 1)); err != nil {
		t.Fatal(err)
	}
	// A Write queued after them commits after them, so their callbacks
	// have run when it returns.
	if err := s.Write(context.Background(), rec(3, 2)); err != nil {
		t.Fatalf("Write after the notified writes: %v", err)
	}
	mu.Lock()
	got := maps.Clone(results)
	mu.Unlock()
	if len(got) != 3 || got["first"] != nil || got["second"] != nil || !errors.Is(got["stale"], ErrConflict) {
		t.Errorf("callbacks got %v, want first and second nil, stale ErrConflict", got)
	}
	if _, _, _, asyncErr := log.snapshot(); len(asyncErr) != 0 {
		t.Errorf("OnError got %v; WriteNotify's errors belong to its callback", asyncErr)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	called := false
	if err := s.WriteNotify(func(error) { called = true }, rec(4, 3)); !errors.Is(err, ErrClosed) || called {
		t.Errorf("WriteNotify after Close = %v (callback called %v), want ErrClosed and no call", err, called)
	}
}
