package codec

import (
	"encoding/json"
	"fmt"
)

// Detect says whether payload b is structured, and in which codec, given the
// codec the publishing client declared (hint, possibly zero). It returns
// false for an opaque payload. This rule is a protocol contract:
//
//  1. If the first byte of b that is not JSON white space (space, tab, CR,
//     LF) is '{' or '[', and b is valid JSON, b is JSON, whatever the hint.
//  2. Otherwise, if hint is CBOR and b is exactly one complete, well-formed
//     CBOR data item with no bytes after it, b is CBOR.
//  3. Otherwise, if hint is JSON and b is valid JSON (any JSON text,
//     including the scalars 21, "x" and true), b is JSON.
//  4. Otherwise b is opaque. The empty payload is always opaque.
//
// With no hint only rule 1 applies, so `mosquitto_pub -m '{"temp":21}'` is
// always JSON.
//
// Rule 1 cannot misread a CBOR record. '{' (0x7b) and '[' (0x5b) begin a CBOR
// text or byte string whose length follows in 8 bytes. Every byte of a JSON
// text is at least 0x09 (raw control characters other than white space are
// not allowed), so the length read would be at least 0x09 << 56 (6.5e17)
// bytes, and no payload is that long; "{}" and "[]" are too short to hold
// the length at all. A leading
// JSON white space byte is itself a complete one-byte CBOR item (9, 10, 13 or
// -1), so white space followed by anything is not one CBOR item either. No
// payload is both a JSON object or array and one well-formed CBOR item; were
// one ever found, valid JSON wins. CBOR encoders also never use an 8-byte
// length for a string shorter than 4 GiB (RFC 8949 preferred serialization).
//
// Scalars are ambiguous, which is why rules 2 and 3 need the hint: the JSON
// text 7 is the byte 0x37, which is also the complete CBOR item -24.
//
// Detect checks syntax only and ignores Limits: a payload it accepts can still
// fail Decode with ErrTooLarge or ErrTooDeep, or with ErrInvalidPayload where
// the value model refuses it (duplicate map keys, NaN, numbers out of range,
// invalid UTF-8 in CBOR text, CBOR simple values other than false, true, null
// and undefined). The broker rejects such a publish with INVALID_PAYLOAD
// rather than passing it on as opaque. Arrays and maps nested deeper than
// MaxDepthCeiling are not recognised as JSON or CBOR.
func Detect(b []byte, hint Codec) (Codec, bool) {
	if startsJSONContainer(b) && json.Valid(b) {
		return JSON, true
	}
	switch hint {
	case CBOR:
		if wellformedCBOR(b) {
			return CBOR, true
		}
	case JSON:
		if json.Valid(b) {
			return JSON, true
		}
	}
	return 0, false
}

// Classify applies the whole precedence of DESIGN.md "Codecs" to a publish:
// an MQTT 5 Content Type, if present, says what the payload is; otherwise
// Detect decides with the client's declared codec as hint.
//
// A Content Type naming JSON or CBOR (see FromContentType) is trusted but
// checked: a payload that is not valid JSON, or not one well-formed CBOR item,
// fails with ErrInvalidPayload. Any other non-empty Content Type (text/plain,
// image/png) makes the payload opaque: Classify returns 0 and no error, even
// if the payload looks like JSON.
func Classify(b []byte, contentType string, client Codec) (Codec, error) {
	if contentType == "" {
		c, _ := Detect(b, client)
		return c, nil
	}
	c, ok := FromContentType(contentType)
	if !ok {
		return 0, nil
	}
	valid := false
	switch c {
	case JSON:
		valid = json.Valid(b)
	case CBOR:
		valid = wellformedCBOR(b)
	}
	if !valid {
		return 0, fmt.Errorf("%w: content type %s but payload is not %s", ErrInvalidPayload, contentType, c)
	}
	return c, nil
}

// startsJSONContainer reports whether the first non-white-space byte of b is
// '{' or '['.
func startsJSONContainer(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '{', '[':
			return true
		}
		return false
	}
	return false
}
