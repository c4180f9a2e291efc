package codec

import (
	"fmt"
	"sync"
)

// Payload is one published message's payload during fan-out. It hands each
// subscriber the bytes for its codec, decoding the original at most once and
// encoding each other codec at most once, however many subscribers ask and
// from however many goroutines: transcoding is per codec per message, never
// per subscriber. A Payload must not be copied after first use.
type Payload struct {
	raw   []byte
	codec Codec
	lim   Limits

	decodeOnce sync.Once
	value      any
	decodeErr  error

	// other is the payload in the codec that is not p.codec. With two
	// codecs there is only one other; a third would make this a small array
	// indexed by Codec.
	otherOnce sync.Once
	other     []byte
	otherErr  error

	onEncode func() // test hook: called for each encoding made
}

// NewPayload wraps payload b, encoded with c, for fan-out. A zero (or
// otherwise invalid) c makes the payload opaque. The Payload keeps b and
// hands it out: the caller must not modify b afterwards. lim bounds the one
// Decode a transcoding needs.
func NewPayload(b []byte, c Codec, lim Limits) *Payload {
	if !c.Valid() {
		c = 0
	}
	return &Payload{raw: b, codec: c, lim: lim}
}

// Codec returns the payload's codec, zero for an opaque payload.
func (p *Payload) Codec() Codec { return p.codec }

// Raw returns the payload as published.
func (p *Payload) Raw() []byte { return p.raw }

// Bytes returns the payload for a subscriber whose codec is c. An opaque
// payload, or c equal to the payload's codec, returns the original bytes,
// the same slice. Otherwise it returns the transcoded bytes, computed on the
// first call for that codec and shared by all later ones: callers must not
// modify them. It fails with ErrUnknownCodec if c is not JSON or CBOR (for a
// structured payload), or with Decode's or Encode's error, the same error on
// every call.
func (p *Payload) Bytes(c Codec) ([]byte, error) {
	if p.codec == 0 || c == p.codec {
		return p.raw, nil
	}
	if !c.Valid() {
		return nil, fmt.Errorf("payload bytes: %w", &nameError{name: c.String()})
	}
	p.otherOnce.Do(func() {
		v, err := p.Value()
		if err != nil {
			p.otherErr = err
			return
		}
		if p.onEncode != nil {
			p.onEncode()
		}
		p.other, p.otherErr = encode(v, c, outputHint(len(p.raw), p.codec))
	})
	return p.other, p.otherErr
}

// Value returns the decoded document, decoding on the first call only. The
// value is shared: callers must not modify it. An opaque payload fails with
// ErrInvalidPayload, as any operation needing structure on it must.
func (p *Payload) Value() (any, error) {
	if p.codec == 0 {
		return nil, fmt.Errorf("%w: opaque payload", ErrInvalidPayload)
	}
	p.decodeOnce.Do(func() {
		p.value, p.decodeErr = Decode(p.raw, p.codec, p.lim)
	})
	return p.value, p.decodeErr
}
