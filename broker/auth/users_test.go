package auth

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// usersYAML builds a users file from name, hash and roles triples.
func usersYAML(users ...[3]string) string {
	var b strings.Builder
	b.WriteString("users:\n")
	for _, u := range users {
		fmt.Fprintf(&b, "  %s:\n    password: %q\n", u[0], u[1])
		if u[2] != "" {
			fmt.Fprintf(&b, "    roles: [%s]\n", u[2])
		}
	}
	return b.String()
}

func TestAuthenticate(t *testing.T) {
	f, err := LoadFile("testdata/users.yaml") // alice-pw, bob-pw (argon2id), carol-pw (bcrypt)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		user     string
		password string
		want     Decision
		roles    []string
		data     map[string]any
	}{
		{"argon2id right", "alice", "alice-pw", Allow, []string{"admin"}, map[string]any{"canBid": true, "room": "kitchen"}},
		{"argon2id wrong", "alice", "bob-pw", Deny, nil, nil},
		{"argon2id empty password", "alice", "", Deny, nil, nil},
		{"bcrypt right", "carol", "carol-pw", Allow, nil, nil},
		{"bcrypt wrong", "carol", "carol-pW", Deny, nil, nil},
		{"unknown user", "mallory", "alice-pw", Pass, nil, nil},
		{"name differs in case", "Alice", "alice-pw", Pass, nil, nil},
		{"empty username", "", "alice-pw", Pass, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, id, err := f.Authenticate(context.Background(), Credentials{Username: tt.user, Password: []byte(tt.password), Remote: "192.0.2.1:5000"})
			if err != nil {
				t.Fatal(err)
			}
			if d != tt.want {
				t.Fatalf("decision %v, want %v", d, tt.want)
			}
			if d != Allow {
				if !reflect.DeepEqual(id, Identity{}) {
					t.Errorf("identity %+v with %v, want none", id, d)
				}
				return
			}
			want := Identity{User: tt.user, Roles: tt.roles, Data: tt.data}
			if !reflect.DeepEqual(id, want) {
				t.Errorf("identity %+v, want %+v", id, want)
			}
		})
	}
	if f.Name() != "file" {
		t.Errorf("Name() = %q", f.Name())
	}
}

// TestChainFallsThrough checks Pass lets a later mode decide, and that a
// known user with a wrong password does not reach it.
func TestChainFallsThrough(t *testing.T) {
	f, err := LoadFile("testdata/users.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ch := Chain{f, None{}}
	tests := []struct {
		user, password string
		want           Decision
		by             string
	}{
		{"alice", "alice-pw", Allow, "file"},
		{"alice", "nope", Deny, "file"},
		{"guest", "", Allow, "none"},
	}
	for _, tt := range tests {
		t.Run(tt.user+"/"+tt.password, func(t *testing.T) {
			d, _, by, err := ch.Authenticate(context.Background(), Credentials{Username: tt.user, Password: []byte(tt.password)})
			if err != nil || d != tt.want || by != tt.by {
				t.Errorf("chain = %v by %q (%v), want %v by %q", d, by, err, tt.want, tt.by)
			}
		})
	}
}

func TestIdentityIsACopy(t *testing.T) {
	f, err := LoadFile("testdata/users.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c := Credentials{Username: "bob", Password: []byte("bob-pw")}
	_, id, _ := f.Authenticate(context.Background(), c)
	id.Roles[0] = "admin"
	id.Data["rooms"].([]any)[0] = "vault"
	id.Data["limits"].(map[string]any)["max"] = 1000
	_, id2, _ := f.Authenticate(context.Background(), c)
	if id2.Roles[0] != "viewer" || id2.Data["rooms"].([]any)[0] != "kitchen" || id2.Data["limits"].(map[string]any)["max"] != 3 {
		t.Errorf("changing one identity changed the next: %+v", id2)
	}
}

func TestAuthenticateContextEnds(t *testing.T) {
	f, err := LoadFile("testdata/users.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for range cap(f.slots) { // every verification slot busy
		f.slots <- struct{}{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d, _, err := f.Authenticate(ctx, Credentials{Username: "alice", Password: []byte("alice-pw")})
	if !errors.Is(err, context.Canceled) || d == Allow {
		t.Errorf("Authenticate with the slots full and ctx done = %v, %v; want context.Canceled", d, err)
	}
}

// TestUnknownUserCostsAsKnown checks an unknown name is verified against a
// dummy hash as costly as the users' hashes: bcrypt cost 8 takes over ten
// milliseconds, so an unknown name answered at once would be far faster.
func TestUnknownUserCostsAsKnown(t *testing.T) {
	if testing.Short() {
		t.Skip("times bcrypt")
	}
	h8, err := bcryptCost8("pw")
	if err != nil {
		t.Fatal(err)
	}
	f, err := LoadFile(writeUsers(t, usersYAML([3]string{"alice", h8, ""})))
	if err != nil {
		t.Fatal(err)
	}
	fastest := func(user string) time.Duration {
		best := time.Hour
		for range 3 {
			start := time.Now()
			if _, _, err := f.Authenticate(context.Background(), Credentials{Username: user, Password: []byte("wrong")}); err != nil {
				t.Fatal(err)
			}
			best = min(best, time.Since(start))
		}
		return best
	}
	known, unknown := fastest("alice"), fastest("mallory")
	t.Logf("wrong password: known user %v, unknown user %v", known, unknown)
	if unknown < known/3 {
		t.Errorf("an unknown user takes %v, a known one %v: timing reveals which names exist", unknown, known)
	}
}

func TestReloadKeepsUsersOnError(t *testing.T) {
	alice, bob := fastArgon(t, "alice-pw"), fastBcrypt(t, "bob-pw")
	path := writeUsers(t, usersYAML([3]string{"alice", alice, "admin"}))
	f, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	allowed := func(user, password string) bool {
		d, _, err := f.Authenticate(context.Background(), Credentials{Username: user, Password: []byte(password)})
		if err != nil {
			t.Fatal(err)
		}
		return d == Allow
	}
	steps := []struct {
		name        string
		write       func() error
		wantErr     string // "" for a successful reload
		alice, bob  bool   // whether each then logs in
		errNotExist bool
	}{
		{"broken file", func() error {
			return os.WriteFile(path, []byte("users:\n  alice:\n    password: nope\n  bob: [\n"), 0o600)
		}, path + ":4: ", true, false, false},
		{"bad hash", func() error {
			return os.WriteFile(path, []byte(usersYAML([3]string{"alice", "plain", ""}, [3]string{"bob", bob, ""})), 0o600)
		}, path + ":3: users.alice.password: not an argon2id", true, false, false},
		{"fixed", func() error {
			return os.WriteFile(path, []byte(usersYAML([3]string{"bob", bob, ""})), 0o600)
		}, "", false, true, false},
		{"file removed", func() error { return os.Remove(path) }, "no such file", false, true, true},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if err := s.write(); err != nil {
				t.Fatal(err)
			}
			err := f.Reload()
			switch {
			case s.wantErr == "" && err != nil:
				t.Fatalf("Reload: %v", err)
			case s.wantErr != "" && (err == nil || !strings.Contains(err.Error(), s.wantErr)):
				t.Fatalf("Reload = %v, want an error with %q", err, s.wantErr)
			case s.errNotExist && !errors.Is(err, os.ErrNotExist):
				t.Errorf("Reload = %v, want os.ErrNotExist", err)
			}
			if got := allowed("alice", "alice-pw"); got != s.alice {
				t.Errorf("alice allowed = %v, want %v", got, s.alice)
			}
			if got := allowed("bob", "bob-pw"); got != s.bob {
				t.Errorf("bob allowed = %v, want %v", got, s.bob)
			}
		})
	}
}

func TestWatch(t *testing.T) {
	alice, bob := fastArgon(t, "alice-pw"), fastArgon(t, "bob-pw")
	path := writeUsers(t, usersYAML([3]string{"alice", alice, ""}))
	f, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	reloads := make(chan error, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.watch(ctx, 20*time.Millisecond, func(err error) { reloads <- err })
	}()
	t.Cleanup(func() { cancel(); <-done })

	next := func(t *testing.T) error {
		t.Helper()
		select {
		case err := <-reloads:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("no reload within 10s")
			return nil
		}
	}
	quiet := func(t *testing.T) {
		t.Helper()
		select {
		case err := <-reloads:
			t.Fatalf("reloaded (%v) with the file unchanged", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	roles := func(user string) []string {
		u := f.users.Load().users[user]
		if u == nil {
			return nil
		}
		return append([]string{}, u.roles...)
	}
	// replace renames a new file over path, as the editors do: same size,
	// new inode.
	replace := func(content string) error {
		tmp := path + ".new"
		if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
			return err
		}
		return os.Rename(tmp, path)
	}
	steps := []struct {
		name    string
		change  func() error
		wantErr bool
		check   func() bool
	}{
		{"user added in place", func() error {
			return os.WriteFile(path, []byte(usersYAML([3]string{"alice", alice, ""}, [3]string{"bob", bob, "aa"})), 0o600)
		}, false, func() bool { return slices.Equal(roles("bob"), []string{"aa"}) }},
		{"renamed over, same size", func() error {
			return replace(usersYAML([3]string{"alice", alice, ""}, [3]string{"bob", bob, "bb"}))
		}, false, func() bool { return slices.Equal(roles("bob"), []string{"bb"}) }},
		{"broken", func() error {
			return os.WriteFile(path, []byte("users: [\n"), 0o600)
		}, true, func() bool { return slices.Equal(roles("bob"), []string{"bb"}) }},
		{"removed", func() error { return os.Remove(path) }, true, func() bool { return roles("alice") != nil }},
		{"back", func() error {
			return os.WriteFile(path, []byte(usersYAML([3]string{"bob", bob, "cc"})), 0o600)
		}, false, func() bool { return slices.Equal(roles("bob"), []string{"cc"}) && f.users.Load().users["alice"] == nil }},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if err := s.change(); err != nil {
				t.Fatal(err)
			}
			err := next(t)
			if (err != nil) != s.wantErr {
				t.Fatalf("reload error %v, want error %v", err, s.wantErr)
			}
			if !s.check() {
				t.Errorf("users after the reload: %v", f.users.Load().users)
			}
			// A failure is reported once, not at every poll.
			quiet(t)
		})
	}
}

// TestReloadDuringAuthenticate runs logins while the file flips between two
// versions; with -race it checks the swap is safe.
func TestReloadDuringAuthenticate(t *testing.T) {
	v1 := usersYAML([3]string{"alice", fastArgon(t, "one"), "a"})
	v2 := usersYAML([3]string{"alice", fastBcrypt(t, "two"), "b"}, [3]string{"bob", fastArgon(t, "bob"), ""})
	path := writeUsers(t, v1)
	f, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				pw := []string{"one", "two"}[(g+i)%2]
				d, id, err := f.Authenticate(ctx, Credentials{Username: "alice", Password: []byte(pw)})
				if err != nil {
					if ctx.Err() == nil {
						t.Error(err)
					}
					return
				}
				// The password and the roles come from one version.
				if d == Allow && !(pw == "one" && slices.Equal(id.Roles, []string{"a"}) || pw == "two" && slices.Equal(id.Roles, []string{"b"})) {
					t.Errorf("password %q allowed with roles %v", pw, id.Roles)
					return
				}
			}
		}()
	}
	for i := range 50 {
		if err := os.WriteFile(path, []byte([]string{v2, v1}[i%2]), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := f.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	wg.Wait()
}

func TestListUsers(t *testing.T) {
	users, err := ListUsers("testdata/users.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := []UserInfo{{"alice", []string{"admin"}}, {"bob", []string{"viewer", "bidder"}}, {"carol", []string{}}}
	if len(users) != len(want) {
		t.Fatalf("ListUsers = %+v, want %+v", users, want)
	}
	for i := range want {
		if users[i].Name != want[i].Name || !slices.Equal(users[i].Roles, want[i].Roles) {
			t.Errorf("user %d = %+v, want %+v", i, users[i], want[i])
		}
	}
	if _, err := ListUsers("testdata/bad.yaml"); !errors.Is(err, ErrInvalidUsers) {
		t.Errorf("ListUsers(bad) = %v, want ErrInvalidUsers", err)
	}
	if _, err := ListUsers(filepath.Join(t.TempDir(), "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ListUsers(missing) = %v, want os.ErrNotExist", err)
	}
}
