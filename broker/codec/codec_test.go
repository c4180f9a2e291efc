package codec_test

import (
	"errors"
	"testing"

	"github.com/hearth-iot/hearth/broker/codec"
)

func TestParseCodec(t *testing.T) {
	tests := []struct {
		in      string
		want    codec.Codec
		wantErr bool
	}{
		{"json", codec.JSON, false},
		{"JSON", codec.JSON, false},
		{" Cbor ", codec.CBOR, false},
		{"cbor", codec.CBOR, false},
		{"", 0, true},
		{"yaml", 0, true},
		{"application/json", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := codec.ParseCodec(tt.in)
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Fatalf("ParseCodec(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
			if err != nil && !errors.Is(err, codec.ErrUnknownCodec) {
				t.Fatalf("error %v is not ErrUnknownCodec", err)
			}
		})
	}
}

func TestCodecStrings(t *testing.T) {
	tests := []struct {
		c        codec.Codec
		str, ct  string
		validity bool
	}{
		{codec.JSON, "json", "application/json", true},
		{codec.CBOR, "cbor", "application/cbor", true},
		{0, "unknown", "", false},
		{7, "codec(7)", "", false},
	}
	for _, tt := range tests {
		if got := tt.c.String(); got != tt.str {
			t.Errorf("String() = %q, want %q", got, tt.str)
		}
		if got := tt.c.ContentType(); got != tt.ct {
			t.Errorf("%v.ContentType() = %q, want %q", tt.c, got, tt.ct)
		}
		if got := tt.c.Valid(); got != tt.validity {
			t.Errorf("%v.Valid() = %v", tt.c, got)
		}
		if tt.ct != "" {
			if c, ok := codec.FromContentType(tt.ct); !ok || c != tt.c {
				t.Errorf("FromContentType(%v.ContentType()) = %v, %v", tt.c, c, ok)
			}
		}
	}
}

func TestCodecText(t *testing.T) {
	var c codec.Codec
	if err := c.UnmarshalText([]byte("CBOR")); err != nil || c != codec.CBOR {
		t.Fatalf("UnmarshalText(CBOR) = %v, codec %v", err, c)
	}
	if err := c.UnmarshalText([]byte("xml")); !errors.Is(err, codec.ErrUnknownCodec) || c != codec.CBOR {
		t.Fatalf("UnmarshalText(xml) = %v, codec %v; want ErrUnknownCodec, unchanged", err, c)
	}
	if b, err := codec.JSON.MarshalText(); err != nil || string(b) != "json" {
		t.Fatalf("MarshalText = %q, %v", b, err)
	}
	if _, err := codec.Codec(0).MarshalText(); !errors.Is(err, codec.ErrUnknownCodec) {
		t.Fatalf("MarshalText of zero codec: %v, want ErrUnknownCodec", err)
	}
}

func TestFromContentType(t *testing.T) {
	tests := []struct {
		ct   string
		want codec.Codec
		ok   bool
	}{
		{"application/json", codec.JSON, true},
		{"Application/JSON", codec.JSON, true},
		{"application/json; charset=utf-8", codec.JSON, true},
		{"application/json;charset=UTF-8", codec.JSON, true},
		{"application/json; charset=utf8", codec.JSON, true},
		{"application/json; charset=iso-8859-1", 0, false},
		{"application/json; foo=bar", codec.JSON, true},
		{"application/merge-patch+json", codec.JSON, true},
		{"application/senml+json", codec.JSON, true},
		{"application/+json", 0, false},
		{"application/cbor", codec.CBOR, true},
		{"APPLICATION/CBOR", codec.CBOR, true},
		{"application/senml+cbor", codec.CBOR, true},
		{"application/cbor-seq", 0, false},
		{"text/json", 0, false},
		{"text/plain", 0, false},
		{"application/octet-stream", 0, false},
		{"json", 0, false},
		{"", 0, false},
		{"application/json; charset", 0, false}, // malformed parameter
	}
	for _, tt := range tests {
		t.Run(tt.ct, func(t *testing.T) {
			got, ok := codec.FromContentType(tt.ct)
			if got != tt.want || ok != tt.ok {
				t.Fatalf("FromContentType(%q) = %v, %v; want %v, %v", tt.ct, got, ok, tt.want, tt.ok)
			}
		})
	}
}
