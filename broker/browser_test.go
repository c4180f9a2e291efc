//go:build unix

package broker_test

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// A real browser dashboard, end to end: MQTT.js (testdata/mqttjs, vendored)
// in headless Chromium, over MQTT over WebSocket with the HTTP listener's
// default codec (JSON), and a CBOR device over TCP, seeing the same record.
//
// The page is remote-controlled: it asks the test for a command (POST /rpc,
// answered with the command), runs it with MQTT.js and posts the result
// with its next request. All checks are made here, in Go.
//
// Chromium is found as $HEARTH_CHROMIUM, which makes the test required (it
// fails if that browser cannot run; .ci/run sets it), or else as chromium
// or chromium-browser in PATH; without one the test is skipped, unless CI
// is set.

// chromiumStartTimeout bounds Chromium's start-up, until the page's first
// request: a cold start under -race on a small machine takes a while.
const chromiumStartTimeout = 60 * time.Second

// chromiumPath returns the browser to run, or skips the test.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("HEARTH_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("CI is set and no chromium or chromium-browser is in PATH: the browser test is required in CI (apt-get install chromium)")
	}
	t.Skip("no chromium or chromium-browser in PATH: install Debian's chromium, or set HEARTH_CHROMIUM to its path to make this test required")
	return ""
}

// dashboard is the page in a headless Chromium and the test's end of its
// command channel.
type dashboard struct {
	results  chan []byte // bodies of the page's POST /rpc: a result
	cmds     chan []byte // commands, each the answer to one POST /rpc
	uncaught chan string // the page's uncaught errors
	stop     chan struct{}

	pageLog  *pageLog   // the page's commands, results, messages, client events, console, errors
	browser  *logBuffer // Chromium's stdout and stderr
	exited   chan struct{}
	exitErr  error // set before exited is closed
	pageURL  string
	chromium string
}

// startDashboard serves testdata/mqttjs on 127.0.0.1, starts Chromium on
// the dashboard page, pointing it at the broker's WebSocket URL ws, and
// waits until the page asks for its first command. When the test ends it
// kills Chromium (its whole process group) and stops the server; if the
// test failed it logs what the page and Chromium said.
func startDashboard(t *testing.T, chromium, ws string) *dashboard {
	t.Helper()
	d := &dashboard{
		results:  make(chan []byte),
		cmds:     make(chan []byte),
		uncaught: make(chan string, 16),
		stop:     make(chan struct{}),
		pageLog:  &pageLog{},
		browser:  &logBuffer{},
		exited:   make(chan struct{}),
		chromium: chromium,
	}
	mux := http.NewServeMux()
	mux.Handle("GET /", http.FileServer(http.Dir("testdata/mqttjs")))
	mux.HandleFunc("POST /rpc", d.serveRPC)
	mux.HandleFunc("POST /log", d.serveLog)
	srv := httptest.NewServer(mux) // 127.0.0.1, a random port
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dashboard page log:\n%s", d.pageLog.String())
			t.Logf("chromium (%s) output:\n%s", d.chromium, d.browser.String())
		}
	})
	d.pageURL = srv.URL + "/dashboard.html?" + url.Values{"ws": {ws}}.Encode()

	cmd := exec.Command(chromium,
		"--headless",
		"--no-sandbox",
		"--disable-gpu",
		"--disable-dev-shm-usage",
		"--disable-quic",
		"--no-first-run",
		"--no-default-browser-check",
		"--disable-background-networking",
		"--disable-component-update",
		"--disable-sync",
		"--disable-extensions",
		"--user-data-dir="+t.TempDir(),
		d.pageURL)
	cmd.Stdout, cmd.Stderr = d.browser, d.browser
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 5 * time.Second // output pipes held by a straggler
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chromium %s: %v", chromium, err)
	}
	go func() {
		d.exitErr = cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() {
		close(d.stop) // answers a pending POST /rpc with quit
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-d.exited:
		case <-time.After(waitTimeout):
			t.Errorf("chromium (pid %d) still running %s after SIGKILL", cmd.Process.Pid, waitTimeout)
		}
	})

	var ready struct {
		Ready bool   `json:"ready"`
		MQTT  string `json:"mqtt"`
		WS    string `json:"ws"`
	}
	d.result(t, "page start-up ("+d.pageURL+")", chromiumStartTimeout, &ready)
	if !ready.Ready || ready.MQTT != "object" || ready.WS != ws {
		t.Fatalf("dashboard started with %+v, want ready, MQTT.js loaded (typeof mqtt: object) and ws %s", ready, ws)
	}
	return d
}

// serveRPC takes the page's result and answers with the next command.
func (d *dashboard) serveRPC(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	select {
	case d.results <- body:
	case <-d.stop:
		_, _ = io.WriteString(w, `{"op":"quit"}`)
		return
	case <-r.Context().Done():
		return
	}
	select {
	case cmd := <-d.cmds:
		_, _ = w.Write(cmd)
	case <-d.stop:
		_, _ = io.WriteString(w, `{"op":"quit"}`)
	case <-r.Context().Done():
	}
}

// serveLog records one line of the page's log.
func (d *dashboard) serveLog(w http.ResponseWriter, r *http.Request) {
	var l struct {
		Seq  int    `json:"seq"`
		Kind string `json:"kind"`
		Text string `json:"text"`
	}
	body, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(body, &l); err != nil {
		d.pageLog.add(0, fmt.Sprintf("bad log post %q: %v", body, err))
		return
	}
	d.pageLog.add(l.Seq, l.Kind+": "+l.Text)
	if l.Kind == "uncaught" || l.Kind == "unhandledrejection" {
		select {
		case d.uncaught <- l.Kind + ": " + l.Text:
		default:
		}
	}
}

// pageLog is the page's log. The page numbers its lines; they may arrive
// out of order (each is a request of its own).
type pageLog struct {
	mu    sync.Mutex
	lines []pageLogLine
}

type pageLogLine struct {
	seq  int
	text string
}

func (l *pageLog) add(seq int, text string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, pageLogLine{seq, text})
}

// String returns the lines in the page's order.
func (l *pageLog) String() string {
	l.mu.Lock()
	lines := slices.Clone(l.lines)
	l.mu.Unlock()
	slices.SortStableFunc(lines, func(a, b pageLogLine) int { return cmp.Compare(a.seq, b.seq) })
	var sb strings.Builder
	for _, line := range lines {
		fmt.Fprintf(&sb, "%4d %s\n", line.seq, line.text)
	}
	return sb.String()
}

// result waits for the page's next result and decodes it into out; it
// fails the test if the page reports an error or dies, or on timeout.
func (d *dashboard) result(t *testing.T, what string, timeout time.Duration, out any) {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var body []byte
	select {
	case body = <-d.results:
	case e := <-d.uncaught:
		t.Fatalf("dashboard, waiting for %s: %s", what, e)
	case <-d.exited:
		t.Fatalf("dashboard, waiting for %s: chromium exited: %v", what, d.exitErr)
	case <-timer.C:
		t.Fatalf("dashboard: no answer to %s within %s", what, timeout)
	}
	var res struct {
		OK    json.RawMessage `json:"ok"`
		Error string          `json:"error"`
	}
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatalf("dashboard, %s: bad result %q: %v", what, body, err)
	}
	if res.Error != "" {
		t.Fatalf("dashboard, %s: %s", what, res.Error)
	}
	if err := json.Unmarshal(res.OK, out); err != nil {
		t.Fatalf("dashboard, %s: result %s: %v", what, res.OK, err)
	}
}

// call sends the page a command and decodes its result into out.
func (d *dashboard) call(t *testing.T, cmd map[string]any, out any) {
	t.Helper()
	b, err := json.Marshal(cmd)
	if err != nil {
		t.Fatal(err)
	}
	what := string(b)
	// The page bounds its own waits by waitTimeout; this one is a backstop.
	timeout := waitTimeout + 5*time.Second
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case d.cmds <- b:
	case e := <-d.uncaught:
		t.Fatalf("dashboard, sending %s: %s", what, e)
	case <-d.exited:
		t.Fatalf("dashboard, sending %s: chromium exited: %v", what, d.exitErr)
	case <-timer.C:
		t.Fatalf("dashboard: did not ask for a command (%s) within %s", what, timeout)
	}
	d.result(t, what, timeout, out)
}

// connect connects an MQTT.js client named client with MQTT.js options.
func (d *dashboard) connect(t *testing.T, client string, options map[string]any) {
	t.Helper()
	var connack struct {
		ReasonCode *int `json:"reasonCode"`
	}
	d.call(t, map[string]any{"op": "connect", "client": client, "options": options,
		"timeoutMs": waitTimeout.Milliseconds()}, &connack)
	if connack.ReasonCode != nil && *connack.ReasonCode != 0 {
		t.Fatalf("dashboard %s: CONNACK 0x%02x", client, *connack.ReasonCode)
	}
}

// subscribe subscribes client at QoS 1 to filters and checks the grants.
func (d *dashboard) subscribe(t *testing.T, client string, filters ...string) {
	t.Helper()
	topics := map[string]any{}
	for _, f := range filters {
		topics[f] = map[string]any{"qos": 1}
	}
	var res struct {
		Granted []struct {
			Topic string `json:"topic"`
			QoS   int    `json:"qos"`
		} `json:"granted"`
	}
	d.call(t, map[string]any{"op": "subscribe", "client": client, "topics": topics}, &res)
	if len(res.Granted) != len(filters) {
		t.Fatalf("dashboard %s: subscribe %q granted %+v", client, filters, res.Granted)
	}
	for _, g := range res.Granted {
		if g.QoS != 1 {
			t.Fatalf("dashboard %s: subscribe %q granted %+v, want QoS 1 for each", client, filters, res.Granted)
		}
	}
}

// pagePublish is what MQTT.js's publish callback gave, and the PUBACK.
type pagePublish struct {
	Error *struct {
		Name    string `json:"name"`
		Message string `json:"message"`
		Code    *int   `json:"code"`
	} `json:"error"`
	Ack *struct {
		Cmd          string  `json:"cmd"`
		ReasonCode   *int    `json:"reasonCode"`
		ReasonString *string `json:"reasonString"`
	} `json:"ack"`
}

// reason is the PUBACK's reason code (0 when absent, as in MQTT 5) and
// reason string; -1 if there was no PUBACK.
func (p pagePublish) reason() (int, string) {
	if p.Ack == nil {
		return -1, ""
	}
	code, s := 0, ""
	if p.Ack.ReasonCode != nil {
		code = *p.Ack.ReasonCode
	}
	if p.Ack.ReasonString != nil {
		s = *p.Ack.ReasonString
	}
	return code, s
}

func (p pagePublish) String() string {
	b, _ := json.Marshal(p)
	return string(b)
}

// publish publishes text payload from client with MQTT.js options (qos,
// retain, properties; properties.correlationData as text).
func (d *dashboard) publish(t *testing.T, client, topic, payload string, options map[string]any) pagePublish {
	t.Helper()
	var res pagePublish
	d.call(t, map[string]any{"op": "publish", "client": client, "topic": topic, "payload": payload, "options": options}, &res)
	return res
}

// pageMessage is a PUBLISH an MQTT.js client received.
type pageMessage struct {
	Topic      string `json:"topic"`
	Payload    string `json:"payload"` // as UTF-8 text
	Hex        string `json:"hex"`
	QoS        int    `json:"qos"`
	Retain     bool   `json:"retain"`
	Properties *struct {
		ContentType     *string        `json:"contentType"`
		UserProperties  map[string]any `json:"userProperties"`
		CorrelationData *string        `json:"correlationData"`
		ResponseTopic   *string        `json:"responseTopic"`
	} `json:"properties"`
}

func (m pageMessage) contentType() string {
	if m.Properties == nil || m.Properties.ContentType == nil {
		return ""
	}
	return *m.Properties.ContentType
}

func (m pageMessage) correlation() string {
	if m.Properties == nil || m.Properties.CorrelationData == nil {
		return ""
	}
	return *m.Properties.CorrelationData
}

// version is the user property "version": "" if absent, and not a plain
// number if MQTT.js saw it more than once (it gives a list then).
func (m pageMessage) version() string {
	if m.Properties == nil {
		return ""
	}
	switch v := m.Properties.UserProperties["version"].(type) {
	case nil:
		return ""
	case string:
		return v
	default:
		return fmt.Sprintf("%v", v)
	}
}

func (m pageMessage) String() string {
	return fmt.Sprintf("%s %q (QoS %d, retain %v, content type %q, version %q, correlation %q)",
		m.Topic, m.Payload, m.QoS, m.Retain, m.contentType(), m.version(), m.correlation())
}

// next waits for the next message client received.
func (d *dashboard) next(t *testing.T, client string) pageMessage {
	t.Helper()
	var m pageMessage
	d.call(t, map[string]any{"op": "next", "client": client, "timeoutMs": waitTimeout.Milliseconds()}, &m)
	return m
}

// A CBOR device and a JSON dashboard in a browser see the same record: a
// record the device wrote, its live changes, a merge from the browser with
// its reply and an error, events both ways, and a $rec/get from an MQTT
// 3.1.1 MQTT.js client.
func TestBrowserDashboard(t *testing.T) {
	t.Parallel()
	chromium := chromiumPath(t)
	tb := startBroker(t, brokerOpts{})
	const (
		name     = "greenhouse/t1/state"
		cmdTopic = "greenhouse/t1/cmd"
		alarm    = "greenhouse/t1/alarm"
	)
	type state struct {
		Temp float64 `cbor:"temp"`
		OK   bool    `cbor:"ok"`
	}

	// The device writes the record before the dashboard exists, and
	// watches it and the dashboard's commands.
	device := connectCodec(t, tb.MQTTAddr, "cbor")
	device.publish(t, name, 1, true, mustCBOR(t, state{21.5, true}))
	device.subscribe(t, name, 1)
	device.subscribe(t, cmdTopic, 1)
	deviceRecord := func(doc, version string, retain bool) {
		t.Helper()
		m := device.recv(t)
		if m.Topic != name || m.Retain != retain || m.Properties.ContentType != "application/cbor" ||
			m.Properties.User.Get("version") != version {
			t.Fatalf("CBOR device: %s %x (retain %v, content type %q, version %q), want %s (retain %v, application/cbor, version %s)",
				m.Topic, m.Payload, m.Retain, m.Properties.ContentType, m.Properties.User.Get("version"), name, retain, version)
		}
		if got := cborJSON(t, m.Payload); got != doc {
			t.Fatalf("CBOR device: record %s version %s is %s, want %s", name, version, got, doc)
		}
	}
	deviceRecord(`{"ok":true,"temp":21.5}`, "1", true)

	d := startDashboard(t, chromium, wsURL(tb.HTTPAddr))
	v5ID := clientID(t, "browser-v5")
	replies := "dashboard/" + v5ID + "/replies"
	d.connect(t, "v5", map[string]any{"clientId": v5ID, "protocolVersion": 5})
	tb.waitLog(t, "client connected", "client="+v5ID, "listener=ws")

	// expectJSON checks a record or event the browser received as JSON.
	expectJSON := func(m pageMessage, topic, doc, version string, retain bool) {
		t.Helper()
		if m.Topic != topic || m.QoS != 1 || m.Retain != retain || m.contentType() != "application/json" || m.version() != version {
			t.Fatalf("browser received %s, want %s at QoS 1, retain %v, content type application/json, version %q",
				m, topic, retain, version)
		}
		if got := canonJSON(t, []byte(m.Payload)); got != doc {
			t.Fatalf("browser received %s as %s, want %s", topic, got, doc)
		}
	}

	t.Log("1: a record written before the browser subscribed")
	{
		d.subscribe(t, "v5", name, alarm, replies)
		m := d.next(t, "v5")
		expectJSON(m, name, `{"ok":true,"temp":21.5}`, "1", true)
		// A stored record is delivered in canonical form.
		if m.Payload != `{"ok":true,"temp":21.5}` {
			t.Errorf("browser received the stored record as %s, want the canonical JSON", m.Payload)
		}
	}

	t.Log("2: a live change by the device")
	{
		device.publish(t, name, 1, true, mustCBOR(t, state{22.5, true}))
		deviceRecord(`{"ok":true,"temp":22.5}`, "2", false)
		expectJSON(d.next(t, "v5"), name, `{"ok":true,"temp":22.5}`, "2", false)
	}

	const merged = `{"fan":"on","temp":22.5}`
	t.Log("3: a merge from the browser")
	{
		rq := rec("merge", name, `{"ok":null,"fan":"on"}`)
		res := d.publish(t, "v5", rq.topic(), rq.Payload, map[string]any{"qos": 1,
			"properties": map[string]any{"responseTopic": replies, "correlationData": "merge-1"}})
		code, reason := res.reason()
		if res.Error != nil || code != 0 {
			t.Fatalf("browser: %s: publish callback and PUBACK %s, want no error and PUBACK 0x00", rq, res)
		}
		// The reply and the change, in either order.
		var reply, change *pageMessage
		for range 2 {
			m := d.next(t, "v5")
			switch {
			case m.Topic == replies && reply == nil:
				reply = &m
			case m.Topic == name && change == nil:
				change = &m
			default:
				t.Fatalf("browser: after %s received %s, want its reply on %s and the change on %s", rq, m, replies, name)
			}
		}
		if reply.correlation() != "merge-1" || reply.contentType() != "application/json" || reply.QoS != 1 {
			t.Errorf("browser: reply %s, want correlation data merge-1, application/json, QoS 1", reply)
		}
		checkReply(t, rq, recReply{V5: true, Body: []byte(reply.Payload), Reason: byte(code), ReasonString: reason}, `{"version":3}`)
		expectJSON(*change, name, merged, "3", false)
		deviceRecord(merged, "3", false)
	}

	t.Log("4: an error seen by the browser")
	{
		rq := rec("set", name, `{"path":"temp.celsius","value":20}`)
		res := d.publish(t, "v5", rq.topic(), rq.Payload, map[string]any{"qos": 1,
			"properties": map[string]any{"responseTopic": replies, "correlationData": "set-1"}})
		code, reason := res.reason()
		if res.Error == nil || res.Error.Code == nil || *res.Error.Code != 0x99 || code != 0x99 {
			t.Errorf("browser: %s: publish callback and PUBACK %s, want an error with code 0x99 (payload format invalid) from PUBACK 0x99", rq, res)
		}
		m := d.next(t, "v5")
		if m.Topic != replies || m.correlation() != "set-1" || m.contentType() != "application/json" || m.QoS != 1 {
			t.Fatalf("browser: after %s received %s, want the reply on %s with correlation data set-1, application/json, QoS 1", rq, m, replies)
		}
		checkReply(t, rq, recReply{V5: true, Body: []byte(m.Payload), Reason: byte(code), ReasonString: reason},
			`{"error":"INVALID_PATH"}`, "temp")
		// Nothing changed: the record is as the merge left it (the browser
		// sees no change either: its next message is step 5's event).
		checkRecord(t, newV5Requester(t, tb), name, merged, 3)
	}

	t.Log("5: events both ways")
	{
		const event = `{"fan":"off","by":"dashboard","levels":[1,2.5,null]}`
		res := d.publish(t, "v5", cmdTopic, event, map[string]any{"qos": 1})
		if code, _ := res.reason(); res.Error != nil || code != 0 {
			t.Fatalf("browser: publish %s: %s, want no error and PUBACK 0x00", cmdTopic, res)
		}
		m := device.recv(t)
		if m.Topic != cmdTopic || m.Retain || m.Properties.ContentType != "application/cbor" || m.Properties.User.Get("version") != "" {
			t.Fatalf("CBOR device: %s %x (retain %v, content type %q, version %q), want the browser's event on %s (not retained, application/cbor, no version)",
				m.Topic, m.Payload, m.Retain, m.Properties.ContentType, m.Properties.User.Get("version"), cmdTopic)
		}
		if got, want := cborJSON(t, m.Payload), canonJSON(t, []byte(event)); got != want {
			t.Errorf("CBOR device: the browser's event is %s, want %s", got, want)
		}

		device.publish(t, alarm, 1, false, mustCBOR(t, struct {
			Alarm string  `cbor:"alarm"`
			Level int     `cbor:"level"`
			Temp  float64 `cbor:"temp"`
		}{"frost", 2, -1.5}))
		expectJSON(d.next(t, "v5"), alarm, `{"alarm":"frost","level":2,"temp":-1.5}`, "", false)
	}

	t.Log("6: an MQTT 3.1.1 client gets its reply on $reply/<client id>")
	{
		v3ID := clientID(t, "browser-v3")
		d.connect(t, "v3", map[string]any{"clientId": v3ID, "protocolVersion": 4})
		tb.waitLog(t, "client connected", "client="+v3ID, "listener=ws")
		d.subscribe(t, "v3", "$reply/"+v3ID)
		rq := rec("get", name, "")
		if res := d.publish(t, "v3", rq.topic(), "", map[string]any{"qos": 1}); res.Error != nil {
			t.Fatalf("browser (3.1.1): %s: %s", rq, res)
		}
		m := d.next(t, "v3")
		if m.Topic != "$reply/"+v3ID || m.QoS != 1 || m.Retain || m.Properties != nil {
			t.Fatalf("browser (3.1.1): after %s received %s, want the reply on $reply/%s at QoS 1, not retained, without properties",
				rq, m, v3ID)
		}
		checkReply(t, rq, recReply{Body: []byte(m.Payload)}, getReply(merged, 3))
	}

	for _, c := range []string{"v3", "v5"} {
		var out struct{}
		d.call(t, map[string]any{"op": "end", "client": c}, &out)
	}
	select {
	case e := <-d.uncaught:
		t.Errorf("dashboard: %s", e)
	default:
	}
}
