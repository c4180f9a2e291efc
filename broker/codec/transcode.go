package codec

import "fmt"

// Transcode converts payload b from codec from to codec to. When from == to it
// returns b itself, the same slice, without looking at it: a subscriber in the
// publisher's codec gets the publisher's bytes. Otherwise it is Decode
// followed by Encode, with their errors; the round-trip rules in the package
// documentation say what changes. Both codecs must be JSON or CBOR, else
// ErrUnknownCodec.
func Transcode(b []byte, from, to Codec, lim Limits) ([]byte, error) {
	if !from.Valid() || !to.Valid() {
		return nil, fmt.Errorf("transcode %s to %s: %w", from, to, ErrUnknownCodec)
	}
	if from == to {
		return b, nil
	}
	v, err := Decode(b, from, lim)
	if err != nil {
		return nil, err
	}
	return encode(v, to, outputHint(len(b), from))
}

// outputHint guesses the size of the JSON form of an n-byte payload in codec
// from, so the encoder rarely grows its buffer: JSON is usually a little
// larger than CBOR and the same size as itself.
func outputHint(n int, from Codec) int {
	if from == CBOR {
		return n + n/2
	}
	return n
}
