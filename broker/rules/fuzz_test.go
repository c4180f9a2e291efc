package rules

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzParse feeds the loader arbitrary files: it must never panic, must
// either return rules or a *LoadError whose every problem names the file
// and a line of it, and rules it returns must answer any topic without
// panicking.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, "auctions/7")
	}
	for _, s := range []string{
		evalRules,
		"",
		"default: allow\n",
		"record:\n  \"a/$x/#\": {read: \"$x == 'b'\", write: \"data.n > oldData.n\"}\n",
		"event:\n  \"#\": {publish: true, subscribe: false}\n  \"$$SYS/#\": {subscribe: \"'admin' in user.roles\"}\n",
		"record:\n  a: {read: \"record('b').ok\"}\n",
		"record:\n  a: &x {read: true}\n  b: *x\n",
		"record:\n  a:\n    read: |\n      user.id ==\n      'x'\n",
		"record: {a: {read: 'all(user.roles, # != \"x\")'}}",
		"rpc: [\n",
		"- a\n",
		"record:\n  a/#/b: {read: 1}\n  a/+: {}\n  a/$q: ~\n",
	} {
		f.Add([]byte(s), "a/b")
	}
	env := Env{
		User:    User{ID: "u", Roles: []string{"admin"}, Data: map[string]any{"canBid": true}},
		Client:  Client{ID: "sensor-1", Protocol: "5"},
		Data:    map[string]any{"price": 2.0, "n": 1.0, "ok": true},
		OldData: map[string]any{"price": 1.0, "n": 0.0},
		Now:     time.Unix(1e9, 0),
		Records: &fakeRecords{values: map[string]any{"b": map[string]any{"ok": true}}},
	}
	f.Fuzz(func(t *testing.T, b []byte, topic string) {
		r, err := Parse(b, "fuzz.yaml")
		if err != nil {
			var le *LoadError
			if r != nil || !errors.As(err, &le) || len(le.Problems) == 0 {
				t.Fatalf("Parse = %v, %v: want nil and a *LoadError with problems", r, err)
			}
			// YAML breaks lines at CR as well as LF (and yaml.v3 at NEL,
			// LS and PS); a problem may be reported just past the end.
			lines := 2 + strings.Count(string(b), "\n") + strings.Count(string(b), "\r") +
				strings.Count(string(b), "\u0085") + strings.Count(string(b), "\u2028") + strings.Count(string(b), "\u2029")
			for _, p := range le.Problems {
				if p.File != "fuzz.yaml" || p.Line < 0 || p.Line > lines || p.Msg == "" {
					t.Fatalf("bad problem %+v for a file of %d lines", p, lines)
				}
			}
			return
		}
		for s := Record; s <= Presence; s++ {
			r.Match(s, topic)
			for _, a := range Actions(s) {
				r.Uses(s, a, topic)
				if _, err := r.Allowed(s, a, topic, env); err != nil && !errors.Is(err, ErrEvaluation) {
					t.Fatalf("Allowed(%s, %s, %q): unexpected error %v", s, a, topic, err)
				}
			}
		}
	})
}
