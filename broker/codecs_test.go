package broker_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/eclipse/paho.golang/paho"
	"github.com/fxamacker/cbor/v2"
	"github.com/hearth-iot/hearth/broker/codec"
)

// Per-client codecs, end to end: each client declares JSON or CBOR (or gets
// its listener's default), and structured payloads reach every subscriber
// in its own codec; opaque ones pass through untouched.

// connectCodec connects an MQTT 5 client declaring codec name in CONNECT.
// It asks for problem information, as paho does by default (without it a
// server leaves reason strings out).
func connectCodec(t testing.TB, addr, name string) *v5Client {
	t.Helper()
	return connectV5(t, addr, &paho.Connect{CleanStart: true, KeepAlive: 30,
		Properties: &paho.ConnectProperties{RequestProblemInfo: true,
			User: paho.UserProperties{{Key: "codec", Value: name}}}})
}

// cborDec decodes CBOR maps with text keys as map[string]any, so that
// json.Marshal can write them.
var cborDec = func() cbor.DecMode {
	dm, err := cbor.DecOptions{DefaultMapType: reflect.TypeOf(map[string]any(nil))}.DecMode()
	if err != nil {
		panic(err)
	}
	return dm
}()

// cborJSON decodes b, which must be exactly one CBOR item, and returns it
// as canonical JSON (see canonJSON), so that it compares with JSON.
func cborJSON(t testing.TB, b []byte) string {
	t.Helper()
	var v any
	if err := cborDec.Unmarshal(b, &v); err != nil {
		t.Fatalf("not one CBOR item: %x: %v", b, err)
	}
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("CBOR %x as JSON: %v", b, err)
	}
	return string(out)
}

// mustCBOR encodes v with fxamacker's defaults: struct fields in their
// declared order, floats at full width. That is not the canonical form, so
// a subscriber can tell the publisher's bytes from a re-encoding.
func mustCBOR(t testing.TB, v any) []byte {
	t.Helper()
	b, err := cbor.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// canonicalCBOR re-encodes CBOR b in RFC 8949 core deterministic form.
func canonicalCBOR(t testing.TB, b []byte) []byte {
	t.Helper()
	var v any
	if err := cborDec.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	em, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		t.Fatal(err)
	}
	out, err := em.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A CBOR device publishes a record and an event. A CBOR subscriber gets
// the device's bytes; JSON subscribers, over TCP (MQTT 5) and WebSocket
// (MQTT 3.1.1), get JSON. A new subscriber gets the stored record in
// canonical form. The device's own requests are answered in CBOR.
func TestCodecCBORDevice(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	device := connectCodec(t, tb.MQTTAddr, "cbor")
	cborSub := connectCodec(t, tb.MQTTAddr, "cbor")
	jsonSub := connectV5(t, tb.MQTTAddr, nil)
	ws := connectV3(t, wsURL(tb.HTTPAddr), nil)
	cborSub.subscribe(t, "greenhouse/#", 1)
	jsonSub.subscribe(t, "greenhouse/#", 1)
	ws.subscribe(t, "greenhouse/#", 1)

	type reading struct {
		Unit   string  `cbor:"unit"`
		Temp   float64 `cbor:"temp"`
		Relays []bool  `cbor:"relays"`
	}
	type alarm struct {
		Level int    `cbor:"level"`
		Alarm string `cbor:"alarm"`
	}
	state := mustCBOR(t, reading{"C", 21.5, []bool{true, false}})
	const stateJSON = `{"relays":[true,false],"temp":21.5,"unit":"C"}`
	event := mustCBOR(t, alarm{2, "frost"})
	const eventJSON = `{"alarm":"frost","level":2}`
	if bytes.Equal(state, canonicalCBOR(t, state)) || bytes.Equal(event, canonicalCBOR(t, event)) {
		t.Fatal("the device's payloads must not be canonical CBOR")
	}

	device.publish(t, "greenhouse/1/state", 1, true, state)
	device.publish(t, "greenhouse/1/alarm", 1, false, event)

	type delivery struct {
		topic, version string
		raw            []byte // CBOR subscriber: exactly these bytes
		json           string // JSON subscribers: this document
	}
	want := []delivery{
		{"greenhouse/1/state", "1", state, stateJSON},
		{"greenhouse/1/alarm", "", event, eventJSON},
	}
	for _, w := range want {
		m := cborSub.recv(t)
		if m.Topic != w.topic || !bytes.Equal(m.Payload, w.raw) || m.Properties.ContentType != "application/cbor" ||
			m.Properties.User.Get("version") != w.version {
			t.Errorf("CBOR subscriber: %s %x (content type %q, version %q), want %s %x (application/cbor, version %q): the device's bytes",
				m.Topic, m.Payload, m.Properties.ContentType, m.Properties.User.Get("version"), w.topic, w.raw, w.version)
		}
		m = jsonSub.recv(t)
		if m.Topic != w.topic || canonJSON(t, m.Payload) != w.json || m.Properties.ContentType != "application/json" ||
			m.Properties.User.Get("version") != w.version {
			t.Errorf("JSON subscriber: %s %s (content type %q, version %q), want %s %s (application/json, version %q)",
				m.Topic, m.Payload, m.Properties.ContentType, m.Properties.User.Get("version"), w.topic, w.json, w.version)
		}
		wm := ws.recv(t)
		if wm.Topic() != w.topic || canonJSON(t, wm.Payload()) != w.json {
			t.Errorf("WebSocket subscriber: %s %s, want %s %s", wm.Topic(), wm.Payload(), w.topic, w.json)
		}
	}

	t.Run("stored record, canonical", func(t *testing.T) {
		cborLate := connectCodec(t, tb.MQTTAddr, "cbor")
		cborLate.subscribe(t, "greenhouse/1/state", 1)
		if m := cborLate.recv(t); !bytes.Equal(m.Payload, canonicalCBOR(t, state)) || !m.Retain ||
			m.Properties.ContentType != "application/cbor" || m.Properties.User.Get("version") != "1" {
			t.Errorf("new CBOR subscriber: %x retain=%v (content type %q, version %q), want the canonical %x retained (application/cbor, version 1)",
				m.Payload, m.Retain, m.Properties.ContentType, m.Properties.User.Get("version"), canonicalCBOR(t, state))
		}
		jsonLate := connectV5(t, tb.MQTTAddr, nil)
		jsonLate.subscribe(t, "greenhouse/1/state", 1)
		if m := jsonLate.recv(t); string(m.Payload) != stateJSON || m.Properties.ContentType != "application/json" {
			t.Errorf("new JSON subscriber: %s (content type %q), want exactly %s (application/json)", m.Payload, m.Properties.ContentType, stateJSON)
		}
		wsLate := connectV3(t, wsURL(tb.HTTPAddr), nil)
		wsLate.subscribe(t, "greenhouse/1/state", 1)
		if m := wsLate.recv(t); string(m.Payload()) != stateJSON {
			t.Errorf("new WebSocket subscriber: %s, want exactly %s", m.Payload(), stateJSON)
		}
	})

	t.Run("requests and replies in CBOR", func(t *testing.T) {
		device.subscribe(t, "replies/device", 1)
		ask := func(op string, payload []byte) string {
			t.Helper()
			resp, err := device.pub(&paho.Publish{Topic: "$rec/" + op + "/greenhouse/1/state", QoS: 1, Payload: payload,
				Properties: &paho.PublishProperties{ResponseTopic: "replies/device", CorrelationData: []byte(op)}})
			if err != nil || resp.ReasonCode != 0 {
				t.Fatalf("$rec/%s: PUBACK %+v, %v", op, resp, err)
			}
			m := device.recv(t)
			if m.Topic != "replies/device" || string(m.Properties.CorrelationData) != op || m.Properties.ContentType != "application/cbor" {
				t.Fatalf("$rec/%s: reply on %s (correlation %q, content type %q), want replies/device (%q, application/cbor)",
					op, m.Topic, m.Properties.CorrelationData, m.Properties.ContentType, op)
			}
			return cborJSON(t, m.Payload)
		}
		if got, want := ask("get", nil), `{"name":"greenhouse/1/state","op":"get","value":`+stateJSON+`,"version":1}`; got != want {
			t.Errorf("$rec/get reply %s, want %s", got, want)
		}
		patch := mustCBOR(t, struct {
			Temp float64 `cbor:"temp"`
		}{22.5})
		if got, want := ask("merge", patch), `{"name":"greenhouse/1/state","op":"merge","version":2}`; got != want {
			t.Errorf("$rec/merge reply %s, want %s", got, want)
		}
		if m := jsonSub.recv(t); canonJSON(t, m.Payload) != `{"relays":[true,false],"temp":22.5,"unit":"C"}` || m.Properties.User.Get("version") != "2" {
			t.Errorf("JSON subscriber after the CBOR merge: %s version %q", m.Payload, m.Properties.User.Get("version"))
		}
		if m := cborSub.recv(t); cborJSON(t, m.Payload) != `{"relays":[true,false],"temp":22.5,"unit":"C"}` || m.Properties.ContentType != "application/cbor" {
			t.Errorf("CBOR subscriber after the CBOR merge: %x (content type %q)", m.Payload, m.Properties.ContentType)
		}
	})
}

// JSON from any publisher, object or scalar, event or record, reaches a
// CBOR subscriber as CBOR; a JSON subscriber gets the publisher's bytes.
func TestCodecJSONToCBOR(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	cborSub := connectCodec(t, tb.MQTTAddr, "cbor")
	cborSub.subscribe(t, "json/#", 1)
	jsonSub := connectV5(t, tb.MQTTAddr, nil)
	jsonSub.subscribe(t, "json/#", 1)
	pubs := map[string]testClient{
		"MQTT 5":           connectV5(t, tb.MQTTAddr, nil),
		"MQTT 5 json":      connectCodec(t, tb.MQTTAddr, "json"),
		"MQTT 3.1.1":       connectV3(t, tcpURL(tb.MQTTAddr), nil),
		"MQTT 3.1.1 on ws": connectV3(t, wsURL(tb.HTTPAddr), nil),
	}
	tests := []struct {
		from    string
		retain  bool
		payload string
	}{
		{"MQTT 5", false, `{ "b": [1, 2.5, null], "a": "x" }`},
		{"MQTT 5", true, `{"nested":{"deep":[{"k":true}]}}`},
		{"MQTT 5", false, `21.5`},
		{"MQTT 5 json", false, `"on"`},
		{"MQTT 3.1.1", false, `[1,"two",false]`},
		{"MQTT 3.1.1", true, `{"t":-40}`},
		{"MQTT 3.1.1", false, `true`},
		{"MQTT 3.1.1 on ws", false, `{"from":"a browser"}`},
		{"MQTT 3.1.1 on ws", true, `-7`},
	}
	for i, tt := range tests {
		topic := fmt.Sprintf("json/%d", i)
		t.Run(fmt.Sprintf("%s %s", tt.from, tt.payload), func(t *testing.T) {
			pubs[tt.from].publish(t, topic, 1, tt.retain, []byte(tt.payload))
			m := cborSub.recv(t)
			if m.Topic != topic || m.Properties.ContentType != "application/cbor" {
				t.Fatalf("CBOR subscriber: %s (content type %q), want %s (application/cbor)", m.Topic, m.Properties.ContentType, topic)
			}
			if got, want := cborJSON(t, m.Payload), canonJSON(t, []byte(tt.payload)); got != want {
				t.Errorf("CBOR subscriber: %x is %s, want %s", m.Payload, got, want)
			}
			m = jsonSub.recv(t)
			if m.Topic != topic || string(m.Payload) != tt.payload || m.Properties.ContentType != "application/json" {
				t.Errorf("JSON subscriber: %s %q (content type %q), want the publisher's bytes %q (application/json)",
					m.Topic, m.Payload, m.Properties.ContentType, tt.payload)
			}
		})
	}
}

// Opaque payloads (neither JSON nor CBOR, or with a content type naming
// neither) reach every subscriber as published, with their content type.
func TestCodecOpaquePassthrough(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	jsonPub := connectV5(t, tb.MQTTAddr, nil)
	cborPub := connectCodec(t, tb.MQTTAddr, "cbor")
	v3Pub := connectV3(t, tcpURL(tb.MQTTAddr), nil)
	cborSub := connectCodec(t, tb.MQTTAddr, "cbor")
	jsonSub := connectV5(t, tb.MQTTAddr, nil)
	v3Sub := connectV3(t, tcpURL(tb.MQTTAddr), nil)
	for _, c := range []testClient{cborSub, jsonSub, v3Sub} {
		c.subscribe(t, "opaque/#", 1)
	}
	cborMap := mustCBOR(t, map[string]int{"a": 1})
	tests := []struct {
		name        string
		pub         *v5Client // nil: the MQTT 3.1.1 publisher
		payload     []byte
		contentType string
		retain      bool
	}{
		{"text from a JSON client", jsonPub, []byte("hello world"), "", false},
		{"binary from a JSON client", jsonPub, []byte{0xfb, 0xff, 0x00, 0x7b}, "", false},
		{"broken JSON", jsonPub, []byte(`{"a":`), "", false},
		{"not one CBOR item, from a CBOR client", cborPub, []byte{0xff, 0xfe, 0x00}, "", false},
		{"two CBOR items", cborPub, []byte{0x01, 0x02}, "", false},
		{"JSON under text/plain", jsonPub, []byte(`{"a":1}`), "text/plain", false},
		{"CBOR under application/octet-stream", cborPub, cborMap, "application/octet-stream", false},
		{"text from MQTT 3.1.1", nil, []byte("21 degrees"), "", false},
		{"retained text", jsonPub, []byte("plain text"), "", true},
		{"retained JSON under text/plain", jsonPub, []byte(`{"b":2}`), "text/plain", true},
		{"retained binary from MQTT 3.1.1", nil, []byte{0x00, 0xff, 0x10}, "", true},
	}
	for i, tt := range tests {
		topic := fmt.Sprintf("opaque/%d", i)
		t.Run(tt.name, func(t *testing.T) {
			if tt.pub == nil {
				v3Pub.publish(t, topic, 1, tt.retain, tt.payload)
			} else {
				p := &paho.Publish{Topic: topic, QoS: 1, Retain: tt.retain, Payload: tt.payload,
					Properties: &paho.PublishProperties{ContentType: tt.contentType}}
				if resp, err := tt.pub.pub(p); err != nil || resp.ReasonCode != 0 {
					t.Fatalf("publish: %+v, %v", resp, err)
				}
			}
			for _, sub := range []*v5Client{cborSub, jsonSub} {
				m := sub.recv(t)
				if m.Topic != topic || !bytes.Equal(m.Payload, tt.payload) || m.Properties.ContentType != tt.contentType {
					t.Errorf("%s: %s %x (content type %q), want %s %x (content type %q)",
						sub.ID, m.Topic, m.Payload, m.Properties.ContentType, topic, tt.payload, tt.contentType)
				}
			}
			if m := v3Sub.recv(t); m.Topic() != topic || !bytes.Equal(m.Payload(), tt.payload) {
				t.Errorf("MQTT 3.1.1 subscriber: %s %x, want %s %x", m.Topic(), m.Payload(), topic, tt.payload)
			}
			if !tt.retain {
				return
			}
			// As stored, too.
			late := connectCodec(t, tb.MQTTAddr, "cbor")
			late.subscribe(t, topic, 1)
			if m := late.recv(t); !bytes.Equal(m.Payload, tt.payload) || m.Properties.ContentType != tt.contentType {
				t.Errorf("new CBOR subscriber: %x (content type %q), want %x (content type %q)",
					m.Payload, m.Properties.ContentType, tt.payload, tt.contentType)
			}
		})
	}
}

// rawConnectV5 is an MQTT 5 CONNECT with clean start, keepalive 30 and the
// given user properties.
func rawConnectV5(clientID string, user ...[2]string) []byte {
	body := appendString(nil, "MQTT")
	body = append(body, 5, 0x02) // protocol level 5, clean start
	body = binary.BigEndian.AppendUint16(body, 30)
	var props []byte
	for _, u := range user {
		props = append(props, 0x26) // user property
		props = appendString(props, u[0])
		props = appendString(props, u[1])
	}
	body = appendRemaining(body, len(props))
	body = append(body, props...)
	body = appendString(body, clientID)
	return packet(typeConnect<<4, body)
}

// An MQTT 5 client declaring a codec other than json or cbor (in any
// letter case) is refused: CONNACK 0x83 with a reason string naming it,
// then the connection closes. Refusals are counted.
func TestCodecUnknownRefused(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	tests := []struct {
		codec string
		want  byte
	}{
		{"json", 0x00},
		{"cbor", 0x00},
		{"CBOR", 0x00},
		{"yaml", 0x83},
		{"", 0x83},
		{"application/json", 0x83},
		{"msgpack", 0x83},
	}
	refused := 0
	for i, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.codec), func(t *testing.T) {
			c := dialRaw(t, tb.MQTTAddr)
			c.send(t, rawConnectV5(fmt.Sprintf("codec-%d", i), [2]string{"codec", tt.codec}))
			p, err := c.read(waitTimeout)
			if err != nil {
				t.Fatalf("read CONNACK: %v", err)
			}
			if p.Type != typeConnack || len(p.Body) < 2 || p.Body[1] != tt.want {
				t.Fatalf("CONNACK: type %d body %x, want type 2 reason code 0x%02x", p.Type, p.Body, tt.want)
			}
			if tt.want == 0 {
				return
			}
			name := tt.codec
			if name == "" {
				name = `""`
			}
			if !bytes.Contains(p.Body, []byte(name)) {
				t.Errorf("CONNACK %q: no reason string naming the codec %s", p.Body, name)
			}
			if got := c.expectClosed(t); len(got) != 0 {
				t.Errorf("after the refusal the broker sent %+v", got)
			}
		})
		if tt.want != 0 {
			refused++
		}
	}
	tb.waitMetric(t, errorsSeries("connect_refused"), fmt.Sprint(refused), func(v float64) bool { return v == float64(refused) })

	// paho sees the same refusal.
	c, err := dialV5(t, tb.MQTTAddr, &paho.Connect{CleanStart: true, KeepAlive: 30,
		Properties: &paho.ConnectProperties{User: paho.UserProperties{{Key: "codec", Value: "xml"}}}})
	if err == nil || c.Connack == nil || c.Connack.ReasonCode != 0x83 {
		t.Errorf("paho CONNECT with codec xml: %v, CONNACK %+v; want refused with 0x83", err, c.Connack)
	}
}

// A listener's default codec applies to its clients that declare none: an
// MQTT 3.1.1 client on a CBOR listener publishes and receives CBOR, and
// gets its replies in CBOR; the other listener keeps its own default.
func TestCodecListenerDefault(t *testing.T) {
	t.Parallel()
	t.Run("mqtt.codec cbor", func(t *testing.T) {
		t.Parallel()
		tb := startBroker(t, brokerOpts{MQTTCodec: codec.CBOR})
		v3 := connectV3(t, tcpURL(tb.MQTTAddr), nil)
		v5 := connectV5(t, tb.MQTTAddr, nil) // declares nothing: CBOR too
		ws := connectV3(t, wsURL(tb.HTTPAddr), nil)
		jsonSub := connectCodec(t, tb.MQTTAddr, "json")
		for _, c := range []testClient{v3, v5, ws, jsonSub} {
			c.subscribe(t, "dflt/#", 1)
		}
		jsonPub := connectCodec(t, tb.MQTTAddr, "json")

		jsonPub.publish(t, "dflt/json", 1, false, []byte(`{"a":1}`))
		if m := v3.recv(t); cborJSON(t, m.Payload()) != `{"a":1}` {
			t.Errorf("MQTT 3.1.1 on the CBOR listener: %x, want CBOR {\"a\":1}", m.Payload())
		}
		if m := v5.recv(t); cborJSON(t, m.Payload) != `{"a":1}` || m.Properties.ContentType != "application/cbor" {
			t.Errorf("MQTT 5 on the CBOR listener: %x (content type %q), want CBOR {\"a\":1}", m.Payload, m.Properties.ContentType)
		}
		if m := ws.recv(t); string(m.Payload()) != `{"a":1}` {
			t.Errorf("WebSocket client: %q, want the JSON {\"a\":1}", m.Payload())
		}
		if m := jsonSub.recv(t); string(m.Payload) != `{"a":1}` {
			t.Errorf("JSON client: %q, want {\"a\":1}", m.Payload)
		}

		// The 3.1.1 client publishes CBOR: a record and a scalar event.
		v3.publish(t, "dflt/cbor", 1, true, mustCBOR(t, map[string]string{"k": "v"}))
		v3.publish(t, "dflt/scalar", 1, false, []byte{0x18, 0x2a}) // 42
		for _, want := range []struct{ topic, json string }{{"dflt/cbor", `{"k":"v"}`}, {"dflt/scalar", `42`}} {
			if m := jsonSub.recv(t); m.Topic != want.topic || string(m.Payload) != want.json || m.Properties.ContentType != "application/json" {
				t.Errorf("JSON client: %s %q (content type %q), want %s %s (application/json)",
					m.Topic, m.Payload, m.Properties.ContentType, want.topic, want.json)
			}
			if m := ws.recv(t); m.Topic() != want.topic || string(m.Payload()) != want.json {
				t.Errorf("WebSocket client: %s %q, want %s %s", m.Topic(), m.Payload(), want.topic, want.json)
			}
		}

		// Its replies are CBOR too.
		v3.subscribe(t, "$reply/"+v3.ID, 1)
		v3.publish(t, "$rec/get/dflt/cbor", 1, false, nil)
		for {
			m := v3.recv(t)
			if m.Topic() != "$reply/"+v3.ID {
				continue // its own deliveries on dflt/#
			}
			if got, want := cborJSON(t, m.Payload()), `{"name":"dflt/cbor","op":"get","value":{"k":"v"},"version":1}`; got != want {
				t.Errorf("MQTT 3.1.1 reply %s, want %s", got, want)
			}
			break
		}
	})
	t.Run("http.codec cbor", func(t *testing.T) {
		t.Parallel()
		tb := startBroker(t, brokerOpts{HTTPCodec: codec.CBOR})
		ws := connectV3(t, wsURL(tb.HTTPAddr), nil)
		tcp := connectV3(t, tcpURL(tb.MQTTAddr), nil)
		ws.subscribe(t, "dflt/#", 1)
		tcp.subscribe(t, "dflt/#", 1)
		connectV5(t, tb.MQTTAddr, nil).publish(t, "dflt/x", 1, true, []byte(`{"on":true}`))
		if m := ws.recv(t); cborJSON(t, m.Payload()) != `{"on":true}` {
			t.Errorf("WebSocket client on the CBOR listener: %x, want CBOR {\"on\":true}", m.Payload())
		}
		if m := tcp.recv(t); string(m.Payload()) != `{"on":true}` {
			t.Errorf("TCP client: %q, want the JSON {\"on\":true}", m.Payload())
		}
	})
}

// A publish whose Content Type names JSON or CBOR but whose payload is not
// that is refused: PUBACK/PUBREC 0x99 at QoS 1/2, an INVALID_PAYLOAD reply
// on $reply/<client id>, nothing delivered or stored.
func TestCodecContentTypeMismatch(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	watcher := connectCodec(t, tb.MQTTAddr, "cbor")
	watcher.subscribe(t, "ct/#", 1)
	c := connectV5(t, tb.MQTTAddr, nil)
	c.subscribe(t, "$reply/"+c.ID, 1)
	tests := []struct {
		name        string
		contentType string
		payload     []byte
		qos         byte
		retain      bool
	}{
		{"event, QoS 1", "application/json", []byte("not json"), 1, false},
		{"event, QoS 2", "application/json", []byte(`{"a":`), 2, false},
		{"event, QoS 0", "application/json", []byte("{nope}"), 0, false},
		{"record", "application/json", []byte("not json"), 1, true},
		{"JSON with a suffix", "application/senml+json", []byte("[1,"), 1, false},
		{"CBOR", "application/cbor", []byte{0xff, 0xff}, 1, false},
		{"CBOR record", "application/cbor", []byte{0x01, 0x02}, 1, true},
	}
	for i, tt := range tests {
		topic := fmt.Sprintf("ct/%d", i)
		t.Run(tt.name, func(t *testing.T) {
			resp, _ := c.pub(&paho.Publish{Topic: topic, QoS: tt.qos, Retain: tt.retain, Payload: tt.payload,
				Properties: &paho.PublishProperties{ContentType: tt.contentType}})
			if tt.qos > 0 && (resp == nil || resp.ReasonCode != 0x99 || !strings.HasPrefix(resp.Properties.ReasonString, "INVALID_PAYLOAD")) {
				t.Errorf("acknowledgement %+v, want 0x99 INVALID_PAYLOAD...", resp)
			}
			m := c.recv(t)
			var body struct{ Error, Message string }
			if err := json.Unmarshal(m.Payload, &body); err != nil || m.Topic != "$reply/"+c.ID || body.Error != "INVALID_PAYLOAD" || body.Message == "" {
				t.Errorf("reply %s %s, want an INVALID_PAYLOAD error with a message on $reply/%s", m.Topic, m.Payload, c.ID)
			}
		})
	}

	// The client is still connected; its well-formed publishes pass, and
	// nothing refused was delivered or stored.
	c.publish(t, "ct/ok", 1, false, []byte(`{"fine":true}`))
	if m := watcher.recv(t); m.Topic != "ct/ok" || cborJSON(t, m.Payload) != `{"fine":true}` {
		t.Errorf("watcher received %s %x, want only ct/ok", m.Topic, m.Payload)
	}
	r := newV5Requester(t, tb)
	for i, tt := range tests {
		if tt.retain {
			checkRecord(t, r, fmt.Sprintf("ct/%d", i), "", 0)
		}
	}
}
