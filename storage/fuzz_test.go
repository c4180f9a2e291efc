package storage

import (
	"bytes"
	"errors"
	"testing"
)

// fuzzDecode checks that decode never panics, that every failure wraps
// ErrCorrupt, and that whatever decodes re-encodes to a stable form.
func fuzzDecode[T any](t *testing.T, b []byte) (T, bool) {
	var v T
	if err := decode(b, &v); err != nil {
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("decode error %v does not wrap ErrCorrupt", err)
		}
		return v, false
	}
	once, err := encode(v)
	if err != nil {
		t.Fatalf("encode of a decoded %T: %v", v, err)
	}
	var again T
	if err := decode(once, &again); err != nil {
		t.Fatalf("decode of our own encoding %x: %v", once, err)
	}
	twice, err := encode(again)
	if err != nil {
		t.Fatalf("second encode: %v", err)
	}
	if !bytes.Equal(once, twice) {
		t.Fatalf("encoding not stable:\n%x\n%x", once, twice)
	}
	return v, true
}

func addSeeds(f *testing.F, values ...any) {
	for _, v := range values {
		b, err := encode(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, b := range [][]byte{nil, {0xff}, {0xa0}, {0xf6}, {0x80}, {0xa1, 0x61, 0x74, 0x60}} {
		f.Add(b)
	}
}

func FuzzDecodeMessage(f *testing.F) {
	addSeeds(f, fullMessage("a/b", 7), Message{}, Message{Type: 6, PacketID: 65535})
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzDecode[Message](t, b)
	})
}

func FuzzDecodeSession(f *testing.F) {
	addSeeds(f, fullSession("client"), Session{ClientID: "c"}, Session{})
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzDecode[Session](t, b)
	})
}

func FuzzDecodeRetained(f *testing.F) {
	for _, m := range []Message{fullMessage("x", 0), {Topic: "t"}} {
		mb, err := encode(m)
		if err != nil {
			f.Fatal(err)
		}
		addSeeds(f,
			retainedDisk{Message: mb, Version: 3, Modified: 1700000000000000000},
			retainedDisk{Message: mb, Version: 4, Modified: 1, Deleted: true},
			retainedDisk{Message: mb, Version: 5, Value: []byte{0xa1, 0x61, 'k', 0x82, 0x01, 0xf6}},
			retainedDisk{Message: mb, Version: 6, Value: []byte{0xf6}},
		)
	}
	addSeeds(f, Retained{Message: fullMessage("y", 0), Version: 1, Modified: -1, Deleted: true, Structured: true})
	f.Fuzz(func(t *testing.T, b []byte) {
		// As the readers do: the record, then the message inside it.
		d, ok := fuzzDecode[retainedDisk](t, b)
		if ok {
			fuzzDecode[Message](t, d.Message)
		}
		fuzzDecode[Retained](t, b)

		r, err := decodeRecord(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodeRecord error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		// What reads back as structured can be written back as it is.
		if r.Structured {
			if err := decMode.Wellformed(r.Message.Payload); err != nil {
				t.Fatalf("structured payload %x is not one CBOR item: %v", r.Message.Payload, err)
			}
		}
		if r.Deleted != d.Deleted || r.Version != d.Version || r.Modified != d.Modified {
			t.Fatalf("decodeRecord = %+v, disk value %+v", r, d)
		}
	})
}

// The seeds above must be real encodings: check they decode to what was
// encoded, so the corpus starts from valid records.
func TestEncodeDecodeRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   any
		out  func() any
	}{
		{"message", fullMessage("a/b", 7), func() any { return new(Message) }},
		{"session", fullSession("c"), func() any { return new(Session) }},
		{"subscription", fullSubscription("c", "f/#"), func() any { return new(Subscription) }},
		{"retained", Retained{Message: fullMessage("r", 0), Version: 9, Modified: 5}, func() any { return new(Retained) }},
		{"record", Retained{Message: fullMessage("r", 0), Version: 9, Modified: 5, Deleted: true, Structured: true}, func() any { return new(Retained) }},
		{"stored record", retainedDisk{Message: []byte{0xa0}, Version: 9, Modified: 5, Deleted: true, Value: []byte{0x81, 0x01}}, func() any { return new(retainedDisk) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := encode(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			out := tt.out()
			if err := decode(b, out); err != nil {
				t.Fatal(err)
			}
			b2, err := encode(out)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, b2) {
				t.Fatalf("round trip changed the encoding:\n%x\n%x", b, b2)
			}
		})
	}
}
