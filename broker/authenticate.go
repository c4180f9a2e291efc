package broker

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/hearth-iot/hearth/broker/auth"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Authenticator decides who may connect; auth.Chain is one. It returns the
// name of the mode that decided ("" when none did, which denies).
type Authenticator interface {
	Authenticate(ctx context.Context, c auth.Credentials) (auth.Decision, auth.Identity, string, error)
}

// LoginLimiter refuses an address that failed to log in too often;
// auth.RateLimiter is one.
type LoginLimiter interface {
	Allowed(remote string, now time.Time) bool
	Failed(remote string, now time.Time)
	Succeeded(remote string)
}

// authTimeout bounds an authenticator (a webhook, say): a CONNECT is not
// left waiting for longer.
const authTimeout = 5 * time.Second

// authenticate decides on cl's CONNECT pk before anything else of the
// connection is processed (mochi reads nothing more until it is accepted).
// A refused client is sent its CONNACK here and the returned code closes
// the connection; an allowed one gets its identity.
func (h *hook) authenticate(cl *mqtt.Client, pk packets.Packet) error {
	b := h.b
	now := time.Now()
	if b.loginLimit != nil && !b.loginLimit.Allowed(cl.Net.Remote, now) {
		b.metrics.authAttempt("", "limited")
		b.log.Warn("connection refused: too many failed logins from this address",
			"client", cl.ID, "remote", cl.Net.Remote, "username", string(pk.Connect.Username))
		return h.refuseConnect(cl, packets.ErrConnectionRateExceeded, packets.Err3NotAuthorized)
	}
	c := auth.Credentials{
		ClientID: cl.ID,
		Username: string(pk.Connect.Username),
		Password: pk.Connect.Password,
		Remote:   cl.Net.Remote,
	}
	if st, ok := tlsState(cl.Net.Conn); ok && len(st.VerifiedChains) > 0 {
		leaf := st.VerifiedChains[0][0]
		c.CommonName, c.DNSNames = leaf.Subject.CommonName, leaf.DNSNames
	}
	ctx, cancel := context.WithTimeout(context.Background(), authTimeout)
	defer cancel()
	d, id, mode, err := b.auth.Authenticate(ctx, c)
	if err != nil {
		b.log.Error("authentication failed: refusing the connection",
			"client", cl.ID, "remote", cl.Net.Remote, "username", c.Username, "mode", mode, "error", err)
		b.metrics.authAttempt(mode, "error")
		return h.refuseConnect(cl, packets.ErrServerUnavailable, packets.Err3ServerUnavailable)
	}
	b.metrics.authAttempt(mode, d.String())
	switch d {
	case auth.Allow:
		if b.loginLimit != nil {
			b.loginLimit.Succeeded(cl.Net.Remote)
		}
		h.identities.Store(cl, id)
		return nil
	case auth.Forbid:
		b.log.Warn("connection refused: not authorized", "client", cl.ID, "remote", cl.Net.Remote, "username", c.Username, "mode", mode)
		return h.refuseConnect(cl, packets.ErrNotAuthorized, packets.Err3NotAuthorized)
	}
	if b.loginLimit != nil {
		b.loginLimit.Failed(cl.Net.Remote, now)
	}
	b.log.Warn("connection refused: bad credentials", "client", cl.ID, "remote", cl.Net.Remote, "username", c.Username, "mode", mode)
	return h.refuseConnect(cl, packets.ErrBadUsernameOrPassword, packets.ErrMalformedUsernameOrPassword)
}

// refuseConnect sends cl a failure CONNACK: v5 to an MQTT 5 client, v3 (a
// return code of 3.1.1) to others, and returns the code that makes mochi
// close the connection.
func (h *hook) refuseConnect(cl *mqtt.Client, v5, v3 packets.Code) error {
	code := v5
	if cl.Properties.ProtocolVersion < 5 {
		code = v3
	}
	if err := h.b.srv.SendConnack(cl, code, false, nil); err != nil {
		h.b.log.Debug("refusal not delivered", "client", cl.ID, "error", err)
	}
	return v5
}

// identity returns cl's identity, as its authenticator gave it.
func (h *hook) identity(cl *mqtt.Client) auth.Identity {
	if id, ok := h.identities.Load(cl); ok {
		return id.(auth.Identity)
	}
	return auth.Identity{}
}

// tlsState returns the TLS connection state of conn, looking through the
// broker's connection wrappers.
func tlsState(conn net.Conn) (tls.ConnectionState, bool) {
	for conn != nil {
		switch c := conn.(type) {
		case *tls.Conn:
			return c.ConnectionState(), true
		case interface{ NetConn() net.Conn }:
			conn = c.NetConn()
		default:
			return tls.ConnectionState{}, false
		}
	}
	return tls.ConnectionState{}, false
}

// authWarning is the warning at start for a broker that lets anyone in.
func authWarning(a Authenticator) string {
	ch, ok := a.(auth.Chain)
	if !ok {
		return ""
	}
	for i, m := range ch {
		if _, none := m.(auth.None); none {
			if i == 0 {
				return "authentication is off: every client may connect, publish and subscribe; do not expose this broker beyond a trusted network"
			}
			return fmt.Sprintf("authentication ends with mode none: a client no earlier mode (%d) decides on is let in anonymously", i)
		}
	}
	return ""
}
