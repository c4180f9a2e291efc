package auth

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"gopkg.in/yaml.v3"
)

// The users-file editors (AddUser, SetUser, RemoveUser) share one
// discipline:
//
//   - they take an exclusive lock on PATH.lock (flock), so two editors at
//     once both land instead of one overwriting the other; the lock file is
//     never removed, since removing it would let a third editor lock a new
//     file while the second still holds the old one;
//   - they edit the YAML node tree, so that other users, their data and
//     the file's comments survive (the layout is re-indented);
//   - they refuse an edit that would leave the file with more problems
//     than it had, or with any if it had none;
//   - they write a temporary file in the same directory, fsync it, rename
//     it over the file and fsync the directory, so that the broker reading
//     the file, or a crash, sees the old file or the new one, never half;
//   - the new file keeps the old one's permissions and owner (0600 for a
//     new file), and a symbolic link is followed, not replaced.

// hashNew hashes the passwords the editors store: HashPassword, but for
// tests, which swap in cheap parameters.
var hashNew = HashPassword

// lockTimeout bounds the wait for another editor.
var lockTimeout = 10 * time.Second

// AddUser adds a user with password (hashed with HashPassword) and roles to
// the users file at path, creating the file (0600) and its directory if
// missing. It returns ErrUserExists if the name is taken (SetUser
// replaces), ErrBadName, ErrBadRole or ErrEmptyPassword for bad input,
// ErrLocked if another editor holds the file too long, and the file's
// problems if it is not a users file it can edit.
func AddUser(path, name string, password []byte, roles []string) error {
	return putUser(path, name, password, roles, false)
}

// SetUser adds a user as AddUser does or, if the name exists, replaces its
// password and, when roles is not nil, its roles (an empty non-nil roles
// removes them); the user's data is kept. It returns AddUser's errors
// except ErrUserExists.
func SetUser(path, name string, password []byte, roles []string) error {
	return putUser(path, name, password, roles, true)
}

// RemoveUser removes a user from the users file at path. It returns
// ErrNoSuchUser if the name is not there, an error wrapping
// fs.ErrNotExist if the file is missing, and the errors of AddUser about
// the file.
func RemoveUser(path, name string) error {
	return editUsers(path, false, func(users *yaml.Node) error {
		found := false
		// A file with the name twice is invalid; removing every entry
		// repairs it.
		for i := 0; i+1 < len(users.Content); {
			if k := users.Content[i]; k.Kind == yaml.ScalarNode && !isNull(k) && k.Value == name {
				users.Content = slices.Delete(users.Content, i, i+2)
				found = true
				continue
			}
			i += 2
		}
		if !found {
			return fmt.Errorf("%w: %s", ErrNoSuchUser, name)
		}
		return nil
	})
}

// CheckName returns ErrBadName, wrapped with the reason, if name cannot be
// a user's name: empty, longer than an MQTT string (65535 bytes), not
// UTF-8, or with a control character.
func CheckName(name string) error {
	if msg := checkName(name); msg != "" {
		return fmt.Errorf("%w %q: %s", ErrBadName, name, msg)
	}
	return nil
}

// CheckRoles returns ErrBadRole, wrapped with the reason, if a role is
// empty or given twice.
func CheckRoles(roles []string) error {
	for i, r := range roles {
		if r == "" {
			return fmt.Errorf("%w: empty role name", ErrBadRole)
		}
		if slices.Contains(roles[:i], r) {
			return fmt.Errorf("%w: %q given twice", ErrBadRole, r)
		}
	}
	return nil
}

func putUser(path, name string, password []byte, roles []string, replace bool) error {
	if err := CheckName(name); err != nil {
		return err
	}
	if err := CheckRoles(roles); err != nil {
		return err
	}
	// Hash before taking the lock: it is the slow part.
	hash, err := hashNew(password)
	if err != nil {
		return err
	}
	return editUsers(path, true, func(users *yaml.Node) error {
		i := findUser(users, name)
		if i < 0 {
			u := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			setField(u, "password", passwordNode(hash))
			if len(roles) > 0 {
				setField(u, "roles", rolesNode(roles))
			}
			users.Content = append(users.Content, strNode(name), u)
			return nil
		}
		if !replace {
			return fmt.Errorf("%w: %s", ErrUserExists, name)
		}
		// Build a new mapping rather than changing the old nodes, which an
		// alias elsewhere in the file may share.
		old := deref(users.Content[i+1])
		u := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		if old.Kind == yaml.MappingNode {
			u.Content = slices.Clone(old.Content)
			u.Style, u.HeadComment, u.LineComment, u.FootComment = old.Style, old.HeadComment, old.LineComment, old.FootComment
		}
		setField(u, "password", passwordNode(hash))
		switch {
		case roles == nil:
		case len(roles) == 0:
			delField(u, "roles")
		default:
			setField(u, "roles", rolesNode(roles))
		}
		users.Content[i+1] = u
		return nil
	})
}

// findUser returns the index of name's key in the users mapping, or -1.
func findUser(users *yaml.Node, name string) int {
	for i := 0; i+1 < len(users.Content); i += 2 {
		if k := users.Content[i]; k.Kind == yaml.ScalarNode && !isNull(k) && k.Value == name {
			return i
		}
	}
	return -1
}

func strNode(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v} }

func passwordNode(hash string) *yaml.Node {
	n := strNode(hash)
	n.Style = yaml.DoubleQuotedStyle
	return n
}

func rolesNode(roles []string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle}
	for _, r := range roles {
		n.Content = append(n.Content, strNode(r))
	}
	return n
}

// setField sets key to v in mapping m, in place if present.
func setField(m *yaml.Node, key string, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1] = v
			return
		}
	}
	m.Content = append(m.Content, strNode(key), v)
}

func delField(m *yaml.Node, key string) {
	for i := 0; i+1 < len(m.Content); {
		if m.Content[i].Value == key {
			m.Content = slices.Delete(m.Content, i, i+2)
			continue
		}
		i += 2
	}
}

// editUsers runs edit on the users mapping of the file at path, under the
// lock, and writes the result atomically. Unless create, a missing file is
// an error, and neither its directory nor the lock file is created.
func editUsers(path string, create bool, edit func(users *yaml.Node) error) error {
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	} else if !create {
		return fmt.Errorf("auth: users file: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return fmt.Errorf("auth: users file: %w", err)
	}
	unlock, err := lockFile(path+".lock", lockTimeout)
	if err != nil {
		return err
	}
	defer unlock()

	var prev os.FileInfo
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("auth: users file: %w", err)
	default:
		if prev, err = os.Stat(path); err != nil {
			return fmt.Errorf("auth: users file: %w", err)
		}
	}
	doc, users, err := editableDoc(path, b)
	if err != nil {
		return err
	}
	_, before := parseUsers(path, b)
	if err := edit(users); err != nil {
		return err
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := safeDecode(enc.Encode, doc); err != nil { // yaml.v3 may panic on odd trees too
		return fmt.Errorf("auth: users file: encode: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("auth: users file: encode: %w", err)
	}
	out := buf.Bytes()
	if _, after := parseUsers(path, out); after != nil && (before == nil || countProblems(after) > countProblems(before)) {
		return fmt.Errorf("auth: users file: the edit would leave it invalid, so it was not written: %w", after)
	}
	return writeAtomic(path, out, prev)
}

func countProblems(err error) int {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return len(j.Unwrap())
	}
	return 1
}

// editableDoc parses a users file into a node tree whose users mapping an
// edit can change. It refuses a file that is not YAML, has more than one
// document (the others would be lost) or whose top level or users key is
// not a mapping; other problems, say a user with a bad hash, do not stop
// an edit.
func editableDoc(path string, b []byte) (doc, users *yaml.Node, err error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	doc = &yaml.Node{}
	if err := safeDecode(dec.Decode, doc); err != nil && !errors.Is(err, io.EOF) {
		_, perr := parseUsers(path, b)
		return nil, nil, perr
	}
	var extra yaml.Node
	if err := safeDecode(dec.Decode, &extra); !errors.Is(err, io.EOF) {
		_, perr := parseUsers(path, b)
		return nil, nil, perr
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		doc = &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode, Tag: "!!map"}}}
	}
	root := doc.Content[0]
	if isNull(root) {
		*root = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", HeadComment: root.HeadComment, LineComment: root.LineComment, FootComment: root.FootComment}
	}
	if root.Kind != yaml.MappingNode {
		_, perr := parseUsers(path, b)
		return nil, nil, perr
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != "users" {
			continue
		}
		v := root.Content[i+1]
		if isNull(v) {
			v = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", LineComment: v.LineComment}
			root.Content[i+1] = v
		}
		if v.Kind != yaml.MappingNode {
			_, perr := parseUsers(path, b)
			return nil, nil, perr
		}
		// Block style, or a user added to "users: {}" would be written
		// in flow style.
		v.Style = 0
		return doc, v, nil
	}
	users = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	root.Content = append(root.Content, strNode("users"), users)
	return doc, users, nil
}

// writeAtomic replaces path with b: a temporary file in the same directory,
// fsynced, renamed over path, and the directory fsynced. The file keeps
// prev's permissions and owner, or is 0600 when new.
func writeAtomic(path string, b []byte, prev os.FileInfo) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("auth: users file: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	mode := fs.FileMode(0o600)
	if prev != nil {
		mode = prev.Mode().Perm()
		if err := keepOwner(tmp, prev); err != nil {
			return fmt.Errorf("auth: users file %s: %w", path, err)
		}
	}
	// Chmod after CreateTemp (0600 already) so that a looser old mode is
	// kept exactly and the umask plays no part.
	if err := tmp.Chmod(mode); err != nil {
		return fmt.Errorf("auth: users file: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		return fmt.Errorf("auth: users file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("auth: users file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("auth: users file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("auth: users file: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("auth: users file: sync %s: %w", dir, err)
	}
	return nil
}
