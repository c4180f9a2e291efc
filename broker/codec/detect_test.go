package codec_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/hearth-iot/hearth/broker/codec"
)

func TestDetect(t *testing.T) {
	const none = codec.Codec(0)
	tests := []struct {
		name    string
		payload []byte
		hint    codec.Codec
		want    codec.Codec // 0: opaque
	}{
		{"object, no hint", []byte(`{"temp":21}`), none, codec.JSON},
		{"object, JSON hint", []byte(`{"temp":21}`), codec.JSON, codec.JSON},
		{"object, CBOR hint", []byte(`{"temp":21}`), codec.CBOR, codec.JSON},
		{"array, CBOR hint", []byte(`[1,2,3]`), codec.CBOR, codec.JSON},
		{"empty object, CBOR hint", []byte(`{}`), codec.CBOR, codec.JSON},
		{"empty array, no hint", []byte(`[]`), none, codec.JSON},
		{"leading white space", []byte(" \t\r\n{\"a\":[]}\n"), codec.CBOR, codec.JSON},
		{"broken object, no hint", []byte(`{"temp":`), none, none},
		{"broken object, JSON hint", []byte(`{"temp":`), codec.JSON, none},
		{"object with trailing garbage", []byte(`{"a":1}x`), codec.JSON, none},
		{"two objects", []byte(`{} {}`), codec.JSON, none},
		{"number, JSON hint", []byte(`21`), codec.JSON, codec.JSON},
		{"number, no hint", []byte(`21`), none, none},
		{"number, CBOR hint", []byte(`21`), codec.CBOR, none}, // 0x32 then a trailing byte
		{"digit, CBOR hint is CBOR -24", []byte(`7`), codec.CBOR, codec.CBOR},
		{"digit, JSON hint", []byte(`7`), codec.JSON, codec.JSON},
		{"string, JSON hint", []byte(`"x"`), codec.JSON, codec.JSON},
		{"true, JSON hint", []byte(`true`), codec.JSON, codec.JSON},
		{"true, CBOR hint", []byte(`true`), codec.CBOR, none},
		{"null, JSON hint", []byte(`null`), codec.JSON, codec.JSON},
		{"CBOR map, CBOR hint", unhex(t, "a1 61 61 01"), codec.CBOR, codec.CBOR},
		{"CBOR map, JSON hint", unhex(t, "a1 61 61 01"), codec.JSON, none},
		{"CBOR map, no hint", unhex(t, "a1 61 61 01"), none, none},
		{"CBOR int 0", []byte{0x00}, codec.CBOR, codec.CBOR},
		{"CBOR text", unhex(t, "65 68 65 6c 6c 6f"), codec.CBOR, codec.CBOR},
		{"CBOR indefinite array", unhex(t, "9f 01 02 ff"), codec.CBOR, codec.CBOR},
		{"CBOR with trailing byte", unhex(t, "a1 61 61 01 00"), codec.CBOR, none},
		{"CBOR truncated", unhex(t, "a2 61 61 01"), codec.CBOR, none},
		{"CBOR reserved ai", []byte{0x1c}, codec.CBOR, none},
		{"CBOR lone break", []byte{0xff}, codec.CBOR, none},
		{"CBOR text of 27 = '{' with 8-byte length", append(unhex(t, "7b 00 00 00 00 00 00 00 01"), 'x'), codec.CBOR, codec.CBOR},
		{"same bytes, JSON hint", append(unhex(t, "7b 00 00 00 00 00 00 00 01"), 'x'), codec.JSON, none},
		{"empty, no hint", nil, none, none},
		{"empty, JSON hint", []byte{}, codec.JSON, none},
		{"empty, CBOR hint", []byte{}, codec.CBOR, none},
		{"white space only, JSON hint", []byte("  \n"), codec.JSON, none},
		{"white space only, CBOR hint", []byte(" "), codec.CBOR, codec.CBOR}, // 0x20 is CBOR -1
		{"plain text, JSON hint", []byte("on"), codec.JSON, none},
		{"plain text, CBOR hint", []byte("hello world"), codec.CBOR, none},
		{"UTF-8 text, CBOR hint", []byte("température 21°C"), codec.CBOR, none},
		{"UTF-8 text, JSON hint", []byte("température"), codec.JSON, none},
		{"binary", []byte{0x89, 'P', 'N', 'G'}, codec.JSON, none},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := codec.Detect(tt.payload, tt.hint)
			if got != tt.want || ok != (tt.want != 0) {
				t.Fatalf("Detect(%q, %v) = %v, %v; want %v", tt.payload, tt.hint, got, ok, tt.want)
			}
		})
	}
}

// No JSON object or array is also one well-formed CBOR item: check the
// argument in Detect's documentation on a corpus of small JSON texts.
func TestDetectJSONNeverCBOR(t *testing.T) {
	texts := []string{`{}`, `[]`, ` []`, `{"a":1}`, "[\t1]", "{\n\n\n\n\n\n\n\n}", `[[[[[[[[[[]]]]]]]]]]`, `{"temp":21}`}
	for _, s := range texts {
		got, err := codec.Decode([]byte(s), codec.CBOR, codec.Limits{})
		if err == nil {
			t.Errorf("JSON %q also decodes as CBOR: %#v", s, got)
		}
	}
}

func TestDetectDeepJSON(t *testing.T) {
	// Beyond encoding/json's 10000 levels Detect does not recognise JSON.
	deep := strings.Repeat("[", 10001) + strings.Repeat("]", 10001)
	if c, ok := codec.Detect([]byte(deep), codec.JSON); ok {
		t.Fatalf("Detect(10001 levels) = %v", c)
	}
	ok9999 := strings.Repeat("[", 9999) + strings.Repeat("]", 9999)
	if c, _ := codec.Detect([]byte(ok9999), 0); c != codec.JSON {
		t.Fatalf("Detect(9999 levels) = %v, want json", c)
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name    string
		payload []byte
		ct      string
		client  codec.Codec
		want    codec.Codec
		wantErr error
	}{
		{"content type JSON beats CBOR client", []byte(`21`), "application/json", codec.CBOR, codec.JSON, nil},
		{"content type CBOR beats JSON client", []byte{0x15}, "application/cbor", codec.JSON, codec.CBOR, nil},
		{"content type CBOR, JSON-looking bytes", []byte(`7`), "application/cbor", 0, codec.CBOR, nil},
		{"content type JSON, invalid", []byte(`{"a"`), "application/json", 0, 0, codec.ErrInvalidPayload},
		{"content type CBOR, invalid", []byte{0xa1, 0x01}, "application/cbor", 0, 0, codec.ErrInvalidPayload},
		{"content type JSON, CBOR bytes", unhex(t, "a1 61 61 01"), "application/json", codec.CBOR, 0, codec.ErrInvalidPayload},
		{"other content type is opaque", []byte(`{"a":1}`), "text/plain", codec.JSON, 0, nil},
		{"no content type: detect with client hint", []byte(`21`), "", codec.JSON, codec.JSON, nil},
		{"no content type: object", []byte(`{"a":1}`), "", 0, codec.JSON, nil},
		{"no content type: opaque", []byte(`hi`), "", codec.CBOR, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := codec.Classify(tt.payload, tt.ct, tt.client)
			if got != tt.want || !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("Classify = %v, %v; want %v, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}
