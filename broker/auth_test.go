package broker_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/hearth-iot/hearth/broker"
	"github.com/hearth-iot/hearth/broker/auth"
	"golang.org/x/crypto/bcrypt"
)

// usersFile writes a users file holding alice (password "s3cret", role
// admin) and returns its authenticator. The hash is bcrypt at its lowest
// cost: argon2id at the production parameters takes seconds under the race
// detector, which is not what these tests are about.
func usersFile(t *testing.T) *auth.File {
	t.Helper()
	path := filepath.Join(t.TempDir(), "users.yaml")
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, fmt.Appendf(nil, "users:\n  alice:\n    password: %q\n    roles: [admin]\n", hash), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := auth.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// rawConnectAuth is an MQTT 3.1.1 CONNECT with a user name and password
// (none if user is empty).
func rawConnectAuth(clientID, user, password string) []byte {
	body := appendString(nil, "MQTT")
	flags := byte(0x02) // clean session
	if user != "" {
		flags |= 0x80 | 0x40 // user name, password
	}
	body = append(body, 4, flags) // 3.1.1
	body = binary.BigEndian.AppendUint16(body, 30)
	body = appendString(body, clientID)
	if user != "" {
		body = appendString(body, user)
		body = appendString(body, password)
	}
	return packet(typeConnect<<4, body)
}

// A users file decides who connects: the right password connects with the
// user's identity, a wrong one or an unknown user is refused with the
// reason code of bad credentials (0x86; 3.1.1: return code 4), and each
// attempt is counted by mode and result.
func TestAuthUsersFile(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{Auth: auth.Chain{usersFile(t)}})
	watcher := connectV5(t, tb.MQTTAddr, &paho.Connect{CleanStart: true, KeepAlive: 30, UsernameFlag: true, Username: "alice",
		PasswordFlag: true, Password: []byte("s3cret")})
	watcher.subscribe(t, "$presence/"+watcher.ID, 0)
	if doc := presenceOf(t, watcher.next(t)); doc["user"] != "alice" || doc["online"] != true {
		t.Errorf("presence of alice's connection = %v, want online, user alice", doc)
	}

	for _, tc := range []struct {
		name, user, password string
	}{
		{"wrong password", "alice", "guess"},
		{"unknown user", "mallory", "s3cret"},
		{"no credentials", "", ""},
	} {
		t.Run("5 "+tc.name, func(t *testing.T) {
			cp := &paho.Connect{CleanStart: true, KeepAlive: 30}
			if tc.user != "" {
				cp.UsernameFlag, cp.Username, cp.PasswordFlag, cp.Password = true, tc.user, true, []byte(tc.password)
			}
			c, err := dialV5(t, tb.MQTTAddr, cp)
			if err == nil || c.Connack == nil || c.Connack.ReasonCode != 0x86 {
				t.Fatalf("connect: %v, CONNACK %+v; want refused with 0x86 bad username or password", err, c.Connack)
			}
		})
		t.Run("3.1.1 "+tc.name, func(t *testing.T) {
			c := dialRaw(t, tb.MQTTAddr)
			c.send(t, rawConnectAuth(clientID(t, "v3"), tc.user, tc.password))
			got := c.expectClosed(t)
			if len(got) != 1 || got[0].Type != typeConnack || len(got[0].Body) != 2 || got[0].Body[1] != 4 {
				t.Fatalf("got %+v before the close, want CONNACK with return code 4 (bad user name or password)", got)
			}
		})
	}
	if _, _, err := dialV3(t, tcpURL(tb.MQTTAddr), func(o *mqtt.ClientOptions) { o.SetUsername("alice").SetPassword("s3cret") }); err != nil {
		t.Fatalf("3.1.1 alice: %v", err)
	}
	for series, want := range map[string]float64{
		`hearth_auth_attempts_total{mode="file",result="allow"}`:        2,
		`hearth_auth_attempts_total{mode="file",result="deny"}`:         2, // wrong password
		`hearth_auth_attempts_total{mode="none_decided",result="deny"}`: 4, // no credentials, unknown user: the file passes
	} {
		if got := tb.metric(t, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
}

// Nothing a client sends before its CONNECT is accepted is processed: a
// retained PUBLISH written with a refused CONNECT stores and delivers
// nothing.
func TestAuthPacketsBeforeRefusedConnect(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{Auth: auth.Chain{usersFile(t)}})
	sub := connectV5(t, tb.MQTTAddr, &paho.Connect{CleanStart: true, KeepAlive: 30, UsernameFlag: true, Username: "alice",
		PasswordFlag: true, Password: []byte("s3cret")})
	sub.subscribe(t, "sneaky/#", 0)

	c := dialRaw(t, tb.MQTTAddr)
	c.send(t, append(rawConnectAuth(clientID(t, "sneak"), "alice", "guess"), rawPublish("sneaky/x", 0, true, 0, []byte("in"))...))
	if got := c.expectClosed(t); len(got) != 1 || got[0].Type != typeConnack {
		t.Fatalf("got %+v, want only the refusing CONNACK", got)
	}
	sub.publish(t, "sneaky/sentinel", 0, false, []byte("end"))
	if m := sub.next(t); m.Topic != "sneaky/sentinel" {
		t.Fatalf("subscriber got %+v before the sentinel: the refused client's publish was processed", m)
	}
	if _, ok, err := tb.Store.Record("sneaky/x"); err != nil || ok {
		t.Fatalf("record sneaky/x stored %v (%v): the refused client's publish was processed", ok, err)
	}
}

// An address that failed to log in too often is refused before its
// credentials are checked (0x9F connection rate exceeded), even with the
// right ones, until its window passes.
func TestAuthLoginLimit(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{Auth: auth.Chain{usersFile(t)}, LoginLimit: auth.NewRateLimiter(3, time.Hour, 100)})
	try := func(password string) byte {
		t.Helper()
		c, err := dialV5(t, tb.MQTTAddr, &paho.Connect{CleanStart: true, KeepAlive: 30, UsernameFlag: true, Username: "alice",
			PasswordFlag: true, Password: []byte(password)})
		if err == nil {
			c.close()
			return 0
		}
		if c == nil || c.Connack == nil {
			t.Fatalf("connect: %v, no CONNACK", err)
		}
		return c.Connack.ReasonCode
	}
	if code := try("s3cret"); code != 0 {
		t.Fatalf("first login: 0x%02x, want success", code)
	}
	for i := range 3 {
		if code := try("guess"); code != 0x86 {
			t.Fatalf("bad login %d: 0x%02x, want 0x86", i+1, code)
		}
	}
	if code := try("s3cret"); code != 0x9f {
		t.Fatalf("login after 3 failures: 0x%02x, want 0x9F connection rate exceeded", code)
	}
	tb.waitLog(t, "connection refused: too many failed logins from this address")
	if got := tb.metric(t, `hearth_auth_attempts_total{mode="none_decided",result="limited"}`); got != 1 {
		t.Errorf("limited attempts = %v, want 1", got)
	}
}

var _ broker.LoginLimiter = (*auth.RateLimiter)(nil)

// funcAuth is an authenticator whose decision is a function: for outcomes
// no mode built so far produces (a webhook that fails, a mode that forbids).
type funcAuth func(auth.Credentials) (auth.Decision, error)

func (f funcAuth) Name() string { return "test" }

func (f funcAuth) Authenticate(_ context.Context, c auth.Credentials) (auth.Decision, auth.Identity, error) {
	d, err := f(c)
	return d, auth.Identity{User: c.Username}, err
}

// An authenticator that forbids gets 0x87 (3.1.1: 5); one that cannot
// decide (an error) gets 0x88 server unavailable (3.1.1: 3), and is logged.
func TestAuthForbidAndError(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{Auth: auth.Chain{funcAuth(func(c auth.Credentials) (auth.Decision, error) {
		if c.Username == "broken" {
			return auth.Deny, errors.New("webhook did not answer")
		}
		return auth.Forbid, nil
	})}})
	for _, tc := range []struct {
		user   string
		v5, v3 byte
		result string
	}{{"eve", 0x87, 5, "forbid"}, {"broken", 0x88, 3, "error"}} {
		c, err := dialV5(t, tb.MQTTAddr, &paho.Connect{CleanStart: true, KeepAlive: 30, UsernameFlag: true, Username: tc.user,
			PasswordFlag: true, Password: []byte("x")})
		if err == nil || c.Connack == nil || c.Connack.ReasonCode != tc.v5 {
			t.Errorf("%s over MQTT 5: %v, CONNACK %+v; want 0x%02x", tc.user, err, c.Connack, tc.v5)
		}
		raw := dialRaw(t, tb.MQTTAddr)
		raw.send(t, rawConnectAuth(clientID(t, "v3"), tc.user, "x"))
		if got := raw.expectClosed(t); len(got) != 1 || got[0].Type != typeConnack || len(got[0].Body) != 2 || got[0].Body[1] != tc.v3 {
			t.Errorf("%s over 3.1.1: got %+v, want CONNACK return code %d", tc.user, got, tc.v3)
		}
		if got := tb.metric(t, `hearth_auth_attempts_total{mode="test",result="`+tc.result+`"}`); got != 2 {
			t.Errorf("%s: %s attempts = %v, want 2", tc.user, tc.result, got)
		}
	}
	tb.waitLog(t, "authentication failed: refusing the connection", "username=broken", "webhook did not answer")
}
