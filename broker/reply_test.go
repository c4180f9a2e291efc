package broker_test

import (
	"context"
	"testing"

	"github.com/eclipse/paho.golang/paho"
)

// $reply/<client id> belongs to that client: it may subscribe to it and
// below it; anyone else, by name, wildcard or shared subscription, is
// refused with 0x87 (MQTT 5) or 0x80 (3.1.1), logged and counted.
func TestReplyTopicBelongsToItsClient(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	owner := connectV5(t, tb.MQTTAddr, &paho.Connect{ClientID: "alice", CleanStart: true, KeepAlive: 30})
	other := connectV5(t, tb.MQTTAddr, &paho.Connect{ClientID: "mallory", CleanStart: true, KeepAlive: 30})

	tests := []struct {
		name   string
		c      *v5Client
		filter string
		want   byte
	}{
		{"owner", owner, "$reply/alice", 1},
		{"owner below", owner, "$reply/alice/#", 1},
		{"other by name", other, "$reply/alice", 0x87},
		{"prefix of another id", other, "$reply/mal", 0x87},
		{"plus", other, "$reply/+", 0x87},
		{"hash", other, "$reply/#", 0x87},
		{"shared", other, "$share/g/$reply/#", 0x87},
		{"shared upper case", other, "$SHARE/g/$reply/alice", 0x87},
		{"other's own", other, "$reply/mallory", 1},
		{"not a reply topic", other, "replies/alice", 1},
	}
	denied := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			ack, err := tt.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: tt.filter, QoS: 1}}})
			if ack == nil || len(ack.Reasons) != 1 {
				t.Fatalf("SUBACK for %q: %+v, %v", tt.filter, ack, err)
			}
			if ack.Reasons[0] != tt.want {
				t.Errorf("SUBACK for %q = 0x%02x, want 0x%02x", tt.filter, ack.Reasons[0], tt.want)
			}
		})
		if tt.want >= 0x80 {
			denied++
		}
	}
	tb.waitLog(t, "refused: a $reply topic belongs to its client alone", "client=mallory", "filter=$reply/+")
	if got := tb.metric(t, errorsSeries("denied")); got != float64(denied) {
		t.Errorf(`hearth_errors_total{kind="denied"} = %v, want %d`, got, denied)
	}

	// A message to alice's reply topic reaches alice only; '#' does not
	// match $-topics.
	hash := connectV3(t, tcpURL(tb.MQTTAddr), nil)
	hash.subscribe(t, "#", 0)
	other.publish(t, "$reply/alice", 1, false, []byte("for alice"))
	if m := owner.recv(t); m.Topic != "$reply/alice" || string(m.Payload) != "for alice" {
		t.Fatalf("alice received %s %q", m.Topic, m.Payload)
	}
	other.publish(t, "after", 0, false, []byte("sentinel"))
	if m := hash.recv(t); m.Topic() != "after" {
		t.Fatalf("a '#' subscriber received %s before the sentinel", m.Topic())
	}
}

// An MQTT 3.1.1 client is refused with 0x80.
func TestReplyTopicRefusedV3(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	c := connectV3(t, tcpURL(tb.MQTTAddr), nil)
	tok := c.Subscribe("$reply/someone-else", 1, nil)
	if !tok.WaitTimeout(waitTimeout) {
		t.Fatal("SUBACK timeout")
	}
	st := tok.(interface{ Result() map[string]byte })
	if got := st.Result()["$reply/someone-else"]; got != 0x80 {
		t.Fatalf("v3 SUBACK = 0x%02x, want 0x80", got)
	}
}
