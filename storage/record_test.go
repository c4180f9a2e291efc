package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	bolt "go.etcd.io/bbolt"
)

// rec is the record of topic "doc" at version, written by writer, with an
// opaque payload.
func rec(version uint64, payload, writer string) Retained {
	return Retained{
		Message:  Message{Type: 3, Topic: "doc", Payload: []byte(payload), Retain: true, Origin: writer},
		Version:  version,
		Modified: 1700000000_000000000 + int64(version),
	}
}

func tombstone(version uint64, writer string) Retained {
	return Retained{Message: Message{Topic: "doc", Origin: writer}, Version: version, Modified: 1700000000_000000000 + int64(version), Deleted: true}
}

func structured(version uint64, doc []byte) Retained {
	r := rec(version, "", "writer")
	r.Message.Payload, r.Structured = doc, true
	return r
}

func mustEncode(t testing.TB, v any) []byte {
	t.Helper()
	b, err := encode(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rawRetained returns the stored bytes of topic, read with bbolt directly
// after closing s.
func rawRetained(t *testing.T, s *Store, topic string) []byte {
	t.Helper()
	path := s.Path()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var out []byte
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		out = bytes.Clone(tx.Bucket(bucketRetained).Get([]byte(topic)))
		return nil
	})
	return out
}

func TestPutRecord(t *testing.T) {
	doc := []byte{0xa1, 0x61, 'k', 0x01} // {"k": 1}
	tests := []struct {
		name    string
		before  []Change // each in its own Write
		change  Change
		wantErr error
		want    *Retained // Record("doc") after; nil: none
	}{
		{
			name:   "create from nothing",
			change: PutRecord(rec(1, "a", "w1"), 0),
			want:   ptr(rec(1, "a", "w1")),
		},
		{
			name:   "update",
			before: []Change{PutRecord(rec(1, "a", "w1"), 0)},
			change: PutRecord(rec(2, "b", "w2"), 1),
			want:   ptr(rec(2, "b", "w2")),
		},
		{
			name:   "update a PutRetained value",
			before: []Change{PutRetained(rec(1, "a", "w1").Message, time.Unix(0, 5))},
			change: PutRecord(rec(2, "b", "w2"), 1),
			want:   ptr(rec(2, "b", "w2")),
		},
		{
			name:   "version may skip",
			before: []Change{PutRecord(rec(1, "a", "w1"), 0)},
			change: PutRecord(rec(10, "b", "w2"), 1),
			want:   ptr(rec(10, "b", "w2")),
		},
		{
			name:    "stale base",
			before:  []Change{PutRecord(rec(1, "a", "w1"), 0), PutRecord(rec(2, "b", "w1"), 1)},
			change:  PutRecord(rec(2, "x", "w2"), 1),
			wantErr: ErrConflict,
			want:    ptr(rec(2, "b", "w1")),
		},
		{
			name:    "base ahead of stored",
			before:  []Change{PutRecord(rec(1, "a", "w1"), 0)},
			change:  PutRecord(rec(6, "x", "w2"), 5),
			wantErr: ErrConflict,
			want:    ptr(rec(1, "a", "w1")),
		},
		{
			name:    "create over an existing record",
			before:  []Change{PutRecord(rec(1, "a", "w1"), 0)},
			change:  PutRecord(rec(1, "x", "w2"), 0),
			wantErr: ErrConflict,
			want:    ptr(rec(1, "a", "w1")),
		},
		{
			name:    "update of nothing",
			change:  PutRecord(rec(2, "x", "w2"), 1),
			wantErr: ErrConflict,
		},
		{
			name:    "base from before a delete",
			before:  []Change{PutRecord(rec(1, "a", "w1"), 0), PutRecord(tombstone(2, "w1"), 1)},
			change:  PutRecord(rec(2, "x", "w2"), 1),
			wantErr: ErrConflict,
			want:    ptr(tombstone(2, "w1")),
		},
		{
			name:    "create over a tombstone",
			before:  []Change{PutRecord(rec(1, "a", "w1"), 0), PutRecord(tombstone(2, "w1"), 1)},
			change:  PutRecord(rec(1, "x", "w2"), 0),
			wantErr: ErrConflict,
			want:    ptr(tombstone(2, "w1")),
		},
		{
			name:   "recreate after delete",
			before: []Change{PutRecord(rec(1, "a", "w1"), 0), PutRecord(tombstone(2, "w1"), 1)},
			change: PutRecord(rec(3, "again", "w2"), 2),
			want:   ptr(rec(3, "again", "w2")),
		},
		{
			name:   "recreate after DeleteRetained",
			before: []Change{PutRecord(rec(1, "a", "w1"), 0), DeleteRetained("doc")},
			change: PutRecord(rec(3, "again", "w2"), 2),
			want:   ptr(rec(3, "again", "w2")),
		},
		{
			name:   "delete keeps topic, writer and time only",
			before: []Change{PutRecord(rec(1, "a", "w1"), 0)},
			change: func() Change {
				r := structured(2, doc)
				r.Message.Origin, r.Message.QoS, r.Deleted = "deleter", 1, true
				return PutRecord(r, 1)
			}(),
			want: ptr(tombstone(2, "deleter")),
		},
		{
			name:   "delete of nothing reserves the version",
			change: PutRecord(tombstone(1, "w1"), 0),
			want:   ptr(tombstone(1, "w1")),
		},
		{
			name:   "structured",
			before: []Change{PutRecord(rec(1, "a", "w1"), 0)},
			change: PutRecord(structured(2, doc), 1),
			want:   ptr(structured(2, doc)),
		},
		{
			name:   "opaque over structured",
			before: []Change{PutRecord(structured(1, doc), 0)},
			change: PutRecord(rec(2, string(doc), "w2"), 1),
			want:   ptr(rec(2, string(doc), "w2")),
		},
		{
			name:    "empty topic",
			change:  PutRecord(Retained{Message: Message{Payload: []byte("x")}, Version: 1}, 0),
			wantErr: ErrInvalid,
		},
		{
			name:    "version equal to base",
			before:  []Change{PutRecord(rec(1, "a", "w1"), 0)},
			change:  PutRecord(rec(1, "x", "w2"), 1),
			wantErr: ErrInvalid,
			want:    ptr(rec(1, "a", "w1")),
		},
		{
			name:    "version below base",
			before:  []Change{PutRecord(rec(3, "a", "w1"), 0)},
			change:  PutRecord(rec(2, "x", "w2"), 3),
			wantErr: ErrInvalid,
			want:    ptr(rec(3, "a", "w1")),
		},
		{
			name:    "version zero",
			change:  PutRecord(rec(0, "x", "w2"), 0),
			wantErr: ErrInvalid,
		},
		{name: "structured empty", change: PutRecord(structured(1, nil), 0), wantErr: ErrInvalid},
		{name: "structured truncated", change: PutRecord(structured(1, []byte{0xa2, 0x61, 't'}), 0), wantErr: ErrInvalid},
		{name: "structured trailing bytes", change: PutRecord(structured(1, []byte{0x01, 0x02}), 0), wantErr: ErrInvalid},
		{name: "structured break byte", change: PutRecord(structured(1, []byte{0xff}), 0), wantErr: ErrInvalid},
		{name: "structured bad tag content", change: PutRecord(structured(1, []byte{0xc0, 0x01}), 0), wantErr: ErrInvalid},
		{name: "structured indefinite length", change: PutRecord(structured(1, []byte{0x9f, 0x01, 0xff}), 0), wantErr: ErrInvalid},
		{
			// Fine alone, but one level too deep inside the record map.
			name:    "structured too deep for the record",
			change:  PutRecord(structured(1, nested(16)), 0),
			wantErr: ErrInvalid,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTest(t, Options{CommitDelay: -1})
			ctx := context.Background()
			for i, c := range tt.before {
				if err := s.Write(ctx, c); err != nil {
					t.Fatalf("before[%d]: %v", i, err)
				}
			}
			err := s.Write(ctx, tt.change)
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("Write = %v, want %v", err, tt.wantErr)
			}
			got, found, err := s.Record("doc")
			if err != nil {
				t.Fatalf("Record: %v", err)
			}
			if tt.want == nil {
				if found {
					t.Fatalf("Record = %+v, want none", got)
				}
				return
			}
			if !found || !reflect.DeepEqual(got, *tt.want) {
				t.Fatalf("Record = %+v, %v\nwant %+v", got, found, *tt.want)
			}
			live, found, err := s.Retained("doc")
			if err != nil || found == tt.want.Deleted {
				t.Fatalf("Retained = %+v, %v, %v", live, found, err)
			}
			if !tt.want.Deleted && !reflect.DeepEqual(live, *tt.want) {
				t.Fatalf("Retained = %+v\nwant %+v", live, *tt.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// nested returns levels nested one-element arrays around 0.
func nested(levels int) []byte {
	return []byte(strings.Repeat("\x81", levels) + "\x00")
}

// A structured payload is stored as the CBOR item itself, byte for byte,
// and read back as given.
func TestStructuredRecord(t *testing.T) {
	docs := []struct {
		name string
		doc  []byte
	}{
		{"map", mustEncode(t, map[string]any{"temp": 21.5, "unit": "C", "tags": []string{"a", "b"}, "raw": []byte{0, 0xff}})},
		{"array", mustEncode(t, []any{1, "two", nil, true})},
		{"text", mustEncode(t, "just text")},
		{"null", []byte{0xf6}},
		{"undefined", []byte{0xf7}},
		{"zero", []byte{0x00}},
		{"not deterministic", []byte{0xa2, 0x61, 'b', 0x18, 0x01, 0x61, 'a', 0x02}}, // {"b": 1 (long form), "a": 2}
		{"as deep as fits", nested(15)},
	}
	for _, tt := range docs {
		t.Run(tt.name, func(t *testing.T) {
			s := openTest(t, Options{CommitDelay: -1})
			want := structured(1, tt.doc)
			want.Message.Topic = tt.name
			if err := s.Write(context.Background(), PutRecord(want, 0)); err != nil {
				t.Fatalf("Write: %v", err)
			}
			checkReaders(t, s, want)
			all, err := s.RetainedMessages()
			if err != nil || !reflect.DeepEqual(all, []Retained{want}) {
				t.Fatalf("RetainedMessages = %+v, %v\nwant [%+v]", all, err, want)
			}

			path := s.Path()
			raw := rawRetained(t, s, tt.name)
			var fields map[string]cbor.RawMessage
			if err := decode(raw, &fields); err != nil {
				t.Fatalf("stored value %x: %v", raw, err)
			}
			if !bytes.Equal(fields["x"], tt.doc) {
				t.Fatalf("stored x = %x, want the document %x", fields["x"], tt.doc)
			}
			var m map[string]any
			if err := decode(fields["m"], &m); err != nil {
				t.Fatalf("stored message: %v", err)
			}
			if _, ok := m["p"]; ok {
				t.Fatalf("stored message keeps a payload: %v", m)
			}
			if tt.name == "map" {
				var v map[string]any
				if err := decode(raw, &v); err != nil {
					t.Fatal(err)
				}
				if _, ok := v["x"].(map[any]any); !ok {
					t.Fatalf("stored x decodes as %T, want a CBOR map", v["x"])
				}
			}
			checkReaders(t, openAt(t, path, Options{}), want)
		})
	}
}

// checkReaders checks that every reader returns want, the only live record.
func checkReaders(t *testing.T, s *Store, want Retained) {
	t.Helper()
	topic := want.Message.Topic
	if got, found, err := s.Record(topic); err != nil || !found || !reflect.DeepEqual(got, want) {
		t.Fatalf("Record = %+v, %v, %v\nwant %+v", got, found, err, want)
	}
	if got, found, err := s.Retained(topic); err != nil || !found || !reflect.DeepEqual(got, want) {
		t.Fatalf("Retained = %+v, %v, %v\nwant %+v", got, found, err, want)
	}
	var matched []Retained
	if err := s.RetainedMatching(topic, func(r Retained) bool { matched = append(matched, r); return true }); err != nil {
		t.Fatalf("RetainedMatching: %v", err)
	}
	if !reflect.DeepEqual(matched, []Retained{want}) {
		t.Fatalf("RetainedMatching = %+v\nwant [%+v]", matched, want)
	}
}

func TestOpaqueRecord(t *testing.T) {
	s := openTest(t, Options{CommitDelay: -1})
	want := Retained{Message: fullMessage("opaque", 0), Version: 3, Modified: -7}
	want.Message.Payload = []byte{0xa1, 0x61} // CBOR-looking but stored as bytes
	if err := s.Write(context.Background(), PutRecord(want, 0)); err != nil {
		t.Fatalf("Write: %v", err)
	}
	checkReaders(t, s, want)
	raw := rawRetained(t, s, "opaque")
	var fields map[string]cbor.RawMessage
	if err := decode(raw, &fields); err != nil {
		t.Fatal(err)
	}
	if _, ok := fields["x"]; ok {
		t.Fatalf("opaque record stored with x: %x", raw)
	}
}

// A tombstone is visible to Record only.
func TestTombstone(t *testing.T) {
	s := openTest(t, Options{CommitDelay: -1})
	ctx := context.Background()
	if err := s.Write(ctx, PutRecord(rec(1, "a", "w1"), 0), PutRetained(Message{Topic: "other"}, time.Unix(1, 0))); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, PutRecord(tombstone(2, "w2"), 1)); err != nil {
		t.Fatal(err)
	}
	check := func(t *testing.T, s *Store) {
		if got, found, err := s.Record("doc"); err != nil || !found || !reflect.DeepEqual(got, tombstone(2, "w2")) {
			t.Fatalf("Record = %+v, %v, %v\nwant %+v", got, found, err, tombstone(2, "w2"))
		}
		if got, found, err := s.Retained("doc"); err != nil || found || !reflect.DeepEqual(got, Retained{}) {
			t.Fatalf("Retained = %+v, %v, %v; want zero, false, nil", got, found, err)
		}
		if all, err := s.RetainedMessages(); err != nil || len(all) != 1 || all[0].Message.Topic != "other" {
			t.Fatalf("RetainedMessages = %+v, %v; want only other", all, err)
		}
		if n, err := s.RetainedCount(); err != nil || n != 1 {
			t.Fatalf("RetainedCount = %d, %v; want 1", n, err)
		}
	}
	t.Run("open", func(t *testing.T) { check(t, s) })
	path := s.Path()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	t.Run("reopened", func(t *testing.T) { check(t, openAt(t, path, Options{})) })
}

func TestDeleteRetained(t *testing.T) {
	s := openTest(t, Options{CommitDelay: -1})
	ctx := context.Background()
	write := func(changes ...Change) {
		t.Helper()
		if err := s.Write(ctx, changes...); err != nil {
			t.Fatalf("Write: %v", err)
		}
	}

	t.Run("missing", func(t *testing.T) {
		write(DeleteRetained("missing"))
		if got, found, err := s.Record("missing"); err != nil || found {
			t.Fatalf("Record = %+v, %v, %v; want none", got, found, err)
		}
	})

	t.Run("live", func(t *testing.T) {
		write(PutRecord(rec(4, "a", "w1"), 0))
		before := time.Now()
		change := DeleteRetained("doc")
		after := time.Now()
		write(change)
		got, found, err := s.Record("doc")
		if err != nil || !found {
			t.Fatalf("Record = %v, %v", found, err)
		}
		if got.Modified < before.UnixNano() || got.Modified > after.UnixNano() {
			t.Errorf("Modified %d, want the time DeleteRetained was called (%d..%d)", got.Modified, before.UnixNano(), after.UnixNano())
		}
		want := Retained{Message: Message{Topic: "doc"}, Version: 5, Modified: got.Modified, Deleted: true}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("Record = %+v\nwant %+v", got, want)
		}
	})

	t.Run("tombstone", func(t *testing.T) {
		want, _, err := s.Record("doc")
		if err != nil || !want.Deleted {
			t.Fatalf("Record = %+v, %v; want the tombstone", want, err)
		}
		write(DeleteRetained("doc"), DeleteRetained("doc"))
		if got, found, err := s.Record("doc"); err != nil || !found || !reflect.DeepEqual(got, want) {
			t.Fatalf("Record = %+v, %v, %v\nwant it unchanged: %+v", got, found, err, want)
		}
	})

	t.Run("PutRetained continues", func(t *testing.T) {
		write(PutRetained(Message{Topic: "doc", Payload: []byte("b")}, time.Unix(0, 9)))
		want := Retained{Message: Message{Topic: "doc", Payload: []byte("b")}, Version: 6, Modified: 9}
		if got, found, err := s.Retained("doc"); err != nil || !found || !reflect.DeepEqual(got, want) {
			t.Fatalf("Retained = %+v, %v, %v\nwant %+v", got, found, err, want)
		}
	})
}

// Changes of one Write see each other, so PutRecords can chain.
func TestPutRecordChain(t *testing.T) {
	s := openTest(t, Options{CommitDelay: -1})
	ctx := context.Background()
	if err := s.Write(ctx, PutRecord(rec(1, "a", "w"), 0), PutRecord(rec(2, "b", "w"), 1), PutRecord(structured(3, []byte{0x80}), 2)); err != nil {
		t.Fatalf("chain: %v", err)
	}
	want := structured(3, []byte{0x80})
	if got, _, err := s.Record("doc"); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Record = %+v, %v\nwant %+v", got, err, want)
	}
	// A broken link fails the whole Write, including the links before it.
	err := s.Write(ctx, PutRecord(rec(4, "d", "w"), 3), PutRecord(rec(6, "f", "w"), 5))
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("broken chain = %v, want ErrConflict", err)
	}
	if !strings.Contains(err.Error(), "version 4, not 5") {
		t.Errorf("conflict error %q does not name both versions", err)
	}
	if got, _, err := s.Record("doc"); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Record after broken chain = %+v, %v\nwant %+v", got, err, want)
	}
}

// A conflicting PutRecord fails only its own Write: the other requests of
// its batch, for the same topic or not, commit together.
func TestConflictIsolation(t *testing.T) {
	s, log := holdCommitter(t, Options{})
	ctx := context.Background()
	errs := map[string]error{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	queued := 0
	write := func(name string, changes ...Change) {
		wg.Go(func() {
			err := s.Write(ctx, changes...)
			mu.Lock()
			errs[name] = err
			mu.Unlock()
		})
		queued++
		waitQueued(t, s, queued) // fixes the order of the batch
	}
	write("create", PutRecord(rec(1, "a", "w1"), 0))
	write("stale create", PutRecord(rec(1, "b", "w2"), 0))
	write("update", PutRecord(rec(2, "c", "w1"), 1), PutSession(Session{ClientID: "w1"}))
	write("other topic", PutRetained(Message{Topic: "other"}, time.Unix(1, 0)))
	write("stale update", PutRecord(rec(2, "d", "w2"), 1), PutSession(Session{ClientID: "w2"}))
	write("hold exists", PutRecord(Retained{Message: Message{Topic: "hold"}, Version: 1}, 0))
	log.release()
	wait(t, &wg)

	for name, err := range errs {
		if strings.HasPrefix(name, "stale") || name == "hold exists" {
			if !errors.Is(err, ErrConflict) {
				t.Errorf("%s: Write = %v, want ErrConflict", name, err)
			}
		} else if err != nil {
			t.Errorf("%s: Write = %v, want nil", name, err)
		}
	}
	if got, _, err := s.Record("doc"); err != nil || !reflect.DeepEqual(got, rec(2, "c", "w1")) {
		t.Errorf("Record = %+v, %v\nwant %+v", got, err, rec(2, "c", "w1"))
	}
	got := readAll(t, s)
	if want := []Session{{ClientID: "w1"}}; !reflect.DeepEqual(got.Sessions, want) {
		t.Errorf("Sessions = %+v, want %+v", got.Sessions, want)
	}
	if n, err := s.RetainedCount(); err != nil || n != 3 {
		t.Errorf("RetainedCount = %d, %v; want 3 (hold, doc, other)", n, err)
	}
	// The hold commit, then the three good requests in one transaction.
	if sizes, failed, _, _ := log.snapshot(); !slices.Equal(sizes, []int{1, 4}) || len(failed) != 0 {
		t.Errorf("commits %v (failed %v), want [1 4]", sizes, failed)
	}
}

// retainedSet opens a store holding the live records it returns, in topic
// order, each with its topic as payload at version 1, and two tombstones
// (a/gone, zz).
func retainedSet(t *testing.T) (*Store, []string) {
	t.Helper()
	s := openTest(t, Options{CommitDelay: -1})
	live := []string{"a", "a/b", "a/b/c", "a/c", "ab", "b/x", "é"}
	var changes []Change
	for i, topic := range live {
		changes = append(changes, PutRetained(Message{Topic: topic, Payload: []byte(topic)}, time.Unix(int64(i), 0)))
	}
	changes = append(changes,
		PutRetained(Message{Topic: "a/gone"}, time.Unix(1, 0)), DeleteRetained("a/gone"),
		PutRecord(Retained{Message: Message{Topic: "zz"}, Version: 1, Deleted: true}, 0))
	if err := s.Write(context.Background(), changes...); err != nil {
		t.Fatal(err)
	}
	return s, live
}

func TestRetainedMatching(t *testing.T) {
	s, live := retainedSet(t)

	topics := func(prefix string, limit int) []string {
		t.Helper()
		var out []string
		err := s.RetainedMatching(prefix, func(r Retained) bool {
			if r.Deleted || string(r.Message.Payload) != r.Message.Topic || r.Version != 1 {
				t.Errorf("RetainedMatching(%q) passed %+v", prefix, r)
			}
			out = append(out, r.Message.Topic)
			return len(out) < limit
		})
		if err != nil {
			t.Fatalf("RetainedMatching(%q): %v", prefix, err)
		}
		return out
	}
	tests := []struct {
		prefix string
		limit  int
		want   []string
	}{
		{"", 100, live},
		{"a", 100, []string{"a", "a/b", "a/b/c", "a/c", "ab"}},
		{"a/", 100, []string{"a/b", "a/b/c", "a/c"}},
		{"a/b", 100, []string{"a/b", "a/b/c"}},
		{"a/b/c", 100, []string{"a/b/c"}},
		{"a/g", 100, nil}, // only a tombstone
		{"z", 100, nil},
		{"\xff", 100, nil},
		{"0", 100, nil},
		{"", 2, []string{"a", "a/b"}},
		{"a/", 1, []string{"a/b"}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q limit %d", tt.prefix, tt.limit), func(t *testing.T) {
			if got := topics(tt.prefix, tt.limit); !slices.Equal(got, tt.want) {
				t.Fatalf("topics %q, want %q", got, tt.want)
			}
		})
	}

	if n, err := s.RetainedCount(); err != nil || n != len(live) {
		t.Fatalf("RetainedCount = %d, %v; want %d", n, err, len(live))
	}
	if n, err := openTest(t, Options{}).RetainedCount(); err != nil || n != 0 {
		t.Fatalf("RetainedCount of an empty store = %d, %v", n, err)
	}
}

// RetainedTopics pages through live topics: a page examines at most limit
// topics, the next continues after the last one examined, tombstones and
// non-matching topics are skipped, and the pages together are the whole
// matching set in order.
func TestRetainedTopics(t *testing.T) {
	s, live := retainedSet(t)
	notC := func(topic string) bool { return !strings.HasSuffix(topic, "c") }
	tests := []struct {
		prefix, after string
		match         func(string) bool
		want          []string
	}{
		{"", "", nil, live},
		{"a", "", nil, []string{"a", "a/b", "a/b/c", "a/c", "ab"}},
		{"a/", "", nil, []string{"a/b", "a/b/c", "a/c"}},
		{"a/", "a/b", nil, []string{"a/b/c", "a/c"}},      // strictly after
		{"a/", "a/bb", nil, []string{"a/c"}},              // after a topic not stored
		{"a/", "a", nil, []string{"a/b", "a/b/c", "a/c"}}, // after before the prefix
		{"a/", "a/c", nil, nil},
		{"a/", "b", nil, nil}, // after past the prefix
		{"a/g", "", nil, nil}, // only a tombstone
		{"", "", notC, []string{"a", "a/b", "ab", "b/x", "é"}},
		{"z", "", nil, nil},
	}
	for _, tt := range tests {
		for _, limit := range []int{1, 2, 100} {
			t.Run(fmt.Sprintf("%q after %q limit %d", tt.prefix, tt.after, limit), func(t *testing.T) {
				var got []string
				after := tt.after
				for pages := 0; ; pages++ {
					if pages > 20 {
						t.Fatalf("no end after %d pages: %q", pages, got)
					}
					page, last, err := s.RetainedTopics(tt.prefix, after, limit, tt.match)
					if err != nil {
						t.Fatal(err)
					}
					if len(page) > limit {
						t.Fatalf("page of %d topics, limit %d", len(page), limit)
					}
					if len(page) > 0 && last < page[len(page)-1] && last != "" {
						t.Fatalf("page %q ends after its last examined topic %q", page, last)
					}
					got = append(got, page...)
					if last == "" {
						break
					}
					after = last
				}
				if !slices.Equal(got, tt.want) {
					t.Fatalf("topics %q, want %q", got, tt.want)
				}
			})
		}
	}
}

// retainedFormat1 is retainedDisk as format 1 first shipped it.
type retainedFormat1 struct {
	Message  cbor.RawMessage `cbor:"m"`
	Version  uint64          `cbor:"v"`
	Modified int64           `cbor:"mt"`
}

// Values written before records existed read as live opaque records, and
// live opaque records are still written in that shape.
func TestRetainedFormat1(t *testing.T) {
	m := fullMessage("old/topic", 0)
	old := mustEncode(t, retainedFormat1{Message: mustEncode(t, m), Version: 7, Modified: 42})
	want := Retained{Message: m, Version: 7, Modified: 42}

	s := openTest(t, Options{})
	s = openAt(t, writeRaw(t, s, "retained", []byte("old/topic"), old), Options{CommitDelay: -1})
	checkReaders(t, s, want)
	if all, err := s.RetainedMessages(); err != nil || !reflect.DeepEqual(all, []Retained{want}) {
		t.Fatalf("RetainedMessages = %+v, %v\nwant [%+v]", all, err, want)
	}
	if n, err := s.RetainedCount(); err != nil || n != 1 {
		t.Fatalf("RetainedCount = %d, %v", n, err)
	}

	// Its version is the base to write against.
	next := want
	next.Version, next.Message.Payload = 8, []byte("new")
	if err := s.Write(context.Background(), PutRecord(next, 7)); err != nil {
		t.Fatalf("PutRecord over a format 1 value: %v", err)
	}
	m.Payload = []byte("new")
	wantRaw := mustEncode(t, retainedFormat1{Message: mustEncode(t, m), Version: 8, Modified: 42})
	if raw := rawRetained(t, s, "old/topic"); !bytes.Equal(raw, wantRaw) {
		t.Fatalf("opaque record stored as\n%x\nwant the format 1 shape\n%x", raw, wantRaw)
	}
}

// A value whose version cannot be read blocks conditional writes until
// DeleteRetained clears it.
func TestPutRecordOverCorrupt(t *testing.T) {
	s := openTest(t, Options{})
	s = openAt(t, writeRaw(t, s, "retained", []byte("doc"), []byte{0xa1, 0x61, 'v'}), Options{CommitDelay: -1})
	ctx := context.Background()
	if err := s.Write(ctx, PutRecord(rec(1, "a", "w"), 0)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("PutRecord = %v, want ErrCorrupt", err)
	}
	if _, _, err := s.Record("doc"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Record = %v, want ErrCorrupt", err)
	}
	if err := s.Write(ctx, DeleteRetained("doc")); err != nil {
		t.Fatalf("DeleteRetained: %v", err)
	}
	if err := s.Write(ctx, PutRecord(rec(1, "a", "w"), 0)); err != nil {
		t.Fatalf("PutRecord after DeleteRetained: %v", err)
	}
}

// Stored items that PutRecord would refuse to write are corrupt: whatever
// reads back can be written back.
func TestCorruptRecordItem(t *testing.T) {
	m := mustEncode(t, Message{Topic: "doc"})
	tests := []struct {
		name  string
		value retainedDisk
	}{
		{"document with bad tag content", retainedDisk{Message: m, Version: 1, Value: []byte{0xc0, 0x01}}},
		{"document of indefinite length", retainedDisk{Message: m, Version: 1, Value: []byte{0x9f, 0x01, 0xff}}},
		{"message of indefinite length", retainedDisk{Message: []byte{0xbf, 0x61, 't', 0x61, 'x', 0xff}, Version: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// encode would refuse these items: build the value by hand.
			value := []byte{0xa3, 0x61, 'm'}
			value = append(value, tt.value.Message...)
			value = append(value, 0x61, 'v', byte(tt.value.Version))
			if tt.value.Value != nil {
				value[0]++
				value = append(value, 0x61, 'x')
				value = append(value, tt.value.Value...)
			}
			value = append(value, 0x62, 'm', 't', 0x00)
			if err := cbor.Wellformed(value); err != nil {
				t.Fatalf("test value %x: %v", value, err)
			}
			s := openTest(t, Options{})
			s = openAt(t, writeRaw(t, s, "retained", []byte("doc"), value), Options{})
			if _, _, err := s.Record("doc"); !errors.Is(err, ErrCorrupt) {
				t.Errorf("Record = %v, want ErrCorrupt", err)
			}
			if _, err := s.RetainedMessages(); !errors.Is(err, ErrCorrupt) {
				t.Errorf("RetainedMessages = %v, want ErrCorrupt", err)
			}
		})
	}
}
