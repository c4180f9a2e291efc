package codec

import (
	"encoding/base64"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
)

// base64URL is the JSON form of a byte string: RFC 4648 section 5, no padding.
var base64URL = base64.RawURLEncoding

// cborEncMode is RFC 8949 core deterministic encoding (section 4.2.1):
// shortest heads, shortest float that keeps the value, map keys sorted by
// their encoded bytes, definite lengths only. Nil slices and maps encode as
// empty containers, as they do in JSON.
var cborEncMode = func() cbor.EncMode {
	opts := cbor.CoreDetEncOptions()
	opts.NilContainers = cbor.NilContainerAsEmpty
	em, err := opts.EncMode()
	if err != nil {
		panic("codec: bad CBOR encoding options: " + err.Error())
	}
	return em
}()

// Encode encodes document value v with c.
//
// CBOR output is RFC 8949 core deterministic: equal values always encode to
// identical bytes, whatever the order maps were built in. Integers use the
// shortest head, float64 the shortest float16/32/64 that keeps the value (an
// integral float64 stays a float: 1.0 is f9 3c00, not 01), []byte a byte
// string.
//
// JSON output is compact, with object keys sorted bytewise, no HTML escaping,
// []byte as base64url text without padding, and float64 in the shortest form
// that reads back as the same float64, without a fraction when integral (1.0
// is 1, -0.0 is 0) and with an exponent below 1e-6 and from 1e21.
//
// Nil []any, map[string]any and []byte encode as empty containers. Encode
// fails with ErrInvalidPayload for NaN, infinities, or any Go type outside
// the value model (int, float32, structs, ...), with ErrTooDeep for nesting
// beyond MaxDepthCeiling (which also stops cycles), and with ErrUnknownCodec
// if c is not JSON or CBOR.
func Encode(v any, c Codec) ([]byte, error) {
	return encode(v, c, 0)
}

// encode is Encode with a capacity hint for the JSON output.
func encode(v any, c Codec, sizeHint int) ([]byte, error) {
	switch c {
	case JSON:
		return appendJSON(make([]byte, 0, max(sizeHint, 64)), v, 0)
	case CBOR:
		if err := checkValue(v, 0); err != nil {
			return nil, err
		}
		b, err := cborEncMode.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("encode CBOR: %w", err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("encode: %w", &nameError{name: c.String()})
}

// checkValue makes sure v is in the value model before the CBOR encoder,
// which would accept any Go type, sees it.
func checkValue(v any, depth int) error {
	switch v := v.(type) {
	case nil, bool, int64, uint64, string, []byte:
		return nil
	case float64:
		return checkFloat(v)
	case []any:
		if depth >= MaxDepthCeiling {
			return errEncodeDepth
		}
		for _, e := range v {
			if err := checkValue(e, depth+1); err != nil {
				return err
			}
		}
		return nil
	case map[string]any:
		if depth >= MaxDepthCeiling {
			return errEncodeDepth
		}
		for _, e := range v {
			if err := checkValue(e, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("%w: %T is not a document value", ErrInvalidPayload, v)
}

var errEncodeDepth = fmt.Errorf("%w: value nested deeper than %d levels", ErrTooDeep, MaxDepthCeiling)

func checkFloat(f float64) error {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Errorf("%w: %v has no JSON form", ErrInvalidPayload, f)
	}
	return nil
}

// appendJSON appends the JSON form of v to dst.
func appendJSON(dst []byte, v any, depth int) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case bool:
		return strconv.AppendBool(dst, v), nil
	case int64:
		return strconv.AppendInt(dst, v, 10), nil
	case uint64:
		return strconv.AppendUint(dst, v, 10), nil
	case float64:
		if err := checkFloat(v); err != nil {
			return nil, err
		}
		return appendJSONFloat(dst, v), nil
	case string:
		return appendJSONString(dst, v), nil
	case []byte:
		dst = append(dst, '"')
		dst = base64URL.AppendEncode(dst, v)
		return append(dst, '"'), nil
	case []any:
		if depth >= MaxDepthCeiling {
			return nil, errEncodeDepth
		}
		dst = append(dst, '[')
		for i, e := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = appendJSON(dst, e, depth+1); err != nil {
				return nil, err
			}
		}
		return append(dst, ']'), nil
	case map[string]any:
		if depth >= MaxDepthCeiling {
			return nil, errEncodeDepth
		}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, k)
			dst = append(dst, ':')
			var err error
			if dst, err = appendJSON(dst, v[k], depth+1); err != nil {
				return nil, err
			}
		}
		return append(dst, '}'), nil
	}
	return nil, fmt.Errorf("%w: %T is not a document value", ErrInvalidPayload, v)
}

// appendJSONFloat formats a finite float64 as encoding/json does (ES6 number
// to string): shortest round-trip digits, exponent form only for magnitudes
// below 1e-6 or from 1e21. Negative zero is written 0, as JavaScript's
// JSON.stringify does: -0 would read back as the integer 0 anyway.
func appendJSONFloat(dst []byte, f float64) []byte {
	if f == 0 {
		f = 0 // drop the sign of -0
	}
	format := byte('f')
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// Turn e-09 into e-9, as encoding/json does.
		if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. It escapes '"', '\\', control
// characters, U+2028 and U+2029 (for JavaScript), and turns invalid UTF-8
// into U+FFFD, as encoding/json does, but leaves <, > and & alone.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
