package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
)

// CBOR is decoded in two passes. fxamacker/cbor first checks that the input
// is exactly one well-formed item within the nesting and element-count limits
// (a pass that allocates nothing); a small walker then builds the value. The
// first pass is what makes hostile input harmless: by the time the walker
// allocates an array of n elements, n bytes of elements are known to follow,
// and recursion is known to be shallow.

// decModes caches one fxamacker DecMode per (nesting, elements) pair.
var decModes sync.Map // [2]int -> cbor.DecMode

// cborDecMode returns the DecMode that checks well-formedness within the
// given nesting and element limits.
func cborDecMode(nesting, elements int) cbor.DecMode {
	key := [2]int{nesting, elements}
	if dm, ok := decModes.Load(key); ok {
		return dm.(cbor.DecMode)
	}
	dm, err := cbor.DecOptions{
		MaxNestedLevels:  max(4, min(nesting, 65535)),
		MaxArrayElements: elements,
		MaxMapPairs:      elements,
		// Only used by fxamacker's own Unmarshal: the walker rejects
		// duplicates itself, after stringifying keys.
		DupMapKey: cbor.DupMapKeyEnforcedAPF,
	}.DecMode()
	if err != nil {
		panic("codec: bad CBOR decoding options: " + err.Error()) // limits are clamped to valid ranges
	}
	stored, _ := decModes.LoadOrStore(key, dm)
	return stored.(cbor.DecMode)
}

// wellformedCBOR reports whether b is one well-formed CBOR item, nested at
// most MaxDepthCeiling levels, with nothing after it.
func wellformedCBOR(b []byte) bool {
	return len(b) > 0 && cborDecMode(MaxDepthCeiling, math.MaxInt32).Wellformed(b) == nil
}

func decodeCBOR(b []byte, lim Limits) (any, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: CBOR: empty payload", errMalformed)
	}
	if err := cborDecMode(lim.MaxDepth, lim.maxElements()).Wellformed(b); err != nil {
		var nest *cbor.MaxNestedLevelError
		if errors.As(err, &nest) {
			return nil, fmt.Errorf("%w: CBOR deeper than %d levels", ErrTooDeep, lim.MaxDepth)
		}
		return nil, fmt.Errorf("%w: %v", errMalformed, err)
	}
	r := cborReader{b: b, maxDepth: lim.MaxDepth}
	v, err := r.value(0)
	if err != nil {
		return nil, err
	}
	if r.off != len(b) {
		return nil, fmt.Errorf("%w: CBOR: data after the item", errMalformed)
	}
	return v, nil
}

// cborReader walks well-formed CBOR. It still checks bounds, returning
// errMalformed rather than panicking, should the two passes ever disagree.
type cborReader struct {
	b        []byte
	off      int
	maxDepth int
}

const (
	majorUint   = 0
	majorNint   = 1
	majorBytes  = 2
	majorText   = 3
	majorArray  = 4
	majorMap    = 5
	majorTag    = 6
	majorSimple = 7

	aiIndefinite = 31
)

var errTruncated = fmt.Errorf("%w: CBOR: unexpected end of input", errMalformed)

// head reads an item's initial byte and argument. For ai 31 (indefinite
// length, or break) arg is 0.
func (r *cborReader) head() (major, ai byte, arg uint64, err error) {
	if r.off >= len(r.b) {
		return 0, 0, 0, errTruncated
	}
	ib := r.b[r.off]
	r.off++
	major, ai = ib>>5, ib&0x1f
	n := 0
	switch {
	case ai < 24:
		return major, ai, uint64(ai), nil
	case ai == aiIndefinite:
		return major, ai, 0, nil
	case ai <= 27:
		n = 1 << (ai - 24)
	default:
		return 0, 0, 0, fmt.Errorf("%w: CBOR: reserved additional information %d", errMalformed, ai)
	}
	if len(r.b)-r.off < n {
		return 0, 0, 0, errTruncated
	}
	p := r.b[r.off : r.off+n]
	r.off += n
	switch n {
	case 1:
		arg = uint64(p[0])
	case 2:
		arg = uint64(binary.BigEndian.Uint16(p))
	case 4:
		arg = uint64(binary.BigEndian.Uint32(p))
	default:
		arg = binary.BigEndian.Uint64(p)
	}
	return major, ai, arg, nil
}

// isBreak reports, and consumes, a break code (0xff).
func (r *cborReader) isBreak() bool {
	if r.off < len(r.b) && r.b[r.off] == 0xff {
		r.off++
		return true
	}
	return false
}

// value decodes one item; depth is the number of enclosing arrays and maps.
func (r *cborReader) value(depth int) (any, error) {
	major, ai, arg, err := r.head()
	if err != nil {
		return nil, err
	}
	switch major {
	case majorUint:
		if arg > math.MaxInt64 {
			return arg, nil
		}
		return int64(arg), nil
	case majorNint:
		if arg > math.MaxInt64 {
			return nil, fmt.Errorf("%w: CBOR integer -1-%d below the int64 range", ErrInvalidPayload, arg)
		}
		return ^int64(arg), nil // -1 - arg
	case majorBytes:
		return r.str(major, ai, arg)
	case majorText:
		return r.text(ai, arg)
	case majorArray:
		if depth >= r.maxDepth {
			return nil, fmt.Errorf("%w: CBOR deeper than %d levels", ErrTooDeep, r.maxDepth)
		}
		return r.array(ai, arg, depth+1)
	case majorMap:
		if depth >= r.maxDepth {
			return nil, fmt.Errorf("%w: CBOR deeper than %d levels", ErrTooDeep, r.maxDepth)
		}
		return r.mapping(ai, arg, depth+1)
	case majorTag:
		return r.tag(arg, depth)
	default:
		return r.simple(ai, arg)
	}
}

// text reads a text string whose head has been read.
func (r *cborReader) text(ai byte, n uint64) (string, error) {
	var s string
	if ai != aiIndefinite && n <= uint64(len(r.b)-r.off) {
		s = string(r.b[r.off : r.off+int(n)])
		r.off += int(n)
	} else {
		b, err := r.str(majorText, ai, n)
		if err != nil {
			return "", err
		}
		s = string(b)
	}
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("%w: CBOR text string is not valid UTF-8", ErrInvalidPayload)
	}
	return s, nil
}

// str reads a byte or text string, joining the chunks of an indefinite-length
// one. The result is a fresh slice.
func (r *cborReader) str(major, ai byte, n uint64) ([]byte, error) {
	if ai != aiIndefinite {
		if n > uint64(len(r.b)-r.off) {
			return nil, errTruncated
		}
		out := make([]byte, n)
		copy(out, r.b[r.off:])
		r.off += int(n)
		return out, nil
	}
	out := []byte{}
	for !r.isBreak() {
		m, cai, cn, err := r.head()
		if err != nil {
			return nil, err
		}
		if m != major || cai == aiIndefinite || cn > uint64(len(r.b)-r.off) {
			return nil, fmt.Errorf("%w: CBOR: bad indefinite-length string chunk", errMalformed)
		}
		out = append(out, r.b[r.off:r.off+int(cn)]...)
		r.off += int(cn)
	}
	return out, nil
}

func (r *cborReader) array(ai byte, n uint64, depth int) (any, error) {
	if ai != aiIndefinite && n > uint64(len(r.b)-r.off) {
		return nil, errTruncated // each element takes at least one byte
	}
	out := make([]any, 0, int(n))
	for i := uint64(0); ai == aiIndefinite || i < n; i++ {
		if ai == aiIndefinite && r.isBreak() {
			break
		}
		v, err := r.value(depth)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func (r *cborReader) mapping(ai byte, n uint64, depth int) (any, error) {
	if ai != aiIndefinite && n > uint64(len(r.b)-r.off)/2 {
		return nil, errTruncated // each pair takes at least two bytes
	}
	out := make(map[string]any, int(n))
	for i := uint64(0); ai == aiIndefinite || i < n; i++ {
		if ai == aiIndefinite && r.isBreak() {
			break
		}
		key, err := r.key(depth)
		if err != nil {
			return nil, err
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("%w: duplicate CBOR map key %q (after stringification)", ErrInvalidPayload, key)
		}
		v, err := r.value(depth)
		if err != nil {
			return nil, err
		}
		out[key] = v
	}
	return out, nil
}

// key reads a map key as a document key. Text keys, nearly all of them, skip
// the boxing of the general path.
func (r *cborReader) key(depth int) (string, error) {
	if r.off < len(r.b) && r.b[r.off]>>5 == majorText {
		_, ai, n, err := r.head()
		if err != nil {
			return "", err
		}
		return r.text(ai, n)
	}
	k, err := r.value(depth)
	if err != nil {
		return "", err
	}
	return keyString(k)
}

// keyString turns a decoded CBOR map key into a document key: text as is,
// every other scalar as its JSON text without quotes (integers in decimal,
// floats as JSON numbers, true, false, null, byte strings as base64url).
// Array and map keys are refused.
func keyString(k any) (string, error) {
	switch k := k.(type) {
	case string:
		return k, nil
	case int64:
		return strconv.FormatInt(k, 10), nil
	case uint64:
		return strconv.FormatUint(k, 10), nil
	case float64:
		return string(appendJSONFloat(nil, k)), nil
	case bool:
		return strconv.FormatBool(k), nil
	case nil:
		return "null", nil
	case []byte:
		return base64URL.EncodeToString(k), nil
	}
	return "", fmt.Errorf("%w: CBOR map key is an array or map", ErrInvalidPayload)
}

// tag decodes a tagged item. Tags 0 (date/time text) and 1 (epoch time) keep
// their content, which must be text and a number respectively. Tags 2 and 3
// (bignums) become integers if they fit the value model. Every other tag is
// dropped and its content kept.
func (r *cborReader) tag(num uint64, depth int) (any, error) {
	if r.off >= len(r.b) {
		return nil, errTruncated
	}
	next := r.b[r.off] >> 5
	switch num {
	case 0:
		if next != majorText {
			return nil, fmt.Errorf("%w: CBOR tag 0 content is not a text string", ErrInvalidPayload)
		}
	case 1:
		ib := r.b[r.off]
		if next != majorUint && next != majorNint && (ib < 0xf9 || ib > 0xfb) {
			return nil, fmt.Errorf("%w: CBOR tag 1 content is not a number", ErrInvalidPayload)
		}
	case 2, 3:
		if next != majorBytes {
			return nil, fmt.Errorf("%w: CBOR bignum content is not a byte string", ErrInvalidPayload)
		}
		v, err := r.value(depth)
		if err != nil {
			return nil, err
		}
		return bignum(v.([]byte), num == 3)
	}
	return r.value(depth)
}

// bignum converts the content of tag 2 (negative false) or tag 3 (negative
// true) to int64 or uint64, refusing values outside both.
func bignum(b []byte, negative bool) (any, error) {
	for len(b) > 0 && b[0] == 0 {
		b = b[1:]
	}
	if len(b) > 8 {
		return nil, fmt.Errorf("%w: CBOR bignum out of the 64-bit integer range", ErrInvalidPayload)
	}
	var n uint64
	for _, c := range b {
		n = n<<8 | uint64(c)
	}
	switch {
	case n <= math.MaxInt64 && negative:
		return ^int64(n), nil // -1 - n
	case n <= math.MaxInt64:
		return int64(n), nil
	case negative:
		return nil, fmt.Errorf("%w: CBOR bignum out of the 64-bit integer range", ErrInvalidPayload)
	}
	return n, nil
}

// simple decodes major type 7: false, true, null, undefined (as nil) and
// floats. NaN, infinities and all other simple values are refused.
func (r *cborReader) simple(ai byte, arg uint64) (any, error) {
	var f float64
	switch ai {
	case 20:
		return false, nil
	case 21:
		return true, nil
	case 22, 23:
		return nil, nil
	case 25:
		f = float16(uint16(arg))
	case 26:
		f = float64(math.Float32frombits(uint32(arg)))
	case 27:
		f = math.Float64frombits(arg)
	case aiIndefinite:
		return nil, fmt.Errorf("%w: CBOR: unexpected break", errMalformed)
	default:
		return nil, fmt.Errorf("%w: unsupported CBOR simple value %d", ErrInvalidPayload, arg)
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("%w: CBOR float %v has no JSON form", ErrInvalidPayload, f)
	}
	return f, nil
}

// float16 converts an IEEE 754 half-precision value.
func float16(h uint16) float64 {
	exp, mant := int(h>>10)&0x1f, float64(h&0x3ff)
	var f float64
	switch exp {
	case 0:
		f = math.Ldexp(mant, -24)
	case 0x1f:
		if mant == 0 {
			f = math.Inf(1)
		} else {
			f = math.NaN()
		}
	default:
		f = math.Ldexp(mant+0x400, exp-25)
	}
	if h&0x8000 != 0 {
		f = -f
	}
	return f
}
