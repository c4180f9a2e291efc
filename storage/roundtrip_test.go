package storage

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// contents is everything a Store holds, sorted.
type contents struct {
	Sessions      []Session
	Subscriptions []Subscription
	Inflight      []Inflight
	Retained      []Retained
}

func readAll(t testing.TB, s *Store) contents {
	t.Helper()
	var c contents
	var err error
	if c.Sessions, err = s.Sessions(); err != nil {
		t.Fatalf("Sessions: %v", err)
	}
	if c.Subscriptions, err = s.Subscriptions(); err != nil {
		t.Fatalf("Subscriptions: %v", err)
	}
	if c.Inflight, err = s.Inflight(); err != nil {
		t.Fatalf("Inflight: %v", err)
	}
	if c.Retained, err = s.RetainedMessages(); err != nil {
		t.Fatalf("RetainedMessages: %v", err)
	}
	sortSessions(c.Sessions)
	sortSubscriptions(c.Subscriptions)
	sortInflight(c.Inflight)
	sortRetained(c.Retained)
	return c
}

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "dir", "hearth.db") // Open creates the directory
	s := openAt(t, path, Options{})
	if got := s.Path(); got != path {
		t.Fatalf("Path() = %q, want %q", got, path)
	}
	if !s.Ready() {
		t.Fatal("Ready() = false on an open store")
	}

	modified := time.Unix(1700000000, 987654321)
	want := contents{
		Sessions: []Session{
			fullSession("full"),
			{ClientID: "minimal", ProtocolVersion: 4},
		},
		Subscriptions: []Subscription{
			fullSubscription("full", "sensors/+/temp"),
			{ClientID: "full", Filter: "#"},
			{ClientID: "minimal", Filter: "$share/g/a/b", QoS: 1},
		},
		Inflight: []Inflight{
			{ClientID: "full", Message: fullMessage("out/1", 1)},
			{ClientID: "full", Message: Message{Type: 6, PacketID: 2}},
			{ClientID: "full", Message: Message{Type: 5, PacketID: 65535, ReasonCode: 0x80}},
			{ClientID: "minimal", Message: fullMessage("out/2", 1)},
		},
		Retained: []Retained{
			{Message: fullMessage("home/kitchen/temp", 0), Version: 1, Modified: modified.UnixNano()},
			{Message: Message{Topic: "x"}, Version: 1, Modified: modified.UnixNano()},
		},
	}

	sortSessions(want.Sessions)
	sortSubscriptions(want.Subscriptions)
	sortInflight(want.Inflight)
	sortRetained(want.Retained)

	var changes []Change
	for _, v := range want.Sessions {
		changes = append(changes, PutSession(v))
	}
	for _, v := range want.Subscriptions {
		changes = append(changes, PutSubscription(v))
	}
	for _, v := range want.Inflight {
		changes = append(changes, PutInflight(v.ClientID, v.Message))
	}
	for _, v := range want.Retained {
		changes = append(changes, PutRetained(v.Message, modified))
	}
	if err := s.Write(context.Background(), changes...); err != nil {
		t.Fatalf("Write: %v", err)
	}

	check := func(t *testing.T, s *Store) {
		t.Helper()
		got := readAll(t, s)
		if !reflect.DeepEqual(got.Sessions, want.Sessions) {
			t.Errorf("Sessions:\n got %+v\nwant %+v", got.Sessions, want.Sessions)
		}
		if !reflect.DeepEqual(got.Subscriptions, want.Subscriptions) {
			t.Errorf("Subscriptions:\n got %+v\nwant %+v", got.Subscriptions, want.Subscriptions)
		}
		if !reflect.DeepEqual(got.Inflight, want.Inflight) {
			t.Errorf("Inflight:\n got %+v\nwant %+v", got.Inflight, want.Inflight)
		}
		if !reflect.DeepEqual(got.Retained, want.Retained) {
			t.Errorf("RetainedMessages:\n got %+v\nwant %+v", got.Retained, want.Retained)
		}
		for _, w := range want.Retained {
			r, found, err := s.Retained(w.Message.Topic)
			if err != nil || !found {
				t.Fatalf("Retained(%q) = found %v, err %v", w.Message.Topic, found, err)
			}
			if !reflect.DeepEqual(r, w) {
				t.Errorf("Retained(%q):\n got %+v\nwant %+v", w.Message.Topic, r, w)
			}
		}
	}
	t.Run("open", func(t *testing.T) { check(t, s) })

	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	t.Run("reopened", func(t *testing.T) { check(t, openAt(t, path, Options{})) })
}

func TestEmptyStore(t *testing.T) {
	s := openTest(t, Options{})
	got := readAll(t, s)
	if len(got.Sessions)+len(got.Subscriptions)+len(got.Inflight)+len(got.Retained) != 0 {
		t.Fatalf("new store holds %+v", got)
	}
	if err := s.Write(context.Background()); err != nil {
		t.Fatalf("Write with no changes: %v", err)
	}
	if err := s.WriteAsync(); err != nil {
		t.Fatalf("WriteAsync with no changes: %v", err)
	}
}

func TestReplaceAndDelete(t *testing.T) {
	s := openTest(t, Options{CommitDelay: -1})
	ctx := context.Background()
	write := func(changes ...Change) {
		t.Helper()
		if err := s.Write(ctx, changes...); err != nil {
			t.Fatalf("Write: %v", err)
		}
	}

	write(
		PutSession(Session{ClientID: "c", Listener: "old"}),
		PutSubscription(Subscription{ClientID: "c", Filter: "a", QoS: 0}),
		PutSubscription(Subscription{ClientID: "c", Filter: "b", QoS: 1}),
		PutInflight("c", Message{Type: 3, PacketID: 1, Topic: "old"}),
		PutInflight("c", Message{Type: 3, PacketID: 2, Topic: "two"}),
	)
	write(
		PutSession(Session{ClientID: "c", Listener: "new"}),
		PutSubscription(Subscription{ClientID: "c", Filter: "a", QoS: 2}),
		PutInflight("c", Message{Type: 6, PacketID: 1}),
		DeleteSubscription("c", "b"),
		DeleteInflight("c", 2),
		// Deleting what does not exist is not an error.
		DeleteSubscription("c", "nope"),
		DeleteInflight("c", 99),
		DeleteInflight("nobody", 1),
		DeleteSession("nobody"),
		DeleteRetained("nothing"),
	)

	got := readAll(t, s)
	want := contents{
		Sessions:      []Session{{ClientID: "c", Listener: "new"}},
		Subscriptions: []Subscription{{ClientID: "c", Filter: "a", QoS: 2}},
		Inflight:      []Inflight{{ClientID: "c", Message: Message{Type: 6, PacketID: 1}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("after replace and delete:\n got %+v\nwant %+v", got, want)
	}
}

// Changes of one Write apply in the order given, and see each other.
func TestWriteAppliesInOrder(t *testing.T) {
	s := openTest(t, Options{})
	ctx := context.Background()
	mt := time.Unix(100, 0)
	err := s.Write(ctx,
		PutSession(Session{ClientID: "gone"}),
		DeleteSession("gone"),
		DeleteSession("back"),
		PutSession(Session{ClientID: "back"}),
		PutRetained(Message{Topic: "t", Payload: []byte("1")}, mt),
		PutRetained(Message{Topic: "t", Payload: []byte("2")}, mt),
	)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	got := readAll(t, s)
	if want := []Session{{ClientID: "back"}}; !reflect.DeepEqual(got.Sessions, want) {
		t.Errorf("Sessions = %+v, want %+v", got.Sessions, want)
	}
	r, found, err := s.Retained("t")
	if err != nil || !found || r.Version != 2 || string(r.Message.Payload) != "2" {
		t.Errorf("Retained(t) = %+v, %v, %v; want version 2 payload 2", r, found, err)
	}
}

// WriteAsync and Write share one FIFO queue.
func TestAsyncFIFO(t *testing.T) {
	log := newCommitLog(false)
	s := openTest(t, log.options(Options{}))
	const n = 300
	mt := time.Unix(5, 0)
	for i := range n {
		if err := s.WriteAsync(PutRetained(Message{Topic: "seq", Payload: fmt.Appendf(nil, "%d", i)}, mt)); err != nil {
			t.Fatalf("WriteAsync %d: %v", i, err)
		}
	}
	if err := s.Write(context.Background(), PutRetained(Message{Topic: "seq", Payload: []byte("last")}, mt)); err != nil {
		t.Fatalf("Write: %v", err)
	}
	r, found, err := s.Retained("seq")
	if err != nil || !found {
		t.Fatalf("Retained: %v %v", found, err)
	}
	if r.Version != n+1 || string(r.Message.Payload) != "last" {
		t.Fatalf("Retained = version %d payload %q, want %d %q", r.Version, r.Message.Payload, n+1, "last")
	}
	if _, _, _, asyncErr := log.snapshot(); len(asyncErr) != 0 {
		t.Fatalf("OnError got %v", asyncErr)
	}
}

func TestRetainedVersions(t *testing.T) {
	s := openTest(t, Options{CommitDelay: -1})
	ctx := context.Background()
	t0 := time.Unix(1700000000, 5)

	check := func(topic string, version uint64, modified time.Time, payload string) {
		t.Helper()
		r, found, err := s.Retained(topic)
		if err != nil {
			t.Fatalf("Retained(%q): %v", topic, err)
		}
		if !found {
			t.Fatalf("Retained(%q): not found", topic)
		}
		want := Retained{Message: Message{Topic: topic, Payload: []byte(payload)}, Version: version, Modified: modified.UnixNano()}
		if !reflect.DeepEqual(r, want) {
			t.Fatalf("Retained(%q) = %+v, want %+v", topic, r, want)
		}
	}
	put := func(topic, payload string, mt time.Time) {
		t.Helper()
		if err := s.Write(ctx, PutRetained(Message{Topic: topic, Payload: []byte(payload)}, mt)); err != nil {
			t.Fatalf("Write: %v", err)
		}
	}

	for i := range 3 {
		mt := t0.Add(time.Duration(i) * time.Second)
		put("a/b", fmt.Sprint("v", i+1), mt)
		check("a/b", uint64(i+1), mt, fmt.Sprint("v", i+1))
	}
	put("other", "x", t0)
	check("other", 1, t0, "x")
	check("a/b", 3, t0.Add(2*time.Second), "v3")

	if err := s.Write(ctx, DeleteRetained("a/b")); err != nil {
		t.Fatalf("DeleteRetained: %v", err)
	}
	if r, found, err := s.Retained("a/b"); err != nil || found || !reflect.DeepEqual(r, Retained{}) {
		t.Fatalf("Retained after delete = %+v, %v, %v; want zero, false, nil", r, found, err)
	}
	all, err := s.RetainedMessages()
	if err != nil || len(all) != 1 || all[0].Message.Topic != "other" {
		t.Fatalf("RetainedMessages after delete = %+v, %v", all, err)
	}

	// The delete left a tombstone at version 4: re-creating continues.
	t1 := t0.Add(time.Hour)
	put("a/b", "again", t1)
	check("a/b", 5, t1, "again")

	if r, found, err := s.Retained("missing"); err != nil || found || !reflect.DeepEqual(r, Retained{}) {
		t.Fatalf("Retained(missing) = %+v, %v, %v; want zero, false, nil", r, found, err)
	}
	// A prefix of a stored topic is a different topic.
	if _, found, err := s.Retained("a/"); err != nil || found {
		t.Fatalf("Retained(a/) = found %v, err %v", found, err)
	}
}

func TestDeleteSessionLeavesOtherClients(t *testing.T) {
	long := strings.Repeat("a", 200) // its length takes two uvarint bytes
	ids := []string{
		"a", "ab", "b", "a\x00", "a\x01", "\x01", "\x01a", "\x02a", "\x00",
		long, long + "a", long[:127], long[:128],
	}
	mt := time.Unix(9, 0)
	for _, target := range ids {
		t.Run(fmt.Sprintf("%q", target), func(t *testing.T) {
			s := openTest(t, Options{CommitDelay: -1})
			ctx := context.Background()
			var changes []Change
			for _, id := range ids {
				changes = append(changes,
					PutSession(Session{ClientID: id, Listener: "l-" + id}),
					PutSubscription(Subscription{ClientID: id, Filter: "f/" + id, QoS: 1}),
					// A filter that starts like another client's id.
					PutSubscription(Subscription{ClientID: id, Filter: "b"}),
					PutInflight(id, Message{Type: 3, PacketID: 1, Topic: "i/" + id}),
					PutInflight(id, Message{Type: 6, PacketID: 0x0161}), // bytes 0x01 'a'
				)
			}
			changes = append(changes, PutRetained(Message{Topic: target}, mt)) // retained is not per client
			if err := s.Write(ctx, changes...); err != nil {
				t.Fatalf("Write: %v", err)
			}
			if err := s.Write(ctx, DeleteSession(target)); err != nil {
				t.Fatalf("DeleteSession: %v", err)
			}

			var want contents
			for _, id := range ids {
				if id == target {
					continue
				}
				want.Sessions = append(want.Sessions, Session{ClientID: id, Listener: "l-" + id})
				want.Subscriptions = append(want.Subscriptions,
					Subscription{ClientID: id, Filter: "f/" + id, QoS: 1},
					Subscription{ClientID: id, Filter: "b"})
				want.Inflight = append(want.Inflight,
					Inflight{ClientID: id, Message: Message{Type: 3, PacketID: 1, Topic: "i/" + id}},
					Inflight{ClientID: id, Message: Message{Type: 6, PacketID: 0x0161}})
			}
			want.Retained = []Retained{{Message: Message{Topic: target}, Version: 1, Modified: mt.UnixNano()}}
			sortSessions(want.Sessions)
			sortSubscriptions(want.Subscriptions)
			sortInflight(want.Inflight)

			got := readAll(t, s)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("after DeleteSession(%q):\n got %+v\nwant %+v", target, got, want)
			}
		})
	}
}

func TestInvalidChanges(t *testing.T) {
	mt := time.Unix(1, 0)
	tests := []struct {
		name   string
		change Change
	}{
		{"session without id", PutSession(Session{Listener: "x"})},
		{"subscription without client", PutSubscription(Subscription{Filter: "a"})},
		{"subscription without filter", PutSubscription(Subscription{ClientID: "c"})},
		{"inflight without client", PutInflight("", Message{Type: 3, PacketID: 1})},
		{"retained without topic", PutRetained(Message{Payload: []byte("x")}, mt)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTest(t, Options{CommitDelay: -1})
			err := s.Write(context.Background(), tt.change)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Write = %v, want ErrInvalid", err)
			}
			got := readAll(t, s)
			if len(got.Sessions)+len(got.Subscriptions)+len(got.Inflight)+len(got.Retained) != 0 {
				t.Fatalf("store holds %+v after an invalid write", got)
			}
		})
	}
}

// A Write is all or nothing: one invalid change undoes the others.
func TestWriteAllOrNothing(t *testing.T) {
	s := openTest(t, Options{CommitDelay: -1})
	ctx := context.Background()
	mt := time.Unix(1, 0)
	if err := s.Write(ctx,
		PutSession(Session{ClientID: "keep"}),
		PutSubscription(Subscription{ClientID: "keep", Filter: "k"}),
		PutRetained(Message{Topic: "r"}, mt),
	); err != nil {
		t.Fatalf("Write: %v", err)
	}
	before := readAll(t, s)

	err := s.Write(ctx,
		PutSession(Session{ClientID: "new"}),
		DeleteSession("keep"),
		PutRetained(Message{Topic: "r"}, mt.Add(time.Hour)),
		PutSession(Session{}), // invalid, last
	)
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("Write = %v, want ErrInvalid", err)
	}
	if after := readAll(t, s); !reflect.DeepEqual(after, before) {
		t.Fatalf("failed Write changed the store:\n got %+v\nwant %+v", after, before)
	}
}
