package main

import (
	"errors"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/broker"
	"github.com/hearth-iot/hearth/broker/codec"
	"github.com/hearth-iot/hearth/storage"
)

// writeConfig writes text to a fresh hearth.yaml and returns its path.
func writeConfig(t testing.TB, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hearth.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// problemsOf returns the problems loadConfig reported, failing the test if
// it reported something else or nothing.
func problemsOf(t *testing.T, c *config, err error) []string {
	t.Helper()
	if err == nil {
		t.Fatalf("loadConfig succeeded (%+v), want problems", c)
	}
	if c != nil {
		t.Errorf("loadConfig returned a config together with error %v", err)
	}
	var probs problems
	if !errors.As(err, &probs) {
		t.Fatalf("loadConfig error %v (%T) is not a problems list", err, err)
	}
	if len(probs) == 0 {
		t.Fatal("loadConfig returned an empty problems list")
	}
	if got := err.Error(); got != strings.Join(probs, "\n") {
		t.Errorf("Error() = %q, want the problems one a line", got)
	}
	return probs
}

// wantProblems checks that probs holds exactly want, in any order.
func wantProblems(t *testing.T, probs []string, want ...string) {
	t.Helper()
	left := map[string]int{}
	for _, p := range probs {
		left[p]++
	}
	for _, w := range want {
		if left[w] == 0 {
			t.Errorf("missing problem\n  %s\ngot:\n  %s", w, strings.Join(probs, "\n  "))
			continue
		}
		left[w]--
	}
	for p, n := range left {
		if n > 0 {
			t.Errorf("unexpected problem %q", p)
		}
	}
}

func TestLoadConfigDefaults(t *testing.T) {
	c, err := loadConfig(nil)
	if err != nil {
		t.Fatalf("loadConfig(nil): %v", err)
	}
	if c.dataDir != "hearth-data" {
		t.Errorf("dataDir = %q, want hearth-data", c.dataDir)
	}
	if c.broker.MQTT.Addr != "" || c.broker.HTTP.Addr != "" {
		t.Errorf("broker addrs = %q, %q, want empty (the broker's defaults)", c.broker.MQTT.Addr, c.broker.HTTP.Addr)
	}
	if c.broker.MQTT.TLS.Enabled() || c.broker.HTTP.TLS.Enabled() {
		t.Errorf("TLS enabled by default: %+v %+v", c.broker.MQTT.TLS, c.broker.HTTP.TLS)
	}
	if c.broker.Limits != (broker.Limits{}) {
		t.Errorf("limits = %+v, want the zero value (the broker's defaults)", c.broker.Limits)
	}
	if c.logLevel != slog.LevelInfo {
		t.Errorf("logLevel = %v, want info", c.logLevel)
	}
	if c.check {
		t.Error("check is set without --check")
	}
	if c.shutdown != 10*time.Second {
		t.Errorf("shutdown = %v, want 10s", c.shutdown)
	}
	if c.store.CommitDelay != 0 || c.store.MaxBatch != 0 || c.store.MaxSize != 0 {
		t.Errorf("store options = %+v, want zero values (the store's defaults)", c.store)
	}
}

const fullConfig = `# every setting
data: /var/lib/hearth
log:
  level: debug
  format: json
mqtt:
  addr: 127.0.0.1:1884
  codec: cbor
http:
  addr: "[::1]:8081"
  codec: JSON
records:
  max_size: 4096
  max_name_length: 100
  max_depth: 8
  cache_bytes: 1048576
rpc:
  timeout: 2500ms
  max_pending: 50
  hide_requester: true
presence:
  keep_offline: 36h
limits:
  max_packet_size: 65536
  max_clients: 100
  max_pending_writes: 64
  max_inflight: 32
  receive_maximum: 16
  keepalive_min: 10s
  keepalive_max: 5m
  max_session_expiry: 48h
store:
  commit_delay: 2ms
  max_batch: 128
  max_size: 67108864
shutdown_timeout: 3s
`

func TestLoadConfigFileAndFlags(t *testing.T) {
	full := writeConfig(t, fullConfig)
	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, c *config)
	}{
		{
			name: "file sets every value",
			args: []string{"--config", full},
			check: func(t *testing.T, c *config) {
				if c.dataDir != "/var/lib/hearth" {
					t.Errorf("dataDir = %q", c.dataDir)
				}
				if c.logLevel != slog.LevelDebug {
					t.Errorf("logLevel = %v, want debug", c.logLevel)
				}
				if c.file.Log.Format != "json" {
					t.Errorf("log format = %q, want json", c.file.Log.Format)
				}
				if c.broker.MQTT.Addr != "127.0.0.1:1884" || c.broker.HTTP.Addr != "[::1]:8081" {
					t.Errorf("addrs = %q, %q", c.broker.MQTT.Addr, c.broker.HTTP.Addr)
				}
				want := broker.Limits{
					MaxPacketSize:    65536,
					MaxClients:       100,
					MaxPendingWrites: 64,
					MaxInflight:      32,
					ReceiveMaximum:   16,
					KeepaliveMin:     10 * time.Second,
					KeepaliveMax:     5 * time.Minute,
					MaxSessionExpiry: 48 * time.Hour,
				}
				if c.broker.Limits != want {
					t.Errorf("limits = %+v, want %+v", c.broker.Limits, want)
				}
				if c.broker.MQTT.Codec != codec.CBOR || c.broker.HTTP.Codec != codec.JSON {
					t.Errorf("codecs = %v, %v, want cbor, json", c.broker.MQTT.Codec, c.broker.HTTP.Codec)
				}
				if want := (broker.Records{MaxSize: 4096, MaxNameLen: 100, MaxDepth: 8, CacheBytes: 1 << 20}); c.broker.Records != want {
					t.Errorf("records = %+v, want %+v", c.broker.Records, want)
				}
				if want := (broker.RPC{Timeout: 2500 * time.Millisecond, MaxPending: 50, HideRequester: true}); c.broker.RPC != want {
					t.Errorf("rpc = %+v, want %+v", c.broker.RPC, want)
				}
				if c.broker.PresenceKeepOffline != 36*time.Hour {
					t.Errorf("presence.keep_offline = %s, want 36h", c.broker.PresenceKeepOffline)
				}
				if c.store.CommitDelay != 2*time.Millisecond || c.store.MaxBatch != 128 || c.store.MaxSize != 64<<20 {
					t.Errorf("store = %+v", c.store)
				}
				if c.shutdown != 3*time.Second {
					t.Errorf("shutdown = %v, want 3s", c.shutdown)
				}
				if c.check {
					t.Error("check set without --check")
				}
			},
		},
		{
			name: "flags override the file",
			args: []string{"--config", full, "--mqtt", "127.0.0.1:0", "--http", ":0", "--data", "/tmp/elsewhere", "--log-level", "warn", "--log-format", "text"},
			check: func(t *testing.T, c *config) {
				if c.broker.MQTT.Addr != "127.0.0.1:0" || c.broker.HTTP.Addr != ":0" {
					t.Errorf("addrs = %q, %q, want the flags'", c.broker.MQTT.Addr, c.broker.HTTP.Addr)
				}
				if c.dataDir != "/tmp/elsewhere" {
					t.Errorf("dataDir = %q, want the flag's", c.dataDir)
				}
				if c.logLevel != slog.LevelWarn {
					t.Errorf("logLevel = %v, want warn", c.logLevel)
				}
				if c.file.Log.Format != "text" {
					t.Errorf("log format = %q, want text", c.file.Log.Format)
				}
				// What no flag overrides still comes from the file.
				if c.broker.Limits.MaxClients != 100 || c.shutdown != 3*time.Second {
					t.Errorf("file values lost: limits %+v, shutdown %v", c.broker.Limits, c.shutdown)
				}
			},
		},
		{
			name: "flags without a file",
			args: []string{"--mqtt", ":1999", "--log-level", "ERROR"},
			check: func(t *testing.T, c *config) {
				if c.broker.MQTT.Addr != ":1999" || c.broker.HTTP.Addr != "" {
					t.Errorf("addrs = %q, %q", c.broker.MQTT.Addr, c.broker.HTTP.Addr)
				}
				if c.logLevel != slog.LevelError {
					t.Errorf("logLevel = %v, want error (levels are case-insensitive)", c.logLevel)
				}
				if c.dataDir != "hearth-data" {
					t.Errorf("dataDir = %q, want the default", c.dataDir)
				}
			},
		},
		{
			name: "an empty flag value still overrides the file",
			args: []string{"--config", full, "--data", ""},
			check: func(t *testing.T, c *config) {
				if c.dataDir != "hearth-data" {
					t.Errorf("dataDir = %q, want the default", c.dataDir)
				}
			},
		},
		{
			name: "check",
			args: []string{"--check"},
			check: func(t *testing.T, c *config) {
				if !c.check {
					t.Error("check not set by --check")
				}
			},
		},
		{
			name: "check with a file",
			args: []string{"--config", full, "--check"},
			check: func(t *testing.T, c *config) {
				if !c.check || c.broker.Limits.MaxClients != 100 {
					t.Errorf("check = %v, limits = %+v", c.check, c.broker.Limits)
				}
			},
		},
		{
			name: "an explicit zero commit delay means no wait",
			args: []string{"--config", writeConfig(t, "store:\n  commit_delay: 0s\n")},
			check: func(t *testing.T, c *config) {
				if c.store.CommitDelay != 0 {
					t.Errorf("store.CommitDelay = %v, want 0 (storage: no wait)", c.store.CommitDelay)
				}
			},
		},
		{
			name: "an absent commit delay is the store's default",
			args: []string{"--config", writeConfig(t, "store:\n  max_batch: 10\n")},
			check: func(t *testing.T, c *config) {
				if c.store.CommitDelay != 0 || c.store.MaxBatch != 10 {
					t.Errorf("store = %+v, want CommitDelay 0 and MaxBatch 10", c.store)
				}
			},
		},
		{
			name: "warning is a synonym of warn",
			args: []string{"--config", writeConfig(t, "log: {level: warning}\n")},
			check: func(t *testing.T, c *config) {
				if c.logLevel != slog.LevelWarn {
					t.Errorf("logLevel = %v, want warn", c.logLevel)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := loadConfig(tt.args)
			if err != nil {
				t.Fatalf("loadConfig(%q): %v", tt.args, err)
			}
			tt.check(t, c)
		})
	}
}

func TestLoadConfigReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	cert := filepath.Join(dir, "missing-cert.pem")
	key := filepath.Join(dir, "missing-key.pem")
	text := `limts:
  max_clients: 3
log:
  level: loud
mqtt:
  addr: nocolon
  tls:
    cert: ` + cert + `
    key: ` + key + `
limits:
  max_clients: lots
  keepalive_min: 2h
  keepalive_max: 1h
  max_packet_size: 10
store:
  max_size: 10
`
	path := writeConfig(t, text)
	missing := func(p string) string { return "stat " + p + ": no such file or directory" }

	t.Run("file", func(t *testing.T) {
		c, err := loadConfig([]string{"--config", path, "--check"})
		wantProblems(t, problemsOf(t, c, err),
			path+":1: field limts not found in type main.fileConfig",
			path+":11: cannot unmarshal !!str `lots` into int64",
			path+`:4:3: log.level: "loud" is not debug, info, warn or error`,
			path+`:6:3: mqtt.addr: "nocolon" is not host:port (for all interfaces write :PORT)`,
			path+":8:5: mqtt.tls.cert: "+missing(cert),
			path+":9:5: mqtt.tls.key: "+missing(key),
			path+":16:3: store.max_size: 10 is below 1 MiB",
			path+":14:3: limits.max_packet_size: 10 is outside 64 bytes .. 256 MiB",
			path+":12:3: limits.keepalive_min: 2h0m0s is above keepalive_max 1h0m0s",
		)
	})
	t.Run("a flag's problem names the flag", func(t *testing.T) {
		c, err := loadConfig([]string{"--config", path, "--mqtt", "also-no-colon"})
		probs := problemsOf(t, c, err)
		want := `flag --mqtt: mqtt.addr: "also-no-colon" is not host:port (for all interfaces write :PORT)`
		wantIn(t, probs, want)
		for _, p := range probs {
			if strings.Contains(p, "nocolon") && p != want {
				t.Errorf("the file's overridden mqtt.addr is still reported: %q", p)
			}
		}
		if len(probs) != 9 {
			t.Errorf("got %d problems, want 9:\n  %s", len(probs), strings.Join(probs, "\n  "))
		}
	})
	t.Run("a good flag hides the file's bad value", func(t *testing.T) {
		c, err := loadConfig([]string{"--config", path, "--mqtt", "127.0.0.1:0", "--log-level", "debug"})
		probs := problemsOf(t, c, err)
		for _, p := range probs {
			if strings.Contains(p, "mqtt.addr") || strings.Contains(p, "log.level") {
				t.Errorf("overridden value still reported: %q", p)
			}
		}
		if len(probs) != 7 {
			t.Errorf("got %d problems, want 7:\n  %s", len(probs), strings.Join(probs, "\n  "))
		}
	})
}

// wantIn checks that probs contains want.
func wantIn(t *testing.T, probs []string, want string) {
	t.Helper()
	for _, p := range probs {
		if p == want {
			return
		}
	}
	t.Errorf("missing problem\n  %s\ngot:\n  %s", want, strings.Join(probs, "\n  "))
}

func TestLoadConfigProblems(t *testing.T) {
	existing := writeConfig(t, "# stands in for a certificate\n")
	tests := []struct {
		name string
		text string   // the file, if any; PATH in args is replaced by its path
		args []string // PATH is the file's path
		want []string // PATH is the file's path
	}{
		{
			name: "flag mqtt without a file",
			args: []string{"--mqtt", "nocolon"},
			want: []string{`flag --mqtt: mqtt.addr: "nocolon" is not host:port (for all interfaces write :PORT)`},
		},
		{
			name: "flags http and log-level",
			args: []string{"--http", "localhost:http-alt", "--log-level", "loud", "--log-format", "xml"},
			want: []string{
				`flag --http: http.addr: "localhost:http-alt": port "http-alt" is not 0..65535`,
				`flag --log-level: log.level: "loud" is not debug, info, warn or error`,
				`flag --log-format: log.format: "xml" is not text or json`,
			},
		},
		{
			name: "port out of range and negative durations",
			text: "mqtt: {addr: \"127.0.0.1:99999\"}\nshutdown_timeout: -1s\nstore:\n  commit_delay: 2s\n  max_batch: -1\n",
			args: []string{"--config", "PATH"},
			want: []string{
				`PATH:1:8: mqtt.addr: "127.0.0.1:99999": port "99999" is not 0..65535`,
				"PATH:2:1: shutdown_timeout: must not be negative",
				"PATH:4:3: store.commit_delay: 2s is outside 0s .. 1s",
				"PATH:5:3: store.max_batch: must not be negative",
			},
		},
		{
			name: "nested unknown key and wrong types",
			text: "limits:\n  max_clientz: 1\n  keepalive_min: soon\nstore: 5\n",
			args: []string{"--config", "PATH"},
			want: []string{
				"PATH:2: field max_clientz not found in type main.limitsFile",
				"PATH:3: cannot unmarshal !!str `soon` into time.Duration",
				"PATH:4: cannot unmarshal !!int `5` into main.storeFile",
			},
		},
		{
			name: "duplicate key",
			text: "log:\n  level: info\n  level: debug\n",
			args: []string{"--config", "PATH"},
			want: []string{`PATH:3: mapping key "level" already defined at line 2`},
		},
		{
			name: "tls cert without key",
			text: "http:\n  tls:\n    cert: " + existing + "\n",
			args: []string{"--config", "PATH"},
			want: []string{"PATH:2:3: http.tls: cert and key must both be set"},
		},
		{
			name: "keepalive not whole seconds, session expiry negative",
			text: "limits:\n  keepalive_min: 1500ms\n  max_session_expiry: -1h\n  max_clients: -1\n  max_pending_writes: -2\n",
			args: []string{"--config", "PATH"},
			want: []string{
				"PATH:2:3: limits.keepalive_min: 1.5s is not a whole number of seconds",
				"PATH:3:3: limits.max_session_expiry: -1h0m0s is out of range",
				"PATH:4:3: limits.max_clients: must not be negative",
				"PATH:5:3: limits.max_pending_writes: must not be negative",
			},
		},
		{
			name: "rpc and presence out of range",
			text: "rpc:\n  timeout: -1s\n  max_pending: -2\npresence:\n  keep_offline: 1500ms\n",
			args: []string{"--config", "PATH"},
			want: []string{
				"PATH:2:3: rpc.timeout: -1s is outside 0s .. 24h",
				"PATH:3:3: rpc.max_pending: must not be negative",
				"PATH:5:3: presence.keep_offline: 1.5s is not a whole number of seconds",
			},
		},
		{
			name: "unknown codec, records out of range",
			text: "mqtt:\n  codec: xml\nrecords:\n  max_size: -1\n  max_name_length: 70000\n  max_depth: -3\n",
			args: []string{"--config", "PATH"},
			want: []string{
				`PATH:2:3: mqtt.codec: "xml" is not json or cbor`,
				"PATH:4:3: records.max_size: -1 is outside 0 .. 256 MiB",
				"PATH:5:3: records.max_name_length: 70000 is outside 0 .. 65535",
				"PATH:6:3: records.max_depth: -3 is outside 0 .. 10000",
			},
		},
		{
			name: "not a mapping",
			text: "- a\n- b\n",
			args: []string{"--config", "PATH"},
			want: []string{"PATH:1: cannot unmarshal !!seq into main.fileConfig"},
		},
		{
			name: "unreadable file",
			args: []string{"--config", "/nonexistent/hearth.yaml"},
			want: []string{"/nonexistent/hearth.yaml: open /nonexistent/hearth.yaml: no such file or directory"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := "no-file"
			if tt.text != "" {
				path = writeConfig(t, tt.text)
			}
			args := make([]string, len(tt.args))
			for i, a := range tt.args {
				args[i] = strings.ReplaceAll(a, "PATH", path)
			}
			want := make([]string, len(tt.want))
			for i, w := range tt.want {
				want[i] = strings.ReplaceAll(w, "PATH", path)
			}
			c, err := loadConfig(args)
			wantProblems(t, problemsOf(t, c, err), want...)
		})
	}
}

func TestLoadConfigDirectoryAsFile(t *testing.T) {
	dir := t.TempDir()
	c, err := loadConfig([]string{"--config", dir})
	probs := problemsOf(t, c, err)
	if len(probs) != 1 || !strings.HasPrefix(probs[0], dir+": ") || !strings.Contains(probs[0], "is a directory") {
		t.Errorf("problems = %q, want one naming %s as a directory", probs, dir)
	}
}

// TestLoadConfigSyntaxError: a YAML syntax error is one problem located like
// every other, path:line, so editors and CI annotations can jump to it.
func TestLoadConfigSyntaxError(t *testing.T) {
	path := writeConfig(t, "log:\n  level: info\n  bad: [\n")
	c, err := loadConfig([]string{"--config", path, "--check"})
	probs := problemsOf(t, c, err)
	if len(probs) != 1 {
		t.Fatalf("got %d problems, want 1: %q", len(probs), probs)
	}
	if !strings.Contains(probs[0], "did not find expected node content") {
		t.Errorf("problem %q does not carry yaml's message", probs[0])
	}
	if want := path + ":3: did not find expected node content"; probs[0] != want {
		t.Errorf("problem = %q, want %q (file:line, as for every other problem; config.go readFile formats syntax errors as %q)",
			probs[0], want, "path: line N: ...")
	}
}

func TestLoadConfigEmptyFile(t *testing.T) {
	defaults, err := loadConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"", "\n", "# only a comment\n", "---\n", "null\n", "~\n"} {
		t.Run(strings.TrimSpace(text), func(t *testing.T) {
			path := writeConfig(t, text)
			c, err := loadConfig([]string{"--config", path})
			if err != nil {
				t.Fatalf("file %q: %v", text, err)
			}
			if c.dataDir != defaults.dataDir || c.broker.MQTT != defaults.broker.MQTT || c.broker.HTTP != defaults.broker.HTTP ||
				c.broker.Limits != defaults.broker.Limits || c.logLevel != defaults.logLevel ||
				c.shutdown != defaults.shutdown || c.store.CommitDelay != defaults.store.CommitDelay ||
				c.store.MaxBatch != defaults.store.MaxBatch || c.store.MaxSize != defaults.store.MaxSize {
				t.Errorf("file %q: config %+v differs from the defaults %+v", text, c, defaults)
			}
		})
	}
}

// TestLoadConfigMultipleDocuments: a second YAML document must not be
// silently ignored; its unknown key and bad value are problems like any
// others (or the file is refused as holding more than one document).
func TestLoadConfigMultipleDocuments(t *testing.T) {
	path := writeConfig(t, "log:\n  level: debug\n---\nbogus: 1\nlog:\n  level: loud\n")
	c, err := loadConfig([]string{"--config", path, "--check"})
	if err == nil {
		t.Fatalf("a file whose second document has an unknown key and log.level %q passed --check (logLevel %v): "+
			"config.go readFile decodes only the first document", "loud", c.logLevel)
	}
	probs := problemsOf(t, c, err)
	for _, p := range probs {
		if !strings.HasPrefix(p, path) {
			t.Errorf("problem %q is not located in %s", p, path)
		}
	}
}

// TestLoadConfigDerivedProblemLocated: a problem caused by the one key set in
// the file is located at a line of the file, even when the broker names the
// other, defaulted key.
func TestLoadConfigDerivedProblemLocated(t *testing.T) {
	path := writeConfig(t, "limits:\n  keepalive_max: 1s\n")
	c, err := loadConfig([]string{"--config", path})
	probs := problemsOf(t, c, err)
	if len(probs) != 1 || !strings.Contains(probs[0], "limits.keepalive_min: 5s is above keepalive_max 1s") {
		t.Fatalf("problems = %q, want the keepalive bounds problem", probs)
	}
	located := regexp.MustCompile(`^` + regexp.QuoteMeta(path) + `:\d+(:\d+)?: `)
	if !located.MatchString(probs[0]) {
		t.Errorf("problem %q has no line: keepalive_min is not in the file, so config.go where() falls back to the bare path; "+
			"it should point at limits.keepalive_max (line 2)", probs[0])
	}
}

// TestLoadConfigMaxSizeFits: store.max_size reaches storage.Options.MaxSize
// unchanged, or is reported; on 32-bit ARM (a target of make arm) int is 32
// bits and int(s.MaxSize) silently wraps a 5 GB cap.
func TestLoadConfigMaxSizeFits(t *testing.T) {
	const size = 5_000_000_000
	path := writeConfig(t, "store:\n  max_size: 5000000000\n")
	c, err := loadConfig([]string{"--config", path})
	if err != nil {
		var probs problems
		if errors.As(err, &probs) && len(probs) == 1 && strings.Contains(probs[0], "store.max_size") {
			return // refused on a platform where it does not fit: fine
		}
		t.Fatalf("loadConfig: %v", err)
	}
	if got := int64(c.store.MaxSize); got != size {
		t.Errorf("storage MaxSize = %d, want %d", got, int64(size))
	}
}

// silenceStderr sends os.Stderr to the null device until the test ends.
// Only for tests that do not run in parallel.
func silenceStderr(t *testing.T) {
	t.Helper()
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stderr
	os.Stderr = null
	t.Cleanup(func() {
		os.Stderr = saved
		_ = null.Close()
	})
}

func TestLoadConfigFlagErrors(t *testing.T) {
	// The flag package reports these, with the usage, on stderr itself.
	silenceStderr(t)
	if _, err := loadConfig([]string{"-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: err = %v, want flag.ErrHelp", err)
	}
	if _, err := loadConfig([]string{"--bogus"}); err == nil || errors.As(err, new(problems)) {
		t.Errorf("--bogus: err = %v, want a flag error", err)
	}
	_, err := loadConfig([]string{"--check", "extra"})
	if err == nil || !strings.Contains(err.Error(), `unexpected argument "extra"`) {
		t.Errorf("extra argument: err = %v, want unexpected argument", err)
	}
}

// TestLoadConfigUnusableTLSFiles: --check reports a certificate or key that
// exists but cannot be loaded, which serve would fail on at start (exit 1,
// "cannot create broker: broker: mqtt.tls: tls: failed to find any PEM data").
func TestLoadConfigUnusableTLSFiles(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for _, f := range []string{cert, key} {
		if err := os.WriteFile(f, []byte("not PEM\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	path := writeConfig(t, "mqtt:\n  tls:\n    cert: "+cert+"\n    key: "+key+"\n")
	c, err := loadConfig([]string{"--config", path, "--check"})
	if err == nil {
		t.Fatalf("--check accepts a certificate and key that are not PEM (config.go only os.Stat()s TLS files; serve then fails in broker.New)")
	}
	probs := problemsOf(t, c, err)
	if len(probs) != 1 || !strings.HasPrefix(probs[0], path+":2:3: mqtt.tls") && !strings.HasPrefix(probs[0], path+":3:5: mqtt.tls.cert") {
		t.Errorf("problems = %q, want one located at mqtt.tls or mqtt.tls.cert", probs)
	}
}

// TestLoadConfigStoreOptionsOpen: the store options built from a valid file
// are accepted by storage.Open.
func TestLoadConfigStoreOptionsOpen(t *testing.T) {
	path := writeConfig(t, "store:\n  commit_delay: 0s\n  max_batch: 8\n  max_size: 1048576\n")
	c, err := loadConfig([]string{"--config", path})
	if err != nil {
		t.Fatal(err)
	}
	s, err := storage.Open(filepath.Join(t.TempDir(), dbFile), c.store)
	if err != nil {
		t.Fatalf("storage.Open with %+v: %v", c.store, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func FuzzLoadConfigFile(f *testing.F) {
	f.Add([]byte(fullConfig))
	f.Add([]byte(""))
	f.Add([]byte("---\n"))
	f.Add([]byte("limts:\n  max_clients: 3\nlimits:\n  max_clients: lots\n"))
	f.Add([]byte("log: {level: loud}\nmqtt: {addr: nocolon, tls: {cert: /nonexistent}}\n"))
	f.Add([]byte("limits:\n  keepalive_min: 2h\n  keepalive_max: 1h\n  max_packet_size: 10\nstore: {max_size: 10, commit_delay: 0s}\n"))
	f.Add([]byte("a: [\n"))
	f.Add([]byte("- a\n- b\n"))
	f.Add([]byte("log: &a {level: debug}\nhttp: *a\n"))
	f.Add([]byte("data: !!binary aGVsbG8=\n"))
	f.Add([]byte("a: 1\n---\nb: 2\n"))
	f.Add([]byte("shutdown_timeout: 9223372036854775807ns\n"))
	f.Fuzz(func(t *testing.T, text []byte) {
		path := filepath.Join(t.TempDir(), "fuzz.yaml")
		if err := os.WriteFile(path, text, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := loadConfig([]string{"--config", path, "--check"})
		if err == nil {
			if c == nil || !c.check {
				t.Fatalf("success without a checked config: %+v", c)
			}
			if c.shutdown <= 0 || c.dataDir == "" {
				t.Fatalf("success with shutdown %v, dataDir %q", c.shutdown, c.dataDir)
			}
			return
		}
		if c != nil {
			t.Fatalf("config %+v returned with error %v", c, err)
		}
		var probs problems
		if !errors.As(err, &probs) || len(probs) == 0 {
			t.Fatalf("error %v (%T) is not a non-empty problems list", err, err)
		}
		for _, p := range probs {
			if !strings.HasPrefix(p, path) {
				t.Fatalf("problem %q is not located in the file", p)
			}
		}
	})
}
