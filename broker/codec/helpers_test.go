package codec_test

import (
	"bytes"
	"encoding/hex"
	"math"
	"strings"
	"testing"
)

// unhex decodes hex with spaces, for readable CBOR vectors.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// equal compares document values, treating int64, uint64 and float64 as
// numbers (1, uint64(1) and 1.0 are equal) and everything else by kind.
func equal(a, b any) bool {
	if x, ok := number(a); ok {
		y, ok := number(b)
		return ok && x.eq(y)
	}
	switch a := a.(type) {
	case nil:
		return b == nil
	case bool:
		bb, ok := b.(bool)
		return ok && a == bb
	case string:
		bs, ok := b.(string)
		return ok && a == bs
	case []byte:
		bb, ok := b.([]byte)
		return ok && bytes.Equal(a, bb)
	case []any:
		bs, ok := b.([]any)
		if !ok || len(a) != len(bs) {
			return false
		}
		for i := range a {
			if !equal(a[i], bs[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		bm, ok := b.(map[string]any)
		if !ok || len(a) != len(bm) {
			return false
		}
		for k, v := range a {
			w, ok := bm[k]
			if !ok || !equal(v, w) {
				return false
			}
		}
		return true
	}
	return false
}

// num is a number of the value model: an exact integer or a float.
type num struct {
	isInt bool
	neg   bool   // isInt: the value is -mag
	mag   uint64 // isInt: absolute value
	f     float64
}

func number(v any) (num, bool) {
	switch v := v.(type) {
	case int64:
		if v < 0 {
			return num{isInt: true, neg: true, mag: uint64(-(v + 1)) + 1}, true
		}
		return num{isInt: true, mag: uint64(v)}, true
	case uint64:
		return num{isInt: true, mag: v}, true
	case float64:
		return num{f: v}, true
	}
	return num{}, false
}

func (n num) float() float64 {
	if !n.isInt {
		return n.f
	}
	if n.neg {
		return -float64(n.mag)
	}
	return float64(n.mag)
}

func (n num) eq(m num) bool {
	if n.isInt && m.isInt {
		return n.neg == m.neg && n.mag == m.mag || n.mag == 0 && m.mag == 0
	}
	if math.IsNaN(n.float()) || math.IsNaN(m.float()) {
		return false
	}
	return n.float() == m.float()
}

func TestEqual(t *testing.T) {
	tests := []struct {
		a, b any
		want bool
	}{
		{int64(1), uint64(1), true},
		{int64(1), 1.0, true},
		{int64(-1), uint64(1), false},
		{uint64(math.MaxUint64), int64(-1), false},
		{int64(math.MinInt64), float64(math.MinInt64), true},
		{"1", int64(1), false},
		{[]byte("a"), "a", false},
		{[]any{int64(1), "x"}, []any{1.0, "x"}, true},
		{[]any{int64(1)}, []any{int64(1), nil}, false},
		{map[string]any{"a": nil}, map[string]any{"b": nil}, false},
		{map[string]any{"a": []byte{1}}, map[string]any{"a": []byte{1}}, true},
		{nil, false, false},
	}
	for _, tt := range tests {
		if got := equal(tt.a, tt.b); got != tt.want {
			t.Errorf("equal(%#v, %#v) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
