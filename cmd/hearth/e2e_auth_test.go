package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The users file end to end: `hearth user add` writes it, `hearth serve`
// with auth.modes [file] lets mosquitto clients in with the right password
// only; a user added while it runs can connect after a SIGHUP, or once the
// change is noticed; a broken file keeps the users in force.
func TestAuthUsersFileEndToEnd(t *testing.T) {
	requireMosquitto(t)
	dir := t.TempDir()
	users := filepath.Join(dir, "users.yaml")
	addUser := func(name, password string) {
		t.Helper()
		cmd := exec.Command(hearthBinary(t), "user", "add", "--users", users, name)
		cmd.Stdin = strings.NewReader(password + "\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("hearth user add %s: %v\n%s", name, err, out)
		}
	}
	addUser("ann", "ann-pw")
	config := filepath.Join(dir, "hearth.yaml")
	if err := os.WriteFile(config, []byte("auth:\n  modes: [file]\n  users: "+users+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := startHearth(t, filepath.Join(dir, "data"), "--config", config)
	if strings.Contains(h.Log(), "authentication is off") {
		t.Errorf("hearth warned that authentication is off with auth.modes [file]:\n%s", h.Log())
	}

	// pub publishes once as user/password and returns mosquitto_pub's
	// output and whether it succeeded.
	pub := func(user, password string) (string, bool) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		args := append(hostPort(t, h.MQTT), "-t", "auth/x", "-m", "hi", "-q", "1", "-u", user, "-P", password)
		out, err := exec.CommandContext(ctx, "mosquitto_pub", args...).CombinedOutput()
		return string(out), err == nil
	}
	if out, ok := pub("ann", "ann-pw"); !ok {
		t.Fatalf("ann with her password: refused: %s", out)
	}
	for _, c := range []struct{ user, password string }{{"ann", "wrong"}, {"bob", "bob-pw"}} {
		if out, ok := pub(c.user, c.password); ok || !strings.Contains(out, "bad user name or password") {
			t.Errorf("%s/%s: ok %v, %q; want refused: bad user name or password", c.user, c.password, ok, out)
		}
	}

	addUser("bob", "bob-pw")
	h.signal(syscall.SIGHUP)
	h.WaitLog(`msg="users file reloaded" .*why=SIGHUP`)
	if out, ok := pub("bob", "bob-pw"); !ok {
		t.Fatalf("bob after the reload: refused: %s", out)
	}
	h.WaitLog(`msg="connection refused: bad credentials" client=\S+ remote=\S+ username=bob mode=""`)

	// A change is picked up without a signal.
	addUser("carol", "carol-pw")
	h.WaitLog(`msg="users file reloaded" .*why=changed`)
	if out, ok := pub("carol", "carol-pw"); !ok {
		t.Fatalf("carol after the file changed: refused: %s", out)
	}
	// A file that does not load keeps the users in force, each problem
	// logged with its line.
	good, err := os.ReadFile(users)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(users, append(good, "  dave:\n    password: plain\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	h.signal(syscall.SIGHUP)
	h.WaitLog(`msg="users file not reloaded: the users in force stay" .*why=SIGHUP error=".*users.yaml:\d+: users.dave.password`)
	if out, ok := pub("ann", "ann-pw"); !ok {
		t.Fatalf("ann after a failed reload: refused: %s", out)
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
}
