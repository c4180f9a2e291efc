package codec

import (
	"mime"
	"strconv"
	"strings"
)

// Codec is a wire encoding for structured payloads. The zero value means
// unknown: a client that declared no codec, or a payload that is opaque.
type Codec uint8

// The two wire codecs.
const (
	JSON Codec = iota + 1 // RFC 8259 JSON, content type application/json
	CBOR                  // RFC 8949 CBOR, content type application/cbor
)

// Content types of the two codecs, as Codec.ContentType returns them.
const (
	ContentTypeJSON = "application/json"
	ContentTypeCBOR = "application/cbor"
)

// Valid reports whether c is JSON or CBOR.
func (c Codec) Valid() bool { return c == JSON || c == CBOR }

// String returns "json", "cbor", "unknown" for the zero value, or
// "codec(N)" for any other value.
func (c Codec) String() string {
	switch c {
	case JSON:
		return "json"
	case CBOR:
		return "cbor"
	case 0:
		return "unknown"
	}
	return "codec(" + strconv.Itoa(int(c)) + ")"
}

// ContentType returns the MQTT 5 Content Type for payloads in c, or "" if c
// is not a valid codec.
func (c Codec) ContentType() string {
	switch c {
	case JSON:
		return ContentTypeJSON
	case CBOR:
		return ContentTypeCBOR
	}
	return ""
}

// ParseCodec parses a codec name, "json" or "cbor" in any letter case, with
// surrounding white space ignored. Any other name returns ErrUnknownCodec.
func ParseCodec(s string) (Codec, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "json":
		return JSON, nil
	case "cbor":
		return CBOR, nil
	}
	return 0, &nameError{name: s}
}

// MarshalText implements encoding.TextMarshaler, so a Codec can appear in
// configuration files. It fails with ErrUnknownCodec for an invalid codec.
func (c Codec) MarshalText() ([]byte, error) {
	if !c.Valid() {
		return nil, &nameError{name: c.String()}
	}
	return []byte(c.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseCodec.
func (c *Codec) UnmarshalText(b []byte) error {
	v, err := ParseCodec(string(b))
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// FromContentType returns the codec an MQTT 5 Content Type names, and false
// if it names neither (the payload is then opaque, whatever it looks like).
//
// The rule: the media type is parsed as in RFC 2045 (type and subtype are
// case-insensitive, white space around them is ignored).
//   - application/json and any application/*+json (RFC 6839 structured
//     syntax suffix, e.g. application/merge-patch+json) are JSON;
//   - application/cbor and any application/*+cbor (e.g.
//     application/senml+cbor) are CBOR.
//
// Parameters are ignored, except that a charset parameter must be utf-8 (any
// case; "utf8" is accepted too): JSON on the wire is UTF-8 only (RFC 8259
// section 8.1), so "application/json; charset=latin1" is not JSON. A Content
// Type that does not parse is not recognised.
func FromContentType(ct string) (Codec, bool) {
	if ct == "" {
		return 0, false
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return 0, false
	}
	if cs, ok := params["charset"]; ok {
		if cs = strings.ToLower(cs); cs != "utf-8" && cs != "utf8" {
			return 0, false
		}
	}
	sub, ok := strings.CutPrefix(mt, "application/")
	if !ok {
		return 0, false
	}
	switch {
	case sub == "json" || (strings.HasSuffix(sub, "+json") && len(sub) > len("+json")):
		return JSON, true
	case sub == "cbor" || (strings.HasSuffix(sub, "+cbor") && len(sub) > len("+cbor")):
		return CBOR, true
	}
	return 0, false
}

// nameError reports an unknown codec name; it matches ErrUnknownCodec.
type nameError struct{ name string }

func (e *nameError) Error() string { return "codec: unknown codec " + strconv.Quote(e.name) }
func (e *nameError) Unwrap() error { return ErrUnknownCodec }
