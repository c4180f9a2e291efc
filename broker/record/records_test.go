package record_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/broker/codec"
	"github.com/hearth-iot/hearth/broker/record"
	"github.com/hearth-iot/hearth/storage"
)

// Every change adds one to the version, a deletion leaves a tombstone, and
// a record created again continues the count.
func TestVersions(t *testing.T) {
	e := newEnv(t, record.Options{})
	const name = "home/thermostat"
	steps := []struct {
		op      record.Op
		deleted bool
		count   int64
	}{
		{op: record.Op{Kind: record.Put, Payload: jsonPayload(`{"temp":20}`)}, count: 1},
		{op: record.Op{Kind: record.Merge, Value: map[string]any{"mode": "heat"}}, count: 1},
		{op: record.Op{Kind: record.Set, Path: path(t, "schedule[0]"), Value: "06:00"}, count: 1},
		{op: record.Op{Kind: record.Append, Path: path(t, "schedule"), Values: []any{"22:00"}}, count: 1},
		{op: record.Op{Kind: record.Delete, Path: path(t, "mode")}, count: 1},
		{op: record.Op{Kind: record.Delete}, deleted: true, count: 0},
		{op: record.Op{Kind: record.Put, Payload: jsonPayload(`{"temp":18}`)}, count: 1},
		{op: record.Op{Kind: record.Put, Payload: opaquePayload([]byte("off"))}, count: 1},
		{op: record.Op{Kind: record.Delete}, deleted: true, count: 0},
		{op: record.Op{Kind: record.Merge, Value: map[string]any{"temp": int64(19)}}, count: 1},
	}
	for i, s := range steps {
		want := uint64(i + 1)
		s.op.Name = name
		res := apply(t, e.recs, s.op)
		if !res.Changed || res.Record.Version != want || res.Record.Deleted != s.deleted {
			t.Fatalf("step %d (%s): Changed %v, version %d, deleted %v; want a change to version %d, deleted %v",
				i, s.op.Kind, res.Changed, res.Record.Version, res.Record.Deleted, want, s.deleted)
		}
		st, found := storedRecord(t, e.store, name)
		if !found || st.Version != want || st.Deleted != s.deleted {
			t.Fatalf("step %d (%s): stored found %v, version %d, deleted %v; want version %d, deleted %v",
				i, s.op.Kind, found, st.Version, st.Deleted, want, s.deleted)
		}
		if got := e.recs.Count(); got != s.count {
			t.Errorf("step %d (%s): Count() = %d, want %d", i, s.op.Kind, got, s.count)
		}
		got, err := e.recs.Get(name)
		if s.deleted {
			gerr := wantCode(t, err, record.CodeNotFound)
			if gerr.Current == nil || gerr.Current.Version != want || !gerr.Current.Deleted {
				t.Errorf("step %d: Get NOT_FOUND Current = %+v, want the tombstone at version %d", i, gerr.Current, want)
			}
		} else if err != nil || got.Version != want {
			t.Errorf("step %d: Get = version %d, %v; want version %d", i, got.Version, err, want)
		}
	}
	if vs := e.pub.versions(name); !isSequence(vs, 1, uint64(len(steps))) {
		t.Errorf("published versions %v, want 1..%d", vs, len(steps))
	}
	e.pub.checkDurable(t)
}

// A conditional write applies only at the version it names; otherwise it is
// VERSION_CONFLICT carrying the current record, and changes nothing.
func TestConditional(t *testing.T) {
	e := newEnv(t, record.Options{})
	put := func(s string) record.Op { return record.Op{Kind: record.Put, Payload: jsonPayload(s)} }
	del := record.Op{Kind: record.Delete}
	at := func(op record.Op, v uint64) record.Op { op.Conditional, op.IfVersion = true, v; return op }
	merge := record.Op{Kind: record.Merge, Value: map[string]any{"b": int64(2)}}

	cases := []struct {
		name    string
		setup   []record.Op
		op      record.Op
		version uint64 // after
		// For VERSION_CONFLICT: the current record it carries.
		conflict    bool
		currentDoc  string // JSON; "" for none
		currentGone bool   // the current record is a tombstone
	}{
		{name: "merge at current version", setup: []record.Op{put(`{"a":1}`), merge}, op: at(merge, 2), version: 3},
		{name: "put at current version", setup: []record.Op{put(`{"a":1}`)}, op: at(put(`{"x":1}`), 1), version: 2},
		{name: "delete at current version", setup: []record.Op{put(`{"a":1}`)}, op: at(del, 1), version: 2},
		{name: "set at current version", setup: []record.Op{put(`{"a":1}`)},
			op: at(record.Op{Kind: record.Set, Path: path(t, "a"), Value: int64(5)}, 1), version: 2},
		{name: "merge at older version", setup: []record.Op{put(`{"a":1}`), merge}, op: at(merge, 1),
			version: 2, conflict: true, currentDoc: `{"a":1,"b":2}`},
		{name: "put at newer version", setup: []record.Op{put(`{"a":1}`)}, op: at(put(`{"x":1}`), 2),
			version: 1, conflict: true, currentDoc: `{"a":1}`},
		{name: "delete at older version", setup: []record.Op{put(`{"a":1}`), put(`{"a":2}`)}, op: at(del, 1),
			version: 2, conflict: true, currentDoc: `{"a":2}`},
		{name: "create-only of missing record", op: at(put(`{"new":true}`), 0), version: 1},
		{name: "create-only merge of missing record", op: at(merge, 0), version: 1},
		{name: "create-only of existing record", setup: []record.Op{put(`{"a":1}`)}, op: at(put(`{"x":1}`), 0),
			version: 1, conflict: true, currentDoc: `{"a":1}`},
		{name: "create-only of deleted record", setup: []record.Op{put(`{"a":1}`), del}, op: at(put(`{"x":1}`), 0),
			version: 2, conflict: true, currentGone: true},
		{name: "put at tombstone's version", setup: []record.Op{put(`{"a":1}`), del}, op: at(put(`{"x":1}`), 2), version: 3},
		{name: "put at version before the delete", setup: []record.Op{put(`{"a":1}`), del}, op: at(put(`{"x":1}`), 1),
			version: 2, conflict: true, currentGone: true},
		{name: "conflict checked before the operation", setup: []record.Op{put(`{"a":1}`)},
			op:      at(record.Op{Kind: record.Delete, Path: path(t, "missing")}, 7),
			version: 1, conflict: true, currentDoc: `{"a":1}`},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := fmt.Sprintf("cond/%02d", i)
			for _, op := range tc.setup {
				op.Name = name
				apply(t, e.recs, op)
			}
			before, _ := storedRecord(t, e.store, name)
			op := tc.op
			op.Name = name
			res, err := e.recs.Apply(op)
			after, _ := storedRecord(t, e.store, name)
			if after.Version != tc.version {
				t.Errorf("stored version %d, want %d", after.Version, tc.version)
			}
			if !tc.conflict {
				if err != nil || !res.Changed || res.Record.Version != tc.version {
					t.Fatalf("Apply = version %d, changed %v, %v; want a change to version %d", res.Record.Version, res.Changed, err, tc.version)
				}
				return
			}
			cerr := wantCode(t, err, record.CodeVersionConflict)
			if !sameStored(before, after) {
				t.Errorf("conflicting write changed the store: v%d before, v%d after", before.Version, after.Version)
			}
			if cerr.Current == nil {
				t.Fatalf("VERSION_CONFLICT without Current")
			}
			if cerr.Current.Name != name || cerr.Current.Version != before.Version || cerr.Current.Deleted != tc.currentGone {
				t.Errorf("Current = %s v%d deleted %v; want %s v%d deleted %v",
					cerr.Current.Name, cerr.Current.Version, cerr.Current.Deleted, name, before.Version, tc.currentGone)
			}
			if tc.currentDoc != "" && !sameDoc(cerr.Current.Value, decodeJSON(t, tc.currentDoc)) {
				t.Errorf("Current.Value = %s, want %s", jsonOf(cerr.Current.Value), tc.currentDoc)
			}
		})
	}
	for i := range cases {
		name := fmt.Sprintf("cond/%02d", i)
		wantPub := len(cases[i].setup)
		if !cases[i].conflict {
			wantPub++
		}
		if n := len(e.pub.of(name)); n != wantPub {
			t.Errorf("%s: %d changes published, want %d", cases[i].name, n, wantPub)
		}
	}
}

// The publisher sees every change once, in version order, after it is
// durable; a structured Put hands on the publisher's own payload, other
// changes the CBOR of the new document, a deletion nil.
func TestPublisher(t *testing.T) {
	e := newEnv(t, record.Options{})
	const name = "lights/hall"
	jsonPut := jsonPayload(`{"on":true,"level":3}`)
	cborPut := cborPayload(t, map[string]any{"on": false})
	raw := []byte("opaque bytes")

	type want int
	const (
		same   want = iota // the op's own payload
		cbor               // CBOR of the new document
		opaque             // the opaque bytes
		none               // nil: a deletion
	)
	steps := []struct {
		op      record.Op
		payload want
	}{
		{record.Op{Kind: record.Put, Payload: jsonPut}, same},
		{record.Op{Kind: record.Put, Payload: cborPut}, same},
		{record.Op{Kind: record.Merge, Value: map[string]any{"level": int64(5)}}, cbor},
		{record.Op{Kind: record.Set, Path: path(t, "tags[0]"), Value: "warm"}, cbor},
		{record.Op{Kind: record.Append, Path: path(t, "tags"), Values: []any{"dim"}}, cbor},
		{record.Op{Kind: record.Insert, Path: path(t, "tags"), Index: 0, Values: []any{"first"}}, cbor},
		{record.Op{Kind: record.RemoveAt, Path: path(t, "tags"), Index: 0}, cbor},
		{record.Op{Kind: record.RemoveValue, Path: path(t, "tags"), Value: "dim"}, cbor},
		{record.Op{Kind: record.Delete, Path: path(t, "level")}, cbor},
		{record.Op{Kind: record.Delete}, none},
		{record.Op{Kind: record.Put, Payload: opaquePayload(raw)}, opaque},
		{record.Op{Kind: record.Delete}, none},
	}
	for i, s := range steps {
		s.op.Name = name
		s.op.Writer = fmt.Sprintf("client-%d", i)
		res := apply(t, e.recs, s.op)

		// Operations that change nothing, or fail, publish nothing.
		_, _ = e.recs.Apply(record.Op{Kind: record.Delete, Name: name, Path: path(t, "no.such.key")})
		_, _ = e.recs.Apply(record.Op{Kind: record.RemoveValue, Name: name, Path: path(t, "tags"), Value: "never there"})
		_, _ = e.recs.Apply(record.Op{Kind: record.Put, Name: name, Conditional: true, IfVersion: 999, Payload: jsonPut})

		calls := e.pub.of(name)
		if len(calls) != i+1 {
			t.Fatalf("step %d (%s): %d calls published in all, want %d", i, s.op.Kind, len(calls), i+1)
		}
		c := calls[i]
		if c.rec.Version != res.Record.Version || c.rec.Writer != s.op.Writer || c.rec.Deleted != (s.payload == none) {
			t.Errorf("step %d (%s): published %s v%d by %q deleted %v; want v%d by %q",
				i, s.op.Kind, c.rec.Name, c.rec.Version, c.rec.Writer, c.rec.Deleted, res.Record.Version, s.op.Writer)
		}
		stored, _ := storedRecord(t, e.store, name)
		switch s.payload {
		case same:
			if c.payload != s.op.Payload {
				t.Errorf("step %d (%s): published payload %p, want the op's own %p", i, s.op.Kind, c.payload, s.op.Payload)
			}
		case cbor:
			if c.payload == nil || c.payload.Codec() != codec.CBOR || !bytes.Equal(c.payload.Raw(), stored.Message.Payload) {
				t.Errorf("step %d (%s): published payload %+v; want CBOR of the stored document %x", i, s.op.Kind, c.payload, stored.Message.Payload)
			} else if v, err := c.payload.Value(); err != nil || !sameDoc(v, res.Record.Value) {
				t.Errorf("step %d (%s): published document %s, %v; want %s", i, s.op.Kind, jsonOf(v), err, jsonOf(res.Record.Value))
			}
		case opaque:
			if c.payload == nil || c.payload.Codec() != 0 || !bytes.Equal(c.payload.Raw(), raw) {
				t.Errorf("step %d (%s): published payload %+v; want the opaque bytes", i, s.op.Kind, c.payload)
			}
		case none:
			if c.payload != nil {
				t.Errorf("step %d (%s): published payload %+v for a deletion, want nil", i, s.op.Kind, c.payload)
			}
		}
	}
	if vs := e.pub.versions(name); !isSequence(vs, 1, uint64(len(steps))) {
		t.Errorf("published versions %v, want 1..%d", vs, len(steps))
	}
	e.pub.checkDurable(t)
}

// A change keeps its writer, time and MQTT properties, in the store and as
// read back by another Records.
func TestApplyKeepsMetadata(t *testing.T) {
	clk := &clock{now: time.Date(2030, 1, 2, 3, 4, 5, 600, time.UTC)}
	st := openStore(t, storage.Options{})
	recs := newRecords(t, st, newPublisher(st), record.Options{Now: clk.Now})
	op := record.Op{Kind: record.Put, Name: "meta/x", Writer: "sensor-7", Payload: jsonPayload(`{"a":1}`)}
	op.Message.QoS = 1
	op.Message.Properties.User = []storage.UserProperty{{Key: "unit", Val: "C"}}
	apply(t, recs, op)

	s, _ := storedRecord(t, st, "meta/x")
	if s.Message.Topic != "meta/x" || s.Message.Origin != "sensor-7" || s.Modified != clk.Now().UnixNano() || s.Message.QoS != 1 || !s.Message.Retain ||
		len(s.Message.Properties.User) != 1 || s.Message.Properties.User[0] != (storage.UserProperty{Key: "unit", Val: "C"}) {
		t.Errorf("stored %+v; want topic meta/x, origin sensor-7, modified %d, QoS 1, retain, user property unit=C",
			s, clk.Now().UnixNano())
	}
	for _, r := range []*record.Records{recs, newRecords(t, st, newPublisher(nil), record.Options{Now: clk.Now})} {
		got, err := r.Get("meta/x")
		if err != nil || got.Writer != "sensor-7" || !got.Modified.Equal(clk.Now()) || got.Message.QoS != 1 ||
			len(got.Message.Properties.User) != 1 || got.Message.Payload != nil {
			t.Errorf("Get = %+v, %v; want writer sensor-7, modified %v, QoS 1, user property, no payload in Message", got, err, clk.Now())
		}
	}
}

// 50 goroutines merge 20 distinct keys each into one record: every merge
// is kept, each change is one version, and the publisher sees them all in
// order.
func TestConcurrentMergesIntoOneRecord(t *testing.T) {
	e := newEnv(t, record.Options{})
	const workers, each = 50, 20
	const name = "hot"
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				key := fmt.Sprintf("k%02d_%02d", w, i)
				if _, err := e.recs.Apply(record.Op{Kind: record.Merge, Name: name, Value: map[string]any{key: int64(w*each + i)}}); err != nil {
					errs <- fmt.Errorf("merge %s: %w", key, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	got, err := e.recs.Get(name)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	m, _ := got.Value.(map[string]any)
	if got.Version != workers*each || len(m) != workers*each {
		t.Errorf("version %d with %d keys, want %d and %d", got.Version, len(m), workers*each, workers*each)
	}
	for w := range workers {
		for i := range each {
			key := fmt.Sprintf("k%02d_%02d", w, i)
			if m[key] != int64(w*each+i) {
				t.Fatalf("key %s = %v, want %d", key, m[key], w*each+i)
			}
		}
	}
	if s, _ := storedRecord(t, e.store, name); s.Version != workers*each || !bytes.Equal(s.Message.Payload, got.Bytes) {
		t.Errorf("stored version %d, want %d with the document Get returns", s.Version, workers*each)
	}
	if vs := e.pub.versions(name); !isSequence(vs, 1, workers*each) {
		t.Errorf("published %d versions, not 1..%d in order (first %v)", len(vs), workers*each, vs[:min(len(vs), 10)])
	}
	e.pub.checkDurable(t)
	if n := e.recs.Count(); n != 1 {
		t.Errorf("Count() = %d, want 1", n)
	}
	t.Logf("Combined() = %d of %d changes written in a batch with others", e.recs.Combined(), workers*each)
}

// Operations on many records run concurrently; each record still sees its
// operations one after the other.
func TestConcurrentOpsOnManyRecords(t *testing.T) {
	e := newEnv(t, record.Options{})
	const records, perRecord, each = 10, 4, 10 // goroutines per record, appends per goroutine
	itemsPath := path(t, "items")
	var wg sync.WaitGroup
	errs := make(chan error, records*perRecord*each)
	for g := range records * perRecord {
		name := fmt.Sprintf("many/%d", g%records)
		wg.Go(func() {
			for i := range each {
				v := fmt.Sprintf("g%02d-%d", g, i)
				if _, err := e.recs.Apply(record.Op{Kind: record.Append, Name: name, Path: itemsPath, Values: []any{v}}); err != nil {
					errs <- fmt.Errorf("append %s to %s: %w", v, name, err)
				}
				if _, err := e.recs.Get(name); err != nil {
					errs <- fmt.Errorf("get %s: %w", name, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	for r := range records {
		name := fmt.Sprintf("many/%d", r)
		got, err := e.recs.Get(name)
		if err != nil {
			t.Fatalf("Get(%s): %v", name, err)
		}
		items, _ := got.Value.(map[string]any)["items"].([]any)
		if got.Version != perRecord*each || len(items) != perRecord*each {
			t.Errorf("%s: version %d with %d items, want %d and %d", name, got.Version, len(items), perRecord*each, perRecord*each)
		}
		// Each goroutine's appends are in its order, none lost or doubled.
		next := map[string]int{}
		for _, it := range items {
			var g, i int
			if _, err := fmt.Sscanf(it.(string), "g%d-%d", &g, &i); err != nil {
				t.Fatalf("%s: item %v", name, it)
			}
			k := fmt.Sprint(g)
			if i != next[k] {
				t.Errorf("%s: item %v where g%02d-%d was due", name, it, g, next[k])
			}
			next[k] = i + 1
		}
		if vs := e.pub.versions(name); !isSequence(vs, 1, perRecord*each) {
			t.Errorf("%s: published versions %v, want 1..%d", name, vs, perRecord*each)
		}
	}
	e.pub.checkDurable(t)
	if n := e.recs.Count(); n != records {
		t.Errorf("Count() = %d, want %d", n, records)
	}
}

// If the store's record is not the one Records cached, the write conflicts;
// Records reads the record again and applies the operation to it.
func TestStoreConflictRetriesFromStore(t *testing.T) {
	e := newEnv(t, record.Options{})
	const name = "behind/back"
	apply(t, e.recs, record.Op{Kind: record.Put, Name: name, Payload: jsonPayload(`{"a":1}`)})
	if _, err := e.recs.Get(name); err != nil { // cached now
		t.Fatal(err)
	}

	behind := map[string]any{"a": int64(1), "ext": true}
	err := e.store.Write(context.Background(), storage.PutRecord(storage.Retained{
		Message: storage.Message{Topic: name, Payload: mustCBOR(t, behind)}, Version: 2,
		Modified: time.Now().UnixNano(), Structured: true,
	}, 1))
	if err != nil {
		t.Fatalf("store.Write(PutRecord v2): %v", err)
	}

	res, err := e.recs.Apply(record.Op{Kind: record.Merge, Name: name, Value: map[string]any{"b": int64(2)}})
	if err != nil {
		t.Fatalf("Apply after a change behind Records' back: %v", err)
	}
	want := decodeJSON(t, `{"a":1,"ext":true,"b":2}`)
	if res.Record.Version != 3 || !sameDoc(res.Record.Value, want) {
		t.Errorf("Result v%d %s, want v3 %s", res.Record.Version, jsonOf(res.Record.Value), jsonOf(want))
	}
	if s, _ := storedRecord(t, e.store, name); s.Version != 3 || !bytes.Equal(s.Message.Payload, mustCBOR(t, want)) {
		t.Errorf("stored v%d, want v3 %s", s.Version, jsonOf(want))
	}
	if got, err := e.recs.Get(name); err != nil || got.Version != 3 {
		t.Errorf("Get = v%d, %v; want v3", got.Version, err)
	}
	if vs := e.pub.versions(name); !slices.Equal(vs, []uint64{1, 3}) {
		t.Errorf("published versions %v, want [1 3]", vs)
	}
	e.pub.checkDurable(t)
}

// fillStore puts opaque records of 4000 bytes until one fails, and returns
// the names stored and the error.
func fillStore(t *testing.T, recs *record.Records) (stored []string, failed string, err error) {
	t.Helper()
	payload := bytes.Repeat([]byte("0123456789abcdef"), 250)
	for i := range 5000 {
		name := fmt.Sprintf("fill/%04d", i)
		if _, err := recs.Apply(record.Op{Kind: record.Put, Name: name, Payload: opaquePayload(payload)}); err != nil {
			return stored, name, err
		}
		stored = append(stored, name)
	}
	t.Fatalf("the store never filled up")
	return nil, "", nil
}

// wantFull fails t unless err is STORAGE_ERROR wrapping storage.ErrFull.
func wantFull(t testing.TB, err error) {
	t.Helper()
	e := wantCode(t, err, record.CodeStorageError)
	if !errors.Is(err, storage.ErrFull) || !errors.Is(e.Err, storage.ErrFull) {
		t.Errorf("error %v does not wrap storage.ErrFull", err)
	}
}

// A change the store cannot take fails with STORAGE_ERROR and leaves the
// record as it was, in the store and for readers.
func TestStoreFull(t *testing.T) {
	st := openStore(t, storage.Options{MaxSize: 256 << 10})
	pub := newPublisher(st)
	recs := newRecords(t, st, pub, record.Options{})
	const victim = "victim"
	apply(t, recs, record.Op{Kind: record.Put, Name: victim, Payload: jsonPayload(`{"v":1}`)})
	apply(t, recs, record.Op{Kind: record.Merge, Name: victim, Value: map[string]any{"w": int64(2)}})
	before, _ := storedRecord(t, st, victim)

	stored, failed, err := fillStore(t, recs)
	wantFull(t, err)
	if _, found := storedRecord(t, st, failed); found {
		t.Errorf("the failed Put of %s is in the store", failed)
	}
	wantCode(t, getErr(recs, failed), record.CodeNotFound)
	if n := recs.Count(); n != int64(len(stored)+1) {
		t.Errorf("Count() = %d, want %d", n, len(stored)+1)
	}

	big := `{"big":"` + strings.Repeat("x", 64<<10) + `"}`
	for _, op := range []record.Op{
		{Kind: record.Put, Name: victim, Payload: jsonPayload(big)},
		{Kind: record.Merge, Name: victim, Value: decodeJSON(t, big)},
		{Kind: record.Set, Name: victim, Path: path(t, "big"), Value: strings.Repeat("y", 64<<10)},
	} {
		t.Run(op.Kind.String(), func(t *testing.T) {
			_, err := recs.Apply(op)
			wantFull(t, err)
			if after, _ := storedRecord(t, st, victim); !sameStored(before, after) {
				t.Errorf("stored v%d after the failed %s, want v%d unchanged", after.Version, op.Kind, before.Version)
			}
			got, err := recs.Get(victim)
			if err != nil || got.Version != before.Version || !sameDoc(got.Value, decodeJSON(t, `{"v":1,"w":2}`)) {
				t.Errorf("Get after the failed %s = v%d %s, %v; want v%d {\"v\":1,\"w\":2}",
					op.Kind, got.Version, jsonOf(got.Value), err, before.Version)
			}
		})
	}
	if vs := pub.versions(victim); !slices.Equal(vs, []uint64{1, 2}) {
		t.Errorf("published versions of %s: %v, want [1 2]", victim, vs)
	}
	pub.checkDurable(t)
}

// asyncFull is Records over a full store whose asynchronous write reports
// wait until release is called, with OnError reporting to errs.
type asyncFull struct {
	store   *storage.Store
	pub     *publisher
	recs    *record.Records
	errs    chan asyncError
	release func()
	count   int64 // Count() once the store is full
}

type asyncError struct {
	name string
	err  error
}

func newAsyncFull(t *testing.T) *asyncFull {
	st := openStore(t, storage.Options{MaxSize: 256 << 10})
	gate := &gatedStore{Store: st, open: make(chan struct{})}
	var once sync.Once
	release := func() { once.Do(func() { close(gate.open) }) }
	t.Cleanup(release) // before the store closes: its committer may wait on the gate
	a := &asyncFull{store: st, pub: newPublisher(nil), errs: make(chan asyncError, 10), release: release}
	a.recs = newRecords(t, gate, a.pub, record.Options{
		OnError: func(name string, err error) { a.errs <- asyncError{name, err} },
	})
	apply(t, a.recs, record.Op{Kind: record.Put, Name: "victim", Payload: jsonPayload(`{"v":1}`)})
	_, _, err := fillStore(t, a.recs)
	wantFull(t, err)
	a.count = a.recs.Count()
	return a
}

// waitError returns the next error given to OnError.
func (a *asyncFull) waitError(t *testing.T) asyncError {
	t.Helper()
	select {
	case e := <-a.errs:
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("OnError was not called within 5s")
	}
	return asyncError{}
}

// An asynchronous change is published and readable at once; if its write
// fails, OnError hears of it and readers see the stored record again.
func TestAsyncWriteFails(t *testing.T) {
	a := newAsyncFull(t)
	big := jsonPayload(`{"big":"` + strings.Repeat("x", 64<<10) + `"}`)
	res, err := a.recs.Apply(record.Op{Kind: record.Put, Name: "victim", Payload: big, Async: true})
	if err != nil || !res.Changed || res.Record.Version != 2 {
		t.Fatalf("async Apply = v%d changed %v, %v; want v2 queued", res.Record.Version, res.Changed, err)
	}
	if got, err := a.recs.Get("victim"); err != nil || got.Version != 2 {
		t.Errorf("Get before the write is reported = v%d, %v; want v2 at once", got.Version, err)
	}
	if calls := a.pub.of("victim"); len(calls) != 2 || calls[1].rec.Version != 2 || calls[1].payload != big {
		t.Errorf("published %d changes of victim; want v2 with the op's payload at once", len(calls))
	}

	a.release()
	e := a.waitError(t)
	if e.name != "victim" || !errors.Is(e.err, storage.ErrFull) {
		t.Errorf("OnError(%q, %v), want victim and storage.ErrFull", e.name, e.err)
	}
	if s, _ := storedRecord(t, a.store, "victim"); s.Version != 1 {
		t.Errorf("stored v%d, want v1", s.Version)
	}
	got, err := a.recs.Get("victim")
	if err != nil || got.Version != 1 || !sameDoc(got.Value, decodeJSON(t, `{"v":1}`)) {
		t.Errorf("Get after the failure = v%d %s, %v; want the stored v1 {\"v\":1}", got.Version, jsonOf(got.Value), err)
	}
}

// A failed asynchronous creation does not leave the record counted.
func TestAsyncWriteFailsKeepsCount(t *testing.T) {
	a := newAsyncFull(t)
	big := jsonPayload(`{"big":"` + strings.Repeat("x", 64<<10) + `"}`)
	if _, err := a.recs.Apply(record.Op{Kind: record.Put, Name: "newcomer", Payload: big, Async: true}); err != nil {
		t.Fatalf("async Apply: %v", err)
	}
	a.release()
	if e := a.waitError(t); e.name != "newcomer" {
		t.Errorf("OnError(%q, %v), want newcomer", e.name, e.err)
	}
	wantCode(t, getErr(a.recs, "newcomer"), record.CodeNotFound)
	if n := a.recs.Count(); n != a.count {
		t.Errorf("Count() = %d after the failed asynchronous creation, want %d as before it", n, a.count)
	}
}

// An asynchronous change becomes durable, and a later synchronous change
// builds on it.
func TestAsyncThenSync(t *testing.T) {
	e := newEnv(t, record.Options{OnError: func(name string, err error) { t.Errorf("OnError(%q, %v)", name, err) }})
	res := apply(t, e.recs, record.Op{Kind: record.Put, Name: "a", Payload: jsonPayload(`{"x":1}`), Async: true})
	if res.Record.Version != 1 {
		t.Fatalf("async Put version %d, want 1", res.Record.Version)
	}
	if got, err := e.recs.Get("a"); err != nil || got.Version != 1 {
		t.Errorf("Get after async Put = v%d, %v; want v1", got.Version, err)
	}
	res = apply(t, e.recs, record.Op{Kind: record.Merge, Name: "a", Value: map[string]any{"y": int64(2)}})
	if res.Record.Version != 2 || !sameDoc(res.Record.Value, decodeJSON(t, `{"x":1,"y":2}`)) {
		t.Errorf("Merge after async Put = v%d %s, want v2 {\"x\":1,\"y\":2}", res.Record.Version, jsonOf(res.Record.Value))
	}
	if s, _ := storedRecord(t, e.store, "a"); s.Version != 2 {
		t.Errorf("stored v%d, want v2", s.Version)
	}
	if vs := e.pub.versions("a"); !slices.Equal(vs, []uint64{1, 2}) {
		t.Errorf("published versions %v, want [1 2]", vs)
	}
}

// New counts the records already stored, tombstones excluded.
func TestNewCountsStoredRecords(t *testing.T) {
	p := t.TempDir() + "/hearth.db"
	st := openStoreAt(t, p, storage.Options{})
	recs := newRecords(t, st, newPublisher(nil), record.Options{})
	for _, name := range []string{"a", "b", "c", "d"} {
		apply(t, recs, record.Op{Kind: record.Put, Name: name, Payload: jsonPayload(`1`)})
	}
	apply(t, recs, record.Op{Kind: record.Delete, Name: "b"})
	if err := st.Write(context.Background(), storage.PutRetained(storage.Message{Topic: "e", Payload: []byte("plain")}, time.Now())); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st = openStoreAt(t, p, storage.Options{})
	recs = newRecords(t, st, newPublisher(nil), record.Options{})
	if n := recs.Count(); n != 4 {
		t.Errorf("Count() after reopening = %d, want 4 (a, c, d, e)", n)
	}
	apply(t, recs, record.Op{Kind: record.Delete, Name: "a"})
	apply(t, recs, record.Op{Kind: record.Put, Name: "b", Payload: jsonPayload(`2`)})
	if n := recs.Count(); n != 4 {
		t.Errorf("Count() after deleting a and re-creating b = %d, want 4", n)
	}
}

// New fails if it cannot count the stored records.
func TestNewFailsOnUnreadableStore(t *testing.T) {
	boom := errors.New("boom")
	st := &countingStore{Store: openStore(t, storage.Options{}), countError: boom}
	if _, err := record.New(st, newPublisher(nil), record.Options{}); !errors.Is(err, boom) {
		t.Errorf("New = %v, want an error wrapping the store's", err)
	}
}

// A retained message stored before records were structured (a JSON object
// kept as published, without content type) reads as its document.
func TestLegacyRetainedJSON(t *testing.T) {
	e := newEnv(t, record.Options{})
	ctx := context.Background()
	if err := e.store.Write(ctx,
		storage.PutRetained(storage.Message{Topic: "legacy/json", Payload: []byte(`{"b":1, "a":[true]}`)}, time.Now()),
		storage.PutRetained(storage.Message{Topic: "legacy/text", Payload: []byte(`{"a":1}`),
			Properties: storage.Properties{ContentType: "text/plain"}}, time.Now()),
	); err != nil {
		t.Fatal(err)
	}
	want := decodeJSON(t, `{"a":[true],"b":1}`)
	got, err := e.recs.Get("legacy/json")
	if err != nil || !got.Structured || !sameDoc(got.Value, want) || !bytes.Equal(got.Bytes, mustCBOR(t, want)) {
		t.Errorf("Get(legacy/json) = %+v, %v; want the structured document %s", got, err, jsonOf(want))
	}
	res := apply(t, e.recs, record.Op{Kind: record.Merge, Name: "legacy/json", Value: map[string]any{"c": int64(3)}})
	if s, _ := storedRecord(t, e.store, "legacy/json"); res.Record.Version != 2 || !s.Structured {
		t.Errorf("Merge into the legacy record: v%d, stored structured %v; want v2, structured", res.Record.Version, s.Structured)
	}

	text, err := e.recs.Get("legacy/text")
	if err != nil || text.Structured || string(text.Bytes) != `{"a":1}` {
		t.Errorf("Get(legacy/text) = %+v, %v; want opaque, as published", text, err)
	}
	_, err = e.recs.Apply(record.Op{Kind: record.Merge, Name: "legacy/text", Value: map[string]any{"c": int64(3)}})
	wantCode(t, err, record.CodeInvalidPayload)
}

// Error values say what they are.
func TestErrorValues(t *testing.T) {
	inner := errors.New("disk on fire")
	e := &record.Error{Code: record.CodeStorageError, Message: "x: not stored", Err: inner}
	if e.Error() != "record: x: not stored" || !errors.Is(e, inner) {
		t.Errorf("Error() = %q, Is(inner) = %v", e.Error(), errors.Is(e, inner))
	}
	if got := record.CodeOf(fmt.Errorf("wrapped: %w", &record.Error{Code: record.CodeNotFound})); got != record.CodeNotFound {
		t.Errorf("CodeOf(wrapped NOT_FOUND) = %s", got)
	}
	if got := record.CodeOf(inner); got != record.CodeStorageError {
		t.Errorf("CodeOf(plain error) = %s, want STORAGE_ERROR", got)
	}
}

// The store may report an asynchronous write's failure before Apply has
// finished with it; readers must then still see the stored record, not the
// change that failed.
func TestAsyncWriteFailsAtOnce(t *testing.T) {
	st := openStore(t, storage.Options{MaxSize: 256 << 10})
	errs := make(chan asyncError, 10)
	recs := newRecords(t, reportedStore{st}, newPublisher(nil), record.Options{
		OnError: func(name string, err error) { errs <- asyncError{name, err} },
	})
	apply(t, recs, record.Op{Kind: record.Put, Name: "victim", Payload: jsonPayload(`{"v":1}`)})
	_, _, err := fillStore(t, recs)
	wantFull(t, err)

	big := jsonPayload(`{"big":"` + strings.Repeat("x", 64<<10) + `"}`)
	if _, err := recs.Apply(record.Op{Kind: record.Put, Name: "victim", Payload: big, Async: true}); err != nil {
		t.Fatalf("async Apply: %v", err)
	}
	select {
	case e := <-errs:
		if e.name != "victim" || !errors.Is(e.err, storage.ErrFull) {
			t.Errorf("OnError(%q, %v), want victim and storage.ErrFull", e.name, e.err)
		}
	default:
		t.Fatal("OnError not called by the time Apply returned")
	}
	if s, _ := storedRecord(t, st, "victim"); s.Version != 1 {
		t.Fatalf("stored v%d, want v1", s.Version)
	}
	got, err := recs.Get("victim")
	if err != nil || got.Version != 1 || !sameDoc(got.Value, decodeJSON(t, `{"v":1}`)) {
		t.Errorf("Get after the reported failure = v%d (%d bytes), %v; want the stored v1 {\"v\":1}", got.Version, len(got.Bytes), err)
	}
}

// An asynchronous change is pending, published but not in the store, until
// its write commits; then it is no longer pending. A deletion is pending
// as a tombstone.
func TestPendingUntilCommitted(t *testing.T) {
	st := openStore(t, storage.Options{})
	gate := &gatedStore{Store: st, open: make(chan struct{})}
	var once sync.Once
	release := func() { once.Do(func() { close(gate.open) }) }
	t.Cleanup(release)
	pub := newPublisher(nil)
	recs := newRecords(t, gate, pub, record.Options{})
	apply(t, recs, record.Op{Kind: record.Put, Name: "p/1", Payload: jsonPayload(`{"v":1}`)})
	if p := recs.Pending(); len(p) != 0 {
		t.Fatalf("Pending after a synchronous change = %+v, want none", p)
	}

	apply(t, recs, record.Op{Kind: record.Put, Name: "p/1", Payload: jsonPayload(`{"v":2}`), Async: true})
	apply(t, recs, record.Op{Kind: record.Delete, Name: "p/2", IgnoreMissing: true, Async: true}) // nothing to delete: no change
	apply(t, recs, record.Op{Kind: record.Put, Name: "p/3", Payload: jsonPayload(`{"v":1}`), Async: true})
	apply(t, recs, record.Op{Kind: record.Delete, Name: "p/3", Async: true})
	got := map[string]record.Record{}
	for _, r := range recs.Pending() {
		got[r.Name] = r
	}
	if len(got) != 2 || got["p/1"].Version != 2 || got["p/1"].Deleted || got["p/3"].Version != 2 || !got["p/3"].Deleted {
		t.Fatalf("Pending = %+v, want p/1 at version 2 and p/3 deleted at version 2", got)
	}
	if s, ok, err := st.Record("p/1"); err != nil || !ok || s.Version != 1 {
		t.Fatalf("store has p/1 at %d (%v, %v) while its write waits, want 1", s.Version, ok, err)
	}

	release()
	deadline := time.Now().Add(5 * time.Second)
	for len(recs.Pending()) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("still pending after the writes committed: %+v", recs.Pending())
		}
		time.Sleep(time.Millisecond)
	}
	if s, ok, err := st.Record("p/3"); err != nil || !ok || s.Version != 2 || !s.Deleted {
		t.Fatalf("store has p/3 = %+v (%v, %v), want the tombstone at version 2", s, ok, err)
	}
}

// heldStore is the real store whose asynchronous writes reach it only once
// open is closed: until then they are not in the store at all.
type heldStore struct {
	*storage.Store
	open chan struct{}
}

func (s *heldStore) WriteNotify(done func(error), changes ...storage.Change) error {
	go func() {
		<-s.open
		if err := s.Store.WriteNotify(done, changes...); err != nil {
			done(err)
		}
	}()
	return nil
}

// A reader gets an asynchronous change that is published but not yet in
// the store, even when the cache does not hold it (disabled here; evicted
// in a running broker).
func TestGetSeesPendingWithoutCache(t *testing.T) {
	st := openStore(t, storage.Options{})
	held := &heldStore{Store: st, open: make(chan struct{})}
	var once sync.Once
	release := func() { once.Do(func() { close(held.open) }) }
	t.Cleanup(release)
	recs := newRecords(t, held, newPublisher(nil), record.Options{CacheBytes: -1})
	apply(t, recs, record.Op{Kind: record.Put, Name: "a", Payload: jsonPayload(`{"v":1}`)})
	apply(t, recs, record.Op{Kind: record.Put, Name: "a", Payload: jsonPayload(`{"v":2}`), Async: true})
	if s, ok, err := st.Record("a"); err != nil || !ok || s.Version != 1 {
		t.Fatalf("store has a at %d (%v, %v) while its write is held, want 1", s.Version, ok, err)
	}
	got, err := recs.Get("a")
	if err != nil || got.Version != 2 {
		t.Fatalf("Get while the write is held = version %d, %v; want the pending version 2", got.Version, err)
	}

	release()
	deadline := time.Now().Add(5 * time.Second)
	for len(recs.Pending()) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("still pending after the write was released: %+v", recs.Pending())
		}
		time.Sleep(time.Millisecond)
	}
	if got, err := recs.Get("a"); err != nil || got.Version != 2 {
		t.Fatalf("Get after the commit = version %d, %v; want 2", got.Version, err)
	}
}

// A reader that misses the cache while an asynchronous change is pending
// (evicted from the cache) does not cache the store's older version: once
// the change commits, reads return it, not the version before.
func TestNoStaleCacheAfterPendingCommit(t *testing.T) {
	st := openStore(t, storage.Options{})
	held := &heldStore{Store: st, open: make(chan struct{})}
	var once sync.Once
	release := func() { once.Do(func() { close(held.open) }) }
	t.Cleanup(release)
	recs := newRecords(t, held, newPublisher(nil), record.Options{CacheBytes: 4000})
	apply(t, recs, record.Op{Kind: record.Put, Name: "a", Payload: jsonPayload(`{"v":1}`)})
	apply(t, recs, record.Op{Kind: record.Put, Name: "a", Payload: jsonPayload(`{"v":2}`), Async: true})
	// evict a@2 from the cache with a big synchronous write of another record
	big := `{"x":"` + strings.Repeat("y", 880) + `"}`
	apply(t, recs, record.Op{Kind: record.Put, Name: "b", Payload: jsonPayload(big)})
	if _, err := recs.Peek("b"); err != nil {
		t.Fatal(err)
	}
	got, err := recs.Get("a") // fills the cache with a@1 from the store
	if err != nil || got.Version != 2 {
		t.Fatalf("Get while held = %d %v", got.Version, err)
	}
	release()
	deadline := time.Now().Add(5 * time.Second)
	for len(recs.Pending()) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("still pending")
		}
		time.Sleep(time.Millisecond)
	}
	s, _, _ := st.Record("a")
	p, err := recs.Peek("a")
	g, err2 := recs.Get("a")
	t.Logf("store has a@%d; Peek = a@%d (%v); Get = a@%d (%v)", s.Version, p.Version, err, g.Version, err2)
	if p.Version != 2 {
		t.Errorf("Peek after commit returns stale version %d; version 2 was published and is in the store", p.Version)
	}
}
