package broker_test

import (
	"bytes"
	"testing"
)

// MQTT over WebSocket at /mqtt reaches the same broker as MQTT over TCP,
// in both directions, for small and large (multi-frame) payloads.
func TestWebSocketBridgesToTCP(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	ws := connectV3(t, wsURL(tb.HTTPAddr), nil)
	tcp := connectV3(t, tcpURL(tb.MQTTAddr), nil)
	tb.waitLog(t, "client connected", "client="+ws.ID, "listener=ws")
	tb.waitLog(t, "client connected", "client="+tcp.ID, "listener=mqtt")
	ws.subscribe(t, "to-ws/#", 1)
	tcp.subscribe(t, "to-tcp/#", 1)

	big := bytes.Repeat([]byte("0123456789abcdef"), 16<<10) // 256 KiB
	tests := []struct {
		name     string
		from, to *v3Client
		topic    string
		payload  []byte
	}{
		{"ws to tcp", ws, tcp, "to-tcp/small", []byte("hello from a browser")},
		{"tcp to ws", tcp, ws, "to-ws/small", []byte("hello from a device")},
		{"ws to tcp, 256 KiB", ws, tcp, "to-tcp/big", big},
		{"tcp to ws, 256 KiB", tcp, ws, "to-ws/big", big},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.from.publish(t, tt.topic, 1, false, tt.payload)
			m := tt.to.recv(t)
			if m.Topic() != tt.topic || !bytes.Equal(m.Payload(), tt.payload) || m.Qos() != 1 {
				t.Fatalf("received %s (%d bytes) at QoS %d, want %s (%d bytes) at QoS 1",
					m.Topic(), len(m.Payload()), m.Qos(), tt.topic, len(tt.payload))
			}
		})
	}
}
