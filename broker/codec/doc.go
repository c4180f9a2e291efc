// Package codec converts MQTT payloads between the wire, JSON (RFC 8259) or
// CBOR (RFC 8949) bytes, and Hearth's document value model, and says which of
// the two a payload is.
//
// # Value model
//
// A document value is one of nil, bool, int64, uint64 (only for integers
// above math.MaxInt64), float64, string, []byte, []any or map[string]any.
// Decode produces only these types; Encode accepts only these.
//
// # Which codec
//
// Each client has one codec (WebSocket clients default to JSON). An MQTT 5
// Content Type on a publish says what that payload is (FromContentType,
// Classify); otherwise Detect decides, with the client's codec as hint. JSON
// objects and arrays are recognised whatever the hint. Payloads that are
// neither JSON nor CBOR are opaque: they pass through untouched, and
// operations that need structure fail on them with ErrInvalidPayload.
//
// # Fan-out
//
// Payload hands each subscriber the bytes for its codec, transcoding at most
// once per codec per message; a subscriber in the publisher's codec gets the
// publisher's bytes unchanged. Records are stored as Encode(v, CBOR), RFC 8949
// core deterministic encoding.
//
// # Decoding rules
//
// JSON numbers: an integer literal (no fraction, no exponent) decodes to
// int64, or to uint64 above math.MaxInt64; an integer literal outside both
// ranges decodes to the nearest float64. Any other number decodes to float64,
// so 1.0 and 1e2 are floats. A number too large for float64 (1e400) is
// refused. Duplicate object keys are refused.
//
// CBOR:
//   - integers decode to int64, or uint64 above math.MaxInt64; negative
//     integers below math.MinInt64 are refused;
//   - float16, float32 and float64 decode to float64; NaN and infinities are
//     refused, because JSON cannot carry them and every record must be
//     deliverable to a JSON subscriber;
//   - byte strings decode to []byte, text strings to string (invalid UTF-8 is
//     refused); indefinite-length strings, arrays and maps are accepted;
//   - false, true and null decode to bool and nil, undefined to nil; every
//     other simple value is refused;
//   - tag 0 (date/time text) and tag 1 (epoch time) decode to their content,
//     which must be a text string and a number respectively; tags 2 and 3
//     (bignums) decode to int64 or uint64 if they fit, else are refused; every
//     other tag, including 55799 (self-described CBOR), is dropped and its
//     content kept;
//   - map keys become strings: text keys as they are, every other scalar key
//     as its JSON text without quotes (integers in decimal, 1 -> "1", -5 ->
//     "-5"; floats as JSON numbers, 1.5 -> "1.5"; true, false, null; byte
//     strings as base64url); array and map keys are refused, and so is a map
//     with two keys that are equal after stringification (1 and "1").
//
// Refusals are ErrInvalidPayload. Limits bound size (ErrTooLarge) and nesting
// (ErrTooDeep) for both codecs; in CBOR the well-formedness check that bounds
// the stack also counts each tag applied directly to another tag as a level.
// Hostile input cannot make Decode allocate more than a constant times its
// length or recurse deeper than Limits.MaxDepth.
//
// # JSON forms and round trips
//
// CBOR to JSON and back is lossless except for:
//   - byte strings: JSON carries them as base64url text without padding, and
//     that text comes back as a string, not bytes;
//   - tags: dropped on decoding (see above), so they never come back;
//   - non-text map keys: stringified on decoding, so they come back as text;
//   - integral floats: 1.0 is float64 1, written 1 in JSON, which reads back
//     as int64 1 (numerically equal, type changed); -0.0 is written 0 and
//     comes back as the integer 0;
//   - undefined comes back as null, and bignums as plain integers.
//
// JSON to CBOR and back is lossless for every value Decode accepts: JSON
// output uses the shortest digits that read back as the same float64.
// Encoding is canonical in both codecs (sorted keys, shortest forms), so
// decoding and re-encoding a canonical payload reproduces it byte for byte.
package codec
