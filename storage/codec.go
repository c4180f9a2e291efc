package storage

import (
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

// encMode writes core deterministic CBOR (RFC 8949 section 4.2.1), so equal
// values are equal bytes on disk.
var encMode = func() cbor.EncMode {
	m, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err) // static options: cannot fail
	}
	return m
}()

// decMode bounds what a damaged file can make the decoder allocate. It
// accepts text strings that are not valid UTF-8: MQTT clients can send such
// topics and client ids, the encoder writes Go strings as they are, and one
// such value must not make a whole bucket unreadable.
var decMode = func() cbor.DecMode {
	m, err := cbor.DecOptions{
		UTF8:             cbor.UTF8DecodeInvalid,
		MaxNestedLevels:  16,
		MaxArrayElements: 1 << 16,
		MaxMapPairs:      1 << 16,
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
	}.DecMode()
	if err != nil {
		panic(err) // static options: cannot fail
	}
	return m
}()

func encode(v any) ([]byte, error) {
	b, err := encMode.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("storage: encode %T: %w", v, err)
	}
	return b, nil
}

func decode(b []byte, v any) error {
	if err := decMode.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %T: %v", ErrCorrupt, v, err)
	}
	return nil
}

// rawItem is one CBOR data item kept encoded, like cbor.RawMessage, except
// that decoding refuses what encode would refuse to write back (indefinite
// lengths, content of the wrong type for tags 0 to 3): every value that
// reads can be written again, as PutRecord must be able to.
type rawItem []byte

func (r rawItem) MarshalCBOR() ([]byte, error) { return cbor.RawMessage(r).MarshalCBOR() }

// IsZero makes omitzero drop an empty item, as omitempty does only for
// cbor.RawMessage itself.
func (r rawItem) IsZero() bool { return len(r) == 0 }

func (r *rawItem) UnmarshalCBOR(b []byte) error {
	// Running the encoder is the one way to apply its checks; it returns
	// a copy of b, which is what we must keep anyway.
	c, err := encMode.Marshal(cbor.RawMessage(b))
	if err != nil {
		return err
	}
	*r = c
	return nil
}
