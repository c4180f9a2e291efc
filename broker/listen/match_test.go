package listen

import (
	"strings"
	"testing"
)

// matches is the reference matcher: the plain reading of the MQTT matching
// rules, independent of the in-place walk in Overlap.
func matches(filter, topic string) bool {
	f := strings.Split(filter, "/")
	t := strings.Split(topic, "/")
	if (f[0] == "+" || f[0] == "#") && strings.HasPrefix(t[0], "$") {
		return false // [MQTT-4.7.2-1]
	}
	for i, l := range f {
		if l == "#" {
			return true
		}
		if i >= len(t) || (l != "+" && l != t[i]) {
			return false
		}
	}
	return len(f) == len(t)
}

// validFilter reports whether f is a filter the broker would accept, the
// input Overlap and Topic are specified for.
func validFilter(f string) bool {
	if f == "" || strings.ContainsRune(f, 0) {
		return false
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		if strings.Contains(l, "#") && (l != "#" || i != len(levels)-1) {
			return false
		}
		if strings.Contains(l, "+") && l != "+" {
			return false
		}
	}
	return true
}

func TestMatchesReference(t *testing.T) {
	tests := []struct {
		filter, topic string
		want          bool
	}{
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a/+", "a/", true},
		{"a/+", "a", false},
		{"a/#", "a", true},
		{"a/#", "a/b/c", true},
		{"#", "", true},
		{"#", "$a", false},
		{"+/b", "$a/b", false},
		{"$a/#", "$a/b", true},
		{"A", "a", false},
	}
	for _, tt := range tests {
		t.Run(tt.filter+" "+tt.topic, func(t *testing.T) {
			if got := matches(tt.filter, tt.topic); got != tt.want {
				t.Errorf("matches(%q, %q) = %v, want %v", tt.filter, tt.topic, got, tt.want)
			}
		})
	}
}

func TestOverlap(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		// Exact levels.
		{"a", "a", true},
		{"a", "b", false},
		{"a/b/c", "a/b/c", true},
		{"a/b/c", "a/b/d", false},
		{"A/b", "a/b", false},
		// +.
		{"+", "a", true},
		{"+", "+", true},
		{"a/+/c", "a/b/c", true},
		{"a/+/c", "a/b/d", false},
		{"+/+", "a/b", true},
		{"+/b", "a/+", true},
		// # at every position.
		{"#", "a", true},
		{"#", "a/b/c", true},
		{"a/#", "a/b/c", true},
		{"a/b/#", "a/b/c", true},
		{"a/b/#", "a/c/c", false},
		{"a/b/c/#", "a/b/c", true},
		{"a/#", "b/#", false},
		{"a/#", "a/b/#", true},
		// # matches the parent level.
		{"a/#", "a", true},
		{"a/b/#", "a/b", true},
		{"a/b/#", "a", false},
		{"+/#", "a", true},
		// Different level counts.
		{"a", "a/b", false},
		{"a/b", "a/b/c", false},
		{"+", "a/b", false},
		{"a/+", "a", false},
		{"+/+", "+", false},
		// Empty levels.
		{"a//b", "a//b", true},
		{"a//b", "a/+/b", true},
		{"a//b", "a/b", false},
		{"a//b", "a/#", true},
		{"/a", "+/a", true},
		{"/a", "#", true},
		{"a/", "a/+", true},
		{"a/", "a/#", true},
		{"a/", "a", false},
		// $ first levels.
		{"#", "$SYS/x", false},
		{"#", "$a", false},
		{"+/x", "$a/x", false},
		{"+", "$a", false},
		{"+/#", "$a/b", false},
		{"$a/#", "$a/+", true},
		{"$a/#", "$a", true},
		{"$a", "$a", true},
		{"$a", "$b", false},
		{"$a/+", "$a/b", true},
		{"a/$b", "a/+", true},
		{"a/$b", "#", true},
		{"a/$b", "a/#", true},
		{"$", "#", false},
		// # vs + combinations.
		{"#", "+", true},
		{"#", "#", true},
		{"#", "+/+/+", true},
		{"+/#", "#", true},
		{"+/#", "+", true},
		{"+/+/#", "+", false},
		{"+/+/#", "+/+", true},
		// Examples from the package documentation.
		{"sensors/+/temperature", "sensors/k1/temperature", true},
		{"sensors/+/temperature", "sensors/+/temperature", true},
		{"sensors/+/temperature", "sensors/#", true},
		{"sensors/+/temperature", "#", true},
		{"sensors/+/temperature", "sensors/k1/humidity", false},
		{"sensors/+/temperature", "sensors/+", false},
		{"sensors/+/temperature", "sensors/+/temperature/#", true},
	}
	for _, tt := range tests {
		t.Run(tt.a+" "+tt.b, func(t *testing.T) {
			if got := Overlap(tt.a, tt.b); got != tt.want {
				t.Errorf("Overlap(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
			}
			if got := Overlap(tt.b, tt.a); got != tt.want {
				t.Errorf("Overlap(%q, %q) = %v, want %v", tt.b, tt.a, got, tt.want)
			}
		})
	}
}

func TestTopic(t *testing.T) {
	tests := []struct {
		a, b, want string
	}{
		{"sensors/+/temperature", "sensors/k1/temperature", "sensors/k1/temperature"},
		{"sensors/+/temperature", "sensors/+/temperature", "sensors//temperature"},
		{"sensors/+/temperature", "sensors/#", "sensors//temperature"},
		{"sensors/+/temperature", "#", "sensors//temperature"},
		{"#", "a/+/c", "a//c"},
		{"#", "#", ""},
		{"#", "+", ""},
		{"+", "+", ""},
		{"+", "a", "a"},
		{"a/#", "a", "a"},
		{"a/#", "a/#", "a"},
		{"a/#", "a/b/#", "a/b"},
		{"a/b/#", "+/+/+/d", "a/b//d"},
		{"+/#", "+/+", "/"},
		{"a/+", "a/#", "a/"},
		{"a//b", "a/+/b", "a//b"},
		{"$a/#", "$a/+", "$a/"},
		{"$a/+", "+/b/#", "$a/b"}, // does not overlap: only must not panic
		{"+/b", "a/+", "a/b"},
		{"a/$b", "+/+", "a/$b"},
	}
	for _, tt := range tests {
		t.Run(tt.a+" "+tt.b, func(t *testing.T) {
			for _, p := range [][2]string{{tt.a, tt.b}, {tt.b, tt.a}} {
				if got := Topic(p[0], p[1]); got != tt.want {
					t.Errorf("Topic(%q, %q) = %q, want %q", p[0], p[1], got, tt.want)
				}
			}
		})
	}
}

func TestWatched(t *testing.T) {
	tests := []struct {
		filter, want string
	}{
		{"a/b", "a/b"},
		{"#", "#"},
		{"$SYS/#", "$SYS/#"},
		{"$share/g/a/b", "a/b"},
		{"$share/g/#", "#"},
		{"$SHARE/g/+/x", "+/x"},
		{"$Share/g/$a/x", "$a/x"},
		{"$share/g/", ""},
		{"$share/g", ""},
		{"$share", ""},
		{"$sharex/g/a", "$sharex/g/a"},
		{"share/g/a", "share/g/a"},
		{"a/$share/g/b", "a/$share/g/b"},
	}
	for _, tt := range tests {
		t.Run(tt.filter, func(t *testing.T) {
			if got := Watched(tt.filter); got != tt.want {
				t.Errorf("Watched(%q) = %q, want %q", tt.filter, got, tt.want)
			}
		})
	}
}

// join returns every string made of n levels from alphabet joined by "/".
func join(alphabet []string, n int) []string {
	out := []string{""}
	for i := range n {
		var next []string
		for _, p := range out {
			for _, l := range alphabet {
				if i == 0 {
					next = append(next, l)
				} else {
					next = append(next, p+"/"+l)
				}
			}
		}
		out = next
	}
	return out
}

// TestExhaustive checks Overlap and Topic against a brute-force oracle for
// every pair of small filters. Two filters of at most 3 levels that overlap
// are both matched by a topic of at most 3 levels whose levels are their
// concrete levels or empty; "c" stands for any text neither filter names and
// the fourth level for anything below a #, so the topic enumeration is a
// complete oracle.
func TestExhaustive(t *testing.T) {
	var filters []string
	for n := 1; n <= 3; n++ {
		for _, f := range join([]string{"a", "b", "$a", "", "+", "#"}, n) {
			if validFilter(f) {
				filters = append(filters, f)
			}
		}
	}
	var topics []string
	for n := 1; n <= 4; n++ {
		topics = append(topics, join([]string{"a", "b", "$a", "", "c"}, n)...)
	}
	// matched[i][j] says whether filters[i] matches topics[j].
	matched := make([][]bool, len(filters))
	for i, f := range filters {
		matched[i] = make([]bool, len(topics))
		for j, topic := range topics {
			matched[i][j] = matches(f, topic)
		}
	}
	pairs, overlapping := 0, 0
	for i, a := range filters {
		for k, b := range filters {
			want := false
			for j := range topics {
				if matched[i][j] && matched[k][j] {
					want = true
					break
				}
			}
			got := Overlap(a, b)
			if got != want {
				t.Errorf("Overlap(%q, %q) = %v, want %v", a, b, got, want)
			}
			if got != Overlap(b, a) {
				t.Errorf("Overlap(%q, %q) != Overlap(%q, %q)", a, b, b, a)
			}
			pairs++
			if !got {
				continue
			}
			overlapping++
			topic := Topic(a, b)
			if strings.ContainsAny(topic, "+#") || !matches(a, topic) || !matches(b, topic) {
				t.Errorf("Topic(%q, %q) = %q, which does not match both", a, b, topic)
			}
		}
	}
	t.Logf("%d filters, %d topics, %d pairs, %d overlapping", len(filters), len(topics), pairs, overlapping)
}

func FuzzOverlap(f *testing.F) {
	seeds := [][2]string{
		{"sensors/+/temperature", "sensors/k1/temperature"},
		{"sensors/+/temperature", "sensors/#"},
		{"#", "$SYS/x"},
		{"+/x", "$a/x"},
		{"$a/#", "$a/+"},
		{"#", "+"},
		{"a//b", "a/+/b"},
		{"a/#", "a"},
		{"/", "+/+"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if !validFilter(a) || !validFilter(b) {
			t.Skip()
		}
		overlap := Overlap(a, b)
		if overlap != Overlap(b, a) {
			t.Fatalf("Overlap(%q, %q) = %v but not symmetric", a, b, overlap)
		}
		topic := Topic(a, b)
		both := matches(a, topic) && matches(b, topic)
		if overlap && (!both || strings.ContainsAny(topic, "+#")) {
			t.Fatalf("Overlap(%q, %q) but Topic = %q does not match both", a, b, topic)
		}
		if both && !strings.ContainsAny(topic, "+#") && !overlap {
			t.Fatalf("Topic(%q, %q) = %q matches both but Overlap is false", a, b, topic)
		}
	})
}

var sink bool

var benchPairs = [][2]string{
	{"sensors/+/temperature", "sensors/k1/temperature"},
	{"sensors/+/temperature", "sensors/k1/humidity"},
	{"sensors/+/temperature", "sensors/#"},
	{"sensors/+/temperature", "#"},
	{"#", "$SYS/broker/clients"},
	{"home/livingroom/lamp/state", "home/livingroom/lamp/state"},
}

func TestOverlapDoesNotAllocate(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		for _, p := range benchPairs {
			sink = Overlap(p[0], p[1])
		}
	})
	if allocs != 0 {
		t.Errorf("Overlap allocates %v times per run, want 0", allocs)
	}
}

func BenchmarkOverlap(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		for _, p := range benchPairs {
			sink = Overlap(p[0], p[1])
		}
	}
}
