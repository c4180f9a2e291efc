package record

import (
	"errors"
	"fmt"
)

// Error codes: stable strings that clients see in error replies.
const (
	// CodeNotFound: the record does not exist (never set, or deleted), or a
	// delete at a path found nothing there.
	CodeNotFound = "NOT_FOUND"
	// CodeVersionConflict: a conditional write named a version that is not
	// the record's current one. The Error carries the current record.
	CodeVersionConflict = "VERSION_CONFLICT"
	// CodeInvalidPath: a path that does not parse, or does not fit the
	// document (a key into an array, an index into a scalar, a list
	// operation on a value that is not an array, an index out of range).
	CodeInvalidPath = "INVALID_PATH"
	// CodeInvalidPayload: a payload that is not a valid document or
	// request, an operation that needs a document on an opaque record, or
	// a document nested deeper than Limits.MaxDepth.
	CodeInvalidPayload = "INVALID_PAYLOAD"
	// CodeInvalidName: a record name that is empty, too long, or not a
	// valid MQTT topic name.
	CodeInvalidName = "INVALID_NAME"
	// CodeTooLarge: the record would exceed Options.MaxSize bytes.
	CodeTooLarge = "TOO_LARGE"
	// CodeStorageError: the store failed; nothing was changed.
	CodeStorageError = "STORAGE_ERROR"
)

// Error is the error of an operation that was refused or failed. Code is one
// of the Code constants; Message says what was wrong, for people.
type Error struct {
	Code    string
	Message string
	// Current is the record as it is, for VERSION_CONFLICT.
	Current *Record
	// Err is the underlying error, if any (for STORAGE_ERROR, the store's).
	Err error
}

func (e *Error) Error() string { return "record: " + e.Message }

func (e *Error) Unwrap() error { return e.Err }

func newError(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the code of err if it is (or wraps) an *Error, and
// STORAGE_ERROR for any other error.
func CodeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeStorageError
}
