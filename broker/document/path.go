package document

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Path limits. A path breaking one of them is ErrInvalidPath, never
// truncated.
const (
	// MaxPathLen is the longest path string ParsePath accepts, in bytes.
	MaxPathLen = 1024
	// MaxPathDepth is the largest number of segments in a path.
	MaxPathDepth = 32
	// MaxIndex is the largest array index in a path. Set pads an array with
	// nil up to the index, so it also bounds what one small request can
	// allocate.
	MaxIndex = 10_000
)

// Segment is one step of a Path: an object key, or an array index when
// IsIndex is true.
type Segment struct {
	Key     string
	Index   int
	IsIndex bool
}

// Key returns a segment that selects the object member k.
func Key(k string) Segment { return Segment{Key: k} }

// Index returns a segment that selects the array element i.
func Index(i int) Segment { return Segment{Index: i, IsIndex: true} }

// Path addresses a value inside a document, from the root. The empty Path
// is the root itself. Paths are compared with slices.Equal.
type Path []Segment

// String renders p in the canonical syntax ParsePath reads: keys joined by
// '.', indexes as [n]. For every p returned by ParsePath(s), p.String() == s.
// A constructed Path whose keys contain '.', '[' or ']' or are empty renders
// as is and does not parse back.
func (p Path) String() string {
	var b strings.Builder
	for i, s := range p {
		if s.IsIndex {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(s.Index))
			b.WriteByte(']')
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s.Key)
	}
	return b.String()
}

// ParsePath parses a path in deepstream syntax: object keys separated by
// '.', array indexes in brackets, as in "player.spouses[0]", "a.b[2].c",
// "a[0][1]" or "[3].name" (the root is an array). The empty string is the
// root.
//
// A key is any non-empty run of valid UTF-8 other than '.', '[' and ']';
// there is no escaping, so keys holding those characters cannot be
// addressed. An index is a decimal number from 0 to MaxIndex without sign,
// spaces or leading zeros ("[0]" but not "[00]" or "[01]"), so every path
// has exactly one spelling.
//
// Errors wrap ErrInvalidPath and name the byte offset and the problem:
// empty key ("a..b", ".a", "a."), unclosed bracket, unexpected ']', empty,
// non-numeric or negative index, leading zero, index above MaxIndex, text
// after ']' that is not '.' or '[', key not valid UTF-8, more than
// MaxPathDepth segments, or more than MaxPathLen bytes.
func ParsePath(s string) (Path, error) {
	if s == "" {
		return nil, nil
	}
	if len(s) > MaxPathLen {
		return nil, fmt.Errorf("%w: path is %d bytes, longer than %d", ErrInvalidPath, len(s), MaxPathLen)
	}
	fail := func(pos int, format string, args ...any) (Path, error) {
		return nil, fmt.Errorf("%w: %q: %s at offset %d", ErrInvalidPath, s, fmt.Sprintf(format, args...), pos)
	}
	p := make(Path, 0, 1+strings.Count(s, ".")+strings.Count(s, "["))
	i := 0
	wantKey := s[0] != '['
	for i < len(s) || wantKey {
		if wantKey {
			wantKey = false
			start := i
			for i < len(s) && s[i] != '.' && s[i] != '[' && s[i] != ']' {
				i++
			}
			if i == start {
				return fail(start, "empty key")
			}
			k := s[start:i]
			if !utf8.ValidString(k) {
				return fail(start, "key is not valid UTF-8")
			}
			p = append(p, Key(k))
		} else {
			switch s[i] {
			case '.':
				i++
				wantKey = true
				continue
			case '[':
				open := i
				i++
				start := i
				for i < len(s) && s[i] >= '0' && s[i] <= '9' {
					i++
				}
				switch {
				case i == len(s):
					return fail(open, "unclosed bracket")
				case i == start && s[i] == '-':
					return fail(start, "negative index")
				case i == start && s[i] == ']':
					return fail(start, "empty index")
				case s[i] != ']':
					return fail(start, "non-numeric index")
				case i-start > 1 && s[start] == '0':
					return fail(start, "leading zero in index %s", s[start:i])
				}
				n := MaxIndex + 1
				if i-start <= len(strconv.Itoa(MaxIndex)) {
					n, _ = strconv.Atoi(s[start:i]) // only digits: cannot fail
				}
				if n > MaxIndex {
					return fail(start, "index %s above %d", s[start:i], MaxIndex)
				}
				i++ // ']'
				p = append(p, Index(n))
			case ']':
				return fail(i, "unexpected ']'")
			default:
				return fail(i, "expected '.' or '[' after ']'")
			}
		}
		if len(p) > MaxPathDepth {
			return fail(i, "more than %d segments", MaxPathDepth)
		}
	}
	return p, nil
}

// check reports whether a constructed Path keeps to the limits ParsePath
// enforces, so that no caller can make Set allocate without bound.
func (p Path) check() error {
	if len(p) > MaxPathDepth {
		return fmt.Errorf("%w: %d segments, more than %d", ErrInvalidPath, len(p), MaxPathDepth)
	}
	for i, s := range p {
		if s.IsIndex && (s.Index < 0 || s.Index > MaxIndex) {
			return fmt.Errorf("%w: %s: index %d outside 0..%d", ErrInvalidPath, p[:i+1], s.Index, MaxIndex)
		}
	}
	return nil
}
