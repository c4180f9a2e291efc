package record_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/hearth-iot/hearth/broker/codec"
	"github.com/hearth-iot/hearth/broker/document"
	"github.com/hearth-iot/hearth/broker/record"
)

// opLimits are small, so that the table can reach them.
var opLimits = record.Limits{MaxSize: 512, MaxDepth: 4}

// opCase is one operation on a record that setup prepared.
type opCase struct {
	name  string
	setup []record.Op // applied first, each must succeed; Name is filled in
	op    record.Op   // Name is filled in

	code string // the error code wanted; "" for success

	// For success:
	want    any  // the document after (when neither deleted nor absent)
	deleted bool // the record is a tombstone after
	absent  bool // the record is not in the store at all after
	changed bool
	removed int

	version uint64 // the version after, whether the operation failed or not
}

// TestApply runs every kind of operation through Records.Apply against a
// real store: what it returns, what the store holds after, what Get reads,
// and that a refused operation changes nothing and publishes nothing.
func TestApply(t *testing.T) {
	e := newEnv(t, record.Options{Limits: opLimits})
	lim := e.recs.Limits().Codec()
	doc := func(s string) any { return decodeJSON(t, s) }
	p := func(s string) document.Path { return path(t, s) }
	putJSON := func(s string) record.Op { return record.Op{Kind: record.Put, Payload: jsonPayload(s)} }
	putOpaque := record.Op{Kind: record.Put, Payload: opaquePayload([]byte("\x00raw\xff"))}
	del := record.Op{Kind: record.Delete}
	big := strings.Repeat("x", 600) // more than opLimits.MaxSize in any encoding

	cases := []opCase{
		// Put.
		{name: "put JSON creates", op: putJSON(`{"b":[true,null,"x"],"a":1.5}`),
			want: doc(`{"a":1.5,"b":[true,null,"x"]}`), changed: true, version: 1},
		{name: "put CBOR creates", op: record.Op{Kind: record.Put, Payload: cborPayload(t, map[string]any{"n": int64(-3), "b": []byte{1, 2}})},
			want: map[string]any{"n": int64(-3), "b": []byte{1, 2}}, changed: true, version: 1},
		{name: "put JSON scalar", op: putJSON(`"hello"`), want: "hello", changed: true, version: 1},
		{name: "put replaces the document", setup: []record.Op{putJSON(`{"a":1}`)}, op: putJSON(`{"b":2}`),
			want: doc(`{"b":2}`), changed: true, version: 2},
		{name: "put structured replaces opaque", setup: []record.Op{putOpaque}, op: putJSON(`[1]`),
			want: doc(`[1]`), changed: true, version: 2},
		{name: "put without payload", setup: []record.Op{putJSON(`{"a":1}`)}, op: record.Op{Kind: record.Put},
			code: record.CodeInvalidPayload, version: 1},
		{name: "put malformed JSON", setup: []record.Op{putJSON(`{"a":1}`)}, op: putJSON(`{"a":`),
			code: record.CodeInvalidPayload, version: 1},
		{name: "put structured over MaxSize", setup: []record.Op{putJSON(`{"a":1}`)}, op: putJSON(`"` + big + `"`),
			code: record.CodeTooLarge, version: 1},
		{name: "put structured over MaxSize, decoded with the records' limits", setup: []record.Op{putJSON(`{"a":1}`)},
			op:   record.Op{Kind: record.Put, Payload: codec.NewPayload([]byte(`"`+big+`"`), codec.JSON, lim)},
			code: record.CodeTooLarge, version: 1},
		{name: "put opaque over MaxSize", setup: []record.Op{putJSON(`{"a":1}`)},
			op:   record.Op{Kind: record.Put, Payload: opaquePayload([]byte(big))},
			code: record.CodeTooLarge, version: 1},
		{name: "put deeper than MaxDepth", setup: []record.Op{putJSON(`{"a":1}`)},
			op:   record.Op{Kind: record.Put, Payload: codec.NewPayload([]byte(`{"a":{"b":{"c":{"d":{"e":1}}}}}`), codec.JSON, lim)},
			code: record.CodeInvalidPayload, version: 1},
		{name: "put at MaxDepth", op: record.Op{Kind: record.Put, Payload: codec.NewPayload([]byte(`{"a":{"b":{"c":{"d":1}}}}`), codec.JSON, lim)},
			want: doc(`{"a":{"b":{"c":{"d":1}}}}`), changed: true, version: 1},

		// Delete of the whole record.
		{name: "delete record", setup: []record.Op{putJSON(`{"a":1}`)}, op: del, deleted: true, changed: true, version: 2},
		{name: "delete opaque record", setup: []record.Op{putOpaque}, op: del, deleted: true, changed: true, version: 2},
		{name: "delete missing record", op: del, code: record.CodeNotFound, version: 0},
		{name: "delete missing record, ignoring missing", op: record.Op{Kind: record.Delete, IgnoreMissing: true},
			absent: true, version: 0},
		{name: "delete tombstone", setup: []record.Op{putJSON(`{"a":1}`), del}, op: del,
			code: record.CodeNotFound, version: 2},
		{name: "delete tombstone, ignoring missing", setup: []record.Op{putJSON(`{"a":1}`), del},
			op: record.Op{Kind: record.Delete, IgnoreMissing: true}, deleted: true, version: 2},

		// Delete at a path.
		{name: "delete key", setup: []record.Op{putJSON(`{"a":{"b":1,"c":2}}`)}, op: record.Op{Kind: record.Delete, Path: p("a.b")},
			want: doc(`{"a":{"c":2}}`), changed: true, version: 2},
		{name: "delete array element", setup: []record.Op{putJSON(`{"l":[1,2,3]}`)}, op: record.Op{Kind: record.Delete, Path: p("l[1]")},
			want: doc(`{"l":[1,3]}`), changed: true, version: 2},
		{name: "delete missing key", setup: []record.Op{putJSON(`{"a":{"b":1}}`)}, op: record.Op{Kind: record.Delete, Path: p("a.x")},
			code: record.CodeNotFound, version: 1},
		{name: "delete past array end", setup: []record.Op{putJSON(`{"l":[1]}`)}, op: record.Op{Kind: record.Delete, Path: p("l[5]")},
			code: record.CodeNotFound, version: 1},
		{name: "delete at path of missing record", op: record.Op{Kind: record.Delete, Path: p("a")},
			code: record.CodeNotFound, version: 0},
		{name: "delete at path of tombstone", setup: []record.Op{putJSON(`{"a":1}`), del}, op: record.Op{Kind: record.Delete, Path: p("a")},
			code: record.CodeNotFound, version: 2},
		{name: "delete key inside a number", setup: []record.Op{putJSON(`{"a":1}`)}, op: record.Op{Kind: record.Delete, Path: p("a.b")},
			code: record.CodeInvalidPath, version: 1},
		{name: "delete index inside an object", setup: []record.Op{putJSON(`{"a":{"b":1}}`)}, op: record.Op{Kind: record.Delete, Path: p("a[0]")},
			code: record.CodeInvalidPath, version: 1},
		{name: "delete at path in opaque record", setup: []record.Op{putOpaque}, op: record.Op{Kind: record.Delete, Path: p("a")},
			code: record.CodeInvalidPayload, version: 1},

		// Merge (RFC 7396).
		{name: "merge creates record", op: record.Op{Kind: record.Merge, Value: doc(`{"a":1}`)},
			want: doc(`{"a":1}`), changed: true, version: 1},
		{name: "merge null deletes key", setup: []record.Op{putJSON(`{"a":1,"b":2}`)}, op: record.Op{Kind: record.Merge, Value: doc(`{"a":null}`)},
			want: doc(`{"b":2}`), changed: true, version: 2},
		{name: "merge nested objects", setup: []record.Op{putJSON(`{"a":{"x":1,"y":2},"k":true}`)},
			op:   record.Op{Kind: record.Merge, Value: doc(`{"a":{"y":3,"z":4}}`)},
			want: doc(`{"a":{"x":1,"y":3,"z":4},"k":true}`), changed: true, version: 2},
		{name: "merge replaces arrays", setup: []record.Op{putJSON(`{"l":[1,2,3]}`)}, op: record.Op{Kind: record.Merge, Value: doc(`{"l":[4]}`)},
			want: doc(`{"l":[4]}`), changed: true, version: 2},
		{name: "merge non-object patch replaces", setup: []record.Op{putJSON(`{"a":1}`)}, op: record.Op{Kind: record.Merge, Value: doc(`[1,2]`)},
			want: doc(`[1,2]`), changed: true, version: 2},
		{name: "merge object into array document", setup: []record.Op{putJSON(`[1]`)}, op: record.Op{Kind: record.Merge, Value: doc(`{"a":1}`)},
			want: doc(`{"a":1}`), changed: true, version: 2},
		{name: "merge into tombstone starts empty", setup: []record.Op{putJSON(`{"old":1}`), del},
			op:   record.Op{Kind: record.Merge, Value: doc(`{"a":1}`)},
			want: doc(`{"a":1}`), changed: true, version: 3},
		{name: "merge into opaque record", setup: []record.Op{putOpaque}, op: record.Op{Kind: record.Merge, Value: doc(`{"a":1}`)},
			code: record.CodeInvalidPayload, version: 1},
		{name: "merge over MaxSize", setup: []record.Op{putJSON(`{"a":1}`)}, op: record.Op{Kind: record.Merge, Value: map[string]any{"s": big}},
			code: record.CodeTooLarge, version: 1},

		// Set.
		{name: "set creates objects", op: record.Op{Kind: record.Set, Path: p("a.b.c"), Value: int64(1)},
			want: doc(`{"a":{"b":{"c":1}}}`), changed: true, version: 1},
		{name: "set creates arrays", op: record.Op{Kind: record.Set, Path: p("players[2].name"), Value: "x"},
			want: doc(`{"players":[null,null,{"name":"x"}]}`), changed: true, version: 1},
		{name: "set creates root array", op: record.Op{Kind: record.Set, Path: p("[1]"), Value: "x"},
			want: doc(`[null,"x"]`), changed: true, version: 1},
		{name: "set keeps siblings", setup: []record.Op{putJSON(`{"a":{"b":1},"c":2}`)}, op: record.Op{Kind: record.Set, Path: p("a.d"), Value: true},
			want: doc(`{"a":{"b":1,"d":true},"c":2}`), changed: true, version: 2},
		{name: "set array element", setup: []record.Op{putJSON(`{"l":[1,2]}`)}, op: record.Op{Kind: record.Set, Path: p("l[0]"), Value: "x"},
			want: doc(`{"l":["x",2]}`), changed: true, version: 2},
		{name: "set root replaces document", setup: []record.Op{putJSON(`{"a":1}`)}, op: record.Op{Kind: record.Set, Value: "x"},
			want: "x", changed: true, version: 2},
		{name: "set key inside a number", setup: []record.Op{putJSON(`{"a":1}`)}, op: record.Op{Kind: record.Set, Path: p("a.b"), Value: true},
			code: record.CodeInvalidPath, version: 1},
		{name: "set index inside an object", setup: []record.Op{putJSON(`{"a":{}}`)}, op: record.Op{Kind: record.Set, Path: p("a[0]"), Value: true},
			code: record.CodeInvalidPath, version: 1},
		{name: "set in opaque record", setup: []record.Op{putOpaque}, op: record.Op{Kind: record.Set, Path: p("a"), Value: true},
			code: record.CodeInvalidPayload, version: 1},
		{name: "set deeper than MaxDepth", setup: []record.Op{putJSON(`{"a":1}`)},
			op:   record.Op{Kind: record.Set, Path: p("x.y.z"), Value: doc(`{"d":{"e":1}}`)},
			code: record.CodeInvalidPayload, version: 1},
		{name: "set at MaxDepth", op: record.Op{Kind: record.Set, Path: p("a.b"), Value: doc(`{"c":{"d":1}}`)},
			want: doc(`{"a":{"b":{"c":{"d":1}}}}`), changed: true, version: 1},
		{name: "set over MaxSize", setup: []record.Op{putJSON(`{"a":1}`)}, op: record.Op{Kind: record.Set, Path: p("s"), Value: big},
			code: record.CodeTooLarge, version: 1},
		{name: "set value outside the document model", setup: []record.Op{putJSON(`{"a":1}`)},
			op:   record.Op{Kind: record.Set, Path: p("b"), Value: 7}, // a Go int, not int64
			code: record.CodeInvalidPayload, version: 1},

		// Append.
		{name: "append to array", setup: []record.Op{putJSON(`{"l":[1]}`)}, op: record.Op{Kind: record.Append, Path: p("l"), Values: []any{int64(2), "x"}},
			want: doc(`{"l":[1,2,"x"]}`), changed: true, version: 2},
		{name: "append creates array", op: record.Op{Kind: record.Append, Path: p("a.l"), Values: []any{"x"}},
			want: doc(`{"a":{"l":["x"]}}`), changed: true, version: 1},
		{name: "append to root array", setup: []record.Op{putJSON(`[1]`)}, op: record.Op{Kind: record.Append, Values: []any{int64(2)}},
			want: doc(`[1,2]`), changed: true, version: 2},
		{name: "append to non-array", setup: []record.Op{putJSON(`{"l":{}}`)}, op: record.Op{Kind: record.Append, Path: p("l"), Values: []any{int64(1)}},
			code: record.CodeInvalidPath, version: 1},
		{name: "append in opaque record", setup: []record.Op{putOpaque}, op: record.Op{Kind: record.Append, Path: p("l"), Values: []any{int64(1)}},
			code: record.CodeInvalidPayload, version: 1},
		{name: "append deeper than MaxDepth", setup: []record.Op{putJSON(`{"a":1}`)},
			op:   record.Op{Kind: record.Append, Path: p("x.l"), Values: []any{int64(1), doc(`[[1]]`)}},
			code: record.CodeInvalidPayload, version: 1},
		{name: "append over MaxSize", setup: []record.Op{putJSON(`{"l":[]}`)}, op: record.Op{Kind: record.Append, Path: p("l"), Values: []any{big}},
			code: record.CodeTooLarge, version: 1},

		// Insert.
		{name: "insert in the middle", setup: []record.Op{putJSON(`{"l":[1,3]}`)},
			op:   record.Op{Kind: record.Insert, Path: p("l"), Index: 1, Values: []any{int64(2)}},
			want: doc(`{"l":[1,2,3]}`), changed: true, version: 2},
		{name: "insert at the front", setup: []record.Op{putJSON(`{"l":[2]}`)},
			op:   record.Op{Kind: record.Insert, Path: p("l"), Index: 0, Values: []any{int64(0), int64(1)}},
			want: doc(`{"l":[0,1,2]}`), changed: true, version: 2},
		{name: "insert at the length appends", setup: []record.Op{putJSON(`{"l":[1]}`)},
			op:   record.Op{Kind: record.Insert, Path: p("l"), Index: 1, Values: []any{int64(2)}},
			want: doc(`{"l":[1,2]}`), changed: true, version: 2},
		{name: "insert past the end", setup: []record.Op{putJSON(`{"l":[1,2]}`)},
			op:   record.Op{Kind: record.Insert, Path: p("l"), Index: 3, Values: []any{int64(9)}},
			code: record.CodeInvalidPath, version: 1},
		{name: "insert at negative index", setup: []record.Op{putJSON(`{"l":[1,2]}`)},
			op:   record.Op{Kind: record.Insert, Path: p("l"), Index: -1, Values: []any{int64(9)}},
			code: record.CodeInvalidPath, version: 1},
		{name: "insert into non-array", setup: []record.Op{putJSON(`{"l":"text"}`)},
			op:   record.Op{Kind: record.Insert, Path: p("l"), Values: []any{int64(9)}},
			code: record.CodeInvalidPath, version: 1},
		{name: "insert deeper than MaxDepth", setup: []record.Op{putJSON(`{"a":{"l":[]}}`)},
			op:   record.Op{Kind: record.Insert, Path: p("a.l"), Values: []any{doc(`{"c":{"d":1}}`)}},
			code: record.CodeInvalidPayload, version: 1},

		// RemoveAt.
		{name: "remove at", setup: []record.Op{putJSON(`{"l":[1,2,3]}`)}, op: record.Op{Kind: record.RemoveAt, Path: p("l"), Index: 0},
			want: doc(`{"l":[2,3]}`), changed: true, version: 2},
		{name: "remove last", setup: []record.Op{putJSON(`{"l":[1,2,3]}`)}, op: record.Op{Kind: record.RemoveAt, Path: p("l"), Index: 2},
			want: doc(`{"l":[1,2]}`), changed: true, version: 2},
		{name: "remove at past the end", setup: []record.Op{putJSON(`{"l":[1,2,3]}`)}, op: record.Op{Kind: record.RemoveAt, Path: p("l"), Index: 3},
			code: record.CodeInvalidPath, version: 1},
		{name: "remove at negative index", setup: []record.Op{putJSON(`{"l":[1]}`)}, op: record.Op{Kind: record.RemoveAt, Path: p("l"), Index: -1},
			code: record.CodeInvalidPath, version: 1},
		{name: "remove at from missing array", setup: []record.Op{putJSON(`{}`)}, op: record.Op{Kind: record.RemoveAt, Path: p("l")},
			code: record.CodeInvalidPath, version: 1},
		{name: "remove at from non-array", setup: []record.Op{putJSON(`{"l":"x"}`)}, op: record.Op{Kind: record.RemoveAt, Path: p("l")},
			code: record.CodeInvalidPath, version: 1},
		{name: "remove at in opaque record", setup: []record.Op{putOpaque}, op: record.Op{Kind: record.RemoveAt, Path: p("l")},
			code: record.CodeInvalidPayload, version: 1},

		// RemoveValue.
		{name: "remove value removes every match", setup: []record.Op{putJSON(`{"l":[1,2,1,3]}`)},
			op:   record.Op{Kind: record.RemoveValue, Path: p("l"), Value: int64(1)},
			want: doc(`{"l":[2,3]}`), changed: true, removed: 2, version: 2},
		{name: "remove value of an object", setup: []record.Op{putJSON(`[{"a":1},{"a":2}]`)},
			op:   record.Op{Kind: record.RemoveValue, Value: doc(`{"a":1}`)},
			want: doc(`[{"a":2}]`), changed: true, removed: 1, version: 2},
		{name: "remove value without match", setup: []record.Op{putJSON(`{"l":[1,2]}`)},
			op:   record.Op{Kind: record.RemoveValue, Path: p("l"), Value: int64(9)},
			want: doc(`{"l":[1,2]}`), version: 1},
		{name: "remove value from missing array", setup: []record.Op{putJSON(`{"a":1}`)},
			op:   record.Op{Kind: record.RemoveValue, Path: p("l"), Value: int64(9)},
			want: doc(`{"a":1}`), version: 1},
		{name: "remove value from missing record", op: record.Op{Kind: record.RemoveValue, Path: p("l"), Value: int64(9)},
			absent: true, version: 0},
		{name: "remove value from non-array", setup: []record.Op{putJSON(`{"l":{"a":1}}`)},
			op:   record.Op{Kind: record.RemoveValue, Path: p("l"), Value: int64(1)},
			code: record.CodeInvalidPath, version: 1},
		{name: "remove value in opaque record", setup: []record.Op{putOpaque},
			op:   record.Op{Kind: record.RemoveValue, Path: p("l"), Value: int64(1)},
			code: record.CodeInvalidPayload, version: 1},

		// Unknown operations.
		{name: "kind zero", setup: []record.Op{putJSON(`{"a":1}`)}, op: record.Op{Value: int64(1)},
			code: record.CodeInvalidPayload, version: 1},
		{name: "unknown kind", op: record.Op{Kind: 99, Value: int64(1)}, code: record.CodeInvalidPayload, version: 0},
	}

	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := fmt.Sprintf("op/%02d", i)
			for _, op := range tc.setup {
				op.Name = name
				apply(t, e.recs, op)
			}
			before, _ := storedRecord(t, e.store, name)
			published := len(e.pub.of(name))

			op := tc.op
			op.Name = name
			res, err := e.recs.Apply(op)
			after, found := storedRecord(t, e.store, name)

			if tc.code != "" {
				wantCode(t, err, tc.code)
				if !sameStored(before, after) {
					t.Errorf("refused %s changed the stored record: v%d %x before, v%d %x after",
						op.Kind, before.Version, before.Message.Payload, after.Version, after.Message.Payload)
				}
				if after.Version != tc.version {
					t.Errorf("stored version %d, want %d", after.Version, tc.version)
				}
				if n := len(e.pub.of(name)); n != published {
					t.Errorf("refused %s published %d changes", op.Kind, n-published)
				}
				if got, err := e.recs.Get(name); err == nil && got.Version != before.Version {
					t.Errorf("Get after a refused %s: version %d, want %d", op.Kind, got.Version, before.Version)
				}
				return
			}

			if err != nil {
				t.Fatalf("Apply(%s): %v", op.Kind, err)
			}
			if res.Changed != tc.changed || res.Removed != tc.removed || res.Record.Version != tc.version {
				t.Errorf("Result: Changed %v, Removed %d, version %d; want %v, %d, %d",
					res.Changed, res.Removed, res.Record.Version, tc.changed, tc.removed, tc.version)
			}
			if wantPub := published + btoi(tc.changed); len(e.pub.of(name)) != wantPub {
				t.Errorf("%d changes published, want %d", len(e.pub.of(name))-published, wantPub-published)
			}
			if !tc.changed && !sameStored(before, after) {
				t.Errorf("unchanging %s changed the stored record: v%d before, v%d after", op.Kind, before.Version, after.Version)
			}
			switch {
			case tc.absent:
				if found {
					t.Errorf("store holds %s at version %d; want nothing stored", name, after.Version)
				}
				wantCode(t, getErr(e.recs, name), record.CodeNotFound)
			case tc.deleted:
				if !found || !after.Deleted || after.Version != tc.version || len(after.Message.Payload) != 0 {
					t.Errorf("stored: found %v, deleted %v, version %d, payload %x; want a tombstone at version %d",
						found, after.Deleted, after.Version, after.Message.Payload, tc.version)
				}
				gerr := wantCode(t, getErr(e.recs, name), record.CodeNotFound)
				if gerr.Current == nil || gerr.Current.Version != tc.version || !gerr.Current.Deleted {
					t.Errorf("Get NOT_FOUND Current = %+v, want the tombstone at version %d", gerr.Current, tc.version)
				}
			default:
				wantBytes := mustCBOR(t, tc.want)
				if !found || after.Deleted || !after.Structured || after.Version != tc.version || !bytes.Equal(after.Message.Payload, wantBytes) {
					t.Errorf("stored: found %v, deleted %v, structured %v, version %d, payload %x; want structured %s (%x) at version %d",
						found, after.Deleted, after.Structured, after.Version, after.Message.Payload, jsonOf(tc.want), wantBytes, tc.version)
				}
				if !sameDoc(res.Record.Value, tc.want) || !bytes.Equal(res.Record.Bytes, wantBytes) || !res.Record.Structured {
					t.Errorf("Result document %s (%x, structured %v), want %s", jsonOf(res.Record.Value), res.Record.Bytes, res.Record.Structured, jsonOf(tc.want))
				}
				got, err := e.recs.Get(name)
				if err != nil || got.Version != tc.version || !sameDoc(got.Value, tc.want) {
					t.Errorf("Get = v%d %s, %v; want v%d %s", got.Version, jsonOf(got.Value), err, tc.version, jsonOf(tc.want))
				}
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func getErr(r *record.Records, name string) error {
	_, err := r.Get(name)
	return err
}

// A structured Put is stored as deterministic CBOR whatever the publisher's
// encoding, and read back as the same document.
func TestPutStoresCanonicalCBOR(t *testing.T) {
	e := newEnv(t, record.Options{})
	want := map[string]any{"a": int64(1), "b": "x"}
	cases := []struct {
		name    string
		payload *codec.Payload
	}{
		{"JSON with keys out of order and spaces", jsonPayload(` { "b" : "x", "a" : 1 } `)},
		// {"b": "x", "a": 1} with the keys unsorted and 1 in a two-byte head.
		{"CBOR not in deterministic form", codec.NewPayload([]byte{0xa2, 0x61, 'b', 0x61, 'x', 0x61, 'a', 0x18, 0x01}, codec.CBOR, codec.Limits{})},
		{"CBOR in deterministic form", cborPayload(t, want)},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := fmt.Sprintf("canon/%d", i)
			res := apply(t, e.recs, record.Op{Kind: record.Put, Name: name, Payload: tc.payload})
			s, _ := storedRecord(t, e.store, name)
			if canon := mustCBOR(t, want); !s.Structured || !bytes.Equal(s.Message.Payload, canon) || !bytes.Equal(res.Record.Bytes, canon) {
				t.Errorf("stored %x (structured %v), Result.Bytes %x; want %x", s.Message.Payload, s.Structured, res.Record.Bytes, canon)
			}
			if !sameDoc(res.Record.Value, want) {
				t.Errorf("Value %s, want %s", jsonOf(res.Record.Value), jsonOf(want))
			}
		})
	}
}

// An opaque Put keeps the payload as published, with its content type, and
// has no document.
func TestPutOpaque(t *testing.T) {
	e := newEnv(t, record.Options{})
	raw := []byte("\x89PNG\r\n\x1a\n not a document")
	op := record.Op{Kind: record.Put, Name: "cam/snapshot", Writer: "cam-1", Payload: opaquePayload(raw)}
	op.Message.Properties.ContentType = "image/png"
	res := apply(t, e.recs, op)
	if !res.Changed || res.Record.Version != 1 || res.Record.Structured || res.Record.Value != nil || !bytes.Equal(res.Record.Bytes, raw) {
		t.Errorf("Result = %+v; want version 1, opaque, Bytes as published", res)
	}
	s, _ := storedRecord(t, e.store, "cam/snapshot")
	if s.Structured || !bytes.Equal(s.Message.Payload, raw) || s.Message.Properties.ContentType != "image/png" {
		t.Errorf("stored structured %v, payload %q, content type %q; want the opaque payload as published, image/png",
			s.Structured, s.Message.Payload, s.Message.Properties.ContentType)
	}
	for _, r := range []*record.Records{e.recs, newRecords(t, e.store, newPublisher(nil), record.Options{})} {
		got, err := r.Get("cam/snapshot")
		if err != nil || got.Structured || got.Value != nil || !bytes.Equal(got.Bytes, raw) {
			t.Errorf("Get = %+v, %v; want the opaque payload", got, err)
		}
		if p := got.Payload(r.Limits().Codec()); p.Codec() != 0 || !bytes.Equal(p.Raw(), raw) {
			t.Errorf("Payload: codec %v, %q; want opaque, as published", p.Codec(), p.Raw())
		}
	}
}

// Record names are MQTT topic names of bounded length.
func TestCheckName(t *testing.T) {
	const maxLen = 16
	e := newEnv(t, record.Options{Limits: record.Limits{MaxNameLen: maxLen}})
	cases := []struct {
		name  string
		valid bool
	}{
		{"", false},
		{strings.Repeat("a", maxLen+1), false},
		{strings.Repeat("a", maxLen), true},
		{"a/+/b", false},
		{"a/#", false},
		{"+", false},
		{"a\x00b", false},
		{"a/\xff\xfe", false},
		{"home/kitchen", true},
		{"ü/tøpic", true},
		{"/leading/slash", true},
		{"$sys-like", true},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%q", tc.name), func(t *testing.T) {
			err := e.recs.CheckName(tc.name)
			_, applyErr := e.recs.Apply(record.Op{Kind: record.Put, Name: tc.name, Payload: jsonPayload(`1`)})
			_, getErr := e.recs.Get(tc.name)
			if tc.valid {
				if err != nil || applyErr != nil {
					t.Fatalf("CheckName = %v, Apply = %v; want valid", err, applyErr)
				}
				if getErr != nil {
					t.Fatalf("Get after Put: %v", getErr)
				}
				return
			}
			wantCode(t, err, record.CodeInvalidName)
			wantCode(t, applyErr, record.CodeInvalidName)
			wantCode(t, getErr, record.CodeInvalidName)
			if _, found := storedRecord(t, e.store, tc.name); found {
				t.Errorf("invalid name %q was stored", tc.name)
			}
		})
	}
	valid := 0
	for _, tc := range cases {
		valid += btoi(tc.valid)
	}
	if n := e.pub.count(); n != valid {
		t.Errorf("%d changes published, want %d (one per valid name)", n, valid)
	}
}

// Zero limits take the defaults.
func TestLimitsDefaults(t *testing.T) {
	e := newEnv(t, record.Options{})
	want := record.Limits{MaxSize: record.DefaultMaxSize, MaxNameLen: record.DefaultMaxNameLen, MaxDepth: codec.DefaultMaxDepth}
	if got := e.recs.Limits(); got != want {
		t.Errorf("Limits() = %+v, want %+v", got, want)
	}
	if got := (record.Limits{MaxSize: 10, MaxDepth: 3}).Codec(); got != (codec.Limits{MaxSize: 10, MaxDepth: 3}) {
		t.Errorf("Codec() = %+v, want MaxSize 10, MaxDepth 3", got)
	}
}

// The depth limit bounds every document Records stores, also when the
// caller hands it a value it did not decode with Records' limits: a
// document deeper than Limits.MaxDepth can be stored but never read back
// (the store's value is decoded with those limits).
func TestDepthLimitHoldsForUncheckedValues(t *testing.T) {
	deep := `{"a":{"b":{"c":{"d":{"e":1}}}}}` // depth 5
	cases := []struct {
		name string
		op   func(t *testing.T) record.Op
	}{
		{"merge patch", func(t *testing.T) record.Op {
			return record.Op{Kind: record.Merge, Value: decodeJSON(t, deep)}
		}},
		{"put decoded with default codec limits", func(t *testing.T) record.Op {
			return record.Op{Kind: record.Put, Payload: jsonPayload(deep)}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, record.Options{Limits: opLimits})
			op := tc.op(t)
			op.Name = "deep"
			_, err := e.recs.Apply(op)
			if err == nil {
				// Show what storing it did: a fresh Records cannot read it.
				fresh := newRecords(t, e.store, newPublisher(nil), record.Options{Limits: opLimits})
				_, gerr := fresh.Get("deep")
				_, derr := fresh.Apply(record.Op{Kind: record.Delete, Name: "deep"})
				t.Fatalf("Apply(%s) of a depth-5 document with MaxDepth 4 succeeded; want INVALID_PAYLOAD. "+
					"A fresh Records then fails Get with %v and Delete with %v", op.Kind, gerr, derr)
			}
			wantCode(t, err, record.CodeInvalidPayload)
			if _, found := storedRecord(t, e.store, "deep"); found {
				t.Errorf("refused document was stored")
			}
		})
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[record.Kind]string{
		record.Put: "put", record.Delete: "delete", record.Merge: "merge", record.Set: "set",
		record.Append: "append", record.Insert: "insert", record.RemoveAt: "remove_at",
		record.RemoveValue: "remove_value", 0: "kind(0)", 42: "kind(42)",
	} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", uint8(k), got, want)
		}
	}
}
