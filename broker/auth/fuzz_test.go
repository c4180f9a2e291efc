package auth

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// problemLine is how every line of a users file's error starts.
var problemLine = regexp.MustCompile(`^users\.yaml:[1-9][0-9]*: `)

// FuzzLoadFile feeds the users-file parser arbitrary bytes: it must never
// panic; an error must list problems that each have a line; an accepted
// file must hold only valid names and usable hashes.
func FuzzLoadFile(f *testing.F) {
	for _, p := range []string{"testdata/users.yaml", "testdata/bad.yaml"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	argon := "$argon2id$v=19$m=64,t=1,p=1$++FssXh+DMpvi3NNADf7AA$tZVpOcbmeqEuWoCGdPuhUX0zMrOQJ0gJ1nmXnkmZkCo"
	for _, s := range []string{
		"",
		"users:\n",
		"users: {}\n",
		"users:\n  a:\n    password: " + argon + "\n    roles: [x, y]\n    data: {k: [1, {n: v}]}\n",
		"users:\n  a: &x\n    password: " + argon + "\n  b: *x\n",
		"users:\n  a:\n    password: $2b$04$boa7b.iQw4ERC0QQ1ii/teKHhSnbsTTfKVqu8t5gRmFHhhyupdwHW\n",
		"users: [\n",
		"---\nusers: {}\n---\n",
		"users:\n  a:\n    data: {<<: {x: 1}}\n    password: " + argon + "\n",
		"\xff\xfeu\x00",
		"users:\n  \"\\x01\": {}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		set, err := parseUsers("users.yaml", b)
		if err != nil {
			if set != nil {
				t.Fatal("a set and an error")
			}
			if !errors.Is(err, ErrInvalidUsers) {
				t.Fatalf("error %v is not ErrInvalidUsers", err)
			}
			for _, line := range problemLines(err) {
				if !problemLine.MatchString(line) {
					t.Fatalf("problem %q has no line", line)
				}
			}
			return
		}
		for name, u := range set.users {
			if msg := checkName(name); msg != "" {
				t.Fatalf("accepted user name %q: %s", name, msg)
			}
			if u.hash == nil {
				t.Fatalf("user %q has no hash", name)
			}
			if cheap(u.hash) {
				u.hash.verify([]byte("guess")) // must not panic
			}
		}
		if (len(set.users) > 0) != (set.dummy != nil) {
			t.Fatalf("%d users, dummy %v", len(set.users), set.dummy)
		}
		if set.dummy != nil && cheap(set.dummy) && set.dummy.verify([]byte("")) {
			t.Fatal("the dummy hash verifies the empty password")
		}
	})
}

// cheap reports whether verifying h is fast enough for the fuzzer.
func cheap(h passwordHash) bool {
	switch h := h.(type) {
	case argon2Hash:
		return h.memory <= 1024 && h.time <= 2
	case bcryptHash:
		return h.cost <= 5
	}
	return false
}

// TestLoadFileThroughDisk runs the fuzz seeds through LoadFile itself.
func TestLoadFileThroughDisk(t *testing.T) {
	for _, s := range []string{"users: {}\n", "users: [\n", "\x00"} {
		path := filepath.Join(t.TempDir(), "users.yaml")
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		_, errFile := LoadFile(path)
		_, errParse := parseUsers(path, []byte(s))
		if (errFile == nil) != (errParse == nil) || errFile != nil && errFile.Error() != errParse.Error() {
			t.Errorf("%q: LoadFile = %v, parseUsers = %v", s, errFile, errParse)
		}
	}
}
