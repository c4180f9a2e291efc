package listen

import "strings"

// Overlap reports whether some topic name matches both topic filters a and
// b, which the caller has validated. A listener is notified of exactly those
// subscriptions that could receive something it publishes, and that is this
// relation. It runs for every listener on every subscription change, so it
// walks both filters in place instead of splitting them and never allocates.
func Overlap(a, b string) bool {
	if dollarBlocked(a, b) || dollarBlocked(b, a) {
		return false
	}
	for {
		la, ra, moreA := strings.Cut(a, "/")
		lb, rb, moreB := strings.Cut(b, "/")
		if la == "#" || lb == "#" {
			return true
		}
		if la != lb && la != "+" && lb != "+" {
			return false
		}
		switch {
		case moreA && moreB:
			a, b = ra, rb
		case moreA:
			// Only a trailing # can match the level where b ended,
			// since x/# matches x.
			return ra == "#"
		case moreB:
			return rb == "#"
		default:
			return true
		}
	}
}

// dollarBlocked reports whether the first level of wild is a wildcard and
// that of other a concrete level starting with $: such a wildcard never
// matches a $ topic [MQTT-4.7.2-1], so the filters cannot overlap even though
// their levels would.
func dollarBlocked(wild, other string) bool {
	w, _, _ := strings.Cut(wild, "/")
	o, _, _ := strings.Cut(other, "/")
	return (w == "+" || w == "#") && strings.HasPrefix(o, "$")
}

// Topic returns a topic name that matches both overlapping filters a and b,
// used to tell a listener which topic a new subscription wants. It is the
// most specific such topic, so the listener loses nothing the subscription
// pins down: each level is the concrete level of whichever filter has one, a
// level where both have + is empty, and after a # the other filter's levels
// follow. Because x/# matches x, the topic ends where both filters reach #,
// so the result may be empty (for # and #): the caller prefixes it anyway.
// For filters that do not overlap the result is unspecified, but Topic does
// not panic.
func Topic(a, b string) string {
	var t strings.Builder
	for first := true; ; first = false {
		la, ra, moreA := strings.Cut(a, "/")
		lb, rb, moreB := strings.Cut(b, "/")
		// After a # the other filter's levels follow; if it has a # here
		// too, that adds nothing, since x/# matches x.
		if la == "#" || lb == "#" {
			rest := a
			if la == "#" {
				rest = b
			}
			appendLevels(&t, rest, first)
			return t.String()
		}
		if !first {
			t.WriteByte('/')
		}
		if la != "+" {
			t.WriteString(la)
		} else if lb != "+" {
			t.WriteString(lb)
		}
		// Where one filter ends, the other can only continue with #, which
		// matches the level just written, so the topic ends here too.
		if !moreA || !moreB {
			return t.String()
		}
		a, b = ra, rb
	}
}

// appendLevels writes the levels of filter f as topic levels, a + as an empty
// level, stopping before a # since it matches the parent level. first says
// whether t is still at the topic's first level, which needs no separator.
func appendLevels(t *strings.Builder, f string, first bool) {
	for more := true; more; first = false {
		var l string
		l, f, more = strings.Cut(f, "/")
		if l == "#" {
			return
		}
		if !first {
			t.WriteByte('/')
		}
		if l != "+" {
			t.WriteString(l)
		}
	}
}

// Watched returns the filter a subscription actually receives on: a member
// of the share group in $share/<group>/<filter> receives on <filter>, so that
// is what a listener must be matched against. The prefix is matched without
// regard to case, as the broker does. A malformed share with no filter part,
// which the broker rejects anyway, gives "".
func Watched(filter string) string {
	prefix, rest, ok := strings.Cut(filter, "/")
	if !strings.EqualFold(prefix, "$share") {
		return filter
	}
	if !ok {
		return ""
	}
	_, f, _ := strings.Cut(rest, "/")
	return f
}
