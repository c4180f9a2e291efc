package codec_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"strconv"
	"testing"

	"github.com/hearth-iot/hearth/broker/codec"
)

func TestEncodeCBORVectors(t *testing.T) {
	tests := []struct {
		name string
		v    any
		want string // hex
	}{
		{"map a:1", map[string]any{"a": int64(1)}, "a1 61 61 01"},
		{"zero", int64(0), "00"},
		{"23", int64(23), "17"},
		{"24", int64(24), "18 18"},
		{"1000", int64(1000), "19 03 e8"},
		{"-1", int64(-1), "20"},
		{"-1000", int64(-1000), "39 03 e7"},
		{"max int64", int64(math.MaxInt64), "1b 7f ff ff ff ff ff ff ff"},
		{"min int64", int64(math.MinInt64), "3b 7f ff ff ff ff ff ff ff"},
		{"max uint64", uint64(math.MaxUint64), "1b ff ff ff ff ff ff ff ff"},
		{"small uint64 still shortest", uint64(5), "05"},
		{"1.0 stays a float", 1.0, "f9 3c 00"},
		{"0.0", 0.0, "f9 00 00"},
		{"-0.0", math.Copysign(0, -1), "f9 80 00"},
		{"1.5 half", 1.5, "f9 3e 00"},
		{"100000 single", 100000.0, "fa 47 c3 50 00"},
		{"1.1 double", 1.1, "fb 3f f1 99 99 99 99 99 9a"},
		{"true", true, "f5"},
		{"null", nil, "f6"},
		{"text", "é", "62 c3 a9"},
		{"bytes", []byte{1, 2}, "42 01 02"},
		{"nil bytes", []byte(nil), "40"},
		{"nil array", []any(nil), "80"},
		{"nil map", map[string]any(nil), "a0"},
		{"array", []any{int64(1), "a"}, "82 01 61 61"},
		// Keys sort by encoded bytes: shorter first, then bytewise.
		{"key order", map[string]any{"bb": int64(1), "a": int64(2), "c": int64(3), "B": int64(4)},
			"a4 61 42 04 61 61 02 61 63 03 62 62 62 01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := codec.Encode(tt.v, codec.CBOR)
			if err != nil {
				t.Fatal(err)
			}
			if want := unhex(t, tt.want); !bytes.Equal(got, want) {
				t.Fatalf("Encode(%#v) = % x, want % x", tt.v, got, want)
			}
		})
	}
}

func TestEncodeJSON(t *testing.T) {
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"map sorted", map[string]any{"b": int64(1), "a": []any{true, nil}, "B": "x"}, `{"B":"x","a":[true,null],"b":1}`},
		{"1.0 has no fraction", 1.0, `1`},
		{"-0.0 loses its sign", math.Copysign(0, -1), `0`},
		{"fraction", 21.5, `21.5`},
		{"1e20 plain", 1e20, `100000000000000000000`},
		{"1e21 exponent", 1e21, `1e+21`},
		{"small exponent", 1e-7, `1e-7`},
		{"0.000001 plain", 0.000001, `0.000001`},
		{"max uint64", uint64(math.MaxUint64), `18446744073709551615`},
		{"min int64", int64(math.MinInt64), `-9223372036854775808`},
		{"bytes are base64url", []byte{0xfb, 0xff, 0xfe}, `"-__-"`},
		{"bytes without padding", []byte{1}, `"AQ"`},
		{"nil bytes", []byte(nil), `""`},
		{"nil array", []any(nil), `[]`},
		{"nil map", map[string]any(nil), `{}`},
		{"escapes", "a\"b\\c\n\t\x01\u2028", `"a\"b\\c\n\t\u0001\u2028"`},
		{"no HTML escaping", "<a&b>", `"<a&b>"`},
		{"invalid UTF-8", "a\xffb", `"a\ufffdb"`},
		{"unicode kept", "température", `"température"`},
		{"escaped key", map[string]any{"a\"": int64(1)}, `{"a\"":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := codec.Encode(tt.v, codec.JSON)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("Encode(%#v) = %s, want %s", tt.v, got, tt.want)
			}
		})
	}
}

func TestEncodeRefuses(t *testing.T) {
	cyclic := []any{nil}
	cyclic[0] = cyclic
	tests := []struct {
		name string
		v    any
		want error
	}{
		{"NaN", math.NaN(), codec.ErrInvalidPayload},
		{"+Inf in array", []any{math.Inf(1)}, codec.ErrInvalidPayload},
		{"-Inf in map", map[string]any{"x": math.Inf(-1)}, codec.ErrInvalidPayload},
		{"int", 1, codec.ErrInvalidPayload},
		{"float32", float32(1), codec.ErrInvalidPayload},
		{"struct", struct{}{}, codec.ErrInvalidPayload},
		{"map[string]int", map[string]int{"a": 1}, codec.ErrInvalidPayload},
		{"nested bad type", map[string]any{"a": []any{int32(1)}}, codec.ErrInvalidPayload},
		{"cycle", cyclic, codec.ErrTooDeep},
	}
	for _, tt := range tests {
		for _, c := range []codec.Codec{codec.JSON, codec.CBOR} {
			t.Run(tt.name+"/"+c.String(), func(t *testing.T) {
				if b, err := codec.Encode(tt.v, c); !errors.Is(err, tt.want) {
					t.Fatalf("Encode = %q, %v; want %v", b, err, tt.want)
				}
			})
		}
	}
	if _, err := codec.Encode(nil, 0); !errors.Is(err, codec.ErrUnknownCodec) {
		t.Fatalf("Encode with zero codec: %v", err)
	}
}

// The same map built in different insertion orders encodes identically.
func TestEncodeCBORDeterministic(t *testing.T) {
	keys := []string{"temp", "hum", "a", "zz", "battery", "b", "aa", "é", "10", "9"}
	var first []byte
	for round := range 20 {
		m := map[string]any{}
		for i := range keys {
			k := keys[(i*7+round)%len(keys)]
			m[k] = map[string]any{"n": int64(len(k)), "k": k, "l": []any{1.5, k}}
		}
		b, err := codec.Encode(m, codec.CBOR)
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = b
		} else if !bytes.Equal(b, first) {
			t.Fatalf("round %d encodes differently:\n% x\n% x", round, b, first)
		}
	}
	// Keys are ordered by their encoded bytes (RFC 8949 section 4.2.1).
	v, err := codec.Decode(first, codec.CBOR, codec.Limits{})
	if err != nil || len(v.(map[string]any)) != len(keys) {
		t.Fatalf("decode back: %v", err)
	}
	if !bytes.HasPrefix(first, unhex(t, "aa 61 39")) {
		t.Fatalf("first key is not \"9\": % x", first[:8])
	}
}

// Decoding and re-encoding a canonical payload reproduces it byte for byte.
func TestCanonicalReencode(t *testing.T) {
	cborVectors := []string{"a1 61 61 01", "f9 3c 00", "83 01 42 01 02 a0", "1b ff ff ff ff ff ff ff ff", "fa 47 c3 50 00"}
	for _, h := range cborVectors {
		in := unhex(t, h)
		if got := mustReencode(t, in, codec.CBOR); !bytes.Equal(got, in) {
			t.Errorf("CBOR % x re-encodes as % x", in, got)
		}
	}
	jsonVectors := []string{`{"a":[1,1.5,"x",null,true],"b":{}}`, `18446744073709551615`, `1e+21`, `-9223372036854775808`, `0.1`}
	for _, s := range jsonVectors {
		if got := mustReencode(t, []byte(s), codec.JSON); string(got) != s {
			t.Errorf("JSON %s re-encodes as %s", s, got)
		}
	}
}

func mustReencode(t *testing.T, b []byte, c codec.Codec) []byte {
	t.Helper()
	v, err := codec.Decode(b, c, codec.Limits{})
	if err != nil {
		t.Fatalf("Decode(%s): %v", hex.EncodeToString(b), err)
	}
	out, err := codec.Encode(v, c)
	if err != nil {
		t.Fatalf("Encode(%#v): %v", v, err)
	}
	return out
}

// JSON floats read back as the same float64.
func TestEncodeJSONFloatRoundTrip(t *testing.T) {
	for _, f := range []float64{0.1, 1.0 / 3, math.MaxFloat64, math.SmallestNonzeroFloat64, -2.5e-300, 123456789.125, 1 << 53, 4.35e21} {
		b, err := codec.Encode(f, codec.JSON)
		if err != nil {
			t.Fatal(err)
		}
		v, err := codec.Decode(b, codec.JSON, codec.Limits{})
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if !equal(v, f) {
			t.Errorf("%v -> %s -> %v", strconv.FormatFloat(f, 'g', -1, 64), b, v)
		}
	}
}
