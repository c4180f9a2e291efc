package rules

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"gopkg.in/yaml.v3"
)

// MaxFileSize is the largest rules file Parse and Load accept, in bytes.
const MaxFileSize = 1 << 20

// Section is a part of the rules file, one per kind of thing the broker
// guards. Its topics are names within the section, without the namespace
// prefix the broker strips: a record's name, an event's topic, an RPC's
// name (after $rpc/), a listen filter (after $listen/), a presence
// record's client id (after $presence/).
type Section uint8

// The sections. A device section is planned.
const (
	Record Section = iota + 1
	Event
	RPC
	Listen
	Presence
)

const numSections = int(Presence) + 1

var sectionNames = [numSections]string{"", "record", "event", "rpc", "listen", "presence"}

// String returns the section's name in the file.
func (s Section) String() string {
	if int(s) < numSections && s != 0 {
		return sectionNames[s]
	}
	return "section(" + strconv.Itoa(int(s)) + ")"
}

// Action is what is being done in a section. Each section has its own
// actions; the same name in two sections (read) is two actions.
type Action string

// The actions, by section.
const (
	// Record.
	Read   Action = "read" // also Presence
	Create Action = "create"
	Write  Action = "write"
	Delete Action = "delete"
	// Event.
	Publish   Action = "publish"
	Subscribe Action = "subscribe"
	// RPC.
	Provide Action = "provide"
	Request Action = "request"
	// Listen.
	ListenAction Action = "listen"
)

// maxActions is the most actions a section has.
const maxActions = 4

// sectionActions lists each section's actions; an action's index here is
// its slot in an entry.
var sectionActions = [numSections][]Action{
	Record:   {Read, Create, Write, Delete},
	Event:    {Publish, Subscribe},
	RPC:      {Provide, Request},
	Listen:   {ListenAction},
	Presence: {Read},
}

// Actions returns the actions of section s, nil for an unknown section.
func Actions(s Section) []Action {
	if int(s) >= numSections {
		return nil
	}
	return slices.Clone(sectionActions[s])
}

func actionIndex(s Section, a Action) int {
	if int(s) >= numSections {
		return -1
	}
	return slices.Index(sectionActions[s], a)
}

// Rules are the compiled rules of one file, ready to answer for every
// operation. A Rules is immutable and safe for concurrent use. A nil *Rules
// denies everything.
type Rules struct {
	name         string
	defaultAllow bool
	// sections holds each section's entries, most specific pattern first.
	sections [numSections][]*entry
}

// entry is one pattern of a section with its rules.
type entry struct {
	pat  pattern
	line int
	// rules holds the rule of each action of the section, by index in
	// sectionActions; nil where the file gives none, which denies.
	rules [maxActions]*rule
}

// Allowed reports whether action in section is allowed on topic for env.
// The entry whose pattern matches topic most specifically decides: its rule
// for action, or deny if it has none. With no matching pattern the file's
// default decides (deny unless it says allow).
//
// For a subscription, topic is the filter (after any $share/<group>/),
// whose + and # are matched as plain text: sensors/+/t is checked against
// the pattern that matches a topic with the level "+".
//
// The error is ErrUnknownAction when section has no such action, or wraps
// ErrEvaluation when the expression failed; either way the answer is false
// and the caller should log the error and deny.
func (r *Rules) Allowed(section Section, action Action, topic string, env Env) (bool, error) {
	i := actionIndex(section, action)
	if i < 0 {
		return false, fmt.Errorf("%w: %s.%s", ErrUnknownAction, section, action)
	}
	if r == nil {
		return false, nil
	}
	var segs [MaxNamedSegments]string
	e := r.match(section, topic, &segs)
	if e == nil {
		return r.defaultAllow, nil
	}
	ru := e.rules[i]
	switch {
	case ru == nil:
		return false, nil
	case ru.prog == nil:
		return ru.val, nil
	}
	return ru.eval(topic, &segs, &env)
}

// Uses reports whether the rule that decides action in section on topic
// names data or oldData, so that the broker decodes a payload or reads a
// stored value only when the rule needs it. It is false for constant rules,
// missing rules, the default, and unknown actions.
func (r *Rules) Uses(section Section, action Action, topic string) (needsData, needsOldData bool) {
	i := actionIndex(section, action)
	if i < 0 || r == nil {
		return false, false
	}
	var segs [MaxNamedSegments]string
	e := r.match(section, topic, &segs)
	if e == nil || e.rules[i] == nil {
		return false, false
	}
	return e.rules[i].usesData, e.rules[i].usesOldData
}

// Match returns the pattern that decides for topic in section and its line
// in the file, for logging why something was denied; ok is false when no
// pattern matches and the default decides.
func (r *Rules) Match(section Section, topic string) (pattern string, line int, ok bool) {
	if r == nil || int(section) >= numSections {
		return "", 0, false
	}
	var segs [MaxNamedSegments]string
	e := r.match(section, topic, &segs)
	if e == nil {
		return "", 0, false
	}
	return e.pat.text, e.line, true
}

// DefaultAllow reports whether the file says default: allow.
func (r *Rules) DefaultAllow() bool { return r != nil && r.defaultAllow }

// Name returns the name the rules were parsed under (the file's path).
func (r *Rules) Name() string {
	if r == nil {
		return ""
	}
	return r.name
}

// match returns the first entry of section, in order of specificity, whose
// pattern matches topic, with its named segments in segs; nil if none.
func (r *Rules) match(section Section, topic string, segs *[MaxNamedSegments]string) *entry {
	if int(section) >= numSections {
		return nil
	}
	for _, e := range r.sections[section] {
		if e.pat.match(topic, segs) {
			return e
		}
	}
	return nil
}

// Load reads and parses the rules file at path. See Parse.
func Load(path string) (*Rules, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("rules: loading: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("rules: loading %s: %w", path, err)
	}
	return Parse(b, path)
}

// Parse compiles a rules file; name is how problems name the file. It
// checks everything and reports every problem at once: the error is then a
// *LoadError (wrapping ErrInvalid) listing each with its line, and no rules
// are returned.
func Parse(b []byte, name string) (*Rules, error) {
	p := &parser{name: name, rules: &Rules{name: name}}
	p.parse(b)
	if len(p.probs) > 0 {
		slices.SortStableFunc(p.probs, func(a, b Problem) int { return a.Line - b.Line })
		return nil, &LoadError{Problems: p.probs}
	}
	return p.rules, nil
}

// parser collects the rules and the problems of one file.
type parser struct {
	name  string
	rules *Rules
	probs []Problem
}

func (p *parser) problem(line int, where, format string, args ...any) {
	p.probs = append(p.probs, Problem{File: p.name, Line: line, Where: where, Msg: fmt.Sprintf(format, args...)})
}

// yamlLine matches the "line N: " in yaml.v3's messages.
var yamlLine = regexp.MustCompile(`^line (\d+): (.*)$`)

// yamlParserErrors are the messages of yaml.v3's parser (as opposed to its
// scanner), each with the kind of block it names the start of ("" for
// none). yaml.v3 counts the lines of these from 0, and for most of them
// gives the line where the enclosing block starts rather than that of the
// fault (go-yaml/yaml#205): say so rather than point at the wrong line.
var yamlParserErrors = map[string]string{
	"did not find expected key":              "mapping",
	"did not find expected ',' or '}'":       "mapping",
	"did not find expected '-' indicator":    "list",
	"did not find expected ',' or ']'":       "list",
	"did not find expected node content":     "value",
	"found undefined tag handle":             "value",
	"did not find expected <stream-start>":   "",
	"did not find expected <document start>": "",
	"found duplicate %YAML directive":        "",
	"found incompatible YAML document":       "",
	"found duplicate %TAG directive":         "",
}

// yamlProblem adds a problem for an error of yaml.v3, with the line it
// means.
func (p *parser) yamlProblem(err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	block, parserError := yamlParserErrors[msg]
	switch {
	case parserError:
		line++
		if block != "" {
			msg += " (in the " + block + " that starts on this line)"
		}
	case line == 0 && !strings.Contains(msg, "anchor") && !strings.Contains(msg, "aliasing"):
		// A scanner error on the first line, which yaml.v3 leaves
		// unnumbered; errors of anchors have no line at all.
		line = 1
	}
	p.problem(line, "", "%s", msg)
}

func (p *parser) parse(b []byte) {
	if len(b) > MaxFileSize {
		p.problem(0, "", "file is larger than %d bytes", MaxFileSize)
		return
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if !errors.Is(err, io.EOF) {
			p.yamlProblem(err)
		}
		return // an empty file: no rules, deny everything
	}
	// A second document would be ignored silently: refuse it.
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		p.problem(extra.Line, "", "only one YAML document is allowed")
	} else if !errors.Is(err, io.EOF) {
		p.yamlProblem(err)
	}
	if len(doc.Content) == 0 {
		return
	}
	root := resolve(doc.Content[0])
	if isNull(root) {
		return
	}
	if root.Kind != yaml.MappingNode {
		p.problem(root.Line, "", "the file must be a mapping of sections (default, record, event, rpc, listen, presence)")
		return
	}
	seen := map[string]int{}
	forPairs(root, func(k, v *yaml.Node) {
		key, ok := p.key(k, "")
		if !ok {
			return
		}
		if prev, dup := seen[key]; dup {
			p.problem(k.Line, key, "given twice (first on line %d)", prev)
			return
		}
		seen[key] = k.Line
		if key == "default" {
			p.defaultKey(v)
			return
		}
		s := sectionByName(key)
		switch {
		case s != 0:
			p.section(s, v)
		case key == "device":
			p.problem(k.Line, key, "the device section is not supported yet")
		default:
			p.problem(k.Line, "", "unknown section %q (want default, record, event, rpc, listen or presence)", key)
		}
	})
	for s := range p.rules.sections {
		p.sortSection(Section(s))
	}
}

func sectionByName(name string) Section {
	for s, n := range sectionNames {
		if n != "" && n == name {
			return Section(s)
		}
	}
	return 0
}

// resolve follows an alias to its anchored node.
func resolve(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// forPairs calls f with each key and value of mapping n, aliases resolved.
func forPairs(n *yaml.Node, f func(k, v *yaml.Node)) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		f(resolve(n.Content[i]), resolve(n.Content[i+1]))
	}
}

// key returns the text of mapping key k, or reports why it cannot be one.
func (p *parser) key(k *yaml.Node, where string) (string, bool) {
	switch {
	case k.Tag == "!!merge":
		p.problem(k.Line, where, "merge keys (<<) are not supported")
		return "", false
	case k.Kind != yaml.ScalarNode:
		p.problem(k.Line, where, "a key must be a plain string")
		return "", false
	}
	return k.Value, true
}

func (p *parser) defaultKey(v *yaml.Node) {
	if v.Kind == yaml.ScalarNode && v.Tag == "!!str" {
		switch v.Value {
		case "allow":
			p.rules.defaultAllow = true
			return
		case "deny":
			return
		}
	}
	p.problem(v.Line, "default", "must be allow or deny")
}

// section parses a section: a mapping of patterns to their actions.
func (p *parser) section(s Section, v *yaml.Node) {
	if isNull(v) {
		return
	}
	if v.Kind != yaml.MappingNode {
		p.problem(v.Line, s.String(), "must be a mapping of patterns to rules")
		return
	}
	forPairs(v, func(k, v *yaml.Node) {
		text, ok := p.key(k, s.String())
		if !ok {
			return
		}
		where := s.String() + "." + text
		pat, err := parsePattern(text)
		if err != nil {
			p.problem(k.Line, where, "bad pattern: %v", err)
			return
		}
		e := &entry{pat: pat, line: k.Line}
		p.actions(s, e, where, v)
		p.rules.sections[s] = append(p.rules.sections[s], e)
	})
}

// actions parses a pattern's mapping of actions to rules into e. A null
// mapping gives no rules, denying every action on the pattern's topics.
func (p *parser) actions(s Section, e *entry, where string, v *yaml.Node) {
	if isNull(v) {
		return
	}
	if v.Kind != yaml.MappingNode {
		p.problem(v.Line, where, "must be a mapping of actions (%s) to rules", actionList(s))
		return
	}
	forPairs(v, func(k, v *yaml.Node) {
		name, ok := p.key(k, where)
		if !ok {
			return
		}
		i := actionIndex(s, Action(name))
		if i < 0 {
			p.problem(k.Line, where, "unknown action %q (the %s section has %s)", name, s, actionList(s))
			return
		}
		aw := where + "." + name
		if e.rules[i] != nil {
			p.problem(k.Line, aw, "given twice (first on line %d)", e.rules[i].line)
			return
		}
		if r := p.rule(aw, &e.pat, v); r != nil {
			r.where, r.line = aw, k.Line
			e.rules[i] = r
		}
	})
}

func actionList(s Section) string {
	names := make([]string, len(sectionActions[s]))
	for i, a := range sectionActions[s] {
		names[i] = string(a)
	}
	return strings.Join(names, ", ")
}

// rule parses one rule: true, false, or an expression string.
func (p *parser) rule(where string, pat *pattern, v *yaml.Node) *rule {
	if v.Kind == yaml.ScalarNode {
		switch v.Tag {
		case "!!bool":
			var b bool
			if err := v.Decode(&b); err != nil {
				p.problem(v.Line, where, "%v", err)
				return nil
			}
			return &rule{val: b}
		case "!!str":
			r, offset, err := compileRule(v.Value, pat)
			if err != nil {
				line := v.Line
				// A literal block keeps the expression's lines: point at the
				// one at fault. Other styles fold lines together.
				switch {
				case v.Style&yaml.LiteralStyle != 0:
					line += 1 + offset
				case v.Style&yaml.FoldedStyle != 0:
					line++
				}
				p.problem(line, where, "%v", err)
				return nil
			}
			return r
		case "!!null":
			p.problem(v.Line, where, "missing rule: write true, false or an expression")
			return nil
		}
	}
	p.problem(v.Line, where, "a rule must be true, false or an expression string")
	return nil
}

// sortSection orders a section's entries most specific first and reports
// patterns that match the same topics as another.
func (p *parser) sortSection(s Section) {
	es := p.rules.sections[s]
	slices.SortStableFunc(es, func(a, b *entry) int { return compareSpecificity(&a.pat, &b.pat) })
	for i := 1; i < len(es); i++ {
		a, b := es[i-1], es[i]
		if compareSpecificity(&a.pat, &b.pat) != 0 {
			continue
		}
		first, second := a, b
		if second.line < first.line {
			first, second = second, first
		}
		where := s.String() + "." + second.pat.text
		if first.pat.text == second.pat.text {
			p.problem(second.line, where, "duplicate pattern: given twice (first on line %d)", first.line)
		} else {
			p.problem(second.line, where, "duplicate pattern: matches the same topics as %q (line %d)", first.pat.text, first.line)
		}
	}
}

// Holder holds the rules in force and replaces them only with rules that
// loaded without a problem. The zero Holder holds none, which denies
// everything. It is safe for concurrent use.
type Holder struct {
	cur atomic.Pointer[Rules]
}

// Rules returns the rules in force (nil, which denies, before any).
func (h *Holder) Rules() *Rules { return h.cur.Load() }

// Set puts r in force.
func (h *Holder) Set(r *Rules) { h.cur.Store(r) }

// Reload loads the file at path and puts it in force. If it fails to load,
// the rules in force stay, and every problem is logged on log (with its
// file, line and place) at error level; the error is returned for the
// caller's exit status or reply, and need not be logged again. A nil log
// means slog.Default().
func (h *Holder) Reload(path string, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	r, err := Load(path)
	if err != nil {
		var le *LoadError
		if errors.As(err, &le) {
			for _, pr := range le.Problems {
				log.Error("rules: problem in rules file", "file", pr.File, "line", pr.Line, "where", pr.Where, "error", pr.Msg)
			}
		} else {
			log.Error("rules: cannot load rules file", "file", path, "error", err)
		}
		log.Warn("rules: keeping the rules in force", "file", path, "in_force", h.Rules().Name())
		return err
	}
	h.Set(r)
	log.Info("rules: loaded", "file", path)
	return nil
}
