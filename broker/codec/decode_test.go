package codec_test

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"testing"

	"github.com/hearth-iot/hearth/broker/codec"
)

// decodeCase expects an exact value, compared with reflect.DeepEqual so that
// the Go types are checked too, or an error matched with errors.Is.
type decodeCase struct {
	name    string
	in      []byte
	want    any
	wantErr error
}

func runDecode(t *testing.T, c codec.Codec, tests []decodeCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := codec.Decode(tt.in, c, codec.Limits{})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Decode(%x) = %#v, %v; want error %v", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode(%x): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Decode(%x) = %#v (%T), want %#v (%T)", tt.in, got, got, tt.want, tt.want)
			}
		})
	}
}

func TestDecodeJSON(t *testing.T) {
	j := func(s string) []byte { return []byte(s) }
	runDecode(t, codec.JSON, []decodeCase{
		{"null", j(`null`), nil, nil},
		{"true", j(` true `), true, nil},
		{"int", j(`21`), int64(21), nil},
		{"negative int", j(`-5`), int64(-5), nil},
		{"minus zero int", j(`-0`), int64(0), nil},
		{"max int64", j(`9223372036854775807`), int64(math.MaxInt64), nil},
		{"min int64", j(`-9223372036854775808`), int64(math.MinInt64), nil},
		{"above int64 is uint64", j(`9223372036854775808`), uint64(1 << 63), nil},
		{"max uint64", j(`18446744073709551615`), uint64(math.MaxUint64), nil},
		{"above uint64 is float", j(`18446744073709551616`), float64(1 << 64), nil},
		{"below int64 is float", j(`-9223372036854775809`), float64(math.MinInt64), nil},
		{"1.0 is float", j(`1.0`), 1.0, nil},
		{"exponent is float", j(`1e2`), 100.0, nil},
		{"fraction", j(`21.5`), 21.5, nil},
		{"underflow is zero", j(`1e-400`), 0.0, nil},
		{"overflow refused", j(`1e400`), nil, codec.ErrInvalidPayload},
		{"string", j(`"h\u00e9\n"`), "hé\n", nil},
		{"array", j(`[1,"a",null,[]]`), []any{int64(1), "a", nil, []any{}}, nil},
		{"object", j(`{"b":{"c":[true]},"a":1.5}`), map[string]any{"a": 1.5, "b": map[string]any{"c": []any{true}}}, nil},
		{"empty object", j(`{}`), map[string]any{}, nil},
		{"duplicate key", j(`{"a":1,"a":2}`), nil, codec.ErrInvalidPayload},
		{"nested duplicate key", j(`[{"x":{},"x":{}}]`), nil, codec.ErrInvalidPayload},
		{"same key in sibling objects", j(`[{"a":1},{"a":2}]`), []any{map[string]any{"a": int64(1)}, map[string]any{"a": int64(2)}}, nil},
		{"empty", j(``), nil, codec.ErrInvalidPayload},
		{"white space only", j(` `), nil, codec.ErrInvalidPayload},
		{"trailing garbage", j(`{} x`), nil, codec.ErrInvalidPayload},
		{"two values", j(`1 2`), nil, codec.ErrInvalidPayload},
		{"unclosed", j(`[1,2`), nil, codec.ErrInvalidPayload},
		{"mismatched", j(`[1}`), nil, codec.ErrInvalidPayload},
		{"bare word", j(`hello`), nil, codec.ErrInvalidPayload},
		{"NaN literal", j(`NaN`), nil, codec.ErrInvalidPayload},
		{"CBOR bytes", unhex(t, "a1 61 61 01"), nil, codec.ErrInvalidPayload},
		{"escapes", j(`"\"\\\/\b\f\n\r\t\u0041"`), "\"\\/\b\f\n\r\tA", nil},
		{"surrogate pair", j(`"\ud83d\ude00"`), "😀", nil},
		{"lone high surrogate", j(`"\ud83dx"`), "\ufffdx", nil},
		{"lone low surrogate", j(`"\ude00"`), "\ufffd", nil},
		{"high then non-surrogate", j(`"\ud83d\u0041"`), "\ufffdA", nil},
		{"invalid UTF-8 replaced", []byte("\"a\xffb\""), "a\ufffdb", nil},
		{"raw UTF-8", j(`"température"`), "température", nil},
		{"uppercase hex", j(`"\u00E9"`), "é", nil},
		{"bad escape", j(`"\x"`), nil, codec.ErrInvalidPayload},
		{"short \\u", j(`"\u12"`), nil, codec.ErrInvalidPayload},
		{"control character", []byte("\"a\nb\""), nil, codec.ErrInvalidPayload},
		{"unterminated string", j(`"abc`), nil, codec.ErrInvalidPayload},
		{"leading zero", j(`01`), nil, codec.ErrInvalidPayload},
		{"plus sign", j(`+1`), nil, codec.ErrInvalidPayload},
		{"bare minus", j(`-`), nil, codec.ErrInvalidPayload},
		{"no fraction digits", j(`1.`), nil, codec.ErrInvalidPayload},
		{"no integer digits", j(`.5`), nil, codec.ErrInvalidPayload},
		{"no exponent digits", j(`1e+`), nil, codec.ErrInvalidPayload},
		{"capital exponent", j(`2E-1`), 0.2, nil},
		{"18 digits", j(`-999999999999999999`), int64(-999999999999999999), nil},
		{"19 digits", j(`1000000000000000000`), int64(1000000000000000000), nil},
		{"trailing comma in array", j(`[1,]`), nil, codec.ErrInvalidPayload},
		{"trailing comma in object", j(`{"a":1,}`), nil, codec.ErrInvalidPayload},
		{"missing colon", j(`{"a" 1}`), nil, codec.ErrInvalidPayload},
		{"non-string key", j(`{1:2}`), nil, codec.ErrInvalidPayload},
		{"truncated literal", j(`tru`), nil, codec.ErrInvalidPayload},
		{"literal with suffix", j(`nullx`), nil, codec.ErrInvalidPayload},
		{"BOM", []byte("\xef\xbb\xbf{}"), nil, codec.ErrInvalidPayload},
	})
}

func TestDecodeCBOR(t *testing.T) {
	h := func(s string) []byte { return unhex(t, s) }
	runDecode(t, codec.CBOR, []decodeCase{
		{"uint", h("15"), int64(21), nil},
		{"negative", h("24"), int64(-5), nil},
		{"max int64", h("1b 7f ff ff ff ff ff ff ff"), int64(math.MaxInt64), nil},
		{"above int64 is uint64", h("1b 80 00 00 00 00 00 00 00"), uint64(1 << 63), nil},
		{"min int64", h("3b 7f ff ff ff ff ff ff ff"), int64(math.MinInt64), nil},
		{"below int64 refused", h("3b 80 00 00 00 00 00 00 00"), nil, codec.ErrInvalidPayload},
		{"non-shortest int accepted", h("19 00 15"), int64(21), nil},
		{"float16 1.0", h("f9 3c 00"), 1.0, nil},
		{"float16 -0", h("f9 80 00"), math.Copysign(0, -1), nil},
		{"float16 subnormal", h("f9 00 01"), math.Ldexp(1, -24), nil},
		{"float16 65504", h("f9 7b ff"), 65504.0, nil},
		{"float32 100000", h("fa 47 c3 50 00"), 100000.0, nil},
		{"float64 1.1", h("fb 3f f1 99 99 99 99 99 9a"), 1.1, nil},
		{"NaN refused", h("f9 7e 00"), nil, codec.ErrInvalidPayload},
		{"infinity refused", h("f9 7c 00"), nil, codec.ErrInvalidPayload},
		{"float64 -infinity refused", h("fb ff f0 00 00 00 00 00 00"), nil, codec.ErrInvalidPayload},
		{"false", h("f4"), false, nil},
		{"true", h("f5"), true, nil},
		{"null", h("f6"), nil, nil},
		{"undefined is nil", h("f7"), nil, nil},
		{"simple value 16 refused", h("f0"), nil, codec.ErrInvalidPayload},
		{"simple value 255 refused", h("f8 ff"), nil, codec.ErrInvalidPayload},
		{"bytes", h("43 01 02 03"), []byte{1, 2, 3}, nil},
		{"empty bytes", h("40"), []byte{}, nil},
		{"indefinite bytes", h("5f 42 01 02 41 03 ff"), []byte{1, 2, 3}, nil},
		{"text", h("62 c3 a9"), "é", nil},
		{"indefinite text", h("7f 61 61 61 62 ff"), "ab", nil},
		{"invalid UTF-8 refused", h("62 c3 28"), nil, codec.ErrInvalidPayload},
		{"array", h("83 01 61 61 f6"), []any{int64(1), "a", nil}, nil},
		{"indefinite array", h("9f 01 9f ff ff"), []any{int64(1), []any{}}, nil},
		{"map", h("a2 61 61 01 61 62 82 f5 f4"), map[string]any{"a": int64(1), "b": []any{true, false}}, nil},
		{"indefinite map", h("bf 61 61 01 ff"), map[string]any{"a": int64(1)}, nil},
		{"int keys stringified", h("a2 01 61 61 20 61 62"), map[string]any{"1": "a", "-1": "b"}, nil},
		{"bool and null keys", h("a3 f5 01 f4 02 f6 03"), map[string]any{"true": int64(1), "false": int64(2), "null": int64(3)}, nil},
		{"float key", h("a1 f9 3e 00 01"), map[string]any{"1.5": int64(1)}, nil},
		{"integral float key", h("a1 f9 3c 00 01"), map[string]any{"1": int64(1)}, nil},
		{"bytes key is base64url", h("a1 42 fb ff 01"), map[string]any{"-_8": int64(1)}, nil},
		{"uint64 key", h("a1 1b ff ff ff ff ff ff ff ff 01"), map[string]any{"18446744073709551615": int64(1)}, nil},
		{"array key refused", h("a1 80 01"), nil, codec.ErrInvalidPayload},
		{"map key refused", h("a1 a0 01"), nil, codec.ErrInvalidPayload},
		{"duplicate key", h("a2 61 61 01 61 61 02"), nil, codec.ErrInvalidPayload},
		{"duplicate after stringification", h("a2 01 01 61 31 02"), nil, codec.ErrInvalidPayload},
		{"tag 0 keeps text", h("c0 74 32 30 31 33 2d 30 33 2d 32 31 54 32 30 3a 30 34 3a 30 30 5a"), "2013-03-21T20:04:00Z", nil},
		{"tag 0 on a number refused", h("c0 01"), nil, codec.ErrInvalidPayload},
		{"tag 1 keeps int", h("c1 1a 51 4b 67 b0"), int64(1363896240), nil},
		{"tag 1 keeps float", h("c1 fb 41 d4 52 d9 ec 20 00 00"), 1363896240.5, nil},
		{"tag 1 on text refused", h("c1 61 61"), nil, codec.ErrInvalidPayload},
		{"bignum 2 small", h("c2 42 01 00"), int64(256), nil},
		{"bignum 2 uint64", h("c2 48 ff ff ff ff ff ff ff ff"), uint64(math.MaxUint64), nil},
		{"bignum 2 leading zeros", h("c2 4a 00 00 ff ff ff ff ff ff ff ff"), uint64(math.MaxUint64), nil},
		{"bignum 2 empty is 0", h("c2 40"), int64(0), nil},
		{"bignum 2 too big", h("c2 49 01 00 00 00 00 00 00 00 00"), nil, codec.ErrInvalidPayload},
		{"bignum 3", h("c3 42 01 00"), int64(-257), nil},
		{"bignum 3 min int64", h("c3 48 7f ff ff ff ff ff ff ff"), int64(math.MinInt64), nil},
		{"bignum 3 too small", h("c3 48 80 00 00 00 00 00 00 00"), nil, codec.ErrInvalidPayload},
		{"bignum on text refused", h("c2 61 61"), nil, codec.ErrInvalidPayload},
		{"other tag dropped", h("d8 20 63 61 62 63"), "abc", nil},
		{"self-described CBOR dropped", h("d9 d9 f7 a1 61 61 01"), map[string]any{"a": int64(1)}, nil},
		{"nested tags dropped", h("d8 64 d8 65 01"), int64(1), nil},
		{"tag on a key", h("a1 d8 64 01 02"), map[string]any{"1": int64(2)}, nil},
		{"empty", h(""), nil, codec.ErrInvalidPayload},
		{"trailing byte", h("01 01"), nil, codec.ErrInvalidPayload},
		{"truncated", h("82 01"), nil, codec.ErrInvalidPayload},
		{"lying length", h("9b 00 00 00 00 ff ff ff ff 01"), nil, codec.ErrInvalidPayload},
		{"reserved ai", h("1c"), nil, codec.ErrInvalidPayload},
		{"lone break", h("ff"), nil, codec.ErrInvalidPayload},
		{"JSON text", []byte(`{"a":1}`), nil, codec.ErrInvalidPayload},
	})
}

func TestDecodeUnknownCodec(t *testing.T) {
	for _, c := range []codec.Codec{0, 3} {
		if _, err := codec.Decode([]byte(`1`), c, codec.Limits{}); !errors.Is(err, codec.ErrUnknownCodec) {
			t.Errorf("Decode with codec %v: %v, want ErrUnknownCodec", c, err)
		}
	}
}

func TestDecodeDoesNotAlias(t *testing.T) {
	in := unhex(t, "a1 61 61 43 01 02 03")
	v, err := codec.Decode(in, codec.CBOR, codec.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range in {
		in[i] = 0
	}
	if got := v.(map[string]any)["a"].([]byte); fmt.Sprint(got) != "[1 2 3]" {
		t.Fatalf("decoded bytes changed with the input: %v", got)
	}
}
