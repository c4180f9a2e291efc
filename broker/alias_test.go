package broker_test

import (
	"context"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// A client may define at most 64 topic aliases (docs/CONFIG.md): alias 64
// is accepted, alias 65 ends the connection with DISCONNECT 0x94.
func TestTopicAliasMaximum(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	sub := connectV5(t, tb.MQTTAddr, nil)
	sub.subscribe(t, "alias/#", 0)
	c := connectV5(t, tb.MQTTAddr, nil)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := c.Publish(ctx, &paho.Publish{Topic: "alias/ok", Payload: []byte("64"), Properties: &paho.PublishProperties{TopicAlias: ptr(uint16(64))}}); err != nil {
		t.Fatalf("alias 64: %v", err)
	}
	if m := sub.recv(t); m.Topic != "alias/ok" {
		t.Fatalf("alias 64: delivered %s", m.Topic)
	}
	_, _ = c.Publish(ctx, &paho.Publish{Topic: "alias/no", Payload: []byte("65"), Properties: &paho.PublishProperties{TopicAlias: ptr(uint16(65))}})
	select {
	case d := <-c.disconnect:
		if d.ReasonCode != 0x94 {
			t.Fatalf("alias 65: DISCONNECT 0x%02x, want 0x94", d.ReasonCode)
		}
	case <-time.After(waitTimeout):
		t.Fatal("alias 65: no DISCONNECT")
	}
}
