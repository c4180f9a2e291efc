package document

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestEqual(t *testing.T) {
	tests := []struct {
		name string
		a, b any
		want bool
	}{
		{"nil", nil, nil, true},
		{"nil vs false", nil, false, false},
		{"bools", true, true, true},
		{"bools differ", true, false, false},
		{"strings", "a", "a", true},
		{"strings differ", "a", "b", false},
		{"int64 float64", int64(1), 1.0, true},
		{"float64 int64", 1.0, int64(1), true},
		{"int64 float64 differ", int64(1), 1.5, false},
		{"int64 uint64", int64(7), uint64(7), true},
		{"uint64 int64", uint64(7), int64(7), true},
		{"negative int64 uint64", int64(-1), uint64(math.MaxUint64), false},
		{"uint64 max float", uint64(math.MaxUint64), float64(1 << 64), false},
		{"uint64 2^63 float", uint64(1 << 63), float64(1 << 63), true},
		{"float 2^63 int64", float64(1 << 63), int64(math.MaxInt64), false},
		{"min int64 float", int64(math.MinInt64), float64(math.MinInt64), true},
		{"big int not rounded", int64(1<<53 + 1), float64(1 << 53), false},
		{"big int exact", int64(1 << 53), float64(1 << 53), true},
		{"negative zero", 0.0, math.Copysign(0, -1), true},
		{"int zero negative zero", int64(0), math.Copysign(0, -1), true},
		{"floats", 2.5, 2.5, true},
		{"number vs string", int64(1), "1", false},
		{"bytes", []byte("ab"), []byte("ab"), true},
		{"bytes differ", []byte("ab"), []byte("ac"), false},
		{"bytes vs string", []byte("ab"), "ab", false},
		{"string vs bytes", "ab", []byte("ab"), false},
		{"empty bytes nil bytes", []byte{}, []byte(nil), true},
		{"arrays", []any{int64(1), "x"}, []any{1.0, "x"}, true},
		{"arrays order", []any{int64(1), int64(2)}, []any{int64(2), int64(1)}, false},
		{"arrays length", []any{int64(1)}, []any{int64(1), nil}, false},
		{"empty and nil arrays", []any{}, []any(nil), true},
		{"objects", map[string]any{"a": int64(1), "b": nil}, map[string]any{"b": nil, "a": uint64(1)}, true},
		{"objects missing vs null", map[string]any{"a": nil}, map[string]any{"b": nil}, false},
		{"objects size", map[string]any{"a": nil}, map[string]any{}, false},
		{"array vs object", []any{}, map[string]any{}, false},
		{"nested", map[string]any{"a": []any{map[string]any{"b": []byte{1}}}}, map[string]any{"a": []any{map[string]any{"b": []byte{1}}}}, true},
		{"nested differ", map[string]any{"a": []any{map[string]any{"b": []byte{1}}}}, map[string]any{"a": []any{map[string]any{"b": []byte{2}}}}, false},
		{"outside model", 1, 1, false},
		{"NaN", math.NaN(), math.NaN(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Equal(tt.a, tt.b); got != tt.want {
				t.Fatalf("Equal(%s, %s) = %v, want %v", show(tt.a), show(tt.b), got, tt.want)
			}
			if got := Equal(tt.b, tt.a); got != tt.want {
				t.Fatalf("Equal(%s, %s) = %v, want %v (not symmetric)", show(tt.b), show(tt.a), got, tt.want)
			}
		})
	}
}

func TestDepth(t *testing.T) {
	tests := []struct {
		json string
		want int
	}{
		{`1`, 0},
		{`null`, 0},
		{`[]`, 1},
		{`{}`, 1},
		{`[1,2]`, 1},
		{`{"a":{"b":1}}`, 2},
		{`[[],[[[]]],{}]`, 4},
		{`{"a":1,"b":[{"c":[1]}]}`, 4},
	}
	for _, tt := range tests {
		t.Run(tt.json, func(t *testing.T) {
			if got := Depth(j(t, tt.json)); got != tt.want {
				t.Fatalf("Depth = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	nest := func(n int) any {
		var v any = "leaf"
		for range n {
			v = []any{v}
		}
		return v
	}
	tests := []struct {
		name     string
		v        any
		maxDepth int
		err      error
		msg      string
	}{
		{"every type", map[string]any{"n": nil, "b": true, "i": int64(-1), "u": uint64(math.MaxUint64), "f": 1.5,
			"s": "é", "y": []byte{0xff}, "a": []any{}, "o": map[string]any{}}, 2, nil, ""},
		{"small uint64 accepted", uint64(3), 0, nil, ""},
		{"scalar at depth 0", "x", 0, nil, ""},
		{"at limit", nest(MaxDepth), MaxDepth, nil, ""},
		{"over limit", nest(MaxDepth + 1), MaxDepth, ErrTooDeep, "document: too deep: " + strings.Repeat("[0]", MaxDepth) + ": nesting"},
		{"container at depth 0", []any{}, 0, ErrTooDeep, "(root): nesting deeper than allowed"},
		{"object too deep", map[string]any{"a": map[string]any{"b": map[string]any{}}}, 2, ErrTooDeep, "a.b: nesting"},
		{"hostile depth", nest(100_000), MaxDepth, ErrTooDeep, "too deep"},
		{"int", map[string]any{"a": 1}, 8, ErrInvalidValue, "document: invalid value: a: Go type int is not in the value model"},
		{"float32", []any{float32(1)}, 8, ErrInvalidValue, "[0]: Go type float32"},
		{"map any any", map[any]any{"a": 1}, 8, ErrInvalidValue, "(root): Go type map[interface {}]interface {}"},
		{"typed slice", []string{"a"}, 8, ErrInvalidValue, "Go type []string"},
		{"NaN", map[string]any{"x": []any{math.NaN()}}, 8, ErrInvalidValue, "x[0]: float NaN"},
		{"+Inf", math.Inf(1), 8, ErrInvalidValue, "float +Inf"},
		{"-Inf", math.Inf(-1), 8, ErrInvalidValue, "float -Inf"},
		{"bad utf8 string", []any{"ok", "\xff"}, 8, ErrInvalidValue, "[1]: string is not valid UTF-8"},
		{"bad utf8 key", map[string]any{"\xfe": 1.0}, 8, ErrInvalidValue, "key is not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(tt.v, tt.maxDepth)
			if tt.err == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.err) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Validate = %v, want %v containing %q", err, tt.err, tt.msg)
			}
		})
	}
}
