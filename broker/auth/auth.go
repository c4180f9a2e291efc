package auth

import (
	"context"
	"slices"
)

// Credentials are what a connecting client presents.
type Credentials struct {
	ClientID string
	Username string
	Password []byte
	// Remote is the client's address (host:port).
	Remote string
	// CommonName and DNSNames are those of a verified TLS client
	// certificate, empty without one.
	CommonName string
	DNSNames   []string
}

// Identity is who a connection is, once allowed.
type Identity struct {
	// User is the user id; empty for an anonymous connection.
	User string
	// Roles are the user's roles; the role Admin may do anything.
	Roles []string
	// Data is what the authenticator knows of the user (claims, webhook
	// data), for the permission rules (user.data).
	Data map[string]any
}

// Admin is the role that may do anything, as Parse's master key.
const Admin = "admin"

// IsAdmin reports whether id has the Admin role.
func (id Identity) IsAdmin() bool { return slices.Contains(id.Roles, Admin) }

// Decision is an authenticator's verdict.
type Decision int

const (
	// Pass leaves the decision to the next authenticator.
	Pass Decision = iota
	// Allow admits the connection with the returned Identity.
	Allow
	// Deny refuses it: bad credentials (MQTT 5 CONNACK 0x86, 3.1.1
	// return code 4).
	Deny
	// Forbid refuses credentials that are valid but not allowed to
	// connect (MQTT 5 0x87, 3.1.1 return code 5).
	Forbid
)

func (d Decision) String() string {
	switch d {
	case Allow:
		return "allow"
	case Deny:
		return "deny"
	case Forbid:
		return "forbid"
	}
	return "pass"
}

// Authenticator decides on a connection's credentials. An error means it
// could not decide (a webhook that did not answer): the Chain then denies,
// and the error is logged.
type Authenticator interface {
	Authenticate(ctx context.Context, c Credentials) (Decision, Identity, error)
	// Name names the mode in logs and metrics ("file", "jwt", ...).
	Name() string
}

// Chain asks its authenticators in order; the first that decides wins. It
// returns the deciding authenticator's name ("" when none decided, which
// denies).
type Chain []Authenticator

// Authenticate runs the chain.
func (ch Chain) Authenticate(ctx context.Context, c Credentials) (Decision, Identity, string, error) {
	for _, a := range ch {
		d, id, err := a.Authenticate(ctx, c)
		if err != nil {
			return Deny, Identity{}, a.Name(), err
		}
		if d != Pass {
			return d, id, a.Name(), nil
		}
	}
	return Deny, Identity{}, "", nil
}

// None allows every connection, as an anonymous user or the username it
// gives, with no roles: development only.
type None struct{}

func (None) Name() string { return "none" }

func (None) Authenticate(_ context.Context, c Credentials) (Decision, Identity, error) {
	return Allow, Identity{User: c.Username}, nil
}
