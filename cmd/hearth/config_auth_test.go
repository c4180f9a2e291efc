package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hearth-iot/hearth/broker/auth"
	"golang.org/x/crypto/bcrypt"
)

// The auth section builds the chain in order, loads the users file at
// load time (so --check validates it), and reports every problem.
func TestLoadConfigAuth(t *testing.T) {
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "users.yaml")
	if err := os.WriteFile(good, fmt.Appendf(nil, "users:\n  ann:\n    password: %q\n", hash), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("users:\n  bob:\n    password: plain\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	c, err := loadConfig([]string{"--config", writeConfig(t, "auth:\n  modes: [file, none]\n  users: "+good+"\n")})
	if err != nil {
		t.Fatal(err)
	}
	ch, ok := c.broker.Auth.(auth.Chain)
	if !ok || len(ch) != 2 || ch[0].Name() != "file" || ch[1].Name() != "none" || c.users == nil || c.broker.LoginLimit == nil {
		t.Fatalf("chain %#v, users %v, limit %v; want file then none, the users file, a login limit", c.broker.Auth, c.users, c.broker.LoginLimit)
	}
	if d, id, mode, err := ch.Authenticate(context.Background(), auth.Credentials{Username: "ann", Password: []byte("pw")}); d != auth.Allow || id.User != "ann" || mode != "file" || err != nil {
		t.Errorf("ann: %v %+v %s %v, want allowed by the file", d, id, mode, err)
	}

	c, err = loadConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if ch, ok := c.broker.Auth.(auth.Chain); !ok || len(ch) != 1 || ch[0].Name() != "none" {
		t.Errorf("default chain %#v, want none alone", c.broker.Auth)
	}

	path := writeConfig(t, "auth:\n  modes: [file, ldap, file]\n  users: "+bad+"\n  max_failed_logins: -1\n")
	_, err = loadConfig([]string{"--config", path})
	var probs problems
	if !errors.As(err, &probs) {
		t.Fatalf("err = %v, want problems", err)
	}
	for _, want := range []string{
		path + `:3:3: auth.users: ` + bad + `:3: users.bob.password`,
		path + `:2:3: auth.modes: "ldap" is not none or file`,
		path + `:2:3: auth.modes: "file" is listed twice`,
		path + `:4:3: auth.max_failed_logins: must not be negative`,
	} {
		found := false
		for _, p := range probs {
			found = found || strings.HasPrefix(p, want)
		}
		if !found {
			t.Errorf("no problem starting %q in:\n%s", want, probs.Error())
		}
	}
}
