package document

import (
	"bytes"
	"fmt"
	"math"
	"unicode/utf8"
)

// MaxDepth is the recommended nesting limit for a whole record, for
// Validate: a scalar has depth 0 and each enclosing array or object adds 1.
const MaxDepth = 64

// Equal reports whether a and b are the same value. Numbers compare by
// exact numeric value whatever their type, so int64(1), uint64(1) and
// float64(1.0) are equal but int64(1<<53+1) and float64(1<<53) are not.
// Byte strings compare by content and never equal a string; arrays compare
// element by element and objects key by key (a nil and an empty container
// are equal). Values outside the value model are never equal to anything,
// themselves included.
func Equal(a, b any) bool {
	switch x := a.(type) {
	case nil:
		return b == nil
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case string:
		y, ok := b.(string)
		return ok && x == y
	case []byte:
		y, ok := b.([]byte)
		return ok && bytes.Equal(x, y)
	case int64, uint64, float64:
		return numEqual(a, b)
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !Equal(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, xv := range x {
			yv, ok := y[k]
			if !ok || !Equal(xv, yv) {
				return false
			}
		}
		return true
	}
	return false
}

// numEqual compares two numbers of the value model exactly, without
// rounding either to the other's type.
func numEqual(a, b any) bool {
	switch x := a.(type) {
	case int64:
		switch y := b.(type) {
		case int64:
			return x == y
		case uint64:
			return x >= 0 && uint64(x) == y
		case float64:
			return floatIsInt(y, x)
		}
	case uint64:
		switch y := b.(type) {
		case int64:
			return y >= 0 && uint64(y) == x
		case uint64:
			return x == y
		case float64:
			return floatIsUint(y, x)
		}
	case float64:
		switch y := b.(type) {
		case int64:
			return floatIsInt(x, y)
		case uint64:
			return floatIsUint(x, y)
		case float64:
			return x == y
		}
	}
	return false
}

// floatIsInt reports whether f is exactly the integer i.
func floatIsInt(f float64, i int64) bool {
	// -2^63 and 2^63 are exact floats; int64 holds [-2^63, 2^63).
	if f != math.Trunc(f) || f < -(1<<63) || f >= 1<<63 {
		return false
	}
	return int64(f) == i
}

// floatIsUint reports whether f is exactly the integer u.
func floatIsUint(f float64, u uint64) bool {
	if f != math.Trunc(f) || f < 0 || f >= 1<<64 {
		return false
	}
	return uint64(f) == u
}

// Depth returns how deeply v nests arrays and objects: 0 for a scalar (or
// nil), 1 for an array or object holding only scalars (or empty), and one
// more for each level beyond.
func Depth(v any) int {
	d := 0
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			d = max(d, Depth(e))
		}
		return d + 1
	case map[string]any:
		for _, e := range x {
			d = max(d, Depth(e))
		}
		return d + 1
	}
	return 0
}

// Validate checks that v is inside the value model and that Depth(v) is at
// most maxDepth. It returns an error wrapping ErrTooDeep for a value nested
// too deeply, and one wrapping ErrInvalidValue for a Go type outside the
// model (int, int32, float32, map[any]any, []string, structs, ...), a NaN
// or infinite float (JSON cannot carry them), or a string or object key that
// is not valid UTF-8 (JSON and CBOR text strings cannot carry it). The
// message names the path of the offending value. A uint64 of any size is
// accepted, though codecs only produce one above math.MaxInt64.
//
// Validate stops descending at maxDepth, so a hostile value costs no more
// than its first maxDepth levels.
func Validate(v any, maxDepth int) error {
	var p Path
	return validate(v, maxDepth, &p)
}

func validate(v any, left int, p *Path) error {
	switch x := v.(type) {
	case nil, bool, int64, uint64, []byte:
		return nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Errorf("%w: %s: float %v", ErrInvalidValue, where(*p), x)
		}
		return nil
	case string:
		if !utf8.ValidString(x) {
			return fmt.Errorf("%w: %s: string is not valid UTF-8", ErrInvalidValue, where(*p))
		}
		return nil
	case []any:
		if left <= 0 {
			return fmt.Errorf("%w: %s: nesting deeper than allowed", ErrTooDeep, where(*p))
		}
		for i, e := range x {
			*p = append(*p, Index(i))
			err := validate(e, left-1, p)
			*p = (*p)[:len(*p)-1]
			if err != nil {
				return err
			}
		}
		return nil
	case map[string]any:
		if left <= 0 {
			return fmt.Errorf("%w: %s: nesting deeper than allowed", ErrTooDeep, where(*p))
		}
		for k, e := range x {
			*p = append(*p, Key(k))
			if !utf8.ValidString(k) {
				return fmt.Errorf("%w: %s: key is not valid UTF-8", ErrInvalidValue, where(*p))
			}
			err := validate(e, left-1, p)
			*p = (*p)[:len(*p)-1]
			if err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("%w: %s: Go type %T is not in the value model", ErrInvalidValue, where(*p), v)
}

// where names a path in an error message, the root included.
func where(p Path) string {
	if len(p) == 0 {
		return "(root)"
	}
	return p.String()
}

// kind names v's type the way a JSON user thinks of it, for messages.
func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case int64, uint64, float64:
		return "a number"
	case string:
		return "a string"
	case []byte:
		return "a byte string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("a %T", v)
}
