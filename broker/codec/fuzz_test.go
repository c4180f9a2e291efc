package codec_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/hearth-iot/hearth/broker/codec"
)

var fuzzJSONSeeds = []string{
	`{"temp":21}`, `[1,2.5,"x",null,true,false,{}]`, `21`, `-0`, `1.0`, `1e400`, `1e-400`,
	`18446744073709551616`, `-9223372036854775809`, `"\ud800"`, `"\u2028<>&"`, `{"a":1,"a":2}`,
	`[[[[[[]]]]]]`, ` {"a" : [ ] } `, `{} {}`, `"\u0000"`, `0.1`, `123456789012345678901234567890`,
}

var fuzzCBORSeeds = []string{
	"a1 61 61 01", "f9 3c 00", "f9 7e 00", "c2 48 ff ff ff ff ff ff ff ff", "c3 49 01 00 00 00 00 00 00 00 00",
	"d9 d9 f7 a1 61 61 01", "a2 01 01 61 31 02", "a1 42 fb ff 01", "9f 01 9f ff ff", "5f 42 01 02 41 03 ff",
	"7f 61 61 61 62 ff", "bf 61 61 01 ff", "f7", "f0", "62 c3 28", "1b ff ff ff ff ff ff ff ff", "3b 80 00 00 00 00 00 00 00",
	"81 81 81 80", "c1 fb 41 d4 52 d9 ec 20 00 00", "a1 f9 3e 00 01", "a1 80 01", "fb 80 00 00 00 00 00 00 00",
}

// roundTrip checks that a decoded value re-encodes in c to bytes that decode
// to an equal value, and that encoding is canonical (stable on re-encoding).
func roundTrip(t *testing.T, v any, c codec.Codec) {
	t.Helper()
	enc, err := codec.Encode(v, c)
	if err != nil {
		t.Fatalf("Encode(%#v, %v): %v", v, c, err)
	}
	lim := codec.Limits{MaxSize: 16 << 20}
	w, err := codec.Decode(enc, c, lim)
	if err != nil {
		t.Fatalf("Decode(Encode(%#v)) = %q: %v", v, enc, err)
	}
	if !equal(v, w) {
		t.Fatalf("round trip in %v: %#v became %#v via %q", c, v, w, enc)
	}
	enc2, err := codec.Encode(w, c)
	if err != nil || !bytes.Equal(enc, enc2) {
		t.Fatalf("encoding not canonical in %v: %q then %q (%v)", c, enc, enc2, err)
	}
}

func FuzzDecodeJSON(f *testing.F) {
	for _, s := range fuzzJSONSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// Differential: the JSON parser accepts what encoding/json accepts,
		// and reads the same value.
		valid := json.Valid(b)
		deep, err := codec.Decode(b, codec.JSON, codec.Limits{MaxDepth: codec.MaxDepthCeiling})
		switch {
		case !valid && err == nil:
			t.Fatalf("Decode accepts %q, which encoding/json rejects", b)
		case valid && errors.Is(err, codec.ErrMalformed):
			t.Fatalf("Decode(%q): %v; encoding/json accepts it", b, err)
		case err == nil:
			if ref := referenceJSON(t, b); !equal(deep, ref) {
				t.Fatalf("Decode(%q) = %#v, encoding/json reads %#v", b, deep, ref)
			}
		}

		v, err := codec.Decode(b, codec.JSON, codec.Limits{})
		if err != nil {
			if !errors.Is(err, codec.ErrInvalidPayload) && !errors.Is(err, codec.ErrTooLarge) {
				t.Fatalf("Decode error %v matches no sentinel", err)
			}
			return
		}
		roundTrip(t, v, codec.JSON)
		// Everything JSON decodes to is carried losslessly by CBOR.
		roundTrip(t, v, codec.CBOR)
	})
}

func FuzzDecodeCBOR(f *testing.F) {
	for _, s := range fuzzCBORSeeds {
		f.Add(unhex(f, s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := codec.Decode(b, codec.CBOR, codec.Limits{})
		if err != nil {
			if !errors.Is(err, codec.ErrInvalidPayload) && !errors.Is(err, codec.ErrTooLarge) {
				t.Fatalf("Decode error %v matches no sentinel", err)
			}
			return
		}
		roundTrip(t, v, codec.CBOR)
		// JSON must accept every decoded CBOR value, whatever it loses.
		j, err := codec.Encode(v, codec.JSON)
		if err != nil {
			t.Fatalf("Encode(%#v, JSON): %v", v, err)
		}
		if _, err := codec.Decode(j, codec.JSON, codec.Limits{MaxSize: 16 << 20}); err != nil {
			t.Fatalf("JSON form %q does not decode: %v", j, err)
		}
	})
}

// FuzzDetect checks Detect against Decode: a payload Detect calls JSON or
// CBOR is syntactically valid in that codec (Decode may still refuse it for
// limits or the value model, never for syntax), and a payload that decodes in
// the hinted codec is never called opaque.
func FuzzDetect(f *testing.F) {
	for _, s := range fuzzJSONSeeds {
		f.Add([]byte(s), uint8(codec.JSON))
		f.Add([]byte(s), uint8(codec.CBOR))
	}
	for _, s := range fuzzCBORSeeds {
		f.Add(unhex(f, s), uint8(codec.CBOR))
		f.Add(unhex(f, s), uint8(0))
	}
	f.Add([]byte("hello"), uint8(codec.JSON))
	f.Fuzz(func(t *testing.T, b []byte, h uint8) {
		hint := codec.Codec(h % 4)
		c, ok := codec.Detect(b, hint)
		if ok != (c != 0) {
			t.Fatalf("Detect = %v, %v", c, ok)
		}
		if ok {
			_, err := codec.Decode(b, c, codec.Limits{})
			if errors.Is(err, codec.ErrMalformed) {
				t.Fatalf("Detect(%q, %v) = %v but Decode says %v", b, hint, c, err)
			}
			if c == codec.CBOR && hint != codec.CBOR {
				t.Fatalf("Detect(%q, %v) = CBOR without a CBOR hint", b, hint)
			}
			if c == codec.JSON && hint != codec.JSON && !bytes.ContainsAny(b, "{[") {
				t.Fatalf("Detect(%q, %v) = JSON scalar without a JSON hint", b, hint)
			}
			cls, err := codec.Classify(b, c.ContentType(), hint)
			if err != nil || cls != c {
				t.Fatalf("Classify with content type %s = %v, %v", c.ContentType(), cls, err)
			}
		}
		if hint.Valid() {
			if _, err := codec.Decode(b, hint, codec.Limits{}); err == nil && !ok {
				t.Fatalf("Detect(%q, %v) says opaque but it decodes", b, hint)
			}
		}
		// A JSON object or array is JSON whatever the hint.
		v, err := codec.Decode(b, codec.JSON, codec.Limits{})
		switch v.(type) {
		case []any, map[string]any:
			if err == nil && c != codec.JSON {
				t.Fatalf("Detect(%q, %v) = %v, %v for a JSON container", b, hint, c, ok)
			}
		}
	})
}

// referenceJSON decodes b with encoding/json and applies the documented
// number rule independently of the package.
func referenceJSON(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("encoding/json: %v", err)
	}
	var conv func(any) any
	conv = func(v any) any {
		switch v := v.(type) {
		case json.Number:
			s := string(v)
			if !strings.ContainsAny(s, ".eE") {
				if i, err := strconv.ParseInt(s, 10, 64); err == nil {
					return i
				}
				if u, err := strconv.ParseUint(s, 10, 64); err == nil {
					return u
				}
			}
			f, _ := strconv.ParseFloat(s, 64)
			return f
		case []any:
			for i := range v {
				v[i] = conv(v[i])
			}
		case map[string]any:
			for k := range v {
				v[k] = conv(v[k])
			}
		}
		return v
	}
	return conv(v)
}
