package storage

import "errors"

var (
	// ErrClosed is returned by writes and reads on a Store after Close began.
	ErrClosed = errors.New("storage: store closed")

	// ErrFull is returned (wrapped) when a write would grow the data file
	// past Options.MaxSize, or the disk has no room left. Nothing of the
	// failed write is applied.
	ErrFull = errors.New("storage: store full")

	// ErrCorrupt is returned (wrapped) when a stored value cannot be decoded.
	ErrCorrupt = errors.New("storage: corrupt value")

	// ErrInvalid is returned (wrapped) for a change that can never be
	// applied, such as an empty client id or topic.
	ErrInvalid = errors.New("storage: invalid change")

	// ErrConflict is returned (wrapped) by a PutRecord whose base version is
	// not the stored one; nothing of its Write is applied.
	ErrConflict = errors.New("storage: version conflict")
)
