package document

import (
	"fmt"
	"slices"
)

// The list operations edit an array at a path without sending the whole
// array, for deepstream-style lists (of record names, for instance). Like
// Set they never modify doc and return a new document sharing what did not
// change. A missing or null value at p counts as an empty array. All of them
// return ErrNotArray when the value at p is something else, and Set's
// ErrInvalidPath when p does not fit the document's shape.

// Append returns doc with values added at the end of the array at p,
// creating the array (and objects and arrays leading to it, as Set does)
// when it is missing.
func Append(doc any, p Path, values ...any) (any, error) {
	return modify(doc, p, func(old any, _ bool) (any, error) {
		a, err := asArray(p, old)
		if err != nil {
			return nil, err
		}
		out := make([]any, 0, len(a)+len(values))
		return append(append(out, a...), values...), nil
	})
}

// Insert returns doc with values inserted before element index of the
// array at p; index may equal the array's length, which appends. It creates
// a missing array as Append does. An index that is negative or beyond the
// length is ErrIndexRange.
func Insert(doc any, p Path, index int, values ...any) (any, error) {
	return modify(doc, p, func(old any, _ bool) (any, error) {
		a, err := asArray(p, old)
		if err != nil {
			return nil, err
		}
		if index < 0 || index > len(a) {
			return nil, fmt.Errorf("%w: %s: insert at %d, length %d", ErrIndexRange, where(p), index, len(a))
		}
		out := make([]any, 0, len(a)+len(values))
		out = append(append(out, a[:index]...), values...)
		return append(out, a[index:]...), nil
	})
}

// RemoveAt returns doc without element index of the array at p; later
// elements shift down. An index that is negative or not below the length
// is ErrIndexRange, which is always the case for a missing array.
func RemoveAt(doc any, p Path, index int) (any, error) {
	return modify(doc, p, func(old any, _ bool) (any, error) {
		a, err := asArray(p, old)
		if err != nil {
			return nil, err
		}
		if index < 0 || index >= len(a) {
			return nil, fmt.Errorf("%w: %s: remove at %d, length %d", ErrIndexRange, where(p), index, len(a))
		}
		return slices.Delete(slices.Clone(a), index, index+1), nil
	})
}

// RemoveValue returns doc without every element of the array at p that is
// Equal to v, and how many it removed. When there is none (a missing array
// included) it returns doc itself and 0.
func RemoveValue(doc any, p Path, v any) (any, int, error) {
	n := 0
	out, err := modify(doc, p, func(old any, _ bool) (any, error) {
		a, err := asArray(p, old)
		if err != nil {
			return nil, err
		}
		b := make([]any, 0, len(a))
		for _, e := range a {
			if Equal(e, v) {
				n++
				continue
			}
			b = append(b, e)
		}
		if n == 0 {
			return nil, errNoChange
		}
		return b, nil
	})
	if err != nil {
		return nil, 0, err
	}
	return out, n, nil
}

// asArray returns v as an array; nil (missing or null) is an empty one.
func asArray(p Path, v any) ([]any, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case []any:
		return x, nil
	}
	return nil, fmt.Errorf("%w: %s: is %s", ErrNotArray, where(p), kind(v))
}
