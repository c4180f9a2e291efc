package auth

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// writeUsers writes a users file into a fresh temporary directory.
func writeUsers(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "users.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// problems splits a joined error into its lines.
func problemLines(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

func TestLoadFileValid(t *testing.T) {
	alice := fastArgon(t, "alice-pw")
	tests := []struct {
		name    string
		content string
		want    map[string]UserInfo
	}{
		{"empty file", "", nil},
		{"only comments", "# nobody yet\n", nil},
		{"null document", "~\n", nil},
		{"users null", "users:\n", nil},
		{"users empty", "users: {}\n", nil},
		{"document marker", "---\nusers: {}\n...\n", nil},
		{"one user", "users:\n  alice:\n    password: " + alice + "\n", map[string]UserInfo{"alice": {Name: "alice"}}},
		{"roles and data", "users:\n  alice:\n    password: '" + alice + "'\n    roles: [admin, ops]\n    data: {room: kitchen}\n",
			map[string]UserInfo{"alice": {Name: "alice", Roles: []string{"admin", "ops"}}}},
		{"null roles and data", "users:\n  alice:\n    password: " + alice + "\n    roles:\n    data:\n", map[string]UserInfo{"alice": {Name: "alice"}}},
		{"unusual names", "users:\n  \"123\":\n    password: " + alice + "\n  ünïcode name:\n    password: " + alice + "\n",
			map[string]UserInfo{"123": {Name: "123"}, "ünïcode name": {Name: "ünïcode name"}}},
		{"anchors", "users:\n  alice: &u\n    password: " + alice + "\n    roles: [ops]\n  bob: *u\n",
			map[string]UserInfo{"alice": {Name: "alice", Roles: []string{"ops"}}, "bob": {Name: "bob", Roles: []string{"ops"}}}},
		{"testdata", mustRead(t, "testdata/users.yaml"), map[string]UserInfo{
			"alice": {Name: "alice", Roles: []string{"admin"}},
			"bob":   {Name: "bob", Roles: []string{"viewer", "bidder"}},
			"carol": {Name: "carol"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := LoadFile(writeUsers(t, tt.content))
			if err != nil {
				t.Fatalf("LoadFile: %v", err)
			}
			got := map[string]UserInfo{}
			for name, u := range f.users.Load().users {
				got[name] = UserInfo{Name: name, Roles: u.roles}
			}
			if len(got) != len(tt.want) {
				t.Fatalf("users %v, want %v", got, tt.want)
			}
			for name, w := range tt.want {
				if g := got[name]; g.Name != w.Name || !slices.Equal(g.Roles, w.Roles) {
					t.Errorf("user %q = %+v, want %+v", name, g, w)
				}
			}
		})
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestLoadFileData(t *testing.T) {
	f, err := LoadFile("testdata/users.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"rooms":  []any{"kitchen", "hall"},
		"limits": map[string]any{"max": 3, "nested": map[string]any{"deep": "yes"}},
	}
	if got := f.users.Load().users["bob"].data; !reflect.DeepEqual(got, want) {
		t.Errorf("bob's data = %#v, want %#v", got, want)
	}
}

// TestLoadFileProblems checks that every problem is reported at once, each
// with its line and key.
func TestLoadFileProblems(t *testing.T) {
	good := fastArgon(t, "pw")
	tests := []struct {
		name    string
		content string
		want    []string // the problems, without the "path:" prefix
	}{
		{"unknown top-level key", "users: {}\nuser:\n  alice: {}\n", []string{`2: unknown key "user": the file has only users`}},
		{"top level is a list", "- alice\n", []string{"1: the file must be a mapping with the key users"}},
		{"users is a list", "users:\n  - alice\n", []string{"2: users: must be a mapping of user names to users"}},
		{"unknown user key", "users:\n  bob:\n    password: " + good + "\n    pasword: x\n", []string{"4: users.bob.pasword: unknown key: a user has password, roles and data"}},
		{"bad hash", "users:\n  bob:\n    password: hunter2\n", []string{"3: users.bob.password: not an argon2id PHC string"}},
		{"password not a string", "users:\n  bob:\n    password: [a]\n", []string{"3: users.bob.password: must be a string (a password hash), not a list"}},
		{"password missing", "users:\n  bob:\n    roles: [x]\n", []string{"2: users.bob: password is missing"}},
		{"user null", "users:\n  bob:\n", []string{"2: users.bob: password is missing"}},
		{"user a string", "users:\n  bob: hunter2\n", []string{"2: users.bob: a user must be a mapping"}},
		{"empty name", "users:\n  \"\":\n    password: " + good + "\n", []string{`2: users."": user name is empty`}},
		{"null name", "users:\n  ~:\n    password: " + good + "\n", []string{`2: users."": user name is empty`}},
		{"control character in name", "users:\n  \"a\\tb\":\n    password: " + good + "\n", []string{"2: users.a\tb: user name has a control character"}},
		{"name not a scalar", "users:\n  ? [a]\n  : {password: " + good + "}\n", []string{"2: users: a user name must be a string, not a list"}},
		{"duplicate user", "users:\n  bob:\n    password: " + good + "\n  bob:\n    password: " + good + "\n", []string{"4: users.bob: defined twice (first at line 2)"}},
		{"duplicate field", "users:\n  bob:\n    password: " + good + "\n    password: " + good + "\n", []string{"4: users.bob.password: defined twice (first at line 3)"}},
		{"roles a string", "users:\n  bob:\n    password: " + good + "\n    roles: admin\n", []string{"4: users.bob.roles: must be a list of role names, not a string"}},
		{"empty role", "users:\n  bob:\n    password: " + good + "\n    roles: [admin, '']\n", []string{"4: users.bob.roles: a role must be a non-empty name"}},
		{"role a mapping", "users:\n  bob:\n    password: " + good + "\n    roles:\n      - {a: b}\n", []string{"5: users.bob.roles: a role must be a non-empty name, not a mapping"}},
		{"repeated role", "users:\n  bob:\n    password: " + good + "\n    roles: [a, a]\n", []string{`4: users.bob.roles: role "a" is listed twice`}},
		{"data a list", "users:\n  bob:\n    password: " + good + "\n    data: [a]\n", []string{"4: users.bob.data: must be a mapping, not a list"}},
		{"data key a number", "users:\n  bob:\n    password: " + good + "\n    data:\n      x:\n        1: one\n", []string{`6: users.bob.data.x: key "1" is a number, not a string: quote it`}},
		{"data duplicate key", "users:\n  bob:\n    password: " + good + "\n    data:\n      x: 1\n      x: 2\n", []string{`6: users.bob.data: mapping key "x" already defined at line 5`}},
		// yaml.v3 panics decoding this (found by FuzzLoadFile).
		{"merge next to a mapping key", "users:\n 0:\n    data: {<<, {0000}}\n", []string{"2: users.0: password is missing", "3: users.0.data: a key is a mapping, not a string"}},
		{"merge of an anchor with a mapping key", "users:\n  a:\n    roles: [&m {{x}: 1}]\n    data: {<<: *m}\n    password: " + good + "\n",
			[]string{"3: users.a.roles: a role must be a non-empty name, not a mapping", "3: users.a.data: cannot unmarshal !!map into string"}},
		{"second document", "users: {}\n---\nusers: {}\n", []string{"2: only one YAML document is allowed"}},
		{"syntax error", "users:\n  bob:\n    password: \"unterminated\n", []string{"3: found unexpected end of stream"}},
		{"syntax error on line 1", "users: [\n", []string{"1: did not find expected node content"}},
		{"tab indentation", "users:\n\tbob: {}\n", []string{"2: found character that cannot start any token"}},
		{"control character", "users:\n  bob:\n    password: \"a\x01b\"\n", []string{"3: control characters are not allowed"}},
		{"bad UTF-8", "users: {}\n# \xff\n", []string{"2: invalid leading UTF-8 octet"}},
		{"several at once", "users:\n  a:\n    password: x\n  b:\n    roles: y\n  c:\n    password: " + good + "\n    data: 1\nother: 1\n", []string{
			"3: users.a.password: not an argon2id PHC string",
			"4: users.b: password is missing",
			"5: users.b.roles: must be a list of role names, not a string",
			"8: users.c.data: must be a mapping, not a number",
			`9: unknown key "other": the file has only users`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeUsers(t, tt.content)
			f, err := LoadFile(path)
			if err == nil {
				t.Fatalf("LoadFile succeeded with %d users, want problems %q", len(f.users.Load().users), tt.want)
			}
			if !errors.Is(err, ErrInvalidUsers) {
				t.Errorf("error %v is not ErrInvalidUsers", err)
			}
			var p *Problem
			if !errors.As(err, &p) || p.Path != path || p.Line < 1 {
				t.Errorf("error %v: first problem %+v, want one with path and line", err, p)
			}
			got := problemLines(err)
			if len(got) != len(tt.want) {
				t.Fatalf("problems:\n%s\nwant %d:\n%s", err, len(tt.want), strings.Join(tt.want, "\n"))
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(got[i], path+":"+w) {
					t.Errorf("problem %d = %q, want it to start with %q", i, got[i], path+":"+w)
				}
			}
		})
	}
}

// TestLoadFileGolden checks the complete report for a file with many
// problems; -update rewrites testdata/bad.golden.
func TestLoadFileGolden(t *testing.T) {
	_, err := LoadFile("testdata/bad.yaml")
	if err == nil {
		t.Fatal("LoadFile(testdata/bad.yaml) succeeded")
	}
	got := err.Error() + "\n"
	if *update {
		if err := os.WriteFile("testdata/bad.golden", []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := mustRead(t, "testdata/bad.golden")
	if got != want {
		t.Errorf("problems:\n%s\nwant (testdata/bad.golden):\n%s", got, want)
	}
}

func TestLoadFileMissing(t *testing.T) {
	_, err := LoadFile(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadFile(missing) = %v, want os.ErrNotExist", err)
	}
}
