package document

import "errors"

// Sentinel errors. Functions wrap them with a message naming the path and
// the problem; test with errors.Is.
var (
	// ErrInvalidPath is returned by ParsePath for a string that is not a
	// valid path (bad syntax, negative or absurd index, too deep, too long),
	// and by Set, Delete and the list operations when a path
	// does not fit the document: a key applied to an array or scalar, an
	// index applied to an object or scalar, or a constructed Path that breaks
	// MaxIndex or MaxPathDepth.
	ErrInvalidPath = errors.New("document: invalid path")

	// ErrNotArray is returned by the list operations (Append, Insert,
	// RemoveAt, RemoveValue) when the value at the path exists and is not an
	// array.
	ErrNotArray = errors.New("document: not an array")

	// ErrIndexRange is returned by Insert when the index is negative or
	// beyond the array's length, and by RemoveAt when the index is negative
	// or not below the array's length (a missing array has length 0).
	ErrIndexRange = errors.New("document: index out of range")

	// ErrTooDeep is returned by Validate when a value nests containers
	// deeper than the allowed depth.
	ErrTooDeep = errors.New("document: too deep")

	// ErrInvalidValue is returned by Validate for a value outside the value
	// model: a Go type the model does not have (int, map[any]any, structs,
	// ...), a NaN or infinite float, or a string or key that is not valid
	// UTF-8.
	ErrInvalidValue = errors.New("document: invalid value")
)
