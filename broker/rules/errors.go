package rules

import (
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrInvalid is wrapped by the *LoadError that Parse and Load return
	// for a rules file with problems in it. Nothing of such a file is
	// used: the caller keeps the rules it had (see Holder.Reload).
	ErrInvalid = errors.New("rules: invalid rules file")

	// ErrUnknownAction is returned by Allowed and Uses for an action that
	// the section does not have (record.publish, say): a bug in the
	// caller, never caused by the rules file.
	ErrUnknownAction = errors.New("rules: unknown action")

	// ErrEvaluation is wrapped by every error of a rule whose expression
	// failed at run time: a field of nil, a comparison of a string with a
	// number, a value that is not a bool where one is needed (data.flag
	// when flag is "yes"), a record() read that failed. Allowed then
	// denies.
	ErrEvaluation = errors.New("rules: evaluation failed")

	// ErrTooManyReads is wrapped (with ErrEvaluation) when one evaluation
	// calls record() for more than MaxRecordReads different names.
	ErrTooManyReads = errors.New("rules: too many record() reads")

	// ErrNoRecords is wrapped (with ErrEvaluation) when an expression calls
	// record() but the Env has no RecordReader.
	ErrNoRecords = errors.New("rules: record() has no reader")
)

// Problem is one thing wrong with a rules file, with where it is.
type Problem struct {
	// File is the name given to Parse (the path, for Load).
	File string
	// Line is the 1-based line in the file; 0 when the problem has no line
	// (an unreadable file).
	Line int
	// Where names the place in the rule tree: "record", "record.users/$uid",
	// "record.users/$uid.write"; empty for the file as a whole.
	Where string
	// Msg says what is wrong.
	Msg string
}

// String formats the problem as "file:line: where: msg", leaving out the
// parts that are empty, the form editors and the log understand.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
	}
	b.WriteString(": ")
	if p.Where != "" {
		b.WriteString(p.Where)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// LoadError lists every problem found in a rules file, in the order of
// their lines. It wraps ErrInvalid.
type LoadError struct {
	Problems []Problem
}

// Error lists the problems one a line.
func (e *LoadError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns ErrInvalid.
func (e *LoadError) Unwrap() error { return ErrInvalid }
