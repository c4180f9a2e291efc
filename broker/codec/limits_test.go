package codec_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/broker/codec"
)

func TestLimitsSize(t *testing.T) {
	jsonAt := func(n int) []byte { // a JSON string of exactly n bytes
		return []byte(`"` + strings.Repeat("x", n-2) + `"`)
	}
	cborAt := func(n int) []byte { // a CBOR byte string of exactly n bytes (n > 3)
		b := []byte{0x59, byte((n - 3) >> 8), byte(n - 3)}
		return append(b, make([]byte, n-3)...)
	}
	tests := []struct {
		name string
		c    codec.Codec
		in   []byte
		lim  codec.Limits
		want error
	}{
		{"JSON at the limit", codec.JSON, jsonAt(100), codec.Limits{MaxSize: 100}, nil},
		{"JSON over the limit", codec.JSON, jsonAt(101), codec.Limits{MaxSize: 100}, codec.ErrTooLarge},
		{"CBOR at the limit", codec.CBOR, cborAt(100), codec.Limits{MaxSize: 100}, nil},
		{"CBOR over the limit", codec.CBOR, cborAt(101), codec.Limits{MaxSize: 100}, codec.ErrTooLarge},
		{"default is 1 MiB", codec.JSON, jsonAt(1 << 20), codec.Limits{}, nil},
		{"default over 1 MiB", codec.JSON, jsonAt(1<<20 + 1), codec.Limits{}, codec.ErrTooLarge},
		{"negative means default", codec.CBOR, cborAt(1<<20 + 1), codec.Limits{MaxSize: -1}, codec.ErrTooLarge},
		{"too large is checked before syntax", codec.CBOR, bytes.Repeat([]byte{0xff}, 11), codec.Limits{MaxSize: 10}, codec.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := codec.Decode(tt.in, tt.c, tt.lim)
			if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Fatalf("Decode(%d bytes) = %v, want %v", len(tt.in), err, tt.want)
			}
			if err != nil && errors.Is(err, codec.ErrInvalidPayload) {
				t.Fatalf("ErrTooLarge must not match ErrInvalidPayload: %v", err)
			}
		})
	}
}

func nestedJSON(n int) []byte {
	return []byte(strings.Repeat("[", n) + strings.Repeat("]", n))
}

func nestedCBOR(n int) []byte {
	return append(bytes.Repeat([]byte{0x81}, n), 0x80) // n arrays of one, then []
}

func TestLimitsDepth(t *testing.T) {
	tests := []struct {
		name string
		c    codec.Codec
		in   []byte
		lim  codec.Limits
		want error
	}{
		{"JSON scalar at depth limit 1", codec.JSON, []byte(`1`), codec.Limits{MaxDepth: 1}, nil},
		{"JSON depth 1 of 1", codec.JSON, []byte(`[1]`), codec.Limits{MaxDepth: 1}, nil},
		{"JSON depth 2 of 1", codec.JSON, []byte(`[{}]`), codec.Limits{MaxDepth: 1}, codec.ErrTooDeep},
		{"JSON object depth", codec.JSON, []byte(`{"a":{"b":{"c":1}}}`), codec.Limits{MaxDepth: 2}, codec.ErrTooDeep},
		{"JSON default 32", codec.JSON, nestedJSON(32), codec.Limits{}, nil},
		{"JSON default 33", codec.JSON, nestedJSON(33), codec.Limits{}, codec.ErrTooDeep},
		{"CBOR depth 1 of 1", codec.CBOR, unhex(t, "81 01"), codec.Limits{MaxDepth: 1}, nil},
		{"CBOR depth 2 of 1", codec.CBOR, unhex(t, "81 a0"), codec.Limits{MaxDepth: 1}, codec.ErrTooDeep},
		{"CBOR depth 3 of 2", codec.CBOR, unhex(t, "a1 61 61 81 80"), codec.Limits{MaxDepth: 2}, codec.ErrTooDeep},
		{"CBOR depth 5 of 5", codec.CBOR, nestedCBOR(4), codec.Limits{MaxDepth: 5}, nil},
		{"CBOR depth 6 of 5", codec.CBOR, nestedCBOR(5), codec.Limits{MaxDepth: 5}, codec.ErrTooDeep},
		{"CBOR default 32", codec.CBOR, nestedCBOR(31), codec.Limits{}, nil},
		{"CBOR default 33", codec.CBOR, nestedCBOR(32), codec.Limits{}, codec.ErrTooDeep},
		{"CBOR indefinite depth", codec.CBOR, unhex(t, "9f 9f 9f ff ff ff"), codec.Limits{MaxDepth: 2}, codec.ErrTooDeep},
		{"CBOR tags do not count", codec.CBOR, unhex(t, "d8 64 81 d8 64 80"), codec.Limits{MaxDepth: 2}, nil},
		{"ceiling caps MaxDepth", codec.JSON, nestedJSON(10001), codec.Limits{MaxDepth: 1 << 30}, codec.ErrTooDeep},
		{"at the ceiling", codec.JSON, nestedJSON(10000), codec.Limits{MaxDepth: 1 << 30}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := codec.Decode(tt.in, tt.c, tt.lim)
			if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Fatalf("Decode = %v, want %v", err, tt.want)
			}
			if err != nil && !errors.Is(err, codec.ErrInvalidPayload) {
				t.Fatalf("ErrTooDeep must match ErrInvalidPayload: %v", err)
			}
		})
	}
}

// Hostile inputs fail fast, without stack overflow or large allocations.
func TestLimitsHostile(t *testing.T) {
	tests := []struct {
		name string
		c    codec.Codec
		in   []byte
		want error
	}{
		{"100000 [", codec.JSON, bytes.Repeat([]byte{'['}, 100000), codec.ErrTooDeep},
		{"100000 {\"a\":", codec.JSON, bytes.Repeat([]byte(`{"a":`), 100000), codec.ErrTooDeep},
		{"100000 0x81", codec.CBOR, bytes.Repeat([]byte{0x81}, 100000), codec.ErrTooDeep},
		{"100000 0x9f", codec.CBOR, bytes.Repeat([]byte{0x9f}, 100000), codec.ErrTooDeep},
		{"100000 0xa1 0x00", codec.CBOR, bytes.Repeat([]byte{0xa1, 0x00}, 100000), codec.ErrTooDeep},
		{"100000 tags", codec.CBOR, append(bytes.Repeat([]byte{0xd8, 0x64}, 100000), 0x01), codec.ErrTooDeep},
		{"array claiming 2^32 elements", codec.CBOR, unhex(t, "9a ff ff ff ff 01 02"), codec.ErrInvalidPayload},
		{"array claiming 2^63 elements", codec.CBOR, unhex(t, "9b 7f ff ff ff ff ff ff ff 01"), codec.ErrInvalidPayload},
		{"map claiming 2^32 pairs", codec.CBOR, unhex(t, "ba ff ff ff ff 01 02"), codec.ErrInvalidPayload},
		{"bytes claiming 2^64 bytes", codec.CBOR, unhex(t, "5b ff ff ff ff ff ff ff ff 00"), codec.ErrInvalidPayload},
		{"text claiming 4 GiB", codec.CBOR, unhex(t, "7a ff ff ff ff 61"), codec.ErrInvalidPayload},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			allocs := testing.AllocsPerRun(1, func() {
				_, err := codec.Decode(tt.in, tt.c, codec.Limits{})
				if !errors.Is(err, tt.want) {
					t.Fatalf("Decode = %v, want %v", err, tt.want)
				}
			})
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("took %v", d)
			}
			if allocs > 2000 {
				t.Fatalf("%v allocations", allocs)
			}
		})
	}
}

// Arrays and maps claiming more elements than the payload could hold are
// refused before anything is allocated for them.
func TestLimitsElementCount(t *testing.T) {
	in := unhex(t, "9a 00 0f ff ff") // array of 1048575 elements, none present
	in = append(in, bytes.Repeat([]byte{0x00}, 1000)...)
	allocs := testing.AllocsPerRun(10, func() {
		if _, err := codec.Decode(in, codec.CBOR, codec.Limits{}); !errors.Is(err, codec.ErrInvalidPayload) {
			t.Fatalf("Decode: %v", err)
		}
	})
	if allocs > 20 {
		t.Fatalf("%v allocations for a refused payload", allocs)
	}
}
