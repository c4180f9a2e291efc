package rules

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxNamedSegments is the most named segments ($room) one pattern may have.
// Their values live in fixed slots of the evaluation environment, so that
// binding them allocates nothing.
const MaxNamedSegments = 8

// maxPatternLen is the longest pattern, that of the longest MQTT topic.
const maxPatternLen = 65535

// levelKind is what one level of a pattern matches. The order of the
// constants is not their rank: see rank.
type levelKind uint8

const (
	levelLiteral levelKind = iota // exactly its text
	levelSingle                   // any one level: + or $name
	levelMulti                    // # (the last level): any levels, or none
)

// level is one level of a compiled pattern.
type level struct {
	kind levelKind
	// text is a literal level's text, with a leading $$ unescaped to $.
	text string
	// seg is the slot of a named segment, -1 for + and other kinds.
	seg int
}

// pattern is a compiled topic pattern.
type pattern struct {
	text   string   // as written in the file
	levels []level  // at least one
	names  []string // named segments without their $, in slot order
}

// parsePattern compiles an MQTT topic filter in which a whole level $name
// is a named single-level wildcard. The error says what is wrong with it,
// for a Problem.
func parsePattern(s string) (pattern, error) {
	p := pattern{text: s}
	switch {
	case s == "":
		return p, fmt.Errorf("empty pattern")
	case len(s) > maxPatternLen:
		return p, fmt.Errorf("pattern longer than %d bytes", maxPatternLen)
	case !utf8.ValidString(s):
		return p, fmt.Errorf("pattern is not valid UTF-8")
	case strings.IndexByte(s, 0) >= 0:
		return p, fmt.Errorf("pattern contains a NUL character")
	}
	rest := s
	for more := true; more; {
		var l string
		l, rest, more = strings.Cut(rest, "/")
		switch {
		case l == "#":
			if more {
				return p, fmt.Errorf("# must be the last level")
			}
			p.levels = append(p.levels, level{kind: levelMulti, seg: -1})
		case l == "+":
			p.levels = append(p.levels, level{kind: levelSingle, seg: -1})
		case strings.ContainsAny(l, "+#"):
			return p, fmt.Errorf("level %q: + and # must be a whole level", l)
		case strings.HasPrefix(l, "$$"):
			p.levels = append(p.levels, level{kind: levelLiteral, text: l[1:], seg: -1})
		case strings.HasPrefix(l, "$"):
			name := l[1:]
			if !isSegmentName(name) {
				return p, fmt.Errorf("level %q: a named segment is $ and a name of ASCII letters, digits and _ not starting with a digit (write $$ for a literal $)", l)
			}
			if name == "env" {
				return p, fmt.Errorf("level %q: $env is reserved by the expression language", l)
			}
			for _, n := range p.names {
				if n == name {
					return p, fmt.Errorf("named segment $%s appears twice", name)
				}
			}
			if len(p.names) == MaxNamedSegments {
				return p, fmt.Errorf("more than %d named segments", MaxNamedSegments)
			}
			p.levels = append(p.levels, level{kind: levelSingle, seg: len(p.names)})
			p.names = append(p.names, name)
		default:
			p.levels = append(p.levels, level{kind: levelLiteral, text: l, seg: -1})
		}
	}
	return p, nil
}

// isSegmentName reports whether s is a name for a named segment: it becomes
// the expression variable $s, so it must be an identifier.
func isSegmentName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// match reports whether topic matches p, writing the values of p's named
// segments into segs (slots beyond p's names are left alone, and so are the
// others when it does not match). topic is a topic name, or a topic filter
// whose + and # are taken as plain text. As in MQTT [MQTT-4.7.2-1], a
// pattern whose first level is a wildcard does not match a topic whose first
// level starts with $. It runs for every operation against every pattern
// until one matches, so it walks topic in place and never allocates.
func (p *pattern) match(topic string, segs *[MaxNamedSegments]string) bool {
	if strings.HasPrefix(topic, "$") && p.levels[0].kind != levelLiteral {
		return false
	}
	rest, done := topic, false
	for i := range p.levels {
		l := &p.levels[i]
		if l.kind == levelMulti {
			// # matches what is left, including nothing: x/# matches x.
			return true
		}
		if done {
			return false
		}
		t, r, more := strings.Cut(rest, "/")
		if l.kind == levelLiteral {
			if t != l.text {
				return false
			}
		} else if l.seg >= 0 {
			segs[l.seg] = t
		}
		rest, done = r, !more
	}
	return done
}

// Ranks of a level for specificity, most specific first. A pattern that has
// ended ranks between a single-level wildcard and #: against # that makes x
// beat x/# (both match the topic x, and x matches nothing else); against a
// literal or single level it makes the longer pattern win, which never
// decides a match, since the two cannot match the same topic.
const (
	rankLiteral = iota
	rankSingle
	rankEnd
	rankMulti
)

// rankAt returns the rank of p's level i and, for a literal, its text.
func (p *pattern) rankAt(i int) (int, string) {
	if i >= len(p.levels) {
		return rankEnd, ""
	}
	switch l := p.levels[i]; l.kind {
	case levelLiteral:
		return rankLiteral, l.text
	case levelSingle:
		return rankSingle, ""
	default:
		return rankMulti, ""
	}
}

// compareSpecificity orders patterns most specific first: negative when a
// comes before b. Levels are compared from the left and the first
// difference decides: a literal beats + and $name (equal to each other),
// which beat the end of a pattern, which beats #. Two different literals
// are ordered by their bytes, which makes the order total; such patterns
// never match the same topic. Zero means the patterns match exactly the
// same topics (they differ at most in the names of their segments).
func compareSpecificity(a, b *pattern) int {
	for i := 0; ; i++ {
		ra, ta := a.rankAt(i)
		rb, tb := b.rankAt(i)
		switch {
		case ra != rb:
			return ra - rb
		case ra == rankEnd || ra == rankMulti:
			return 0
		case ra == rankLiteral && ta != tb:
			return strings.Compare(ta, tb)
		}
	}
}
