package rules

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
)

// Limits on expressions and their evaluation.
const (
	// MaxRecordReads is the most different records one evaluation may read
	// with record(); reading another fails the evaluation, which denies.
	// Reading a name again returns the first read's value and does not
	// count.
	MaxRecordReads = 8
	// MaxExpressionNodes bounds the size of one expression (its syntax tree
	// nodes: a name, an operator, a literal each count one).
	MaxExpressionNodes = 1000
)

// Env is what an expression is evaluated over. Its zero value is usable:
// an anonymous user on an unknown client, no data, no records.
type Env struct {
	User   User
	Client Client
	// Data is the incoming value: the payload of a publish or request, or
	// for a merge or a set at a path, the whole document as it would be
	// after the change. Values are those of broker/document's model
	// (map[string]any, []any, string, int64, uint64, float64, []byte,
	// bool, nil); expressions never modify them.
	Data any
	// OldData is the stored value, nil when there is none.
	OldData any
	// Now is the time of the operation; the zero time means time.Now().
	Now time.Time
	// Records serves record("name"). Nil makes record() fail the
	// evaluation (deny).
	Records RecordReader
}

// User is who the client is, as authentication found (auth.Identity). The
// expr tags are the names expressions use: user.id, user.roles, user.data.
type User struct {
	// ID is empty for an anonymous client.
	ID    string         `expr:"id"`
	Roles []string       `expr:"roles"`
	Data  map[string]any `expr:"data"`
}

// Client is the connection: client.id, client.address, client.protocol.
type Client struct {
	ID string `expr:"id"`
	// Address is the remote address, host:port.
	Address string `expr:"address"`
	// Protocol is the MQTT version: "3.1.1" or "5", as in presence
	// records.
	Protocol string `expr:"protocol"`
}

// RecordReader reads a stored record for record("name") in an expression.
// ok is false when there is no such record (record() then returns nil); an
// error fails the evaluation, which denies. It must not evaluate rules
// itself: a record read by a rule is read regardless of any read rule.
type RecordReader interface {
	Record(name string) (value any, ok bool, err error)
}

// evalEnv is the environment expressions are compiled against and run
// over. The expr tags are the names the expressions see; the segment slots
// have names that no expression can spell (they contain a space), and
// compileRule rewrites each $name into its slot's name.
type evalEnv struct {
	User    User                      `expr:"user"`
	Client  Client                    `expr:"client"`
	Data    any                       `expr:"data"`
	OldData any                       `expr:"oldData"`
	Now     time.Time                 `expr:"now"`
	Record  func(string) (any, error) `expr:"record"`
	S0      string                    `expr:"segment 0"`
	S1      string                    `expr:"segment 1"`
	S2      string                    `expr:"segment 2"`
	S3      string                    `expr:"segment 3"`
	S4      string                    `expr:"segment 4"`
	S5      string                    `expr:"segment 5"`
	S6      string                    `expr:"segment 6"`
	S7      string                    `expr:"segment 7"`
}

// Keep the slots and MaxNamedSegments in step.
var _ = [1]struct{}{}[MaxNamedSegments-8]

func segmentField(i int) string { return "segment " + strconv.Itoa(i) }

// rule is one action's rule: a constant or a compiled expression.
type rule struct {
	where string // section.pattern.action, for errors
	line  int
	// prog is nil for a constant rule, whose verdict is val.
	prog *vm.Program
	val  bool
	// usesData and usesOldData say whether the expression names data or
	// oldData, so that the broker decodes or reads them only when needed.
	usesData, usesOldData bool
}

// compileRule compiles the expression src of a rule on pattern p. The
// error's message is for a Problem; line is the offset of the expression
// line where it is from the expression's first line (0 for one-line
// expressions).
func compileRule(src string, p *pattern) (r *rule, line int, err error) {
	// A rules file must never bring the broker down: should the expression
	// library panic on some input, that is a problem with the file.
	defer func() {
		if v := recover(); v != nil {
			r, line, err = nil, 0, fmt.Errorf("expression could not be compiled (internal error: %v)", v)
		}
	}()
	if strings.TrimSpace(src) == "" {
		return nil, 0, errors.New("empty expression")
	}
	v := &segmentVisitor{names: p.names}
	prog, err := expr.Compile(src,
		expr.Env(&evalEnv{}),
		expr.AsBool(),
		expr.MaxNodes(MaxExpressionNodes),
		// now is the operation's time (Env.Now), not the clock's: one
		// evaluation sees one time, and tests can set it.
		expr.DisableBuiltin("now"),
		expr.Patch(v),
	)
	// The visitor's complaints explain the compiler's "unknown name".
	if v.err != nil {
		return nil, 0, v.err
	}
	if err != nil {
		var fe *file.Error
		if errors.As(err, &fe) {
			msg := fe.Message
			if fe.Snippet != "" {
				msg = fmt.Sprintf("%s (column %d)", msg, fe.Column+1)
			}
			return nil, max(fe.Line-1, 0), errors.New(msg)
		}
		return nil, 0, err
	}
	r = &rule{usesData: v.data, usesOldData: v.oldData}
	if b, ok := prog.Node().(*ast.BoolNode); ok {
		// "true", "1 < 2": no need to run anything.
		r.val = b.Value
	} else {
		r.prog = prog
	}
	return r, 0, nil
}

// segmentVisitor rewrites $name into the name of its segment slot, refuses
// $ names the pattern does not have, and notes whether data and oldData are
// named. Noting is conservative: a local variable called data counts too.
type segmentVisitor struct {
	names         []string
	data, oldData bool
	err           error
}

func (v *segmentVisitor) Visit(n *ast.Node) {
	id, ok := (*n).(*ast.IdentifierNode)
	if !ok {
		return
	}
	switch {
	case id.Value == "data":
		v.data = true
	case id.Value == "oldData":
		v.oldData = true
	case id.Value == "$env":
		// $env reaches every variable by a computed name, which would
		// hide uses of data and oldData and expose the segment slots.
		v.fail(fmt.Errorf("$env is not available: name variables directly"))
	case strings.HasPrefix(id.Value, "$"):
		for i, name := range v.names {
			if id.Value[1:] == name {
				ast.Patch(n, &ast.IdentifierNode{Value: segmentField(i)})
				return
			}
		}
		if len(v.names) == 0 {
			v.fail(fmt.Errorf("unknown name %s: the pattern has no named segments", id.Value))
		} else {
			v.fail(fmt.Errorf("unknown name %s: the pattern's named segments are $%s", id.Value, strings.Join(v.names, ", $")))
		}
	}
}

func (v *segmentVisitor) fail(err error) {
	if v.err == nil {
		v.err = err
	}
}

// evalState is what one evaluation needs besides the program, pooled so
// that evaluating allocates little: the environment (whose Record is bound
// to the state once), a reusable VM, and the records read so far.
type evalState struct {
	env    evalEnv
	vm     vm.VM
	reader RecordReader
	reads  []recordRead
}

type recordRead struct {
	name  string
	value any
}

var statePool = sync.Pool{New: func() any {
	st := &evalState{reads: make([]recordRead, 0, MaxRecordReads)}
	st.env.Record = st.record
	return st
}}

// record is record("name") in expressions.
func (st *evalState) record(name string) (any, error) {
	for _, r := range st.reads {
		if r.name == name {
			return r.value, nil
		}
	}
	if st.reader == nil {
		return nil, ErrNoRecords
	}
	if len(st.reads) == MaxRecordReads {
		return nil, fmt.Errorf("%w: record(%q) would be read number %d, at most %d are allowed", ErrTooManyReads, name, MaxRecordReads+1, MaxRecordReads)
	}
	v, ok, err := st.reader.Record(name)
	if err != nil {
		return nil, fmt.Errorf("rules: reading record %q: %w", name, err)
	}
	if !ok {
		v = nil
	}
	st.reads = append(st.reads, recordRead{name, v})
	return v, nil
}

// eval runs r's program over env and the named segment values segs.
func (r *rule) eval(topic string, segs *[MaxNamedSegments]string, env *Env) (bool, error) {
	st := statePool.Get().(*evalState)
	e := &st.env
	e.User, e.Client, e.Data, e.OldData, e.Now = env.User, env.Client, env.Data, env.OldData, env.Now
	if e.Now.IsZero() {
		e.Now = time.Now()
	}
	e.S0, e.S1, e.S2, e.S3, e.S4, e.S5, e.S6, e.S7 = segs[0], segs[1], segs[2], segs[3], segs[4], segs[5], segs[6], segs[7]
	st.reader = env.Records
	out, err := st.vm.Run(r.prog, e)
	// Drop every reference, so the pool keeps no user data alive.
	*e = evalEnv{Record: e.Record}
	st.reader = nil
	clear(st.reads)
	st.reads = st.reads[:0]
	statePool.Put(st)

	if err != nil {
		return false, r.evalError(topic, err)
	}
	b, ok := out.(bool)
	if !ok {
		// expr.AsBool makes the VM check this; be safe anyway.
		return false, fmt.Errorf("%w: %s (line %d) on %q: yielded %T, not a bool", ErrEvaluation, r.where, r.line, topic, out)
	}
	return b, nil
}

// evalError is an evaluation failure: it wraps ErrEvaluation and the cause.
type evalError struct {
	msg string
	err error
}

func (e *evalError) Error() string   { return e.msg }
func (e *evalError) Unwrap() []error { return []error{ErrEvaluation, e.err} }

// evalError turns an error of the VM into one line naming the rule, the
// topic and the column of the expression where it failed.
func (r *rule) evalError(topic string, err error) error {
	cause, msg := err, err.Error()
	var fe *file.Error
	if errors.As(err, &fe) {
		msg = fmt.Sprintf("%s (line %d, column %d of the expression)", fe.Message, fe.Line, fe.Column+1)
		if fe.Prev != nil {
			cause = fe.Prev
		}
	}
	return &evalError{
		msg: fmt.Sprintf("%s: %s (line %d) on %q: %s", ErrEvaluation, r.where, r.line, topic, msg),
		err: cause,
	}
}
