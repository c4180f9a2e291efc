package broker_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/hearth-iot/hearth/broker"
)

// Connections beyond Limits.MaxClients are refused: MQTT 5 with 0x89
// server busy, MQTT 3.1.1 with return code 3 server unavailable. A slot
// freed by a disconnect can be used again.
func TestMaxClients(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{Limits: broker.Limits{MaxClients: 2}})
	first := connectV5(t, tb.MQTTAddr, nil)
	connectV5(t, tb.MQTTAddr, nil)

	c, err := dialV5(t, tb.MQTTAddr, nil)
	if err == nil {
		t.Fatal("third MQTT 5 connection accepted, want refused")
	}
	if c == nil || c.Connack == nil || c.Connack.ReasonCode != 0x89 {
		t.Fatalf("third MQTT 5 connection: CONNACK %+v, %v; want reason 0x89 (server busy)", c.Connack, err)
	}
	tb.waitLog(t, "connect refused", "reason_code=0x89")

	_, tok, err := dialV3(t, tcpURL(tb.MQTTAddr), nil)
	if err == nil || tok.ReturnCode() != 3 {
		t.Fatalf("third MQTT 3.1.1 connection: return code %d, %v; want 3 (server unavailable)", tok.ReturnCode(), err)
	}
	tb.waitMetric(t, errorsSeries("connect_refused"), "2", func(v float64) bool { return v == 2 })

	first.close()
	tb.waitLog(t, "client disconnected", "client="+first.ID)
	// The slot is released when the connection's goroutine ends, just
	// after the log line: retry briefly.
	deadline := time.Now().Add(waitTimeout)
	for {
		_, err := dialV5(t, tb.MQTTAddr, nil)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("connection after a disconnect still refused: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := tb.metric(t, "hearth_connections"); got != 2 {
		t.Errorf("hearth_connections = %v, want 2", got)
	}
}

// MQTT 5 clients are held to Limits.KeepaliveMin..KeepaliveMax and told
// the result in CONNACK's Server Keep Alive; asking for 0 (none) gets the
// maximum.
func TestKeepaliveBounds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		limits broker.Limits
		ask    uint16
		want   *uint16 // nil: no Server Keep Alive, the client's value stands
	}{
		{"default, none asked", broker.Limits{}, 0, ptr[uint16](3600)},
		{"default, below minimum", broker.Limits{}, 1, ptr[uint16](5)},
		{"default, minimum", broker.Limits{}, 5, nil},
		{"default, within", broker.Limits{}, 30, nil},
		{"default, maximum", broker.Limits{}, 3600, nil},
		{"default, above maximum", broker.Limits{}, 7200, ptr[uint16](3600)},
		{"max 10s, above", broker.Limits{KeepaliveMax: 10 * time.Second}, 100, ptr[uint16](10)},
		{"max 10s, none asked", broker.Limits{KeepaliveMax: 10 * time.Second}, 0, ptr[uint16](10)},
		{"min 20s, below", broker.Limits{KeepaliveMin: 20 * time.Second}, 10, ptr[uint16](20)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tb := startBroker(t, brokerOpts{Limits: tt.limits})
			c := connectV5(t, tb.MQTTAddr, &paho.Connect{CleanStart: true, KeepAlive: tt.ask})
			var got *uint16
			if c.Connack.Properties != nil {
				got = c.Connack.Properties.ServerKeepAlive
			}
			switch {
			case tt.want == nil && got != nil:
				t.Fatalf("asked %d: Server Keep Alive %d, want none", tt.ask, *got)
			case tt.want != nil && (got == nil || *got != *tt.want):
				t.Fatalf("asked %d: Server Keep Alive %v, want %d", tt.ask, got, *tt.want)
			}
			want := tt.ask
			if tt.want != nil {
				want = *tt.want
			}
			tb.waitLog(t, "client connected", "client="+c.ID, "keepalive="+strconv.Itoa(int(want)))
		})
	}
}

// A MQTT 5 client learns the broker's limits from CONNACK: Receive Maximum
// (Limits.ReceiveMaximum) and Maximum Packet Size (Limits.MaxPacketSize),
// which the broker enforces by closing the connection. Without the
// property, "there is no limit on the packet size imposed beyond the
// limitations in the protocol" (MQTT 5.0 section 3.2.2.3.6).
func TestConnackAdvertisesLimits(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{Limits: broker.Limits{MaxPacketSize: 1024, ReceiveMaximum: 20}})
	c := connectV5(t, tb.MQTTAddr, nil)
	p := c.Connack.Properties
	if p == nil {
		t.Fatal("CONNACK without properties")
	}
	if p.ReceiveMaximum == nil || *p.ReceiveMaximum != 20 {
		t.Errorf("CONNACK Receive Maximum %v, want 20", p.ReceiveMaximum)
	}
	if p.MaximumPacketSize == nil || *p.MaximumPacketSize != 1024 {
		t.Errorf("CONNACK Maximum Packet Size %v, want 1024", p.MaximumPacketSize)
	}
}
