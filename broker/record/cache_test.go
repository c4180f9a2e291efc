package record_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/hearth-iot/hearth/broker/record"
	"github.com/hearth-iot/hearth/storage"
)

// newCounted is Records over a fresh store that counts its record reads.
func newCounted(t *testing.T, opts record.Options) (*countingStore, *record.Records) {
	t.Helper()
	st := &countingStore{Store: openStore(t, storage.Options{})}
	return st, newRecords(t, st, newPublisher(st.Store), opts)
}

// The cache never holds more than CacheBytes, however many records are
// written and read, and records it dropped are read from the store.
func TestCacheStaysWithinBound(t *testing.T) {
	const limit = 4096
	st, recs := newCounted(t, record.Options{CacheBytes: limit})
	pad := strings.Repeat("p", 100)
	const n = 60
	for i := range n {
		apply(t, recs, record.Op{Kind: record.Put, Name: fmt.Sprintf("c/%02d", i), Payload: jsonPayload(fmt.Sprintf(`{"i":%d,"pad":%q}`, i, pad))})
		if records, bytes := recs.CacheStats(); bytes > limit || records == 0 || records == i+1 && i > 10 {
			t.Fatalf("after %d records: CacheStats = %d records, %d bytes; want some records within %d bytes, not all", i+1, records, bytes, limit)
		}
	}
	for round := range 2 {
		for i := range n {
			name := fmt.Sprintf("c/%02d", i)
			got, err := recs.Get(name)
			if err != nil || got.Version != 1 || !sameDoc(got.Value, decodeJSON(t, fmt.Sprintf(`{"i":%d,"pad":%q}`, i, pad))) {
				t.Fatalf("round %d: Get(%s) = v%d %s, %v", round, name, got.Version, jsonOf(got.Value), err)
			}
			if _, bytes := recs.CacheStats(); bytes > limit {
				t.Fatalf("round %d: cache holds %d bytes, more than %d", round, bytes, limit)
			}
		}
	}
	if st.reads.Load() < n {
		t.Errorf("%d store reads for %d writes and %d gets of %d records that cannot all be cached", st.reads.Load(), n, 2*n, n)
	}
}

// Reading and changing a cached record does not read the store.
func TestCachedRecordNotReadFromStore(t *testing.T) {
	st, recs := newCounted(t, record.Options{})
	apply(t, recs, record.Op{Kind: record.Put, Name: "x", Payload: jsonPayload(`{"a":1}`)})
	st.reads.Store(0)
	for range 3 {
		if got, err := recs.Get("x"); err != nil || got.Version != 1 {
			t.Fatalf("Get = v%d, %v", got.Version, err)
		}
	}
	apply(t, recs, record.Op{Kind: record.Merge, Name: "x", Value: map[string]any{"b": int64(2)}})
	if got, err := recs.Get("x"); err != nil || got.Version != 2 {
		t.Fatalf("Get after Merge = v%d, %v", got.Version, err)
	}
	if n := st.reads.Load(); n != 0 {
		t.Errorf("%d store reads for Gets and a Merge of a cached record, want 0", n)
	}

	// A record Records did not write is read once, then cached.
	fresh := newRecords(t, st, newPublisher(nil), record.Options{})
	st.reads.Store(0)
	for range 3 {
		if got, err := fresh.Get("x"); err != nil || got.Version != 2 {
			t.Fatalf("fresh Get = v%d, %v", got.Version, err)
		}
	}
	if n := st.reads.Load(); n != 1 {
		t.Errorf("%d store reads for 3 Gets by a fresh Records, want 1", n)
	}
}

// The cache drops the least recently used record first.
func TestCacheEvictsLeastRecentlyUsed(t *testing.T) {
	put := func(r *record.Records, name string) {
		apply(t, r, record.Op{Kind: record.Put, Name: name, Payload: jsonPayload(`{"v":1}`)})
	}
	// Measure what one record takes, to size a cache for three.
	_, probe := newCounted(t, record.Options{})
	put(probe, "a")
	_, size := probe.CacheStats()

	st, recs := newCounted(t, record.Options{CacheBytes: 3*size + size/2})
	for _, name := range []string{"a", "b", "c"} {
		put(recs, name)
	}
	if _, err := recs.Get("a"); err != nil { // a is now the most recently used
		t.Fatal(err)
	}
	put(recs, "d") // drops b
	if records, _ := recs.CacheStats(); records != 3 {
		t.Errorf("%d records cached, want 3", records)
	}
	for _, tc := range []struct {
		name  string
		reads int64
	}{{"a", 0}, {"c", 0}, {"d", 0}, {"b", 1}} {
		st.reads.Store(0)
		if _, err := recs.Get(tc.name); err != nil {
			t.Fatal(err)
		}
		if n := st.reads.Load(); n != tc.reads {
			t.Errorf("Get(%s): %d store reads, want %d", tc.name, n, tc.reads)
		}
	}
}

// A record larger than the whole cache is not cached, and still read right.
func TestCacheSkipsRecordLargerThanCache(t *testing.T) {
	st, recs := newCounted(t, record.Options{CacheBytes: 1000})
	raw := bytes.Repeat([]byte{0xee}, 2000)
	apply(t, recs, record.Op{Kind: record.Put, Name: "big", Payload: opaquePayload(raw)})
	if records, bytes := recs.CacheStats(); records != 0 || bytes != 0 {
		t.Errorf("CacheStats = %d records, %d bytes; want nothing cached", records, bytes)
	}
	st.reads.Store(0)
	got, err := recs.Get("big")
	if err != nil || !bytes.Equal(got.Bytes, raw) {
		t.Errorf("Get = %d bytes, %v; want the 2000 bytes", len(got.Bytes), err)
	}
	if n := st.reads.Load(); n != 1 {
		t.Errorf("%d store reads, want 1", n)
	}
}

// A negative CacheBytes disables the cache: every read goes to the store.
func TestCacheDisabled(t *testing.T) {
	st, recs := newCounted(t, record.Options{CacheBytes: -1})
	apply(t, recs, record.Op{Kind: record.Put, Name: "x", Payload: jsonPayload(`{"a":1}`)})
	st.reads.Store(0)
	for i := range 3 {
		if got, err := recs.Get("x"); err != nil || got.Version != 1 {
			t.Fatalf("Get = v%d, %v", got.Version, err)
		}
		if n := st.reads.Load(); n != int64(i+1) {
			t.Fatalf("after %d Gets: %d store reads, want %d", i+1, n, i+1)
		}
	}
	res := apply(t, recs, record.Op{Kind: record.Merge, Name: "x", Value: map[string]any{"b": int64(2)}})
	if res.Record.Version != 2 || st.reads.Load() != 4 {
		t.Errorf("Merge = v%d after %d store reads; want v2 after 4", res.Record.Version, st.reads.Load())
	}
	if records, bytes := recs.CacheStats(); records != 0 || bytes != 0 {
		t.Errorf("CacheStats = %d records, %d bytes; want 0, 0", records, bytes)
	}
}

// Peek reads like Get, but a record it reads from the store is not cached:
// a scan over many records leaves the hot ones in the cache. A cached
// record is still served from the cache.
func TestPeekDoesNotFillCache(t *testing.T) {
	st, recs := newCounted(t, record.Options{})
	apply(t, recs, record.Op{Kind: record.Put, Name: "hot", Payload: jsonPayload(`{"a":1}`)})
	fresh := newRecords(t, st, newPublisher(nil), record.Options{})
	if _, err := fresh.Get("hot"); err != nil {
		t.Fatal(err)
	}
	apply(t, recs, record.Op{Kind: record.Put, Name: "cold", Payload: jsonPayload(`{"b":2}`)})
	st.reads.Store(0)
	for range 3 {
		got, err := fresh.Peek("cold")
		if err != nil || got.Version != 1 || got.Name != "cold" {
			t.Fatalf("Peek(cold) = %s v%d, %v", got.Name, got.Version, err)
		}
	}
	if n := st.reads.Load(); n != 3 {
		t.Errorf("%d store reads for 3 Peeks of an uncached record, want 3", n)
	}
	if records, _ := fresh.CacheStats(); records != 1 {
		t.Errorf("%d records cached after Peeks, want 1 (hot)", records)
	}
	st.reads.Store(0)
	if got, err := fresh.Peek("hot"); err != nil || got.Version != 1 {
		t.Fatalf("Peek(hot) = v%d, %v", got.Version, err)
	}
	if _, err := fresh.Peek("missing"); record.CodeOf(err) != record.CodeNotFound {
		t.Errorf("Peek(missing) = %v, want NOT_FOUND", err)
	}
	if n := st.reads.Load(); n != 1 {
		t.Errorf("%d store reads for Peeks of a cached and a missing record, want 1", n)
	}
}
