package rules

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// want is one expected problem: its line, where, and part of its message.
type want struct {
	line  int
	where string
	msg   string
}

func TestParseProblems(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []want
	}{
		{"bad YAML", "record:\n  a: {read: true\n", []want{{2, "", "did not find expected ',' or '}' (in the mapping that starts on this line)"}}},
		{"bad YAML indentation", "record:\n  a:\n    read: true\n   write: true\n", []want{{2, "", "did not find expected key (in the mapping that starts on this line)"}}},
		{"bad YAML on line 1", "record: a: b\n", []want{{1, "", "mapping values are not allowed in this context"}}},
		{"bad YAML list", "record:\n  - a\n  b: c\n", []want{{2, "", "did not find expected '-' indicator (in the list that starts on this line)"}}},
		{"unclosed quote", "record:\n  a: {read: 'x}\n", []want{{2, "", "found unexpected end of stream"}}},
		{"tab", "record:\n\ta: {read: true}\n", []want{{2, "", "found character that cannot start any token"}}},
		{"unknown anchor", "record:\n  a: *nowhere\n", []want{{0, "", "unknown anchor 'nowhere' referenced"}}},
		{"two documents", "record: {}\n---\nevent: {}\n", []want{{2, "", "only one YAML document"}}},
		{"not a mapping", "- record\n", []want{{1, "", "must be a mapping of sections"}}},
		{"unknown section", "records: {}\n", []want{{1, "", `unknown section "records"`}}},
		{"device section", "device: {}\n", []want{{1, "device", "not supported yet"}}},
		{"section twice", "record: {}\nevent: {}\nrecord: {}\n", []want{{3, "record", "given twice (first on line 1)"}}},
		{"bad default", "default: maybe\n", []want{{1, "default", "must be allow or deny"}}},
		{"default bool", "default: true\n", []want{{1, "default", "must be allow or deny"}}},
		{"section not a mapping", "record: [a]\n", []want{{1, "record", "must be a mapping of patterns"}}},
		{"unknown action", "record:\n  a: {publish: true}\n", []want{{2, "record.a", `unknown action "publish" (the record section has read, create, write, delete)`}}},
		{"action of another section", "presence:\n  a: {write: true}\n", []want{{2, "presence.a", `unknown action "write"`}}},
		{"action twice", "record:\n  a:\n    read: true\n    read: false\n", []want{{4, "record.a.read", "given twice (first on line 3)"}}},
		{"actions not a mapping", "record:\n  a: true\n", []want{{2, "record.a", "must be a mapping of actions (read, create, write, delete)"}}},
		{"bad pattern", "record:\n  a/#/b: {read: true}\n", []want{{2, "record.a/#/b", "bad pattern: # must be the last level"}}},
		{"bad named segment", "event:\n  a/$1: {publish: true}\n", []want{{2, "event.a/$1", "bad pattern: level \"$1\""}}},
		{"pattern key not a string", "record:\n  [a, b]: {read: true}\n", []want{{2, "record", "a key must be a plain string"}}},
		{"merge key", "record:\n  a: &r {read: true}\n  <<: {b: *r}\n", []want{{3, "record", "merge keys (<<) are not supported"}}},
		{"rule a number", "record:\n  a: {read: 1}\n", []want{{2, "record.a.read", "a rule must be true, false or an expression string"}}},
		{"rule a list", "record:\n  a: {read: [true]}\n", []want{{2, "record.a.read", "a rule must be true"}}},
		{"rule missing", "record:\n  a:\n    read:\n", []want{{3, "record.a.read", "missing rule"}}},
		{"empty expression", "record:\n  a: {read: '  '}\n", []want{{2, "record.a.read", "empty expression"}}},
		{"expression not bool", "record:\n  a: {read: '1 + 2'}\n", []want{{2, "record.a.read", "expected bool, but got int"}}},
		{"expression a string", "record:\n  a: {read: \"'yes'\"}\n", []want{{2, "record.a.read", "expected bool, but got string"}}},
		{"syntax error", "record:\n  a: {read: 'user.id =='}\n", []want{{2, "record.a.read", "unexpected token EOF (column"}}},
		{"unknown name", "record:\n  a: {read: \"usr.id == 'x'\"}\n", []want{{2, "record.a.read", "unknown name usr (column 1)"}}},
		{"unknown field of user", "record:\n  a: {read: \"user.name == 'x'\"}\n", []want{{2, "record.a.read", "type"}}},
		{"unknown segment", "record:\n  \"a/$id\": {read: \"$uid == 'x'\"}\n", []want{{2, "record.a/$id.read", "unknown name $uid: the pattern's named segments are $id"}}},
		{"segment without any", "record:\n  \"a/+\": {read: \"$id == 'x'\"}\n", []want{{2, "record.a/+.read", "the pattern has no named segments"}}},
		{"$env", "record:\n  a: {read: \"$env.data != nil\"}\n", []want{{2, "record.a.read", "$env is not available"}}},
		{"record of a number", "record:\n  a: {read: 'record(1) == nil'}\n", []want{{2, "record.a.read", "cannot use int as argument (type string) to call record"}}},
		{"builtin now", "record:\n  a: {read: 'now() > now'}\n", []want{{2, "record.a.read", "not callable"}}},
		{"too many nodes", "record:\n  a: {read: '" + strings.Repeat("true && ", MaxExpressionNodes) + "true'}\n", []want{{2, "record.a.read", "exceeds maximum allowed nodes"}}},
		{"error on a later line of a literal block", "record:\n  a:\n    read: |\n      user.id == 'x' &&\n      usr.id == 'y'\n", []want{{5, "record.a.read", "unknown name usr"}}},
		{"duplicate pattern", "record:\n  a/b: {read: true}\n  a/b: {read: false}\n", []want{{3, "record.a/b", "duplicate pattern: given twice (first on line 2)"}}},
		{"duplicate pattern by naming", "event:\n  \"a/$x/#\": {publish: true}\n  \"b\": {publish: true}\n  \"a/+/#\": {publish: false}\n", []want{{4, "event.a/+/#", `duplicate pattern: matches the same topics as "a/$x/#" (line 2)`}}},
		{"too large", "#" + strings.Repeat(" ", MaxFileSize), []want{{0, "", "file is larger than"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Parse([]byte(tt.src), "t.yaml")
			checkProblems(t, r, err, tt.want)
		})
	}
}

func checkProblems(t *testing.T, r *Rules, err error, want []want) {
	t.Helper()
	if r != nil {
		t.Errorf("Parse returned rules along with problems")
	}
	var le *LoadError
	if !errors.As(err, &le) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want a *LoadError wrapping ErrInvalid", err)
	}
	if len(le.Problems) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(le.Problems), len(want), err)
	}
	for i, w := range want {
		p := le.Problems[i]
		if p.File != "t.yaml" || p.Line != w.line || p.Where != w.where || !strings.Contains(p.Msg, w.msg) {
			t.Errorf("problem %d = %s\nwant t.yaml:%d: %s: ...%s...", i, p, w.line, w.where, w.msg)
		}
	}
}

// TestParseReportsEverything loads a file with many problems: each is
// reported, with its line, in the order of the file, in the golden form.
func TestParseReportsEverything(t *testing.T) {
	b, err := os.ReadFile("testdata/bad.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Parse(b, "testdata/bad.yaml")
	if err == nil {
		t.Fatal("bad.yaml parsed")
	}
	got := err.Error() + "\n"
	golden := "testdata/bad.golden"
	if *update {
		if werr := os.WriteFile(golden, []byte(got), 0o644); werr != nil {
			t.Fatal(werr)
		}
	}
	wantB, rerr := os.ReadFile(golden)
	if rerr != nil {
		t.Fatal(rerr)
	}
	if got != string(wantB) {
		t.Errorf("problems differ from %s (go test -update rewrites it):\ngot:\n%s\nwant:\n%s", golden, got, wantB)
	}
	// Each line of bad.yaml marked "# problem" has a problem.
	var le *LoadError
	errors.As(err, &le)
	lines := map[int]bool{}
	for _, p := range le.Problems {
		lines[p.Line] = true
	}
	for i, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "# problem") && !lines[i+1] {
			t.Errorf("line %d has no problem reported: %s", i+1, l)
		}
	}
}

func TestParseValid(t *testing.T) {
	tests := []struct{ name, src string }{
		{"empty", ""},
		{"comments only", "# nothing yet\n"},
		{"null sections", "record:\nevent: ~\n"},
		{"empty actions", "record:\n  \"a/#\": {}\n  \"b/#\": ~\n"},
		{"anchors", "record:\n  a: &r {read: true, write: &w \"user.id == 'x'\"}\n  b: *r\n  c: {write: *w}\n"},
		{"block expression", "record:\n  a:\n    write: |\n      user.data.canBid &&\n      data.price > oldData.price\n"},
		{"literal $", "event:\n  \"$$SYS/#\": {subscribe: true}\n"},
		{"every section", "default: allow\nrecord: {a: {read: true}}\nevent: {a: {publish: true}}\nrpc: {a: {provide: true}}\nlisten: {a: {listen: true}}\npresence: {a: {read: true}}\n"},
		{"yaml booleans", "record: {a: {read: True, write: FALSE}}\n"},
		{"helpers", `record: {a: {read: "any(user.roles, # in ['a', 'b']) && lower(client.id) matches '^s-[0-9]+$' && (oldData?.owner ?? user.id) == user.id && now.Sub(date('2020-01-01')) > duration('1h')"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse([]byte(tt.src), "t.yaml"); err != nil {
				t.Fatalf("Parse: %v", err)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	r, err := Load("testdata/example.yaml")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if r.Name() != "testdata/example.yaml" || r.DefaultAllow() {
		t.Errorf("Name = %q, DefaultAllow = %v", r.Name(), r.DefaultAllow())
	}
	ok, err := r.Allowed(Record, Write, "auctions/1", Env{
		User:    User{Data: map[string]any{"canBid": true}},
		Data:    map[string]any{"price": 2.0},
		OldData: map[string]any{"price": 1.0},
	})
	if !ok || err != nil {
		t.Errorf("bid: Allowed = %v, %v", ok, err)
	}

	_, err = Load(filepath.Join(t.TempDir(), "missing.yaml"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), "rules: ") {
		t.Errorf("missing file: err = %v, want fs.ErrNotExist", err)
	}

	big := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(big, bytes.Repeat([]byte("#\n"), MaxFileSize), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(big); !errors.Is(err, ErrInvalid) {
		t.Errorf("big file: err = %v, want ErrInvalid", err)
	}
}

// TestPermissionsDocExamples parses every rules file in docs/PERMISSIONS.md
// (the ```yaml blocks), so the documentation cannot drift from the code.
func TestPermissionsDocExamples(t *testing.T) {
	b, err := os.ReadFile("../../docs/PERMISSIONS.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(b), "```yaml\n")[1:]
	if len(blocks) == 0 {
		t.Fatal("no yaml blocks in PERMISSIONS.md")
	}
	for i, blk := range blocks {
		src, _, _ := strings.Cut(blk, "```")
		if strings.HasPrefix(src, "# invalid") {
			// Each line with a comment after its content has a problem,
			// and no other line has.
			_, err := Parse([]byte(src), "doc")
			var le *LoadError
			if !errors.As(err, &le) {
				t.Errorf("block %d, marked invalid, parses:\n%s", i+1, src)
				continue
			}
			got := map[int]bool{}
			for _, p := range le.Problems {
				got[p.Line] = true
			}
			for n, l := range strings.Split(src, "\n") {
				content, _, commented := strings.Cut(l, "# ")
				if marked := commented && strings.TrimSpace(content) != ""; marked != got[n+1] {
					t.Errorf("block %d line %d (%s): marked %v, problem %v\n%v", i+1, n+1, l, marked, got[n+1], err)
				}
			}
			continue
		}
		if _, err := Parse([]byte(src), fmt.Sprintf("PERMISSIONS.md block %d", i+1)); err != nil {
			t.Errorf("%v\n%s", err, src)
		}
	}
}

func TestHolderReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rules.yaml")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	var h Holder
	if ok, _ := h.Rules().Allowed(Record, Read, "a", Env{}); ok {
		t.Fatal("empty Holder allows")
	}
	write("record:\n  a: {read: true}\n")
	if err := h.Reload(path, log); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	good := h.Rules()
	if ok, _ := good.Allowed(Record, Read, "a", Env{}); !ok {
		t.Fatal("loaded rules deny")
	}

	write("record:\n  a: {read: 'usr.id'}\n  b/#/c: {read: true}\nbogus: 1\n")
	logs.Reset()
	err := h.Reload(path, log)
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("Reload of a bad file: %v", err)
	}
	if h.Rules() != good {
		t.Error("a failed reload replaced the rules in force")
	}
	for _, want := range []string{"line=2", "line=3", "line=4", "where=record.a.read", `where=record.b/#/c`, "keeping the rules in force"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}

	os.Remove(path)
	if err := h.Reload(path, log); !errors.Is(err, fs.ErrNotExist) || h.Rules() != good {
		t.Errorf("Reload of a missing file: %v; rules replaced: %v", err, h.Rules() != good)
	}
}

func ExampleRules_Allowed() {
	r, err := Parse([]byte(`
record:
  "auctions/$id":
    write: "user.data.canBid && data.price > oldData.price"
`), "rules.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	bidder := User{ID: "ann", Data: map[string]any{"canBid": true}}
	for _, bid := range []float64{9, 11} {
		ok, err := r.Allowed(Record, Write, "auctions/7", Env{
			User:    bidder,
			Data:    map[string]any{"price": bid},
			OldData: map[string]any{"price": 10.0},
		})
		fmt.Println(bid, ok, err)
	}
	// Output:
	// 9 false <nil>
	// 11 true <nil>
}

func ExampleParse_problems() {
	_, err := Parse([]byte(`
record:
  "auctions/$id":
    write: "data.price > oldData.prise +"
    publish: true
  "a/#/b": {read: true}
event:
  "a/$x/#": {publish: true}
  "a/+/#": {publish: false}
`), "rules.yaml")
	fmt.Println(err)
	// Output:
	// rules.yaml:4: record.auctions/$id.write: unexpected token EOF (column 28)
	// rules.yaml:5: record.auctions/$id: unknown action "publish" (the record section has read, create, write, delete)
	// rules.yaml:6: record.a/#/b: bad pattern: # must be the last level
	// rules.yaml:9: event.a/+/#: duplicate pattern: matches the same topics as "a/$x/#" (line 8)
}
