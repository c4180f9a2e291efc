package codec_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/hearth-iot/hearth/broker/codec"
)

func TestTranscodeSameCodecIsIdentity(t *testing.T) {
	for _, c := range []codec.Codec{codec.JSON, codec.CBOR} {
		// Not even valid: same-codec transcoding does not look at the bytes.
		b := []byte{0xde, 0xad, 0xbe, 0xef}
		got, err := codec.Transcode(b, c, c, codec.Limits{})
		if err != nil {
			t.Fatalf("%v: %v", c, err)
		}
		if len(got) != len(b) || &got[0] != &b[0] || cap(got) != cap(b) {
			t.Fatalf("%v: Transcode returned a different slice", c)
		}
	}
}

func TestTranscodeErrors(t *testing.T) {
	tests := []struct {
		name     string
		in       []byte
		from, to codec.Codec
		lim      codec.Limits
		want     error
	}{
		{"unknown from", []byte(`1`), 0, codec.JSON, codec.Limits{}, codec.ErrUnknownCodec},
		{"unknown to", []byte(`1`), codec.JSON, 9, codec.Limits{}, codec.ErrUnknownCodec},
		{"both unknown", []byte(`1`), 0, 0, codec.Limits{}, codec.ErrUnknownCodec},
		{"invalid JSON", []byte(`{`), codec.JSON, codec.CBOR, codec.Limits{}, codec.ErrInvalidPayload},
		{"too large", []byte(`[1,2,3]`), codec.JSON, codec.CBOR, codec.Limits{MaxSize: 6}, codec.ErrTooLarge},
		{"too deep", []byte{0x81, 0x81, 0x80}, codec.CBOR, codec.JSON, codec.Limits{MaxDepth: 2}, codec.ErrTooDeep},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if b, err := codec.Transcode(tt.in, tt.from, tt.to, tt.lim); !errors.Is(err, tt.want) {
				t.Fatalf("Transcode = %q, %v; want %v", b, err, tt.want)
			}
		})
	}
}

func TestPayload(t *testing.T) {
	src := []byte(`{"temp":21.5,"ok":true}`)
	p := codec.NewPayload(src, codec.JSON, codec.Limits{})
	if p.Codec() != codec.JSON {
		t.Fatalf("Codec() = %v", p.Codec())
	}
	same, err := p.Bytes(codec.JSON)
	if err != nil || &same[0] != &src[0] || len(same) != len(src) {
		t.Fatalf("Bytes(JSON) is not the original slice: %v", err)
	}
	c1, err := p.Bytes(codec.CBOR)
	if err != nil {
		t.Fatal(err)
	}
	if want := unhex(t, "a2 62 6f 6b f5 64 74 65 6d 70 f9 4d 60"); string(c1) != string(want) {
		t.Fatalf("Bytes(CBOR) = % x, want % x", c1, want)
	}
	c2, _ := p.Bytes(codec.CBOR)
	if &c1[0] != &c2[0] {
		t.Fatal("second Bytes(CBOR) transcoded again")
	}
	v, err := p.Value()
	if err != nil || !equal(v, map[string]any{"temp": 21.5, "ok": true}) {
		t.Fatalf("Value() = %#v, %v", v, err)
	}
	if _, err := p.Bytes(0); !errors.Is(err, codec.ErrUnknownCodec) {
		t.Fatalf("Bytes(0) = %v, want ErrUnknownCodec", err)
	}
}

func TestPayloadOpaque(t *testing.T) {
	src := []byte("hello")
	p := codec.NewPayload(src, 0, codec.Limits{})
	for _, c := range []codec.Codec{codec.JSON, codec.CBOR, 0} {
		b, err := p.Bytes(c)
		if err != nil || &b[0] != &src[0] {
			t.Fatalf("Bytes(%v) of opaque payload = %q, %v; want the original", c, b, err)
		}
	}
	if _, err := p.Value(); !errors.Is(err, codec.ErrInvalidPayload) {
		t.Fatalf("Value() of opaque payload: %v, want ErrInvalidPayload", err)
	}
}

func TestPayloadInvalid(t *testing.T) {
	p := codec.NewPayload([]byte(`{"a":1,"a":2}`), codec.JSON, codec.Limits{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := p.Bytes(codec.CBOR); !errors.Is(err, codec.ErrInvalidPayload) {
				t.Errorf("Bytes(CBOR) = %v, want ErrInvalidPayload", err)
			}
		})
	}
	wg.Wait()
	if b, err := p.Bytes(codec.JSON); err != nil || string(b) != `{"a":1,"a":2}` {
		t.Fatalf("Bytes(JSON) = %q, %v; same codec passes through", b, err)
	}
}
