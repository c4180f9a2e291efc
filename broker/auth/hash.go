package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// HashPassword's argon2id parameters. RFC 9106's second recommended option
// is m=64 MiB, t=3, p=4; p=2 because the broker's boards have 2 to 4 cores
// and several logins may hash at once. Measured when this was written (go
// test, 2-core AMD EPYC VM, Go 1.26, x/crypto v0.58.0): m=64 MiB, t=3, p=2
// takes 93 ms a hash (m=32 MiB: 48 ms; m=19 MiB: 28 ms). That is well under
// the 300 ms budget for a login, so m stays at 64 MiB; a Raspberry Pi 4 is
// several times slower, by estimate a few hundred ms, still tolerable for
// a connect, and File bounds how many hashes run at once so the memory
// stays bounded too.
const (
	hashMemory  = 64 << 10 // KiB
	hashTime    = 3
	hashThreads = 2
	hashSaltLen = 16
	hashKeyLen  = 32
)

// Limits on the hashes a users file may hold, so that a hostile or mistyped
// file cannot make each login stall the broker or exhaust its memory.
const (
	maxArgonMemory  = 256 << 10 // KiB: 256 MiB
	maxArgonTime    = 10
	maxArgonThreads = 64
	minSaltLen      = 8
	maxSaltLen      = 64
	minKeyLen       = 16
	maxKeyLen       = 64
	// maxBcryptCost 14 took 0.97 s here (cost 10: 64 ms, 12: 251 ms):
	// enough for any hash made on purpose, and a ceiling far below bcrypt's
	// own 31 (days a login).
	maxBcryptCost = 14
)

// passwordHash is a parsed stored password hash.
type passwordHash interface {
	// verify reports whether password matches, in time that does not
	// depend on where they differ.
	verify(password []byte) bool
	// params names the hash's kind and cost, to build a dummy of equal
	// cost for unknown users.
	params() string
	// dummy returns a hash with the same cost that no password matches.
	dummy() passwordHash
}

// HashPassword returns an argon2id PHC string for password
// ("$argon2id$v=19$m=65536,t=3,p=2$salt$key"), with a fresh 16-byte salt.
// It returns ErrEmptyPassword for an empty password.
func HashPassword(password []byte) (string, error) {
	if len(password) == 0 {
		return "", ErrEmptyPassword
	}
	return hashArgon2id(password, hashMemory, hashTime, hashThreads), nil
}

func hashArgon2id(password []byte, memory, time uint32, threads uint8) string {
	salt := make([]byte, hashSaltLen)
	_, _ = rand.Read(salt) // crypto/rand.Read never fails (Go 1.24+)
	h := argon2Hash{memory: memory, time: time, threads: threads, salt: salt,
		key: argon2.IDKey(password, salt, time, memory, threads, hashKeyLen)}
	return h.String()
}

// parseHash parses a stored hash: an argon2id PHC string or a bcrypt hash.
// Its errors are for a Problem, which names the key: they carry no prefix.
func parseHash(s string) (passwordHash, error) {
	switch {
	case strings.HasPrefix(s, "$argon2id$"):
		return parseArgon2id(s)
	case strings.HasPrefix(s, "$2a$"), strings.HasPrefix(s, "$2b$"), strings.HasPrefix(s, "$2y$"):
		return parseBcrypt(s)
	case strings.HasPrefix(s, "$argon2i$"), strings.HasPrefix(s, "$argon2d$"):
		return nil, errors.New("only argon2id is supported, not argon2i or argon2d")
	}
	return nil, errors.New("not an argon2id PHC string ($argon2id$...) or a bcrypt hash ($2a$, $2b$, $2y$)")
}

// argon2Hash is an argon2id hash with its parameters (memory in KiB).
type argon2Hash struct {
	memory, time uint32
	threads      uint8
	salt, key    []byte
}

// phcB64 is the PHC string format's base64: standard alphabet, no padding;
// Strict refuses encodings with stray low bits, so one hash has one
// spelling.
var phcB64 = base64.RawStdEncoding.Strict()

func (h argon2Hash) String() string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, h.memory, h.time, h.threads,
		phcB64.EncodeToString(h.salt), phcB64.EncodeToString(h.key))
}

func parseArgon2id(s string) (passwordHash, error) {
	f := strings.Split(s, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, key
	if len(f) != 6 {
		return nil, errors.New("argon2id hash is not $argon2id$v=19$m=M,t=T,p=P$SALT$KEY")
	}
	if f[2] != "v="+strconv.Itoa(argon2.Version) {
		return nil, fmt.Errorf("argon2id version %q is not v=%d", f[2], argon2.Version)
	}
	ps := strings.Split(f[3], ",")
	if len(ps) != 3 || !strings.HasPrefix(ps[0], "m=") || !strings.HasPrefix(ps[1], "t=") || !strings.HasPrefix(ps[2], "p=") {
		return nil, fmt.Errorf("argon2id parameters %q are not m=M,t=T,p=P", f[3])
	}
	var h argon2Hash
	m, err := strconv.ParseUint(ps[0][2:], 10, 32)
	if err != nil {
		return nil, fmt.Errorf("argon2id memory %q is not a number of KiB", ps[0][2:])
	}
	t, err := strconv.ParseUint(ps[1][2:], 10, 32)
	if err != nil {
		return nil, fmt.Errorf("argon2id time %q is not a number", ps[1][2:])
	}
	p, err := strconv.ParseUint(ps[2][2:], 10, 8)
	if err != nil {
		return nil, fmt.Errorf("argon2id parallelism %q is not a number up to 255", ps[2][2:])
	}
	switch {
	case t < 1 || t > maxArgonTime:
		return nil, fmt.Errorf("argon2id time %d is outside 1..%d", t, maxArgonTime)
	case p < 1 || p > maxArgonThreads:
		return nil, fmt.Errorf("argon2id parallelism %d is outside 1..%d", p, maxArgonThreads)
	case m > maxArgonMemory:
		return nil, fmt.Errorf("argon2id memory %d KiB is above the limit of %d KiB (256 MiB)", m, maxArgonMemory)
	case m < 8*p:
		// RFC 9106 3.1: at least 8 KiB per lane.
		return nil, fmt.Errorf("argon2id memory %d KiB is below 8 KiB per lane (%d)", m, 8*p)
	}
	h.memory, h.time, h.threads = uint32(m), uint32(t), uint8(p)
	if h.salt, err = phcB64.DecodeString(f[4]); err != nil {
		return nil, errors.New("argon2id salt is not unpadded base64")
	}
	if n := len(h.salt); n < minSaltLen || n > maxSaltLen {
		return nil, fmt.Errorf("argon2id salt of %d bytes is outside %d..%d", n, minSaltLen, maxSaltLen)
	}
	if h.key, err = phcB64.DecodeString(f[5]); err != nil {
		return nil, errors.New("argon2id key is not unpadded base64")
	}
	if n := len(h.key); n < minKeyLen || n > maxKeyLen {
		return nil, fmt.Errorf("argon2id key of %d bytes is outside %d..%d", n, minKeyLen, maxKeyLen)
	}
	return h, nil
}

func (h argon2Hash) verify(password []byte) bool {
	k := argon2.IDKey(password, h.salt, h.time, h.memory, h.threads, uint32(len(h.key)))
	return subtle.ConstantTimeCompare(k, h.key) == 1
}

func (h argon2Hash) params() string {
	return fmt.Sprintf("argon2id m=%d t=%d p=%d salt=%d key=%d", h.memory, h.time, h.threads, len(h.salt), len(h.key))
}

// dummy keeps the parameters and lengths and draws salt and key at random:
// verifying costs the same and matches nothing.
func (h argon2Hash) dummy() passwordHash {
	d := h
	d.salt = make([]byte, len(h.salt))
	d.key = make([]byte, len(h.key))
	_, _ = rand.Read(d.salt) // crypto/rand.Read never fails (Go 1.24+)
	_, _ = rand.Read(d.key)
	return d
}

// bcryptHash is a bcrypt hash as stored: "$2b$10$" then 22 characters of
// salt and 31 of hash.
type bcryptHash struct {
	cost    int
	encoded []byte
}

// bcryptForm is stricter than bcrypt.Cost, which accepts any characters
// after the cost.
var bcryptForm = regexp.MustCompile(`^\$2[aby]\$([0-9]{2})\$[./A-Za-z0-9]{53}$`)

func parseBcrypt(s string) (passwordHash, error) {
	m := bcryptForm.FindStringSubmatch(s)
	if m == nil {
		return nil, errors.New("bcrypt hash is not $2b$CC$ and 53 characters of salt and hash")
	}
	cost, _ := strconv.Atoi(m[1]) // two digits
	if cost < bcrypt.MinCost || cost > maxBcryptCost {
		return nil, fmt.Errorf("bcrypt cost %d is outside %d..%d", cost, bcrypt.MinCost, maxBcryptCost)
	}
	return bcryptHash{cost: cost, encoded: []byte(s)}, nil
}

// bcryptMaxPassword is how much of a password bcrypt reads.
const bcryptMaxPassword = 72

func (h bcryptHash) verify(password []byte) bool {
	// bcrypt ignores what follows the 72nd byte, so "72 right bytes and
	// anything" would match: a longer password never does (and
	// GenerateFromPassword refuses to hash one). It is still hashed, so
	// that the time does not depend on the length. CompareHashAndPassword
	// compares in constant time.
	ok := bcrypt.CompareHashAndPassword(h.encoded, password[:min(len(password), bcryptMaxPassword)]) == nil
	return ok && len(password) <= bcryptMaxPassword
}

func (h bcryptHash) params() string { return "bcrypt " + strconv.Itoa(h.cost) }

// bcryptDummyBase is one real bcrypt hash at the lowest cost, made once.
var bcryptDummyBase = sync.OnceValue(func() []byte {
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	b, err := bcrypt.GenerateFromPassword(secret, bcrypt.MinCost)
	if err != nil {
		panic("auth: bcrypt dummy: " + err.Error()) // only with a broken random source
	}
	return b
})

// dummy rewrites the cost of a well-formed minimum-cost hash: verifying
// runs bcrypt at h's cost, and nothing matches a hash made at another cost
// from a random secret.
func (h bcryptHash) dummy() passwordHash {
	b := append([]byte(nil), bcryptDummyBase()...)
	copy(b[4:6], fmt.Sprintf("%02d", h.cost))
	return bcryptHash{cost: h.cost, encoded: b}
}
