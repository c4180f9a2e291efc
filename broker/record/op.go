package record

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hearth-iot/hearth/broker/codec"
	"github.com/hearth-iot/hearth/broker/document"
	"github.com/hearth-iot/hearth/storage"
)

// Kind is what an operation does.
type Kind uint8

// The operations. Every one but Put and a whole-record Delete needs a
// structured record (or none: it then starts from an empty document).
const (
	// Put replaces the whole value with Op.Payload, structured or opaque.
	Put Kind = iota + 1
	// Delete deletes the record, or with a Path the value at that path.
	Delete
	// Merge applies Op.Value as an RFC 7396 merge patch, creating the
	// record if it does not exist.
	Merge
	// Set sets Op.Value at Op.Path, creating intermediate objects and
	// arrays; an empty Path replaces the whole document.
	Set
	// Append adds Op.Values at the end of the array at Op.Path.
	Append
	// Insert inserts Op.Values before element Op.Index of the array at
	// Op.Path.
	Insert
	// RemoveAt removes element Op.Index of the array at Op.Path.
	RemoveAt
	// RemoveValue removes every element equal to Op.Value from the array at
	// Op.Path.
	RemoveValue
)

var kindNames = [...]string{Put: "put", Delete: "delete", Merge: "merge", Set: "set",
	Append: "append", Insert: "insert", RemoveAt: "remove_at", RemoveValue: "remove_value"}

func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// Op is one change requested of a record.
type Op struct {
	Kind   Kind
	Name   string
	Writer string // client id of the requester

	Path    document.Path
	Value   any   // Merge: the patch; Set: the value; RemoveValue: what to remove
	Values  []any // Append, Insert
	Index   int   // Insert, RemoveAt
	Payload *codec.Payload

	// Conditional makes the write apply only if the record's version is
	// IfVersion (0: the record does not exist, and never has).
	Conditional bool
	IfVersion   uint64

	// Async makes Apply return once the change is queued for the store
	// rather than durable (for QoS 0 publishes): the change is published at
	// once, and if its write fails it is reported to Options.OnError.
	// Apply still fails for anything refused before the write.
	Async bool

	// IgnoreMissing makes a Delete of a record that does not exist succeed
	// without a change (an empty retained publish), instead of NOT_FOUND.
	IgnoreMissing bool

	// onlyExpired makes a Delete leave a record that has not expired: the
	// expiry sweep's, whose version may have been reused after a failed
	// asynchronous write.
	onlyExpired bool

	// Message holds the MQTT properties the new version keeps for its
	// retained message (QoS, expiry, content type, user properties).
	Message storage.Message
}

// Result is what an applied operation did.
type Result struct {
	// Record is the record after the operation: the new version, or the
	// current one if nothing changed.
	Record  Record
	Changed bool
	// Removed counts the elements a RemoveValue removed.
	Removed int
}

// apply computes the record that op makes of cur, without side effects.
func (op *Op) apply(cur Record, now time.Time, lim Limits) (Result, error) {
	if op.Conditional && cur.Version != op.IfVersion {
		c := cur
		return Result{}, &Error{Code: CodeVersionConflict, Current: &c,
			Message: fmt.Sprintf("%s: version is %d, not %d", op.Name, cur.Version, op.IfVersion)}
	}
	exists := cur.Exists(now)
	next := Record{Name: op.Name, Version: cur.Version + 1, Modified: now, Writer: op.Writer, Message: op.Message}

	switch op.Kind {
	case Put:
		if op.Payload == nil {
			return Result{}, newError(CodeInvalidPayload, "%s: no value", op.Name)
		}
		if op.Payload.Codec() == 0 {
			next.Bytes = op.Payload.Raw()
			if len(next.Bytes) > lim.MaxSize {
				return Result{}, newError(CodeTooLarge, "%s: %d bytes, more than the limit of %d", op.Name, len(next.Bytes), lim.MaxSize)
			}
			return Result{Record: next, Changed: true}, nil
		}
		v, err := op.Payload.Value()
		if err != nil {
			return Result{}, payloadError(op.Name, err)
		}
		return op.finish(next, v, lim)
	case Delete:
		if len(op.Path) == 0 {
			// An expired record does not exist for readers, but is still
			// stored: a delete naming its version removes it.
			if !exists && !(op.Conditional && live(cur)) {
				if op.IgnoreMissing {
					return Result{Record: cur}, nil
				}
				return Result{}, notFound(op.Name, cur, "no such record")
			}
			if op.onlyExpired && exists {
				return Result{Record: cur}, nil
			}
			next.Deleted = true
			return Result{Record: next, Changed: true}, nil
		}
		if !exists {
			return Result{}, notFound(op.Name, cur, "no such record")
		}
		doc, err := op.document(cur, exists)
		if err != nil {
			return Result{}, err
		}
		v, found, err := document.Delete(doc, op.Path)
		if err != nil {
			return Result{}, pathError(op.Name, err)
		}
		if !found {
			return Result{}, notFound(op.Name, cur, "nothing at "+op.Path.String())
		}
		return op.finish(next, v, lim)
	}

	doc, err := op.document(cur, exists)
	if err != nil {
		return Result{}, err
	}
	var v any
	removed := 0
	switch op.Kind {
	case Merge:
		v = document.MergePatch(doc, op.Value)
	case Set:
		v, err = document.Set(doc, op.Path, op.Value)
	case Append, Insert:
		if op.Kind == Append {
			v, err = document.Append(doc, op.Path, op.Values...)
		} else {
			v, err = document.Insert(doc, op.Path, op.Index, op.Values...)
		}
	case RemoveAt:
		v, err = document.RemoveAt(doc, op.Path, op.Index)
	case RemoveValue:
		v, removed, err = document.RemoveValue(doc, op.Path, op.Value)
		if err == nil && removed == 0 {
			return Result{Record: cur}, nil
		}
	default:
		return Result{}, newError(CodeInvalidPayload, "%s: unknown operation %s", op.Name, op.Kind)
	}
	if err != nil {
		return Result{}, pathError(op.Name, err)
	}
	res, err := op.finish(next, v, lim)
	res.Removed = removed
	return res, err
}

// document returns the document an operation starts from: the record's, or
// nil (an empty document) for a record that does not exist.
func (op *Op) document(cur Record, exists bool) (any, error) {
	if !exists {
		return nil, nil
	}
	if !cur.Structured {
		return nil, newError(CodeInvalidPayload, "%s: holds an opaque payload (neither JSON nor CBOR), which has no paths or fields", op.Name)
	}
	return cur.Value, nil
}

// finish checks the new document v against the limits and encodes it into
// next. The depth is checked on the whole result: a payload may have been
// decoded under other limits, and a merge can combine two deep documents.
func (op *Op) finish(next Record, v any, lim Limits) (Result, error) {
	if d := document.Depth(v); d > lim.MaxDepth {
		return Result{}, newError(CodeInvalidPayload, "%s: the document would nest %d levels deep, more than the limit of %d", op.Name, d, lim.MaxDepth)
	}
	b, err := codec.Encode(v, codec.CBOR)
	if err != nil {
		return Result{}, payloadError(op.Name, err)
	}
	if len(b) > lim.MaxSize {
		return Result{}, newError(CodeTooLarge, "%s: %d bytes as CBOR, more than the limit of %d", op.Name, len(b), lim.MaxSize)
	}
	next.Structured, next.Value, next.Bytes = true, v, b
	return Result{Record: next, Changed: true}, nil
}

// notFound is NOT_FOUND for the record cur, whose version it carries.
func notFound(name string, cur Record, what string) *Error {
	return &Error{Code: CodeNotFound, Message: name + ": " + what, Current: &cur}
}

func payloadError(name string, err error) *Error {
	code := CodeInvalidPayload
	if errors.Is(err, codec.ErrTooLarge) {
		code = CodeTooLarge
	}
	return &Error{Code: code, Message: fmt.Sprintf("%s: %v", name, err), Err: err}
}

func pathError(name string, err error) *Error {
	msg := strings.TrimPrefix(err.Error(), "document: ")
	return &Error{Code: CodeInvalidPath, Message: name + ": " + msg, Err: err}
}
