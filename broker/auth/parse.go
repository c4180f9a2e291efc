package auth

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// A Problem is one thing wrong in a users file, at its line. LoadFile and
// Reload join every problem they find (errors.Join); each wraps
// ErrInvalidUsers.
type Problem struct {
	Path string
	Line int    // 1-based
	Key  string // dotted key, "users.bob.password"; empty for the whole document
	Msg  string
}

func (p *Problem) Error() string {
	if p.Key == "" {
		return fmt.Sprintf("%s:%d: %s", p.Path, p.Line, p.Msg)
	}
	return fmt.Sprintf("%s:%d: %s: %s", p.Path, p.Line, p.Key, p.Msg)
}

func (p *Problem) Unwrap() error { return ErrInvalidUsers }

// user is one entry of a users file.
type user struct {
	hash  passwordHash
	roles []string
	data  map[string]any
}

// userSet is a parsed users file. It is never modified once built, so
// Authenticate reads it without a lock.
type userSet struct {
	users map[string]*user
	// dummy is verified for unknown names so that they cost what a known
	// one does; nil when there are no users, and so no names to hide.
	dummy passwordHash
}

// usersDoc is the users file's schema. The node walk in parseUsers checks
// it key by key, with lines; decoding into usersDoc with KnownFields after
// that is a backstop that refuses whatever the walk might let through.
type usersDoc struct {
	Users map[string]struct {
		Password string         `yaml:"password"`
		Roles    []string       `yaml:"roles"`
		Data     map[string]any `yaml:"data"`
	} `yaml:"users"`
}

// usersParser collects a users file's problems.
type usersParser struct {
	path  string
	probs []error
}

func (p *usersParser) add(line int, key, format string, args ...any) {
	p.probs = append(p.probs, &Problem{Path: p.path, Line: max(line, 1), Key: key, Msg: fmt.Sprintf(format, args...)})
}

// yamlLine matches yaml.v3's "yaml: line N: " prefix.
var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// addYAML adds a yaml.v3 error. yaml.v3 leaves the line out for errors on
// the first line and for bad characters: those get line 1 or the line of
// the first character YAML refuses.
func (p *usersParser) addYAML(b []byte, msg string) {
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		p.add(n, "", "%s", m[2])
		return
	}
	p.add(badCharLine(b), "", "%s", strings.TrimPrefix(msg, "yaml: "))
}

// badCharLine is the line of the first byte that is not UTF-8 or a
// character YAML allows, or 1.
func badCharLine(b []byte) int {
	line := 1
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return line
		}
		switch {
		case r == '\n':
			line++
		case r == '\t' || r == '\r' || r == 0x85:
		case r < 0x20 || (r >= 0x7f && r < 0xa0) || r == 0xfffe || r == 0xffff:
			return line
		}
		i += n
	}
	return 1
}

// parseUsers parses a users file's content; path is only for messages. It
// reports every problem, each a *Problem, joined.
func parseUsers(path string, b []byte) (*userSet, error) {
	p := &usersParser{path: path}
	set := &userSet{users: map[string]*user{}}

	dec := yaml.NewDecoder(bytes.NewReader(b))
	var doc yaml.Node
	if err := safeDecode(dec.Decode, &doc); err != nil && !errors.Is(err, io.EOF) {
		p.addYAML(b, err.Error())
		return nil, errors.Join(p.probs...)
	}
	// A second document would be ignored silently: refuse it.
	var extra yaml.Node
	if err := safeDecode(dec.Decode, &extra); err == nil {
		p.add(extra.Line, "", "only one YAML document is allowed")
	} else if !errors.Is(err, io.EOF) {
		p.addYAML(b, err.Error())
	}

	if root := docRoot(&doc); root != nil {
		p.walkRoot(root, set)
	}
	if len(p.probs) == 0 {
		var d usersDoc
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := safeDecode(dec.Decode, &d); err != nil && !errors.Is(err, io.EOF) {
			var te *yaml.TypeError
			if errors.As(err, &te) {
				for _, e := range te.Errors {
					p.addYAML(b, e)
				}
			} else {
				p.addYAML(b, err.Error())
			}
		}
	}
	if len(p.probs) > 0 {
		// In file order, however the walk found them.
		slices.SortStableFunc(p.probs, func(a, b error) int { return a.(*Problem).Line - b.(*Problem).Line })
		return nil, errors.Join(p.probs...)
	}
	set.dummy = pickDummy(set.users)
	return set, nil
}

// safeDecode runs a yaml.v3 decode, turning a panic into an error:
// yaml.v3 (v3.0.1, no longer maintained) panics on some inputs, such as a
// merge key next to a mapping used as a key, found by FuzzLoadFile.
func safeDecode(decode func(any) error, v any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: cannot decode: %v", r)
		}
	}()
	return decode(v)
}

// docRoot is a document's top node, or nil for an empty document or a
// null one.
func docRoot(doc *yaml.Node) *yaml.Node {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil
	}
	n := deref(doc.Content[0])
	if isNull(n) {
		return nil
	}
	return n
}

// deref follows an alias to its anchored node.
func deref(n *yaml.Node) *yaml.Node {
	if n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// isString reports whether n is a scalar that is a string (the value is
// n.Value), not a number, boolean or null.
func isString(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" }

func (p *usersParser) walkRoot(root *yaml.Node, set *userSet) {
	if root.Kind != yaml.MappingNode {
		p.add(root.Line, "", "the file must be a mapping with the key users")
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], deref(root.Content[i+1])
		if !isString(k) || k.Value != "users" {
			p.add(k.Line, "", "unknown key %q: the file has only users", k.Value)
			continue
		}
		if first, dup := seen[k.Value]; dup {
			p.add(k.Line, "users", "defined twice (first at line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		p.walkUsers(v, set)
	}
}

func (p *usersParser) walkUsers(n *yaml.Node, set *userSet) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		p.add(n.Line, "users", "must be a mapping of user names to users")
		return
	}
	first := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], deref(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			p.add(k.Line, "users", "a user name must be a string, not a %s", kindName(k))
			continue
		}
		name := k.Value
		if isNull(k) {
			name = ""
		}
		key := "users." + name
		if name == "" {
			key = `users.""`
		}
		if msg := checkName(name); msg != "" {
			p.add(k.Line, key, "user name %s", msg)
			continue
		}
		if line, dup := first[name]; dup {
			p.add(k.Line, key, "defined twice (first at line %d)", line)
			continue
		}
		first[name] = k.Line
		if u := p.walkUser(key, k.Line, v); u != nil {
			set.users[name] = u
		}
	}
}

// walkUser checks one user; it returns nil if the user has problems.
func (p *usersParser) walkUser(key string, line int, n *yaml.Node) *user {
	if isNull(n) {
		p.add(line, key, "password is missing")
		return nil
	}
	if n.Kind != yaml.MappingNode {
		p.add(n.Line, key, "a user must be a mapping with password, roles and data")
		return nil
	}
	before := len(p.probs)
	u := &user{}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], deref(n.Content[i+1])
		field := key + "." + k.Value
		if first, dup := seen[k.Value]; dup && isString(k) {
			p.add(k.Line, field, "defined twice (first at line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		switch {
		case isString(k) && k.Value == "password":
			if !isString(v) {
				p.add(v.Line, field, "must be a string (a password hash), not a %s", kindName(v))
				continue
			}
			h, err := parseHash(v.Value)
			if err != nil {
				p.add(v.Line, field, "%v", err)
				continue
			}
			u.hash = h
		case isString(k) && k.Value == "roles":
			u.roles = p.walkRoles(field, v)
		case isString(k) && k.Value == "data":
			u.data = p.walkData(field, v)
		default:
			p.add(k.Line, field, "unknown key: a user has password, roles and data")
		}
	}
	if _, ok := seen["password"]; !ok {
		p.add(line, key, "password is missing")
	}
	if len(p.probs) > before {
		return nil
	}
	return u
}

func (p *usersParser) walkRoles(key string, n *yaml.Node) []string {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.add(n.Line, key, "must be a list of role names, not a %s", kindName(n))
		return nil
	}
	var roles []string
	for _, r := range n.Content {
		r = deref(r)
		if r.Kind != yaml.ScalarNode || isNull(r) || r.Value == "" {
			p.add(r.Line, key, "a role must be a non-empty name, not a %s", kindName(r))
			continue
		}
		if slices.Contains(roles, r.Value) {
			p.add(r.Line, key, "role %q is listed twice", r.Value)
			continue
		}
		roles = append(roles, r.Value)
	}
	return roles
}

func (p *usersParser) walkData(key string, n *yaml.Node) map[string]any {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		p.add(n.Line, key, "must be a mapping, not a %s", kindName(n))
		return nil
	}
	before := len(p.probs)
	p.checkDataKeys(key, n)
	if len(p.probs) > before {
		return nil
	}
	var m map[string]any
	if err := safeDecode(n.Decode, &m); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			for _, e := range te.Errors {
				p.addYAMLAt(n.Line, key, e)
			}
		} else {
			p.addYAMLAt(n.Line, key, err.Error())
		}
	}
	if len(p.probs) > before {
		return nil
	}
	return m
}

// addYAMLAt adds a yaml.v3 decoding error about key, at its own line if it
// has one.
func (p *usersParser) addYAMLAt(line int, key, msg string) {
	msg = strings.TrimPrefix(msg, "yaml: ")
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	p.add(line, key, "%s", msg)
}

// checkDataKeys refuses mapping keys that are not strings anywhere in data:
// yaml.v3 would decode such a mapping as map[any]any, which the permission
// rules cannot address. Aliases are not followed: what they point to is
// checked where it is defined, and following them would let a small file
// make the walk exponential.
func (p *usersParser) checkDataKeys(key string, n *yaml.Node) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			switch {
			case k.Kind != yaml.ScalarNode:
				p.add(k.Line, key, "a key is a %s, not a string", kindName(k))
				continue
			case !isString(k) && k.ShortTag() != "!!merge":
				p.add(k.Line, key, "key %q is a %s, not a string: quote it", k.Value, kindName(k))
				continue
			}
			p.checkDataKeys(key+"."+k.Value, n.Content[i+1])
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			p.checkDataKeys(key, c)
		}
	}
}

// kindName names a node's kind for messages.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.AliasNode:
		return "alias"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "null"
		case "!!str":
			return "string"
		case "!!int", "!!float":
			return "number"
		case "!!bool":
			return "boolean"
		}
		return strings.TrimPrefix(n.ShortTag(), "!!")
	}
	return "document"
}

// maxNameLen is the longest MQTT string: a longer user name could never be
// presented in CONNECT.
const maxNameLen = 65535

// checkName returns why name is not a valid user name, or "".
func checkName(name string) string {
	switch {
	case name == "":
		return "is empty"
	case len(name) > maxNameLen:
		return fmt.Sprintf("is longer than %d bytes", maxNameLen)
	case !utf8.ValidString(name):
		return "is not UTF-8"
	case strings.ContainsFunc(name, unicode.IsControl):
		return "has a control character"
	}
	return ""
}

// pickDummy returns a dummy hash with the parameters most users have, so
// that an unknown name costs what a typical known one does; nil without
// users.
func pickDummy(users map[string]*user) passwordHash {
	count := map[string]int{}
	var best passwordHash
	bestKey := ""
	for _, u := range users {
		k := u.hash.params()
		count[k]++
		// Ties go to the smaller key, so the choice does not depend on map
		// order.
		if best == nil || count[k] > count[bestKey] || (count[k] == count[bestKey] && k < bestKey) {
			best, bestKey = u.hash, k
		}
	}
	if best == nil {
		return nil
	}
	return best.dummy()
}
