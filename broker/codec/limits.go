package codec

import "math"

// Default limits, used where a Limits field is zero or negative.
const (
	// DefaultMaxSize is the default maximum payload size: 1 MiB.
	DefaultMaxSize = 1 << 20

	// DefaultMaxDepth is the default maximum nesting of arrays and maps.
	DefaultMaxDepth = 32

	// MaxDepthCeiling caps Limits.MaxDepth: deeper documents are never
	// accepted, whatever the configuration. It matches the nesting limit of
	// encoding/json, which Detect relies on.
	MaxDepthCeiling = 10000
)

// Limits bound what Decode accepts. The zero value applies the defaults.
// Exceeding a limit is an error, never truncation.
type Limits struct {
	// MaxSize is the largest payload accepted, in bytes of encoded input.
	// Larger payloads fail with ErrTooLarge. Zero or negative means
	// DefaultMaxSize.
	//
	// It bounds the input only: transcoding can make a payload larger (a
	// CBOR byte string grows by a third as base64url JSON text).
	MaxSize int

	// MaxDepth is the deepest nesting of arrays and maps accepted: a scalar
	// has depth 0, [] and {} depth 1, [[1]] depth 2. Deeper payloads fail
	// with ErrTooDeep. Zero or negative means DefaultMaxDepth; values above
	// MaxDepthCeiling mean MaxDepthCeiling.
	MaxDepth int
}

// withDefaults returns l with zero fields replaced by defaults and MaxDepth
// capped.
func (l Limits) withDefaults() Limits {
	if l.MaxSize <= 0 {
		l.MaxSize = DefaultMaxSize
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	l.MaxDepth = min(l.MaxDepth, MaxDepthCeiling)
	return l
}

// maxElements bounds the element count of one CBOR array or map: every
// element takes at least one byte of input, so no legitimate item has more
// elements than the payload has bytes. fxamacker/cbor accepts [16, MaxInt32].
func (l Limits) maxElements() int {
	return max(16, min(l.MaxSize, math.MaxInt32))
}
