package rules

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestParsePattern(t *testing.T) {
	tests := []struct {
		pattern string
		names   []string
		wantErr string // substring; "" for a valid pattern
	}{
		{pattern: "sensors/$room/#", names: []string{"room"}},
		{pattern: "users/$uid/profile", names: []string{"uid"}},
		{pattern: "a/$x/+/$y_2/#", names: []string{"x", "y_2"}},
		{pattern: "#"},
		{pattern: "+"},
		{pattern: "a//b"},
		{pattern: "/"},
		{pattern: "$$SYS/#"},
		{pattern: "a$b/c"},
		{pattern: "$a/$b/$c/$d/$e/$f/$g/$h", names: []string{"a", "b", "c", "d", "e", "f", "g", "h"}},
		{pattern: "", wantErr: "empty pattern"},
		{pattern: "a/#/b", wantErr: "# must be the last level"},
		{pattern: "a/b#", wantErr: "must be a whole level"},
		{pattern: "a/+b", wantErr: "must be a whole level"},
		{pattern: "a/$", wantErr: "named segment is $ and a name"},
		{pattern: "a/$1x", wantErr: "named segment is $ and a name"},
		{pattern: "a/$x-y", wantErr: "named segment is $ and a name"},
		{pattern: "a/$env", wantErr: "$env is reserved"},
		{pattern: "$x/a/$x", wantErr: "named segment $x appears twice"},
		{pattern: "$a/$b/$c/$d/$e/$f/$g/$h/$i", wantErr: "more than 8 named segments"},
		{pattern: "a\x00b", wantErr: "NUL"},
		{pattern: "a\xffb", wantErr: "UTF-8"},
		{pattern: strings.Repeat("a", maxPatternLen+1), wantErr: "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			p, err := parsePattern(tt.pattern)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parsePattern(%q) = %v, want error containing %q", tt.pattern, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parsePattern(%q): %v", tt.pattern, err)
			}
			if !slices.Equal(p.names, tt.names) {
				t.Errorf("names = %q, want %q", p.names, tt.names)
			}
		})
	}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, topic string
		want           bool
		segs           map[string]string // named segment values when it matches
	}{
		{"sensors/$room/#", "sensors/kitchen/temp", true, map[string]string{"room": "kitchen"}},
		{"sensors/$room/#", "sensors/kitchen/temp/raw", true, map[string]string{"room": "kitchen"}},
		{"sensors/$room/#", "sensors/kitchen", true, map[string]string{"room": "kitchen"}}, // # matches the parent
		{"sensors/$room/#", "sensors", false, nil},
		{"sensors/$room/#", "sensors/", true, map[string]string{"room": ""}}, // an empty level is a level
		{"sensors/$room/#", "other/kitchen/temp", false, nil},
		{"users/$uid/profile", "users/ann/profile", true, map[string]string{"uid": "ann"}},
		{"users/$uid/profile", "users/ann/profile/x", false, nil},
		{"users/$uid/profile", "users/ann", false, nil},
		{"users/$uid/profile", "users//profile", true, map[string]string{"uid": ""}},
		{"$a/x/$b", "1/x/2", true, map[string]string{"a": "1", "b": "2"}},
		{"a/+/c", "a/b/c", true, nil},
		{"a/+/c", "a/b/d", false, nil},
		{"a/+", "a", false, nil},
		{"a/+", "a/", true, nil},
		{"#", "a/b/c", true, nil},
		{"#", "a", true, nil},
		{"#", "/", true, nil},
		{"a", "a", true, nil},
		{"a", "a/", false, nil},
		{"a", "b", false, nil},
		{"a/#", "a", true, nil},
		{"a/#", "ab", false, nil},
		{"/a", "/a", true, nil},
		{"/a", "a", false, nil},
		// [MQTT-4.7.2-1]: a leading wildcard does not match a $ topic...
		{"#", "$SYS/broker", false, nil},
		{"+/broker", "$SYS/broker", false, nil},
		{"$name/broker", "$SYS/broker", false, nil},
		// ...a literal $ level (written $$) does.
		{"$$SYS/#", "$SYS/broker", true, nil},
		{"$$SYS/$what", "$SYS/broker", true, map[string]string{"what": "broker"}},
		{"a/#", "a/$b", true, nil}, // only the first level counts
		// A subscription filter is matched as text: its + and # are levels.
		{"sensors/$room/#", "sensors/+/temp", true, map[string]string{"room": "+"}},
		{"sensors/$room/#", "sensors/#", true, map[string]string{"room": "#"}},
		{"sensors/kitchen/#", "sensors/+/temp", false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+" "+tt.topic, func(t *testing.T) {
			p, err := parsePattern(tt.pattern)
			if err != nil {
				t.Fatal(err)
			}
			var segs [MaxNamedSegments]string
			if got := p.match(tt.topic, &segs); got != tt.want {
				t.Fatalf("match(%q, %q) = %v, want %v", tt.pattern, tt.topic, got, tt.want)
			}
			for i, name := range p.names {
				if tt.want && segs[i] != tt.segs[name] {
					t.Errorf("$%s = %q, want %q", name, segs[i], tt.segs[name])
				}
			}
		})
	}
}

func TestMatchAllocates(t *testing.T) {
	p, _ := parsePattern("sensors/$room/+/#")
	var segs [MaxNamedSegments]string
	n := testing.AllocsPerRun(100, func() { p.match("sensors/kitchen/temp/raw", &segs) })
	if n != 0 {
		t.Errorf("match allocates %v times", n)
	}
}

// specificityOrder is a list of patterns most specific first, by the
// documented rule.
var specificityOrder = []string{
	"a/b/c",
	"a/b/c/#",
	"a/b/$x",
	"a/b",
	"a/b/#",
	"a/+/c",
	"a/+",
	"a",
	"a/#",
	"$x/b/c",
	"+/b",
	"+/+/+",
	"+/+",
	"+",
	"+/#",
	"#",
}

func TestSpecificityOrder(t *testing.T) {
	pats := make([]pattern, len(specificityOrder))
	for i, s := range specificityOrder {
		p, err := parsePattern(s)
		if err != nil {
			t.Fatal(err)
		}
		pats[i] = p
	}
	for i := range pats {
		for j := range pats {
			got := compareSpecificity(&pats[i], &pats[j])
			want := i - j
			if sign(got) != sign(want) {
				t.Errorf("compare(%q, %q) = %d, want sign %d", pats[i].text, pats[j].text, got, sign(want))
			}
		}
	}
	// Sorting any shuffle gives the order back: the order is total.
	r := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		shuffled := slices.Clone(pats)
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		slices.SortFunc(shuffled, func(a, b pattern) int { return compareSpecificity(&a, &b) })
		for i := range shuffled {
			if shuffled[i].text != specificityOrder[i] {
				t.Fatalf("sorted[%d] = %q, want %q", i, shuffled[i].text, specificityOrder[i])
			}
		}
	}
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}

func TestSpecificityTies(t *testing.T) {
	tests := []struct {
		a, b string
		tie  bool
	}{
		{"a/$x", "a/+", true},
		{"a/$x/#", "a/$y/#", true},
		{"$a/$b", "+/$c", true},
		{"a/b", "a/b", true},
		{"a/$x", "a/x", false},
		{"a/b", "a/c", false},
		{"a", "a/#", false},
		{"a/+", "a/#", false},
	}
	for _, tt := range tests {
		a, _ := parsePattern(tt.a)
		b, _ := parsePattern(tt.b)
		if got := compareSpecificity(&a, &b) == 0; got != tt.tie {
			t.Errorf("tie(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.tie)
		}
	}
}

// TestMostSpecificWins checks through the public API that the most specific
// matching pattern decides, whatever the order of the file.
func TestMostSpecificWins(t *testing.T) {
	const file = `
event:
  "#":                 {publish: "client.id == '#'"}
  "a/#":               {publish: "client.id == 'a/#'"}
  "a":                 {publish: "client.id == 'a'"}
  "+/b":               {publish: "client.id == '+/b'"}
  "a/+":               {publish: "client.id == 'a/+'"}
  "a/$x/c":            {publish: "client.id == 'a/$x/c'"}
  "a/b/c":             {publish: "client.id == 'a/b/c'"}
`
	r, err := Parse([]byte(file), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ topic, want string }{
		{"a/b/c", "a/b/c"},
		{"a/x/c", "a/$x/c"},
		{"a/b", "a/+"}, // the literal a beats the + of +/b
		{"x/b", "+/b"},
		{"a", "a"}, // a beats a/#, which matches a too
		{"a/b/d", "a/#"},
		{"z", "#"},
		{"z/y/x", "#"},
	}
	for _, tt := range tests {
		pat, _, ok := r.Match(Event, tt.topic)
		if !ok || pat != tt.want {
			t.Errorf("Match(%q) = %q, %v; want %q", tt.topic, pat, ok, tt.want)
		}
		// The pattern's rule is the one that decides.
		got, err := r.Allowed(Event, Publish, tt.topic, Env{Client: Client{ID: tt.want}})
		if err != nil || !got {
			t.Errorf("Allowed(%q) = %v, %v; want true from %q", tt.topic, got, err, tt.want)
		}
	}
}
