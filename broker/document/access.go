package document

import (
	"errors"
	"fmt"
	"maps"
	"slices"
)

// Get returns the value at p in doc and whether it is there. The root (an
// empty p) is always there, even when doc is nil; a member that holds null
// is there, with the value nil. A path that does not fit the document (a key
// into an array, an index past the end) is simply not there.
func Get(doc any, p Path) (any, bool) {
	v := doc
	for _, s := range p {
		if s.IsIndex {
			a, ok := v.([]any)
			if !ok || s.Index < 0 || s.Index >= len(a) {
				return nil, false
			}
			v = a[s.Index]
			continue
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[s.Key]; !ok {
			return nil, false
		}
	}
	return v, true
}

// Set returns a document equal to doc with v at p. An empty p replaces the
// whole document with v.
//
// doc is not modified: Set copies each object and array along p and shares
// every other subtree (and v itself) between doc and the result, so callers
// must treat both as immutable. Missing or null members along p become
// objects (for a key) or arrays (for an index); an index at or past an
// array's end grows it, padding with nil.
//
// Set returns an error wrapping ErrInvalidPath, and no document, when p
// keys into an array or scalar or indexes into an object or scalar (the
// message names the prefix, as in "a.b: is a number, not an object"), or
// when a constructed p breaks MaxIndex or MaxPathDepth. Set does not check
// v; see Validate.
func Set(doc any, p Path, v any) (any, error) {
	return modify(doc, p, func(any, bool) (any, error) { return v, nil })
}

// Delete returns a document equal to doc without the value at p, and
// whether there was one. Deleting an array element removes it and shifts
// the later elements down; deleting the root (empty p) gives nil. When
// nothing is at p, Delete returns doc itself and false. doc is not modified
// (see Set for what is shared). Errors are Set's: ErrInvalidPath when p
// does not fit the document's shape.
func Delete(doc any, p Path) (any, bool, error) {
	if len(p) == 0 {
		return nil, doc != nil, nil
	}
	last := p[len(p)-1]
	found := false
	out, err := modify(doc, p[:len(p)-1], func(parent any, ok bool) (any, error) {
		if !ok || parent == nil {
			return nil, errNoChange
		}
		if last.IsIndex {
			a, ok := parent.([]any)
			if !ok {
				return nil, mismatch(p[:len(p)-1], parent, "array")
			}
			if last.Index >= len(a) {
				return nil, errNoChange
			}
			found = true
			return slices.Delete(slices.Clone(a), last.Index, last.Index+1), nil
		}
		m, ok := parent.(map[string]any)
		if !ok {
			return nil, mismatch(p[:len(p)-1], parent, "object")
		}
		if _, ok := m[last.Key]; !ok {
			return nil, errNoChange
		}
		found = true
		m = maps.Clone(m)
		delete(m, last.Key)
		return m, nil
	})
	if err != nil {
		return nil, false, err
	}
	return out, found, nil
}

// errNoChange, returned by a modify callback, makes modify return the
// document unchanged, without copying anything.
var errNoChange = errors.New("document: no change")

// modify returns a copy of doc in which the value at p is replaced by what
// fn returns, given the old value and whether it was there. Containers along
// p are copied (created when missing or null), nothing else is; an error from
// fn, or errNoChange, leaves doc as it was.
func modify(doc any, p Path, fn func(old any, found bool) (any, error)) (any, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	out, err := modifyAt(doc, true, p, 0, fn)
	if errors.Is(err, errNoChange) {
		return doc, nil
	}
	return out, err
}

func modifyAt(v any, found bool, p Path, i int, fn func(any, bool) (any, error)) (any, error) {
	if i == len(p) {
		return fn(v, found)
	}
	s := p[i]
	if s.IsIndex {
		var a []any
		switch x := v.(type) {
		case nil:
		case []any:
			a = x
		default:
			return nil, mismatch(p[:i], v, "array")
		}
		var old any
		if s.Index < len(a) {
			old = a[s.Index]
		}
		child, err := modifyAt(old, s.Index < len(a), p, i+1, fn)
		if err != nil {
			return nil, err
		}
		b := make([]any, max(len(a), s.Index+1))
		copy(b, a)
		b[s.Index] = child
		return b, nil
	}
	var m map[string]any
	switch x := v.(type) {
	case nil:
	case map[string]any:
		m = x
	default:
		return nil, mismatch(p[:i], v, "object")
	}
	old, ok := m[s.Key]
	child, err := modifyAt(old, ok, p, i+1, fn)
	if err != nil {
		return nil, err
	}
	var n map[string]any
	if ok {
		n = maps.Clone(m) // same size: the runtime copies the table wholesale
	} else {
		n = make(map[string]any, len(m)+1)
		maps.Copy(n, m)
	}
	n[s.Key] = child
	return n, nil
}

// mismatch is the error for a path step that expects want ("array" or
// "object") where the document holds v.
func mismatch(prefix Path, v any, want string) error {
	return fmt.Errorf("%w: %s: is %s, not an %s", ErrInvalidPath, where(prefix), kind(v), want)
}
