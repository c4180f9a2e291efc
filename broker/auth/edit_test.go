package auth

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// cheapHashes makes the editors hash with tiny argon2id parameters for the
// test: HashPassword's 64 MiB would make these tests slow under -race.
func cheapHashes(t *testing.T) {
	old := hashNew
	hashNew = func(password []byte) (string, error) {
		if len(password) == 0 {
			return "", ErrEmptyPassword
		}
		return hashArgon2id(password, 64, 1, 1), nil
	}
	t.Cleanup(func() { hashNew = old })
}

func checkMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s has mode %v, want %v", path, got, want)
	}
}

func login(t *testing.T, path, user, password string) Decision {
	t.Helper()
	f, err := LoadFile(path)
	if err != nil {
		t.Fatalf("LoadFile after an edit: %v", err)
	}
	d, _, err := f.Authenticate(context.Background(), Credentials{Username: user, Password: []byte(password)})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestAddUserRealHash adds a user with HashPassword's own parameters to a
// file that does not exist yet, in a directory that does not either.
func TestAddUserRealHash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "users.yaml")
	if err := AddUser(path, "alice", []byte("s3cret"), []string{Admin}); err != nil {
		t.Fatal(err)
	}
	checkMode(t, path, 0o600)
	if d := login(t, path, "alice", "s3cret"); d != Allow {
		t.Errorf("alice with her password: %v", d)
	}
	if d := login(t, path, "alice", "s3cre"); d != Deny {
		t.Errorf("alice with a wrong password: %v", d)
	}
	if b := mustRead(t, path); !strings.Contains(b, "$argon2id$v=19$m=65536,t=3,p=2$") {
		t.Errorf("file holds no argon2id hash:\n%s", b)
	}
}

func TestEditUsers(t *testing.T) {
	cheapHashes(t)
	path := filepath.Join(t.TempDir(), "users.yaml")
	steps := []struct {
		name    string
		edit    func() error
		wantErr error
		want    []UserInfo // ListUsers afterwards
		login   [2]string  // a user and password that must then be allowed
	}{
		{"add to a new file", func() error { return AddUser(path, "alice", []byte("a1"), []string{"admin"}) }, nil,
			[]UserInfo{{"alice", []string{"admin"}}}, [2]string{"alice", "a1"}},
		{"add without roles", func() error { return AddUser(path, "bob", []byte("b1"), nil) }, nil,
			[]UserInfo{{"alice", []string{"admin"}}, {"bob", nil}}, [2]string{"bob", "b1"}},
		{"add an existing user", func() error { return AddUser(path, "alice", []byte("x"), nil) }, ErrUserExists,
			[]UserInfo{{"alice", []string{"admin"}}, {"bob", nil}}, [2]string{"alice", "a1"}},
		{"set keeps roles when nil", func() error { return SetUser(path, "alice", []byte("a2"), nil) }, nil,
			[]UserInfo{{"alice", []string{"admin"}}, {"bob", nil}}, [2]string{"alice", "a2"}},
		{"set replaces roles", func() error { return SetUser(path, "bob", []byte("b2"), []string{"x", "y"}) }, nil,
			[]UserInfo{{"alice", []string{"admin"}}, {"bob", []string{"x", "y"}}}, [2]string{"bob", "b2"}},
		{"set with no roles removes them", func() error { return SetUser(path, "alice", []byte("a3"), []string{}) }, nil,
			[]UserInfo{{"alice", nil}, {"bob", []string{"x", "y"}}}, [2]string{"alice", "a3"}},
		{"set adds a new user", func() error { return SetUser(path, "carol", []byte("c1"), nil) }, nil,
			[]UserInfo{{"alice", nil}, {"bob", []string{"x", "y"}}, {"carol", nil}}, [2]string{"carol", "c1"}},
		{"remove", func() error { return RemoveUser(path, "bob") }, nil,
			[]UserInfo{{"alice", nil}, {"carol", nil}}, [2]string{"carol", "c1"}},
		{"remove a missing user", func() error { return RemoveUser(path, "bob") }, ErrNoSuchUser,
			[]UserInfo{{"alice", nil}, {"carol", nil}}, [2]string{"alice", "a3"}},
		{"empty name", func() error { return AddUser(path, "", []byte("x"), nil) }, ErrBadName,
			[]UserInfo{{"alice", nil}, {"carol", nil}}, [2]string{"alice", "a3"}},
		{"newline in name", func() error { return AddUser(path, "a\nb", []byte("x"), nil) }, ErrBadName,
			[]UserInfo{{"alice", nil}, {"carol", nil}}, [2]string{"alice", "a3"}},
		{"empty password", func() error { return AddUser(path, "dave", nil, nil) }, ErrEmptyPassword,
			[]UserInfo{{"alice", nil}, {"carol", nil}}, [2]string{"alice", "a3"}},
		{"repeated role", func() error { return AddUser(path, "dave", []byte("d"), []string{"a", "a"}) }, ErrBadRole,
			[]UserInfo{{"alice", nil}, {"carol", nil}}, [2]string{"alice", "a3"}},
		{"empty role", func() error { return SetUser(path, "alice", []byte("d"), []string{""}) }, ErrBadRole,
			[]UserInfo{{"alice", nil}, {"carol", nil}}, [2]string{"alice", "a3"}},
		{"remove the last users", func() error { return errors.Join(RemoveUser(path, "alice"), RemoveUser(path, "carol")) }, nil,
			[]UserInfo{}, [2]string{}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			err := s.edit()
			if s.wantErr == nil && err != nil || s.wantErr != nil && !errors.Is(err, s.wantErr) {
				t.Fatalf("edit = %v, want %v", err, s.wantErr)
			}
			got, err := ListUsers(path)
			if err != nil {
				t.Fatalf("ListUsers: %v", err)
			}
			if len(got) != len(s.want) {
				t.Fatalf("users %+v, want %+v", got, s.want)
			}
			for i := range s.want {
				if got[i].Name != s.want[i].Name || !slices.Equal(got[i].Roles, s.want[i].Roles) {
					t.Errorf("user %d = %+v, want %+v", i, got[i], s.want[i])
				}
			}
			checkMode(t, path, 0o600)
			if s.login[0] != "" {
				if d := login(t, path, s.login[0], s.login[1]); d != Allow {
					t.Errorf("%s with password %q: %v, want allow", s.login[0], s.login[1], d)
				}
			}
		})
	}
}

func TestRemoveUserMissingFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nothing-here")
	err := RemoveUser(filepath.Join(dir, "users.yaml"), "alice")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("RemoveUser on a missing file = %v, want fs.ErrNotExist", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("RemoveUser created %s: %v", dir, err)
	}
}

// TestEditKeepsTheRest edits a hand-written file and checks the other
// users, their data, the comments and the file's mode survive.
func TestEditKeepsTheRest(t *testing.T) {
	cheapHashes(t)
	orig, err := LoadFile("testdata/users.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		mode    fs.FileMode
		edit    func(path string) error
		changed string // the user the edit touches
	}{
		{"add", 0o600, func(p string) error { return AddUser(p, "dave", []byte("d"), []string{"ops"}) }, "dave"},
		{"set keeps data", 0o600, func(p string) error { return SetUser(p, "bob", []byte("new"), nil) }, "bob"},
		{"remove", 0o600, func(p string) error { return RemoveUser(p, "carol") }, "carol"},
		{"group-readable mode kept", 0o640, func(p string) error { return AddUser(p, "dave", []byte("d"), nil) }, "dave"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeUsers(t, mustRead(t, "testdata/users.yaml"))
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			if err := tt.edit(path); err != nil {
				t.Fatal(err)
			}
			checkMode(t, path, tt.mode)
			text := mustRead(t, path)
			if !strings.Contains(text, "# Test users: the passwords are alice-pw") {
				t.Errorf("the comment is gone:\n%s", text)
			}
			f, err := LoadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for name, want := range orig.users.Load().users {
				if name == tt.changed {
					continue
				}
				got := f.users.Load().users[name]
				if got == nil {
					t.Errorf("user %s is gone", name)
					continue
				}
				if !reflect.DeepEqual(got.roles, want.roles) || !reflect.DeepEqual(got.data, want.data) || !reflect.DeepEqual(got.hash, want.hash) {
					t.Errorf("user %s changed: %+v, was %+v", name, got, want)
				}
			}
			if tt.name == "set keeps data" {
				bob := f.users.Load().users["bob"]
				if !reflect.DeepEqual(bob.data, orig.users.Load().users["bob"].data) || !slices.Equal(bob.roles, []string{"viewer", "bidder"}) {
					t.Errorf("bob after SetUser: roles %v, data %v", bob.roles, bob.data)
				}
			}
			if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".users.yaml.tmp-*")); len(left) > 0 {
				t.Errorf("temporary files left: %v", left)
			}
		})
	}
}

// TestEditNames adds users whose names YAML would read as something else
// unquoted, and reads them back.
func TestEditNames(t *testing.T) {
	cheapHashes(t)
	path := filepath.Join(t.TempDir(), "users.yaml")
	names := []string{"123", "0x1f", "true", "yes", "null", "~", "a: b", "#x", "-", "- a", "ü", "with space", "[x]", "{x}",
		"&a", "*a", "'q'", `"dq"`, "!tag", "%d", "@at", "`tick", "a,b", " lead", "trail ", "users", "password", "1e3", ".inf", "2001-01-01"}
	for _, n := range names {
		if err := AddUser(path, n, []byte("pw-"+n), []string{n}); err != nil {
			t.Fatalf("AddUser(%q): %v", n, err)
		}
	}
	got, err := ListUsers(path)
	if err != nil {
		t.Fatalf("ListUsers: %v\n%s", err, mustRead(t, path))
	}
	if len(got) != len(names) {
		t.Fatalf("%d users, want %d:\n%s", len(got), len(names), mustRead(t, path))
	}
	for _, u := range got {
		if !slices.Contains(names, u.Name) || !slices.Equal(u.Roles, []string{u.Name}) {
			t.Errorf("user %q with roles %q", u.Name, u.Roles)
		}
	}
	for _, n := range names {
		if d := login(t, path, n, "pw-"+n); d != Allow {
			t.Errorf("%q: %v, want allow", n, d)
		}
	}
}

// TestEditRefuses checks edits of files they cannot safely rewrite leave
// them untouched, and that a problem elsewhere does not block an edit.
func TestEditRefuses(t *testing.T) {
	cheapHashes(t)
	good := fastArgon(t, "pw")
	tests := []struct {
		name    string
		content string
		edit    func(path string) error
		wantErr string // "" if the edit must succeed
	}{
		{"syntax error", "users:\n  bob: [\n", func(p string) error { return AddUser(p, "alice", []byte("x"), nil) }, ":2: "},
		{"second document", "users: {}\n---\nother: 1\n", func(p string) error { return AddUser(p, "alice", []byte("x"), nil) }, "only one YAML document"},
		{"top level a list", "- a\n", func(p string) error { return AddUser(p, "alice", []byte("x"), nil) }, "must be a mapping"},
		{"users a list", "users: [a]\n", func(p string) error { return RemoveUser(p, "a") }, "must be a mapping"},
		{"alias to a removed anchor", "users:\n  alice:\n    password: &p " + good + "\n  bob:\n    password: *p\n",
			func(p string) error { return RemoveUser(p, "alice") }, "would leave it invalid"},
		{"another user is broken", "users:\n  bob:\n    password: plain\n", func(p string) error { return AddUser(p, "alice", []byte("x"), nil) }, ""},
		{"removing the broken user", "users:\n  bob:\n    password: plain\n  bob:\n    password: " + good + "\n", func(p string) error { return RemoveUser(p, "bob") }, ""},
		{"users null", "# keep me\nusers:\n", func(p string) error { return AddUser(p, "alice", []byte("x"), nil) }, ""},
		{"users flow", "users: {}\n", func(p string) error { return AddUser(p, "alice", []byte("x"), nil) }, ""},
		{"no users key", "# nobody\n", func(p string) error { return AddUser(p, "alice", []byte("x"), nil) }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeUsers(t, tt.content)
			err := tt.edit(path)
			after := mustRead(t, path)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("edit: %v", err)
				}
				if strings.HasPrefix(tt.content, "# keep me") && !strings.Contains(after, "# keep me") {
					t.Errorf("comment lost:\n%s", after)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("edit = %v, want an error with %q", err, tt.wantErr)
			}
			if after != tt.content {
				t.Errorf("the refused edit changed the file:\n%s", after)
			}
		})
	}
}

// TestConcurrentAddUser runs editors at once: with the lock, none is lost.
func TestConcurrentAddUser(t *testing.T) {
	cheapHashes(t)
	path := filepath.Join(t.TempDir(), "users.yaml")
	if err := AddUser(path, "first", []byte("pw"), nil); err != nil {
		t.Fatal(err)
	}
	const n = 8
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 3 {
				if err := AddUser(path, fmt.Sprintf("user%d-%d", i, j), []byte("pw"), []string{"r"}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	users, err := ListUsers(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 1+3*n {
		t.Errorf("%d users after %d concurrent adds, want %d", len(users), 3*n, 1+3*n)
	}
	checkMode(t, path, 0o600)
}

func TestEditWaitsForTheLock(t *testing.T) {
	cheapHashes(t)
	path := writeUsers(t, "users: {}\n")
	unlock, err := lockFile(path+".lock", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	old := lockTimeout
	lockTimeout = 50 * time.Millisecond
	t.Cleanup(func() { lockTimeout = old })
	if err := AddUser(path, "alice", []byte("x"), nil); !errors.Is(err, ErrLocked) {
		t.Errorf("AddUser while locked = %v, want ErrLocked", err)
	}
	unlock()
	if err := AddUser(path, "alice", []byte("x"), nil); err != nil {
		t.Errorf("AddUser after unlock: %v", err)
	}
}

func TestEditFollowsSymlink(t *testing.T) {
	cheapHashes(t)
	dir := t.TempDir()
	real := filepath.Join(dir, "real.yaml")
	if err := os.WriteFile(real, []byte("users: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "users.yaml")
	if err := os.Symlink(real, link); err != nil {
		t.Skip("no symlinks:", err)
	}
	if err := AddUser(link, "alice", []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("the link was replaced: %v, %v", fi, err)
	}
	if !strings.Contains(mustRead(t, real), "alice") {
		t.Error("the link's target was not edited")
	}
}
