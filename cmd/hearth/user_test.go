package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hearth-iot/hearth/broker/auth"
)

func authenticates(t *testing.T, path, user, password string) auth.Decision {
	t.Helper()
	f, err := auth.LoadFile(path)
	if err != nil {
		t.Fatalf("LoadFile(%s): %v", path, err)
	}
	d, _, err := f.Authenticate(context.Background(), auth.Credentials{Username: user, Password: []byte(password)})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestUserCommand adds, replaces, lists and removes users in the default
// users file, ./hearth-data/users.yaml, in order.
func TestUserCommand(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hearth-data", "users.yaml")
	steps := []struct {
		name       string
		stdin      string
		args       []string
		wantCode   int
		wantStdout string // exact when wantCode is 0 and the step lists
		wantStderr string // substring
	}{
		{"add with roles", "pw-alice\n", []string{"user", "add", "--role", "admin", "--role", "ops", "alice"}, 0, "added user alice in hearth-data/users.yaml\n", ""},
		{"add without a final newline", "pw-bob", []string{"user", "add", "bob"}, 0, "added user bob in hearth-data/users.yaml\n", ""},
		{"add an existing user", "other\n", []string{"user", "add", "alice"}, 1, "", "already exists: alice (--replace changes the password)"},
		{"replace keeps roles", "pw-alice-2\r\n", []string{"user", "add", "--replace", "alice"}, 0, "set user alice in hearth-data/users.yaml\n", ""},
		{"replace with roles", "pw-bob-2\n", []string{"user", "add", "--replace", "--role", "viewer", "bob"}, 0, "set user bob in hearth-data/users.yaml\n", ""},
		{"list", "", []string{"user", "list"}, 0, "alice\tadmin,ops\nbob\tviewer\n", ""},
		{"remove", "", []string{"user", "remove", "bob"}, 0, "removed user bob from hearth-data/users.yaml\n", ""},
		{"remove again", "", []string{"user", "remove", "bob"}, 1, "", "no such user: bob"},
		{"list after remove", "", []string{"user", "list"}, 0, "alice\tadmin,ops\n", ""},
		{"empty password", "\n", []string{"user", "add", "carol"}, 1, "", "empty password"},
		{"no password at all", "", []string{"user", "add", "carol"}, 1, "", "empty password"},
		{"password too long", strings.Repeat("x", 5000) + "\n", []string{"user", "add", "carol"}, 1, "", "password longer than 4096 bytes"},
		{"only the first line", "first\nsecond\n", []string{"user", "add", "dave"}, 0, "added user dave in hearth-data/users.yaml\n", ""},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			stdout, stderr, code := runHearthIn(t, dir, s.stdin, s.args...)
			if code != s.wantCode {
				t.Fatalf("exit %d, want %d; stdout %q, stderr %q", code, s.wantCode, stdout, stderr)
			}
			if s.wantCode == 0 && stdout != s.wantStdout {
				t.Errorf("stdout %q, want %q", stdout, s.wantStdout)
			}
			if s.wantCode == 0 && stderr != "" {
				t.Errorf("stderr %q, want none", stderr)
			}
			if s.wantCode != 0 && (!strings.Contains(stderr, s.wantStderr) || stdout != "") {
				t.Errorf("stdout %q, stderr %q; want no stdout and an error with %q", stdout, stderr, s.wantStderr)
			}
		})
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("users file mode %v, want 0600", fi.Mode().Perm())
	}
	for _, c := range []struct {
		user, password string
		want           auth.Decision
	}{
		{"alice", "pw-alice-2", auth.Allow}, // the \r\n was stripped
		{"alice", "pw-alice", auth.Deny},
		{"bob", "pw-bob-2", auth.Pass},
		{"carol", "", auth.Pass},
		{"dave", "first", auth.Allow},
	} {
		if d := authenticates(t, path, c.user, c.password); d != c.want {
			t.Errorf("%s with %q: %v, want %v", c.user, c.password, d, c.want)
		}
	}
}

func TestUserCommandUsersFlag(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "elsewhere", "u.yaml")
	if _, stderr, code := runHearthIn(t, dir, "pw\n", "user", "add", "--users", path, "--role", "admin", "root"); code != 0 {
		t.Fatalf("add: exit %d, stderr %q", code, stderr)
	}
	if stdout, stderr, code := runHearthIn(t, dir, "", "user", "list", "--users", path); code != 0 || stdout != "root\tadmin\n" {
		t.Errorf("list: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "hearth-data")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("--users given, yet the default directory exists: %v", err)
	}
	if d := authenticates(t, path, "root", "pw"); d != auth.Allow {
		t.Errorf("root: %v", d)
	}
}

func TestUserCommandFailures(t *testing.T) {
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken.yaml")
	if err := os.WriteFile(broken, []byte("users:\n  bob:\n    password: plain\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		wantStderr string
	}{
		{"list a missing file", []string{"user", "list"}, "no such file or directory"},
		{"remove from a missing file", []string{"user", "remove", "bob"}, "no such file or directory"},
		{"list a broken file", []string{"user", "list", "--users", broken}, broken + ":3: users.bob.password: not an argon2id PHC string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := runHearthIn(t, dir, "", tt.args...)
			if code != 1 || stdout != "" || !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("exit %d, stdout %q, stderr %q; want 1 and an error with %q", code, stdout, stderr, tt.wantStderr)
			}
		})
	}
}

func TestUserCommandUsage(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string // substring, for help
		wantStderr string // substring
	}{
		{"no subcommand", []string{"user"}, 2, "", "Usage:\n  hearth user add"},
		{"unknown subcommand", []string{"user", "frob"}, 2, "", `hearth user: unknown command "frob"`},
		{"add without a name", []string{"user", "add"}, 2, "", "hearth user add: NAME is missing"},
		{"add with two names", []string{"user", "add", "a", "b"}, 2, "", `unexpected argument "b"`},
		{"flag after the name", []string{"user", "add", "a", "--role", "x"}, 2, "", `unexpected argument "--role" (flags go before NAME)`},
		{"unknown flag", []string{"user", "add", "--bogus", "a"}, 2, "", "flag provided but not defined: -bogus"},
		{"replace on remove", []string{"user", "remove", "--replace", "a"}, 2, "", "flag provided but not defined: -replace"},
		{"remove without a name", []string{"user", "remove"}, 2, "", "NAME is missing"},
		{"list with a name", []string{"user", "list", "a"}, 2, "", `unexpected argument "a"`},
		{"empty name", []string{"user", "add", ""}, 2, "", "invalid user name"},
		{"control character in name", []string{"user", "add", "a\tb"}, 2, "", "has a control character"},
		{"empty role", []string{"user", "add", "--role", "", "a"}, 2, "", "empty role name"},
		{"repeated role", []string{"user", "add", "--role", "x", "--role", "x", "a"}, 2, "", `"x" given twice`},
		{"help", []string{"user", "help"}, 0, "hearth user list [--users FILE]", ""},
		{"-h", []string{"user", "-h"}, 0, "hearth user add [--users FILE]", ""},
		{"add -h", []string{"user", "add", "-h"}, 0, "", "-replace"},
		{"top-level usage lists user", []string{"help"}, 0, "hearth user add|remove|list", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			// Usage errors are found before any password is read.
			stdout, stderr, code := runHearthIn(t, dir, "pw\n", tt.args...)
			if code != tt.wantCode || !strings.Contains(stdout, tt.wantStdout) || !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d, stdout with %q, stderr with %q", code, stdout, stderr, tt.wantCode, tt.wantStdout, tt.wantStderr)
			}
			if _, err := os.Stat(filepath.Join(dir, "hearth-data")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a usage error or help created the data directory: %v", err)
			}
		})
	}
}
