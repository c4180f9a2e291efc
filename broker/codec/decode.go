package codec

import "fmt"

// Decode parses payload b, encoded with c, into a document value: nil, bool,
// int64, uint64 (only above math.MaxInt64), float64, string, []byte, []any or
// map[string]any.
//
// It fails with ErrTooLarge if b is longer than lim.MaxSize, ErrTooDeep if
// arrays and maps nest deeper than lim.MaxDepth, ErrUnknownCodec if c is not
// JSON or CBOR, and ErrInvalidPayload if b is not one valid JSON text or one
// well-formed CBOR item (trailing bytes other than JSON white space included),
// or holds something the value model refuses; see the package documentation
// for the exact rules. Work and memory are linear in len(b) and the stack is
// bounded by lim.MaxDepth, whatever the input.
//
// The returned value shares no memory with b.
func Decode(b []byte, c Codec, lim Limits) (any, error) {
	lim = lim.withDefaults()
	if !c.Valid() {
		return nil, fmt.Errorf("decode: %w", &nameError{name: c.String()})
	}
	if len(b) > lim.MaxSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(b), lim.MaxSize)
	}
	if c == CBOR {
		return decodeCBOR(b, lim)
	}
	return decodeJSON(b, lim)
}
