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
