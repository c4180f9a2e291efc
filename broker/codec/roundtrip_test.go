package codec_test

import (
	"bytes"
	"testing"

	"github.com/hearth-iot/hearth/broker/codec"
)

// CBOR -> JSON -> CBOR, with the documented losses spelled out: each case
// gives the JSON form and the CBOR that comes back.
func TestRoundTripCBORJSONCBOR(t *testing.T) {
	tests := []struct {
		name     string
		in       string // CBOR hex
		json     string
		back     string // CBOR hex; "" means same as in
		lossless bool
	}{
		{"null", "f6", `null`, "", true},
		{"false", "f4", `false`, "", true},
		{"true", "f5", `true`, "", true},
		{"int", "18 2a", `42`, "", true},
		{"negative int", "38 63", `-100`, "", true},
		{"max int64", "1b 7f ff ff ff ff ff ff ff", `9223372036854775807`, "", true},
		{"min int64", "3b 7f ff ff ff ff ff ff ff", `-9223372036854775808`, "", true},
		{"uint64", "1b ff ff ff ff ff ff ff ff", `18446744073709551615`, "", true},
		{"float", "fb 3f f1 99 99 99 99 99 9a", `1.1`, "", true},
		{"float16 fraction", "f9 3e 00", `1.5`, "", true},
		{"text", "65 68 65 6c 6c 6f", `"hello"`, "", true},
		{"array", "83 01 61 61 80", `[1,"a",[]]`, "", true},
		{"map", "a2 61 61 01 61 62 a1 61 63 f6", `{"a":1,"b":{"c":null}}`, "", true},
		// Lossy, as documented.
		{"1.0 becomes int", "f9 3c 00", `1`, "01", false},
		{"-0.0 becomes 0", "f9 80 00", `0`, "00", false},
		{"bytes become base64url text", "43 01 02 03", `"AQID"`, "64 41 51 49 44", false},
		{"empty bytes become empty text", "40", `""`, "60", false},
		{"tag dropped", "d8 20 63 61 62 63", `"abc"`, "63 61 62 63", false},
		{"time tag 0 dropped", "c0 61 78", `"x"`, "61 78", false},
		{"time tag 1 dropped", "c1 1a 51 4b 67 b0", `1363896240`, "1a 51 4b 67 b0", false},
		{"bignum becomes int", "c2 42 01 00", `256`, "19 01 00", false},
		{"undefined becomes null", "f7", `null`, "f6", false},
		{"int key stringified", "a1 01 02", `{"1":2}`, "a1 61 31 02", false},
		{"bytes key stringified", "a1 41 ff 01", `{"_w":1}`, "a1 62 5f 77 01", false},
		{"indefinite becomes definite", "9f 01 ff", `[1]`, "81 01", false},
		{"non-shortest becomes shortest", "19 00 01", `1`, "01", false},
		{"keys sorted", "a2 62 62 62 01 61 61 02", `{"a":2,"bb":1}`, "a2 61 61 02 62 62 62 01", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := unhex(t, tt.in)
			j, err := codec.Transcode(in, codec.CBOR, codec.JSON, codec.Limits{})
			if err != nil {
				t.Fatalf("CBOR to JSON: %v", err)
			}
			if string(j) != tt.json {
				t.Fatalf("CBOR % x to JSON = %s, want %s", in, j, tt.json)
			}
			back, err := codec.Transcode(j, codec.JSON, codec.CBOR, codec.Limits{})
			if err != nil {
				t.Fatalf("JSON to CBOR: %v", err)
			}
			want := in
			if tt.back != "" {
				want = unhex(t, tt.back)
			}
			if !bytes.Equal(back, want) {
				t.Fatalf("JSON %s to CBOR = % x, want % x", j, back, want)
			}
			if got := bytes.Equal(back, in); got != tt.lossless {
				t.Fatalf("lossless = %v, want %v", got, tt.lossless)
			}
		})
	}
}

// JSON -> CBOR -> JSON: lossless in value for everything JSON decodes to,
// though integral floats lose their fraction in the text.
func TestRoundTripJSONCBORJSON(t *testing.T) {
	tests := []struct {
		name string
		in   string
		cbor string // CBOR hex
		back string // "" means same as in
	}{
		{"null", `null`, "f6", ""},
		{"bool", `true`, "f5", ""},
		{"int", `21`, "15", ""},
		{"negative", `-21`, "34", ""},
		{"uint64", `18446744073709551615`, "1b ff ff ff ff ff ff ff ff", ""},
		{"float", `21.5`, "f9 4d 60", ""},
		{"string", `"h\u00e9"`, "63 68 c3 a9", `"hé"`},
		{"array", `[1,[],{}]`, "83 01 80 a0", ""},
		{"object", `{"temp":21,"unit":"C"}`, "a2 64 74 65 6d 70 15 64 75 6e 69 74 61 43", ""},
		{"1.0 stays float in CBOR", `1.0`, "f9 3c 00", `1`},
		{"1e2 is a float", `1e2`, "f9 56 40", `100`},
		{"big integer literal becomes float", `18446744073709551616`, "fa 5f 80 00 00", `18446744073709552000`},
		{"white space and key order", ` { "b" : 1 , "a" : 2 } `, "a2 61 61 02 61 62 01", `{"a":2,"b":1}`},
		{"base64url text stays text", `"AQID"`, "64 41 51 49 44", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := codec.Transcode([]byte(tt.in), codec.JSON, codec.CBOR, codec.Limits{})
			if err != nil {
				t.Fatalf("JSON to CBOR: %v", err)
			}
			if want := unhex(t, tt.cbor); !bytes.Equal(c, want) {
				t.Fatalf("JSON %s to CBOR = % x, want % x", tt.in, c, want)
			}
			back, err := codec.Transcode(c, codec.CBOR, codec.JSON, codec.Limits{})
			if err != nil {
				t.Fatalf("CBOR to JSON: %v", err)
			}
			want := tt.back
			if want == "" {
				want = tt.in
			}
			if string(back) != want {
				t.Fatalf("CBOR % x to JSON = %s, want %s", c, back, want)
			}
			// The decoded values agree numerically whatever the text.
			v1, err1 := codec.Decode([]byte(tt.in), codec.JSON, codec.Limits{})
			v2, err2 := codec.Decode(back, codec.JSON, codec.Limits{})
			if err1 != nil || err2 != nil || !equal(v1, v2) {
				t.Fatalf("values differ: %#v, %#v (%v, %v)", v1, v2, err1, err2)
			}
		})
	}
}
