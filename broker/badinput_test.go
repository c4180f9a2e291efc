package broker_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/gorilla/websocket"
	"github.com/hearth-iot/hearth/broker"
)

// errorKinds are the kind labels of hearth_errors_total (metrics.go).
var errorKinds = []string{
	"connect", "connect_refused", "packet_too_large", "protocol", "denied",
	"dropped", "store", "store_full", "websocket",
}

// Bad input gets the protocol's answer, one log line and one count of the
// matching error kind, and does not disturb other clients.
func TestBadInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		limits broker.Limits
		// send does the bad thing and checks the broker's answer.
		send func(t *testing.T, tb *testBroker)
		log  []string // parts of the expected log line
		// kinds are the hearth_errors_total kinds expected to count 1;
		// every other kind stays 0.
		kinds []string
	}{
		{
			name: "malformed CONNECT",
			send: func(t *testing.T, tb *testBroker) {
				c := dialRaw(t, tb.MQTTAddr)
				// Protocol name length 9, but only 3 bytes follow.
				c.send(t, []byte{0x10, 0x05, 0x00, 0x09, 'M', 'Q', 'T'})
				if got := c.expectClosed(t); len(got) != 0 {
					t.Errorf("broker answered %+v, want the connection closed", got)
				}
			},
			log:   []string{"connection closed: not a valid MQTT CONNECT", "listener=mqtt"},
			kinds: []string{"connect"},
		},
		{
			name: "HTTP request on the MQTT port",
			send: func(t *testing.T, tb *testBroker) {
				c := dialRaw(t, tb.MQTTAddr)
				c.send(t, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
				if got := c.expectClosed(t); len(got) != 0 {
					t.Errorf("broker answered %+v, want the connection closed", got)
				}
			},
			log:   []string{"connection closed: not a valid MQTT CONNECT", "listener=mqtt"},
			kinds: []string{"connect"},
		},
		{
			name:   "CONNECT over the packet size limit",
			limits: broker.Limits{MaxPacketSize: 1024},
			send: func(t *testing.T, tb *testBroker) {
				c := dialRaw(t, tb.MQTTAddr)
				c.send(t, rawConnect("big", 30, true, &rawWill{Topic: "w", Payload: strings.Repeat("x", 2048)}))
				if got := c.expectClosed(t); len(got) != 0 {
					t.Errorf("broker answered %+v, want the connection closed", got)
				}
			},
			log:   []string{"connection closed: CONNECT over the packet size limit"},
			kinds: []string{"packet_too_large"},
		},
		{
			name: "CONNECT with a wrong protocol name",
			send: func(t *testing.T, tb *testBroker) {
				c := dialRaw(t, tb.MQTTAddr)
				p := rawConnect("wrong-name", 30, true, nil)
				copy(p[4:8], "MQTX")
				c.send(t, p)
				got := c.expectClosed(t)
				if len(got) != 1 || got[0].Type != typeConnack || len(got[0].Body) != 2 || got[0].Body[1] == 0 {
					t.Fatalf("broker answered %+v, want one refusing CONNACK, then the connection closed", got)
				}
				// mochi answers 0x82, which MQTT 3.1.1 does not define (it
				// allows 1..5); the connection is refused either way.
				t.Logf("CONNACK return code 0x%02x", got[0].Body[1])
			},
			log:   []string{"connect refused", "listener=mqtt"},
			kinds: []string{"connect_refused"},
		},
		{
			name: "connection closed before CONNECT",
			send: func(t *testing.T, tb *testBroker) {
				c := dialRaw(t, tb.MQTTAddr)
				_ = c.Close()
			},
			log:   []string{"connection closed before CONNECT", "listener=mqtt"},
			kinds: []string{"connect"},
		},
		{
			name:   "PUBLISH over the packet size limit",
			limits: broker.Limits{MaxPacketSize: 1024},
			send: func(t *testing.T, tb *testBroker) {
				c := connectV5(t, tb.MQTTAddr, nil)
				if _, err := c.pub(&paho.Publish{Topic: "big", Payload: make([]byte, 4<<10)}); err != nil {
					t.Fatalf("publish: %v", err)
				}
				c.waitDone(t)
			},
			log:   []string{"client disconnected: packet over the size limit", "max_packet_size=1024"},
			kinds: []string{"packet_too_large"},
		},
		{
			name: "3.1.1 PUBLISH with a wildcard topic",
			send: func(t *testing.T, tb *testBroker) {
				c := dialRaw(t, tb.MQTTAddr)
				c.connect(t, "raw-wildcard", nil)
				c.send(t, rawPublish("sensors/+/temp", 1, false, 7, []byte("21")))
				if got := c.expectClosed(t); len(got) != 0 {
					t.Errorf("broker answered %+v, want the connection closed", got)
				}
			},
			log:   []string{"client disconnected: protocol error", "client=raw-wildcard", "reason_code=0x82"},
			kinds: []string{"protocol"},
		},
		{
			name: "5 PUBLISH with a wildcard topic",
			send: func(t *testing.T, tb *testBroker) {
				c := connectV5(t, tb.MQTTAddr, nil)
				if _, err := c.pub(&paho.Publish{Topic: "sensors/#", Payload: []byte("21")}); err != nil {
					t.Fatalf("publish: %v", err)
				}
				select {
				case d := <-c.disconnect:
					if d.ReasonCode != 0x82 {
						t.Errorf("DISCONNECT reason 0x%02x, want 0x82 (protocol error)", d.ReasonCode)
					}
				case <-time.After(waitTimeout):
					t.Error("no DISCONNECT from the broker")
				}
				c.waitDone(t)
			},
			log:   []string{"client disconnected: protocol error", "reason_code=0x82"},
			kinds: []string{"protocol"},
		},
		{
			name: "5 PUBLISH QoS 1 to $SYS",
			send: func(t *testing.T, tb *testBroker) {
				c := connectV5(t, tb.MQTTAddr, nil)
				resp, err := c.pub(&paho.Publish{Topic: "$SYS/x", QoS: 1, Payload: []byte("fake")})
				if err == nil || resp == nil || resp.ReasonCode != 0x87 {
					t.Fatalf("publish to $SYS/x: %+v, %v; want PUBACK 0x87 (not authorized)", resp, err)
				}
				c.publish(t, "after-sys", 1, false, []byte("still connected"))
			},
			log:   []string{"publish refused: $SYS topics are the broker's", "topic=$SYS/x"},
			kinds: []string{"denied"},
		},
		{
			name: "3.1.1 PUBLISH QoS 1 to $SYS",
			send: func(t *testing.T, tb *testBroker) {
				c := connectV3(t, tcpURL(tb.MQTTAddr), nil)
				c.Publish("$SYS/x", 1, false, []byte("fake")) // never acknowledged
				c.waitLost(t)
				tb.waitLog(t, "client disconnected", "client="+c.ID)
			},
			log: []string{"publish refused: $SYS topics are the broker's", "topic=$SYS/x"},
			// A policy refusal, not a protocol violation of the client's.
			kinds: []string{"denied"},
		},
		{
			name: "WebSocket upgrade on a wrong path",
			send: func(t *testing.T, tb *testBroker) {
				_, resp, err := websocket.DefaultDialer.Dial("ws://"+tb.HTTPAddr+"/wrong", nil)
				if err == nil || resp == nil || resp.StatusCode != http.StatusNotFound {
					t.Fatalf("dial /wrong: %v, %v; want HTTP 404", resp, err)
				}
			},
			log:   []string{"websocket upgrade on a wrong path", "path=/wrong", "want=/mqtt"},
			kinds: []string{"websocket"},
		},
		{
			name: "WebSocket upgrade with an unsupported version",
			send: func(t *testing.T, tb *testBroker) {
				req, _ := http.NewRequest(http.MethodGet, "http://"+tb.HTTPAddr+"/mqtt", nil)
				req.Header.Set("Connection", "Upgrade")
				req.Header.Set("Upgrade", "websocket")
				req.Header.Set("Sec-WebSocket-Version", "8")
				req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusBadRequest {
					t.Fatalf("upgrade with version 8: HTTP %d, want 400", resp.StatusCode)
				}
			},
			log:   []string{"websocket upgrade failed"},
			kinds: []string{"websocket"},
		},
		{
			name: "plain GET /mqtt",
			send: func(t *testing.T, tb *testBroker) {
				resp, err := http.Get("http://" + tb.HTTPAddr + "/mqtt")
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusBadRequest || !bytes.Contains(body, []byte("expects a WebSocket upgrade")) {
					t.Fatalf("GET /mqtt: HTTP %d %q, want 400 explaining the upgrade", resp.StatusCode, body)
				}
			},
			// Not an error of the broker's: no log line, no count.
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tb := startBroker(t, brokerOpts{Limits: tt.limits})
			sub := connectV5(t, tb.MQTTAddr, nil)
			sub.subscribe(t, "healthy", 1)
			pub := connectV5(t, tb.MQTTAddr, nil)

			tt.send(t, tb)
			if tt.log != nil {
				tb.waitLog(t, tt.log...)
			}
			for _, kind := range tt.kinds {
				tb.waitMetric(t, errorsSeries(kind), "1", func(v float64) bool { return v == 1 })
			}
			m := tb.scrape(t)
			for _, kind := range errorKinds {
				want := 0.0
				for _, k := range tt.kinds {
					if k == kind {
						want = 1
					}
				}
				if got := m[errorsSeries(kind)]; got != want {
					t.Errorf("%s = %v, want %v", errorsSeries(kind), got, want)
				}
			}

			// Well-behaved clients carry on.
			for i := range 3 {
				payload := fmt.Sprintf("still fine %d", i)
				pub.publish(t, "healthy", 1, false, []byte(payload))
				if got, want := sub.next(t), (received{Topic: "healthy", Payload: payload, QoS: 1}); got != want {
					t.Fatalf("after bad input: received %+v, want %+v", got, want)
				}
			}
		})
	}
}
