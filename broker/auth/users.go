package auth

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// File authenticates against a users file (mode "file"):
//
//	users:
//	  alice:
//	    password: "$argon2id$v=19$m=65536,t=3,p=2$SALT$KEY"  # or a bcrypt $2b$ hash
//	    roles: [admin]
//	    data: {room: kitchen}
//
// An unknown user name passes to the next authenticator; a known one with
// a wrong password is denied. The file reloads with Reload or Watch; a file
// that fails to load leaves the users in force.
type File struct {
	path  string
	users atomic.Pointer[userSet]
	// slots bounds how many passwords are verified at once: each argon2id
	// verification holds its memory parameter (64 MiB by default), and a
	// burst of connects must not exhaust a small board's memory.
	slots chan struct{}

	mu   sync.Mutex // serializes reloads
	seen fileStamp  // the file the last reload read (or tried to); guarded by mu
}

var _ Authenticator = (*File)(nil)

// LoadFile loads the users file at path. Problems with the file's content
// are all reported, each a *Problem with its line (joined; errors.Is
// ErrInvalidUsers); a file that cannot be read is an error too. A file with
// no users, or an empty users key, is valid.
func LoadFile(path string) (*File, error) {
	f := &File{path: path, slots: make(chan struct{}, max(1, runtime.GOMAXPROCS(0)))}
	if err := f.Reload(); err != nil {
		return nil, err
	}
	return f, nil
}

// Name is "file".
func (f *File) Name() string { return "file" }

// Path is the users file's path.
func (f *File) Path() string { return f.path }

// Authenticate checks c's username and password. An empty or unknown
// username passes; a known one with a wrong password is denied; the right
// one is allowed with the user's roles and data (copies: the caller may
// keep them). The error is only ctx's, if it ends while waiting for a
// verification slot.
func (f *File) Authenticate(ctx context.Context, c Credentials) (Decision, Identity, error) {
	if c.Username == "" {
		// No user has an empty name, so passing at once reveals nothing.
		return Pass, Identity{}, nil
	}
	set := f.users.Load()
	u, known := set.users[c.Username]
	h := set.dummy
	if known {
		h = u.hash
	}
	if h == nil {
		return Pass, Identity{}, nil // no users: no name to hide
	}
	select {
	case f.slots <- struct{}{}:
	case <-ctx.Done():
		return Deny, Identity{}, fmt.Errorf("auth: file: waiting to verify a password: %w", ctx.Err())
	}
	// Unknown names verify the dummy too, so that timing does not tell
	// which names exist.
	ok := h.verify(c.Password)
	<-f.slots
	switch {
	case !known:
		return Pass, Identity{}, nil
	case !ok:
		return Deny, Identity{}, nil
	}
	return Allow, Identity{User: c.Username, Roles: slices.Clone(u.roles), Data: cloneMap(u.data)}, nil
}

// Reload re-reads the users file. On any error, returned with every
// problem's line as LoadFile's, the users loaded before stay in force. It
// is safe to call concurrently with Authenticate and with itself.
func (f *File) Reload() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	set, stamp, err := readUsers(f.path)
	f.seen = stamp // even on error: Watch retries only once the file changes again
	if err != nil {
		return err
	}
	f.users.Store(set)
	return nil
}

// readUsers reads and parses a users file, with the stamp of what it read.
func readUsers(path string) (*userSet, fileStamp, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("auth: users file: %w", err)
	}
	defer fh.Close()
	// The stamp is taken before reading: if the file changes while it is
	// read, the next poll sees a new stamp and reloads again.
	fi, err := fh.Stat()
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("auth: users file: %w", err)
	}
	stamp := stampOf(fi)
	b, err := io.ReadAll(fh)
	if err != nil {
		return nil, stamp, fmt.Errorf("auth: users file: %w", err)
	}
	set, err := parseUsers(path, b)
	return set, stamp, err
}

// watchEvery is how often Watch polls the users file.
const watchEvery = time.Second

// Watch polls the users file every second and reloads it when its
// modification time, size or inode has changed (an edit in place or a
// rename over it) and then stayed the same for one more poll, so that a
// file caught half-written by an editor is not loaded. It calls onReload
// (if not nil) with Reload's result. A file that fails to load is reported
// once, not at every poll; so is a file that disappears. Watch returns when
// ctx ends; run it in its own goroutine.
func (f *File) Watch(ctx context.Context, onReload func(error)) {
	f.watch(ctx, watchEvery, onReload)
}

func (f *File) watch(ctx context.Context, every time.Duration, onReload func(error)) {
	t := time.NewTicker(every)
	defer t.Stop()
	var pending fileStamp // a change seen at the last poll
	hasPending := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var now fileStamp // zero while the file is missing, as Reload records then
		if fi, err := os.Stat(f.path); err == nil {
			now = stampOf(fi)
		}
		f.mu.Lock()
		changed := now != f.seen
		f.mu.Unlock()
		switch {
		case !changed:
			hasPending = false
			continue
		case !hasPending || now != pending:
			pending, hasPending = now, true
			continue
		}
		hasPending = false
		err := f.Reload()
		if onReload != nil {
			onReload(err)
		}
	}
}

// fileStamp identifies a version of a file: an atomic rename changes the
// inode, an edit in place the modification time or size.
type fileStamp struct {
	dev, ino uint64
	size     int64
	mtime    int64 // ns
}

// UserInfo is a user as ListUsers shows it: never the hash.
type UserInfo struct {
	Name  string
	Roles []string
}

// ListUsers returns the users in the users file at path, sorted by name.
// A file with problems is an error, as for LoadFile.
func ListUsers(path string) ([]UserInfo, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: users file: %w", err)
	}
	set, err := parseUsers(path, b)
	if err != nil {
		return nil, err
	}
	infos := make([]UserInfo, 0, len(set.users))
	for name, u := range set.users {
		infos = append(infos, UserInfo{Name: name, Roles: slices.Clone(u.roles)})
	}
	slices.SortFunc(infos, func(a, b UserInfo) int { return strings.Compare(a.Name, b.Name) })
	return infos, nil
}

// cloneMap deep-copies a user's data, so that a connection's Identity
// cannot change what later logins see.
func cloneMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	c := maps.Clone(m)
	for k, v := range c {
		c[k] = cloneValue(v)
	}
	return c
}

func cloneValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		return cloneMap(v)
	case []any:
		c := slices.Clone(v)
		for i := range c {
			c[i] = cloneValue(c[i])
		}
		return c
	}
	return v
}
