package codec

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// decodeJSON parses one JSON text (RFC 8259) into a document value. It
// accepts exactly the language of encoding/json's Valid, and reads strings as
// encoding/json does (invalid UTF-8 and lone surrogates become U+FFFD); a
// fuzz test holds it to both. It recurses once per array or object level,
// after checking that level against lim.MaxDepth, so the stack stays bounded.
func decodeJSON(b []byte, lim Limits) (any, error) {
	p := jsonParser{b: b, maxDepth: lim.MaxDepth}
	p.skipSpace()
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.off != len(p.b) {
		return nil, p.syntax("data after the top-level value")
	}
	return v, nil
}

type jsonParser struct {
	b        []byte
	off      int
	maxDepth int
}

func (p *jsonParser) syntax(what string) error {
	if p.off >= len(p.b) {
		return fmt.Errorf("%w: JSON: unexpected end of input", errMalformed)
	}
	return fmt.Errorf("%w: JSON: %s at offset %d", errMalformed, what, p.off)
}

func (p *jsonParser) skipSpace() {
	for p.off < len(p.b) {
		switch p.b[p.off] {
		case ' ', '\t', '\n', '\r':
			p.off++
		default:
			return
		}
	}
}

// value parses the value at p.off; depth counts the enclosing containers.
func (p *jsonParser) value(depth int) (any, error) {
	if p.off >= len(p.b) {
		return nil, p.syntax("")
	}
	switch c := p.b[p.off]; {
	case c == '{':
		if depth >= p.maxDepth {
			return nil, fmt.Errorf("%w: JSON deeper than %d levels", ErrTooDeep, p.maxDepth)
		}
		return p.object(depth + 1)
	case c == '[':
		if depth >= p.maxDepth {
			return nil, fmt.Errorf("%w: JSON deeper than %d levels", ErrTooDeep, p.maxDepth)
		}
		return p.array(depth + 1)
	case c == '"':
		return p.str()
	case c == '-' || ('0' <= c && c <= '9'):
		return p.number()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	}
	return nil, p.syntax("invalid character")
}

func (p *jsonParser) literal(word string) error {
	if len(p.b)-p.off < len(word) || string(p.b[p.off:p.off+len(word)]) != word {
		return p.syntax("invalid literal")
	}
	p.off += len(word)
	return nil
}

func (p *jsonParser) array(depth int) (any, error) {
	p.off++ // '['
	out := []any{}
	p.skipSpace()
	if p.off < len(p.b) && p.b[p.off] == ']' {
		p.off++
		return out, nil
	}
	for {
		p.skipSpace()
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		if end, err := p.separator(']', "array"); err != nil {
			return nil, err
		} else if end {
			return out, nil
		}
	}
}

// separator reads what follows an element of an array or object: a comma
// (more to come) or its closing byte (end).
func (p *jsonParser) separator(closing byte, what string) (end bool, err error) {
	p.skipSpace()
	if p.off >= len(p.b) {
		return false, p.syntax("")
	}
	switch p.b[p.off] {
	case ',':
		p.off++
		return false, nil
	case closing:
		p.off++
		return true, nil
	}
	return false, p.syntax(fmt.Sprintf("expected , or %c in %s", closing, what))
}

func (p *jsonParser) object(depth int) (any, error) {
	p.off++ // '{'
	out := map[string]any{}
	p.skipSpace()
	if p.off < len(p.b) && p.b[p.off] == '}' {
		p.off++
		return out, nil
	}
	for {
		p.skipSpace()
		if p.off >= len(p.b) || p.b[p.off] != '"' {
			return nil, p.syntax("expected object key")
		}
		k, err := p.str()
		if err != nil {
			return nil, err
		}
		key := k.(string)
		p.skipSpace()
		if p.off >= len(p.b) || p.b[p.off] != ':' {
			return nil, p.syntax("expected : after object key")
		}
		p.off++
		p.skipSpace()
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("%w: duplicate JSON object key %q", ErrInvalidPayload, key)
		}
		out[key] = v
		if end, err := p.separator('}', "object"); err != nil {
			return nil, err
		} else if end {
			return out, nil
		}
	}
}

// number scans the JSON number grammar, then converts with jsonNumber.
func (p *jsonParser) number() (any, error) {
	start := p.off
	b := p.b
	i := p.off
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	default:
		p.off = i
		return nil, p.syntax("invalid number")
	}
	integer := true
	if i < len(b) && b[i] == '.' {
		integer = false
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			p.off = i
			return nil, p.syntax("invalid number")
		}
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		integer = false
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			p.off = i
			return nil, p.syntax("invalid number")
		}
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	}
	p.off = i
	lit := b[start:i]
	// Fast path: integers of up to 18 digits fit int64 without strconv.
	if integer && len(lit) <= 18 {
		neg := lit[0] == '-'
		if neg {
			lit = lit[1:]
		}
		var n int64
		for _, c := range lit {
			n = n*10 + int64(c-'0')
		}
		if neg {
			n = -n
		}
		return n, nil
	}
	return jsonNumber(string(b[start:i]))
}

// str parses a string at p.off (which is '"').
func (p *jsonParser) str() (any, error) {
	p.off++
	start := p.off
	ascii := true
	for i := start; i < len(p.b); i++ {
		switch c := p.b[i]; {
		case c == '"':
			p.off = i + 1
			if ascii || utf8.Valid(p.b[start:i]) {
				return string(p.b[start:i]), nil
			}
			return p.strSlow(start)
		case c == '\\':
			return p.strSlow(start)
		case c < 0x20:
			p.off = i
			return nil, p.syntax("control character in string")
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	p.off = len(p.b)
	return nil, p.syntax("")
}

// strSlow decodes a string with escapes or invalid UTF-8, from start (just
// after the opening quote).
func (p *jsonParser) strSlow(start int) (any, error) {
	b := p.b
	out := make([]byte, 0, 16)
	i := start
	for i < len(b) {
		c := b[i]
		switch {
		case c == '"':
			p.off = i + 1
			return string(out), nil
		case c < 0x20:
			p.off = i
			return nil, p.syntax("control character in string")
		case c == '\\':
			i++
			if i >= len(b) {
				p.off = i
				return nil, p.syntax("")
			}
			switch e := b[i]; e {
			case '"', '\\', '/':
				out = append(out, e)
				i++
			case 'b':
				out = append(out, '\b')
				i++
			case 'f':
				out = append(out, '\f')
				i++
			case 'n':
				out = append(out, '\n')
				i++
			case 'r':
				out = append(out, '\r')
				i++
			case 't':
				out = append(out, '\t')
				i++
			case 'u':
				r, ok := hex4(b[i+1:])
				if !ok {
					p.off = i
					return nil, p.syntax("invalid \\u escape")
				}
				i += 5
				if utf16.IsSurrogate(r) {
					// A high surrogate followed by an escaped low one is one
					// rune; anything else is U+FFFD, as in encoding/json.
					r2, ok := rune(-1), false
					if len(b)-i >= 6 && b[i] == '\\' && b[i+1] == 'u' {
						r2, ok = hex4(b[i+2:])
					}
					if dec := utf16.DecodeRune(r, r2); ok && dec != utf8.RuneError {
						r = dec
						i += 6
					} else {
						r = utf8.RuneError
					}
				}
				out = utf8.AppendRune(out, r)
			default:
				p.off = i
				return nil, p.syntax("invalid escape")
			}
		case c < utf8.RuneSelf:
			out = append(out, c)
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			out = utf8.AppendRune(out, r) // invalid bytes become U+FFFD
			i += size
		}
	}
	p.off = len(b)
	return nil, p.syntax("")
}

// hex4 reads four hex digits.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// jsonNumber converts a JSON number literal. An integer literal (no fraction,
// no exponent) becomes int64, or uint64 above math.MaxInt64; one outside both
// ranges becomes the nearest float64. Any other literal becomes float64, so
// 1.0 and 1e2 are floats. A literal too large for float64 is refused.
func jsonNumber(s string) (any, error) {
	if !strings.ContainsAny(s, ".eE") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return i, nil
		}
		if s[0] != '-' {
			if u, err := strconv.ParseUint(s, 10, 64); err == nil {
				return u, nil
			}
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return nil, fmt.Errorf("%w: JSON number %q", errMalformed, s)
	}
	if math.IsInf(f, 0) {
		return nil, fmt.Errorf("%w: JSON number %.40q out of range", ErrInvalidPayload, s)
	}
	return f, nil
}
