package auth

import "errors"

var (
	// ErrInvalidUsers is wrapped by every Problem that LoadFile, Reload,
	// ListUsers and the users-file editors report about a users file's
	// content.
	ErrInvalidUsers = errors.New("auth: invalid users file")

	// ErrUserExists is returned by AddUser when the name is already in the
	// users file (SetUser replaces instead).
	ErrUserExists = errors.New("auth: user already exists")

	// ErrNoSuchUser is returned by RemoveUser when the name is not in the
	// users file.
	ErrNoSuchUser = errors.New("auth: no such user")

	// ErrBadName is returned by AddUser and SetUser for a user name that is
	// empty, longer than an MQTT string, not UTF-8 or holds a control
	// character.
	ErrBadName = errors.New("auth: invalid user name")

	// ErrBadRole is returned by AddUser and SetUser for an empty or
	// repeated role.
	ErrBadRole = errors.New("auth: invalid role")

	// ErrEmptyPassword is returned by HashPassword, AddUser and SetUser for
	// an empty password.
	ErrEmptyPassword = errors.New("auth: empty password")

	// ErrLocked is returned by the users-file editors when another editor
	// holds the file's lock for longer than the lock timeout.
	ErrLocked = errors.New("auth: users file is locked by another editor")
)
