package storage

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// writeRaw closes s and puts value under key in bucket with bbolt directly.
func writeRaw(t *testing.T, s *Store, bucket string, key, value []byte) string {
	t.Helper()
	path := s.Path()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucket)).Put(key, value)
	})
	return path
}

func TestCorruptValue(t *testing.T) {
	mustEncode := func(v any) []byte {
		b, err := encode(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	junk := []struct {
		name  string
		value []byte
	}{
		{"empty", []byte{}},
		{"break byte", []byte{0xff}},
		{"truncated map", []byte{0xa2, 0x61, 0x74}},
		{"text not map", mustEncode("hello")},
		{"wrong field types", mustEncode(map[string]any{"id": 42, "t": []int{1}, "v": "x", "m": 7})},
		{"too deep", []byte(strings.Repeat("\x81", 40) + "\x00")},
		{"duplicate key", []byte{0xa2, 0x62, 'i', 'd', 0x61, 'a', 0x62, 'i', 'd', 0x61, 'b'}},
	}
	readers := []struct {
		name   string
		bucket string
		key    []byte
		read   func(s *Store) error
	}{
		{"Sessions", "sessions", []byte("bad"), func(s *Store) error { _, err := s.Sessions(); return err }},
		{"Subscriptions", "subscriptions", subscriptionKey("bad", "f"), func(s *Store) error { _, err := s.Subscriptions(); return err }},
		{"Inflight", "inflight", inflightKey("bad", 1), func(s *Store) error { _, err := s.Inflight(); return err }},
		{"RetainedMessages", "retained", []byte("bad"), func(s *Store) error { _, err := s.RetainedMessages(); return err }},
		{"Retained", "retained", []byte("bad"), func(s *Store) error { _, _, err := s.Retained("bad"); return err }},
		{"Record", "retained", []byte("bad"), func(s *Store) error { _, _, err := s.Record("bad"); return err }},
		{"RetainedMatching", "retained", []byte("bad"), func(s *Store) error { return s.RetainedMatching("b", func(Retained) bool { return true }) }},
		{"RetainedMatching all", "retained", []byte("bad"), func(s *Store) error { return s.RetainedMatching("", func(Retained) bool { return true }) }},
		{"RetainedCount", "retained", []byte("bad"), func(s *Store) error { _, err := s.RetainedCount(); return err }},
		{"RetainedTopics", "retained", []byte("bad"), func(s *Store) error { _, _, err := s.RetainedTopics("", "", 10, nil); return err }},
	}
	for _, r := range readers {
		for _, j := range junk {
			t.Run(r.name+"/"+j.name, func(t *testing.T) {
				s := openTest(t, Options{})
				// A good neighbour in every bucket.
				if err := s.Write(context.Background(),
					PutSession(Session{ClientID: "good"}),
					PutSubscription(Subscription{ClientID: "good", Filter: "f"}),
					PutInflight("good", Message{PacketID: 1}),
					PutRetained(Message{Topic: "good"}, time.Unix(1, 0)),
				); err != nil {
					t.Fatal(err)
				}
				path := writeRaw(t, s, r.bucket, r.key, j.value)
				s = openAt(t, path, Options{})
				if err := r.read(s); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("%s after writing %x to %s = %v, want ErrCorrupt", r.name, j.value, r.bucket, err)
				}
				// The good retained value is still readable on its own.
				if got, found, err := s.Retained("good"); err != nil || !found || got.Version != 1 {
					t.Fatalf("Retained(good) = %+v, %v, %v", got, found, err)
				}
			})
		}
	}
}

// A retained record whose outer value is fine but whose message is not.
func TestCorruptRetainedMessage(t *testing.T) {
	bad, err := encode(retainedDisk{Message: []byte{0x65, 'h', 'e', 'l', 'l', 'o'}, Version: 3, Modified: 1})
	if err != nil {
		t.Fatal(err)
	}
	s := openTest(t, Options{})
	path := writeRaw(t, s, "retained", []byte("t"), bad)
	s = openAt(t, path, Options{CommitDelay: -1})
	if _, err := s.RetainedMessages(); !errors.Is(err, ErrCorrupt) {
		t.Errorf("RetainedMessages = %v, want ErrCorrupt", err)
	}
	if _, _, err := s.Retained("t"); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Retained = %v, want ErrCorrupt", err)
	}
	if _, _, err := s.Record("t"); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Record = %v, want ErrCorrupt", err)
	}
	if err := s.RetainedMatching("t", func(Retained) bool { return true }); !errors.Is(err, ErrCorrupt) {
		t.Errorf("RetainedMatching = %v, want ErrCorrupt", err)
	}
	// Its version is readable, so it can be replaced and keeps counting.
	if err := s.Write(context.Background(), PutRetained(Message{Topic: "t"}, time.Unix(2, 0))); err != nil {
		t.Fatalf("PutRetained over a bad message: %v", err)
	}
	if r, found, err := s.Retained("t"); err != nil || !found || r.Version != 4 {
		t.Fatalf("Retained = %+v, %v, %v; want version 4", r, found, err)
	}
}

// PutRetained must read the old version: over an unreadable value it fails
// with ErrCorrupt and leaves the value alone; DeleteRetained clears it.
func TestPutRetainedOverCorrupt(t *testing.T) {
	s := openTest(t, Options{})
	path := writeRaw(t, s, "retained", []byte("t"), []byte{0xff})
	s = openAt(t, path, Options{CommitDelay: -1})
	ctx := context.Background()
	if err := s.Write(ctx, PutRetained(Message{Topic: "t"}, time.Unix(1, 0))); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("PutRetained = %v, want ErrCorrupt", err)
	}
	if _, _, err := s.Retained("t"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Retained = %v, want ErrCorrupt", err)
	}
	if err := s.Write(ctx, DeleteRetained("t")); err != nil {
		t.Fatalf("DeleteRetained: %v", err)
	}
	if err := s.Write(ctx, PutRetained(Message{Topic: "t"}, time.Unix(1, 0))); err != nil {
		t.Fatalf("PutRetained: %v", err)
	}
	if r, found, err := s.Retained("t"); err != nil || !found || r.Version != 1 {
		t.Fatalf("Retained = %+v, %v, %v; want version 1", r, found, err)
	}
}

func TestOpenFormatMarker(t *testing.T) {
	tests := []struct {
		name    string
		marker  []byte
		wantErr error // nil: Open must succeed
		anyErr  bool
	}{
		{"current", []byte{formatVersion}, nil, false},
		{"older", []byte{0}, nil, false},
		{"newer", []byte{formatVersion + 1}, nil, true},
		{"much newer", []byte{0xff}, nil, true},
		{"two bytes", []byte{1, 0}, ErrCorrupt, true},
		{"empty", []byte{}, ErrCorrupt, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTest(t, Options{})
			if err := s.Write(context.Background(), PutSession(Session{ClientID: "c"})); err != nil {
				t.Fatal(err)
			}
			path := writeRaw(t, s, "meta", []byte("format"), tt.marker)

			s2, err := Open(path, Options{})
			if !tt.anyErr {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				defer s2.Close()
				if got, err := s2.Sessions(); err != nil || len(got) != 1 {
					t.Fatalf("Sessions = %+v, %v", got, err)
				}
				return
			}
			if err == nil {
				s2.Close()
				t.Fatalf("Open succeeded on a file with format marker %x", tt.marker)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("Open = %v, want %v", err, tt.wantErr)
			}
			// The refused file is left as it was.
			rawUpdate(t, path, func(tx *bolt.Tx) error {
				if got := tx.Bucket([]byte("meta")).Get([]byte("format")); string(got) != string(tt.marker) {
					t.Errorf("format marker is now %x, want %x", got, tt.marker)
				}
				return nil
			})
		})
	}
}

func TestOpenWritesFormatMarker(t *testing.T) {
	s := openTest(t, Options{})
	path := s.Path()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		for _, name := range []string{"meta", "sessions", "subscriptions", "inflight", "retained"} {
			if tx.Bucket([]byte(name)) == nil {
				t.Errorf("bucket %q missing", name)
			}
		}
		if got := tx.Bucket([]byte("meta")).Get([]byte("format")); len(got) != 1 || got[0] != 1 {
			t.Errorf("format marker %x, want 01", got)
		}
		return nil
	})
}

func TestOpenErrors(t *testing.T) {
	t.Run("not a bbolt file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "junk.db")
		if err := os.WriteFile(path, []byte(strings.Repeat("not a database ", 2000)), 0o600); err != nil {
			t.Fatal(err)
		}
		if s, err := Open(path, Options{}); err == nil {
			s.Close()
			t.Fatal("Open succeeded on a file that is not a bbolt file")
		}
	})
	t.Run("locked", func(t *testing.T) {
		s := openTest(t, Options{})
		s2, err := Open(s.Path(), Options{Timeout: 20 * time.Millisecond})
		if err == nil {
			s2.Close()
			t.Fatal("second Open of a locked file succeeded")
		}
		if !errors.Is(err, berrors.ErrTimeout) {
			t.Fatalf("second Open = %v, want bbolt's ErrTimeout", err)
		}
		// The first store is unharmed.
		if err := s.Write(context.Background(), PutSession(Session{ClientID: "c"})); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("directory is a file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(file, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if s, err := Open(filepath.Join(file, "hearth.db"), Options{}); err == nil {
			s.Close()
			t.Fatal("Open succeeded below a regular file")
		}
	})
}
