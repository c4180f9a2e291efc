package auth

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// fastArgon returns an argon2id PHC string with tiny parameters, for tests.
func fastArgon(t testing.TB, password string) string {
	t.Helper()
	return hashArgon2id([]byte(password), 64, 1, 1)
}

// fastBcrypt returns a bcrypt hash at the lowest cost, for tests.
func fastBcrypt(t testing.TB, password string) string {
	t.Helper()
	b, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func bcryptCost8(password string) (string, error) {
	b, err := bcrypt.GenerateFromPassword([]byte(password), 8)
	return string(b), err
}

func TestHashPassword(t *testing.T) {
	s, err := HashPassword([]byte("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s, "$argon2id$v=19$m=65536,t=3,p=2$") {
		t.Errorf("hash %q does not have the documented parameters", s)
	}
	h, err := parseHash(s)
	if err != nil {
		t.Fatalf("parseHash(HashPassword) = %v", err)
	}
	a := h.(argon2Hash)
	if len(a.salt) != 16 || len(a.key) != 32 {
		t.Errorf("salt %d bytes, key %d bytes; want 16 and 32", len(a.salt), len(a.key))
	}
	if !h.verify([]byte("correct horse")) {
		t.Error("the password does not verify against its hash")
	}
	if h.verify([]byte("correct horsf")) {
		t.Error("a wrong password verifies")
	}
	s2, err := HashPassword([]byte("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	if s2 == s {
		t.Error("two hashes of one password are equal: the salt is not random")
	}
	if _, err := HashPassword(nil); !errors.Is(err, ErrEmptyPassword) {
		t.Errorf("HashPassword(nil) = %v, want ErrEmptyPassword", err)
	}
}

func TestParseHash(t *testing.T) {
	const salt, key = "++FssXh+DMpvi3NNADf7AA", "tZVpOcbmeqEuWoCGdPuhUX0zMrOQJ0gJ1nmXnkmZkCo"
	argon := func(params string) string { return "$argon2id$v=19$" + params + "$" + salt + "$" + key }
	const bc = "boa7b.iQw4ERC0QQ1ii/teKHhSnbsTTfKVqu8t5gRmFHhhyupdwHW"
	tests := []struct {
		name, hash string
		wantErr    string // "" for a valid hash
	}{
		{"argon2id", argon("m=64,t=1,p=1"), ""},
		{"argon2id at the limits", argon("m=262144,t=10,p=64"), ""},
		{"bcrypt 2a", "$2a$04$" + bc, ""},
		{"bcrypt 2b", "$2b$10$" + bc, ""},
		{"bcrypt 2y at the limit", "$2y$14$" + bc, ""},
		{"empty", "", "not an argon2id PHC string"},
		{"plain text", "hunter2", "not an argon2id PHC string"},
		{"argon2i", "$argon2i$v=19$m=64,t=1,p=1$" + salt + "$" + key, "only argon2id"},
		{"no version", "$argon2id$m=64,t=1,p=1$" + salt + "$" + key, "is not $argon2id$v=19"},
		{"old version", "$argon2id$v=16$m=64,t=1,p=1$" + salt + "$" + key, `version "v=16"`},
		{"memory too high", argon("m=262145,t=1,p=1"), "above the limit"},
		{"memory overflows", argon("m=99999999999,t=1,p=1"), "not a number of KiB"},
		{"time too high", argon("m=64,t=11,p=1"), "time 11 is outside 1..10"},
		{"time zero", argon("m=64,t=0,p=1"), "time 0 is outside"},
		{"parallelism zero", argon("m=64,t=1,p=0"), "parallelism 0 is outside"},
		{"parallelism too high", argon("m=1024,t=1,p=65"), "parallelism 65 is outside"},
		{"memory below lanes", argon("m=15,t=1,p=2"), "below 8 KiB per lane"},
		{"parameters reordered", argon("t=1,m=64,p=1"), "are not m=M,t=T,p=P"},
		{"extra parameter", argon("m=64,t=1,p=1,keyid=x"), "are not m=M,t=T,p=P"},
		{"negative", argon("m=-64,t=1,p=1"), "not a number"},
		{"salt not base64", "$argon2id$v=19$m=64,t=1,p=1$!!!!$" + key, "salt is not unpadded base64"},
		{"salt padded", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "==$" + key, "salt is not unpadded base64"},
		{"salt short", "$argon2id$v=19$m=64,t=1,p=1$AAAA$" + key, "salt of 3 bytes"},
		{"key short", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$AAAA", "key of 3 bytes"},
		{"too many fields", argon("m=64,t=1,p=1") + "$x", "is not $argon2id$v=19"},
		{"bcrypt cost too high", "$2a$15$" + bc, "bcrypt cost 15 is outside 4..14"},
		{"bcrypt cost too low", "$2a$03$" + bc, "bcrypt cost 3 is outside"},
		{"bcrypt short", "$2a$04$" + bc[:52], "bcrypt hash is not"},
		{"bcrypt bad character", "$2a$04$" + bc[:52] + "!", "bcrypt hash is not"},
		{"bcrypt 2x", "$2x$04$" + bc, "not an argon2id PHC string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := parseHash(tt.hash)
			if tt.wantErr == "" {
				if err != nil || h == nil {
					t.Fatalf("parseHash(%q) = %v, want a hash", tt.hash, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("parseHash(%q) = %v, want an error with %q", tt.hash, err, tt.wantErr)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	tests := []struct {
		name     string
		hash     string
		password string
		want     bool
	}{
		{"argon2id right", fastArgon(t, "s3cret"), "s3cret", true},
		{"argon2id wrong", fastArgon(t, "s3cret"), "s3cres", false},
		{"argon2id empty", fastArgon(t, "s3cret"), "", false},
		{"argon2id prefix", fastArgon(t, "s3cret"), "s3cre", false},
		{"bcrypt right", fastBcrypt(t, "s3cret"), "s3cret", true},
		{"bcrypt wrong", fastBcrypt(t, "s3cret"), "S3cret", false},
		{"bcrypt empty", fastBcrypt(t, "s3cret"), "", false},
		// bcrypt reads at most 72 bytes: a longer password must not match
		// by its prefix, nor make verification fail loudly.
		{"bcrypt over 72 bytes", fastBcrypt(t, strings.Repeat("a", 72)), strings.Repeat("a", 73), false},
		{"bcrypt exactly 72 bytes", fastBcrypt(t, strings.Repeat("a", 72)), strings.Repeat("a", 72), true},
		{"argon2id long", fastArgon(t, strings.Repeat("b", 1000)), strings.Repeat("b", 1000), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := parseHash(tt.hash)
			if err != nil {
				t.Fatal(err)
			}
			if got := h.verify([]byte(tt.password)); got != tt.want {
				t.Errorf("verify(%q) = %v, want %v", tt.password, got, tt.want)
			}
		})
	}
}

func TestDummy(t *testing.T) {
	for _, s := range []string{fastArgon(t, "pw"), fastBcrypt(t, "pw"), "$2b$05$" + strings.Repeat("a", 53)} {
		h, err := parseHash(s)
		if err != nil {
			t.Fatal(err)
		}
		d := h.dummy()
		if d.params() != h.params() {
			t.Errorf("dummy of %s has parameters %s", h.params(), d.params())
		}
		for _, pw := range []string{"", "pw", "a"} {
			if d.verify([]byte(pw)) {
				t.Errorf("dummy of %s verifies %q", h.params(), pw)
			}
		}
		if h, ok := d.(bcryptHash); ok {
			if c, err := bcrypt.Cost(h.encoded); err != nil || c != h.cost {
				t.Errorf("bcrypt dummy %q: cost %d, %v; want %d", h.encoded, c, err, h.cost)
			}
		}
	}
}

func TestPickDummy(t *testing.T) {
	a := func() passwordHash { h, _ := parseHash(fastArgon(t, "x")); return h }
	b := func() passwordHash { h, _ := parseHash(fastBcrypt(t, "x")); return h }
	tests := []struct {
		name  string
		users []passwordHash
		want  string // params of the dummy, "" for none
	}{
		{"no users", nil, ""},
		{"one argon2id", []passwordHash{a()}, a().params()},
		{"mostly bcrypt", []passwordHash{a(), b(), b()}, b().params()},
		{"mostly argon2id", []passwordHash{a(), b(), a()}, a().params()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			users := map[string]*user{}
			for i, h := range tt.users {
				users[string(rune('a'+i))] = &user{hash: h}
			}
			d := pickDummy(users)
			if tt.want == "" {
				if d != nil {
					t.Fatalf("dummy %s, want none", d.params())
				}
				return
			}
			if d == nil || d.params() != tt.want {
				t.Fatalf("dummy %v, want %s", d, tt.want)
			}
		})
	}
}
