package codec

// Sentinel errors. Test for them with errors.Is: returned errors usually wrap
// one of these with a short description of what was wrong.
//
// The broker maps them to protocol error codes: ErrTooLarge to TOO_LARGE,
// ErrInvalidPayload (which ErrTooDeep also matches) to INVALID_PAYLOAD, MQTT 5
// reason code 0x99 (payload format invalid).
var (
	// ErrInvalidPayload is returned when a payload is not a valid document in
	// the codec it claims or was detected to be: malformed JSON or CBOR,
	// duplicate map keys, NaN or infinite numbers, integers outside the value
	// model, unsupported CBOR simple values, map keys that are arrays or maps,
	// or an opaque payload where structure is required. Encode returns it for
	// a value outside the document value model.
	ErrInvalidPayload error = &codecError{msg: "codec: invalid payload"}

	// ErrTooDeep is returned when arrays and maps nest deeper than
	// Limits.MaxDepth. It also matches ErrInvalidPayload, so callers that
	// only distinguish TOO_LARGE from INVALID_PAYLOAD need not test for it.
	ErrTooDeep error = &codecError{msg: "codec: nesting too deep", parent: ErrInvalidPayload}

	// ErrTooLarge is returned when a payload is longer than Limits.MaxSize
	// bytes. Payloads are never truncated.
	ErrTooLarge error = &codecError{msg: "codec: payload too large"}

	// ErrUnknownCodec is returned for a codec name other than "json" or
	// "cbor", and by Decode, Encode, Transcode and Payload.Bytes when given a
	// Codec that is neither JSON nor CBOR.
	ErrUnknownCodec error = &codecError{msg: "codec: unknown codec"}

	// errMalformed marks syntax errors (as opposed to well-formed input the
	// value model rejects), so tests can check that Detect and Decode agree.
	errMalformed error = &codecError{msg: "codec: malformed payload", parent: ErrInvalidPayload}
)

// codecError is a sentinel that may belong to a broader sentinel, so that
// errors.Is(ErrTooDeep, ErrInvalidPayload) holds.
type codecError struct {
	msg    string
	parent error
}

func (e *codecError) Error() string { return e.msg }
func (e *codecError) Unwrap() error { return e.parent }
