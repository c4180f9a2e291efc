package main

import (
	"bytes"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hearth-iot/hearth/broker"
	"github.com/hearth-iot/hearth/broker/auth"
	"github.com/hearth-iot/hearth/broker/codec"
	"github.com/hearth-iot/hearth/storage"
	"gopkg.in/yaml.v3"
)

// fileConfig is the YAML configuration file. Every field is optional; the
// zero value means the component's default. docs/CONFIG.md documents it.
type fileConfig struct {
	Data     string       `yaml:"data"`
	Log      logConfig    `yaml:"log"`
	MQTT     listenerFile `yaml:"mqtt"`
	HTTP     listenerFile `yaml:"http"`
	Limits   limitsFile   `yaml:"limits"`
	Records  recordsFile  `yaml:"records"`
	Auth     authFile     `yaml:"auth"`
	RPC      rpcFile      `yaml:"rpc"`
	Presence presenceFile `yaml:"presence"`
	Store    storeFile    `yaml:"store"`
	// ShutdownTimeout bounds a graceful shutdown. Zero means 10s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
}

type logConfig struct {
	Level  string `yaml:"level"`  // debug, info (default), warn, error
	Format string `yaml:"format"` // text (default) or json
}

type listenerFile struct {
	Addr  string  `yaml:"addr"`
	TLS   tlsFile `yaml:"tls"`
	Codec string  `yaml:"codec"` // json (default) or cbor
}

type tlsFile struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

type limitsFile struct {
	MaxPacketSize    uint32        `yaml:"max_packet_size"`
	MaxClients       int64         `yaml:"max_clients"`
	MaxPendingWrites int32         `yaml:"max_pending_writes"`
	MaxInflight      uint16        `yaml:"max_inflight"`
	ReceiveMaximum   uint16        `yaml:"receive_maximum"`
	KeepaliveMin     time.Duration `yaml:"keepalive_min"`
	KeepaliveMax     time.Duration `yaml:"keepalive_max"`
	MaxSessionExpiry time.Duration `yaml:"max_session_expiry"`
}

type recordsFile struct {
	MaxSize       int `yaml:"max_size"`
	MaxNameLength int `yaml:"max_name_length"`
	MaxDepth      int `yaml:"max_depth"`
	CacheBytes    int `yaml:"cache_bytes"`
}

type authFile struct {
	Modes             []string      `yaml:"modes"`
	Users             string        `yaml:"users"`
	MaxFailedLogins   int           `yaml:"max_failed_logins"`
	FailedLoginWindow time.Duration `yaml:"failed_login_window"`
}

type rpcFile struct {
	Timeout       time.Duration `yaml:"timeout"`
	MaxPending    int           `yaml:"max_pending"`
	HideRequester bool          `yaml:"hide_requester"`
}

type presenceFile struct {
	KeepOffline time.Duration `yaml:"keep_offline"`
}

type storeFile struct {
	CommitDelay time.Duration `yaml:"commit_delay"`
	MaxBatch    int           `yaml:"max_batch"`
	MaxSize     int64         `yaml:"max_size"`
}

// config is everything serve needs, built from the file and the flags.
type config struct {
	file     fileConfig
	users    *auth.File // the users file of mode file, reloaded while serving
	dataDir  string
	check    bool
	broker   broker.Config
	store    storage.Options
	logLevel slog.Level
	shutdown time.Duration
}

const (
	dbFile    = "hearth.db"
	usersFile = "users.yaml" // the default users file, in the data directory
)

// relatedKey names, for a key whose problem may be caused by another key,
// that other key: where the problem is reported if the first is not in the
// file.
var relatedKey = map[string]string{
	"limits.keepalive_min": "limits.keepalive_max",
}

// problems collects configuration errors, each with its location.
type problems []string

func (p *problems) add(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

// Error lists every problem, one a line.
func (p problems) Error() string { return strings.Join(p, "\n") }

// loadConfig parses the serve flags and the configuration file they name.
// Flags override the file. It reports every problem at once, each with its
// file:line:column or flag.
func loadConfig(args []string) (*config, error) {
	fs := flag.NewFlagSet("hearth serve", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	configPath := fs.String("config", "", "YAML configuration `file` (optional)")
	data := fs.String("data", "", "data `directory` holding "+dbFile+" (default ./hearth-data)")
	mqttAddr := fs.String("mqtt", "", "MQTT TCP listen `address` (default :1883)")
	httpAddr := fs.String("http", "", "HTTP listen `address` for /mqtt WebSocket, /healthz and /metrics (default :8080)")
	logLevel := fs.String("log-level", "", "log `level`: debug, info, warn or error (default info)")
	logFormat := fs.String("log-format", "", "log `format`: text or json (default text)")
	check := fs.Bool("check", false, "validate the configuration, report every problem, and exit")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("hearth serve: unexpected argument %q", fs.Arg(0))
	}

	var probs problems
	c := &config{check: *check}
	var root *yaml.Node
	if *configPath != "" {
		root = readFile(*configPath, &c.file, &probs)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	override := func(name string, dst *string, v string) {
		if set[name] {
			*dst = v
		}
	}
	override("data", &c.file.Data, *data)
	override("mqtt", &c.file.MQTT.Addr, *mqttAddr)
	override("http", &c.file.HTTP.Addr, *httpAddr)
	override("log-level", &c.file.Log.Level, *logLevel)
	override("log-format", &c.file.Log.Format, *logFormat)

	// where names a key's location: the flag that set it, or its place in
	// the file.
	flagOf := map[string]string{"data": "data", "mqtt.addr": "mqtt", "http.addr": "http", "log.level": "log-level", "log.format": "log-format"}
	where := func(key string) string {
		if f, ok := flagOf[key]; ok && set[f] {
			return "flag --" + f
		}
		if root != nil {
			// A problem about a key the file leaves at its default comes from
			// a related key, or failing that from the enclosing section.
			candidates := []string{key}
			if r, ok := relatedKey[key]; ok {
				candidates = append(candidates, r)
			}
			for k := key; strings.Contains(k, "."); {
				k = k[:strings.LastIndexByte(k, '.')]
				candidates = append(candidates, k)
			}
			for _, k := range candidates {
				if line, col, ok := locate(root, k); ok {
					return fmt.Sprintf("%s:%d:%d", *configPath, line, col)
				}
			}
			return *configPath
		}
		return "default"
	}

	c.dataDir = c.file.Data
	if c.dataDir == "" {
		c.dataDir = "hearth-data"
	}
	switch strings.ToLower(c.file.Log.Level) {
	case "", "info":
		c.logLevel = slog.LevelInfo
	case "debug":
		c.logLevel = slog.LevelDebug
	case "warn", "warning":
		c.logLevel = slog.LevelWarn
	case "error":
		c.logLevel = slog.LevelError
	default:
		probs.add("%s: log.level: %q is not debug, info, warn or error", where("log.level"), c.file.Log.Level)
	}
	switch strings.ToLower(c.file.Log.Format) {
	case "", "text", "json":
	default:
		probs.add("%s: log.format: %q is not text or json", where("log.format"), c.file.Log.Format)
	}
	for _, a := range []struct{ key, addr string }{{"mqtt.addr", c.file.MQTT.Addr}, {"http.addr", c.file.HTTP.Addr}} {
		if a.addr == "" {
			continue
		}
		if err := checkAddr(a.addr); err != nil {
			probs.add("%s: %s: %v", where(a.key), a.key, err)
		}
	}
	for _, t := range []struct {
		key string
		tls tlsFile
	}{{"mqtt.tls", c.file.MQTT.TLS}, {"http.tls", c.file.HTTP.TLS}} {
		missing := false
		for _, f := range []struct{ name, path string }{{"cert", t.tls.Cert}, {"key", t.tls.Key}} {
			if f.path == "" {
				continue
			}
			if _, err := os.Stat(f.path); err != nil {
				probs.add("%s: %s.%s: %v", where(t.key+"."+f.name), t.key, f.name, err)
				missing = true
			}
		}
		if !missing && t.tls.Cert != "" && t.tls.Key != "" {
			if _, err := tls.LoadX509KeyPair(t.tls.Cert, t.tls.Key); err != nil {
				probs.add("%s: %s.cert: certificate and key unusable: %v", where(t.key+".cert"), t.key, err)
			}
		}
	}
	codecs := map[string]codec.Codec{}
	for _, l := range []struct{ key, name string }{{"mqtt.codec", c.file.MQTT.Codec}, {"http.codec", c.file.HTTP.Codec}} {
		if l.name == "" {
			continue
		}
		cd, err := codec.ParseCodec(l.name)
		if err != nil {
			probs.add("%s: %s: %q is not json or cbor", where(l.key), l.key, l.name)
		}
		codecs[l.key] = cd
	}
	s := c.file.Store
	if s.CommitDelay < 0 || s.CommitDelay > time.Second {
		probs.add("%s: store.commit_delay: %s is outside 0s .. 1s", where("store.commit_delay"), s.CommitDelay)
	}
	if s.MaxBatch < 0 {
		probs.add("%s: store.max_batch: must not be negative", where("store.max_batch"))
	}
	if s.MaxSize < 0 || (s.MaxSize > 0 && s.MaxSize < 1<<20) {
		probs.add("%s: store.max_size: %d is below 1 MiB", where("store.max_size"), s.MaxSize)
	} else if uint64(s.MaxSize) > uint64(math.MaxInt) {
		probs.add("%s: store.max_size: %d is more than this platform can map (%d)", where("store.max_size"), s.MaxSize, math.MaxInt)
	}
	if c.file.ShutdownTimeout < 0 {
		probs.add("%s: shutdown_timeout: must not be negative", where("shutdown_timeout"))
	}

	c.broker = broker.Config{
		MQTT: broker.Listener{Addr: c.file.MQTT.Addr, Codec: codecs["mqtt.codec"],
			TLS: broker.TLS{CertFile: c.file.MQTT.TLS.Cert, KeyFile: c.file.MQTT.TLS.Key}},
		HTTP: broker.Listener{Addr: c.file.HTTP.Addr, Codec: codecs["http.codec"],
			TLS: broker.TLS{CertFile: c.file.HTTP.TLS.Cert, KeyFile: c.file.HTTP.TLS.Key}},
		Records: broker.Records{
			MaxSize:    c.file.Records.MaxSize,
			MaxNameLen: c.file.Records.MaxNameLength,
			MaxDepth:   c.file.Records.MaxDepth,
			CacheBytes: c.file.Records.CacheBytes,
		},
		RPC: broker.RPC{
			Timeout:       c.file.RPC.Timeout,
			MaxPending:    c.file.RPC.MaxPending,
			HideRequester: c.file.RPC.HideRequester,
		},
		PresenceKeepOffline: c.file.Presence.KeepOffline,
		Limits: broker.Limits{
			MaxPacketSize:    c.file.Limits.MaxPacketSize,
			MaxClients:       c.file.Limits.MaxClients,
			MaxPendingWrites: c.file.Limits.MaxPendingWrites,
			MaxInflight:      c.file.Limits.MaxInflight,
			ReceiveMaximum:   c.file.Limits.ReceiveMaximum,
			KeepaliveMin:     c.file.Limits.KeepaliveMin,
			KeepaliveMax:     c.file.Limits.KeepaliveMax,
			MaxSessionExpiry: c.file.Limits.MaxSessionExpiry,
		},
	}
	if err := c.broker.Validate(); err != nil {
		for _, e := range unjoin(err) {
			var fe *broker.FieldError
			if errors.As(e, &fe) {
				probs.add("%s: %s", where(fe.Key), fe.Error())
			} else {
				probs.add("%v", e)
			}
		}
	}
	c.authConfig(&probs, where)
	c.store = storage.Options{CommitDelay: s.CommitDelay, MaxBatch: s.MaxBatch, MaxSize: int(s.MaxSize)}
	c.shutdown = c.file.ShutdownTimeout
	if c.shutdown == 0 {
		c.shutdown = 10 * time.Second
	}
	if len(probs) > 0 {
		return nil, probs
	}
	return c, nil
}

// authConfig builds the authentication chain of the auth section: its modes
// in order, the users file loaded (every problem in it reported with its
// line), and the failed-login limit.
func (c *config) authConfig(probs *problems, where func(string) string) {
	a := c.file.Auth
	modes := a.Modes
	if len(modes) == 0 {
		modes = []string{"none"}
	}
	var chain auth.Chain
	seen := map[string]bool{}
	for _, m := range modes {
		m = strings.ToLower(m)
		if seen[m] {
			probs.add("%s: auth.modes: %q is listed twice", where("auth.modes"), m)
			continue
		}
		seen[m] = true
		switch m {
		case "none":
			chain = append(chain, auth.None{})
		case "file":
			path := a.Users
			if path == "" {
				path = filepath.Join(c.dataDir, usersFile)
			}
			f, err := auth.LoadFile(path)
			if err != nil {
				for _, e := range unjoin(err) {
					probs.add("%s: auth.users: %v", where("auth.users"), e)
				}
				continue
			}
			c.users = f
			chain = append(chain, f)
		default:
			probs.add("%s: auth.modes: %q is not none or file", where("auth.modes"), m)
		}
	}
	if a.MaxFailedLogins < 0 {
		probs.add("%s: auth.max_failed_logins: must not be negative", where("auth.max_failed_logins"))
	}
	if a.FailedLoginWindow < 0 {
		probs.add("%s: auth.failed_login_window: must not be negative", where("auth.failed_login_window"))
	}
	max, window := a.MaxFailedLogins, a.FailedLoginWindow
	if max == 0 {
		max = 5
	}
	if window == 0 {
		window = time.Minute
	}
	c.broker.Auth = chain
	c.broker.LoginLimit = auth.NewRateLimiter(max, window, 10000)
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// checkAddr validates a host:port listen address.
func checkAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port (for all interfaces write :PORT)", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: port %q is not 0..65535", addr, port)
	}
	return nil
}

// yamlLine matches the "line N: " prefix of yaml.v3's type errors.
var yamlLine = regexp.MustCompile(`^line (\d+): (.*)$`)

// readFile decodes the YAML file at path into dst, rejecting unknown keys,
// and returns its node tree for locating keys. Problems go to probs.
func readFile(path string, dst *fileConfig, probs *problems) *yaml.Node {
	b, err := os.ReadFile(path)
	if err != nil {
		probs.add("%s: %v", path, err)
		return nil
	}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		addYAMLError(probs, path, strings.TrimPrefix(err.Error(), "yaml: "))
		return nil
	}
	if len(b) == 0 || len(root.Content) == 0 {
		return &root // an empty file is all defaults
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(dst); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			for _, e := range te.Errors {
				addYAMLError(probs, path, e)
			}
		} else {
			addYAMLError(probs, path, strings.TrimPrefix(err.Error(), "yaml: "))
		}
	}
	// A second document would be ignored silently: refuse it.
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		probs.add("%s:%d: only one YAML document is allowed", path, extra.Line)
	} else if !errors.Is(err, io.EOF) {
		addYAMLError(probs, path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	return &root
}

// addYAMLError adds a yaml.v3 message, turning its "line N: " prefix into
// the path:N: location every other problem has.
func addYAMLError(probs *problems, path, msg string) {
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		probs.add("%s:%s: %s", path, m[1], m[2])
		return
	}
	probs.add("%s: %s", path, msg)
}

// locate finds the line and column of a dotted key ("limits.max_clients")
// in a YAML document.
func locate(root *yaml.Node, key string) (line, col int, ok bool) {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	parts := strings.Split(key, ".")
	for i, part := range parts {
		if n.Kind != yaml.MappingNode {
			return 0, 0, false
		}
		found := false
		for j := 0; j+1 < len(n.Content); j += 2 {
			if n.Content[j].Value == part {
				if i == len(parts)-1 {
					return n.Content[j].Line, n.Content[j].Column, true
				}
				n = n.Content[j+1]
				found = true
				break
			}
		}
		if !found {
			return 0, 0, false
		}
	}
	return 0, 0, false
}
