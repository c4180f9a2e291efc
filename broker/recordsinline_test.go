package broker_test

import (
	"testing"

	"github.com/eclipse/paho.golang/paho"
	"github.com/hearth-iot/hearth/broker/codec"
	"github.com/hearth-iot/hearth/broker/record"
)

// A record written through the broker's own API (Broker.Records) takes the
// path of an MQTT write: it reaches subscribers with its version, is read
// back by $rec/get, and continues the versions MQTT writes made.
func TestRecordsInlineAPI(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	sub := connectV5(t, tb.MQTTAddr, nil)
	sub.subscribe(t, "inline/#", 1)
	pub := connectV5(t, tb.MQTTAddr, nil)
	pub.publish(t, "inline/doc", 1, true, []byte(`{"a":1}`))
	if m := sub.recv(t); m.Topic != "inline/doc" || string(m.Payload) != `{"a":1}` {
		t.Fatalf("after the MQTT write: got %s %q", m.Topic, m.Payload)
	}

	res, err := tb.B.Records().Apply(record.Op{Kind: record.Merge, Name: "inline/doc", Writer: "inline-test",
		Value: map[string]any{"b": int64(2)}})
	if err != nil || res.Record.Version != 2 {
		t.Fatalf("Apply(merge) = %+v, %v; want version 2", res.Record, err)
	}
	m := sub.recv(t)
	if m.Topic != "inline/doc" || string(m.Payload) != `{"a":1,"b":2}` || userProperty(m, "version") != "2" {
		t.Fatalf("inline merge delivered as %s %q version %q; want inline/doc {\"a\":1,\"b\":2} version 2",
			m.Topic, m.Payload, userProperty(m, "version"))
	}
	rec, err := tb.B.Records().Get("inline/doc")
	if err != nil || rec.Writer != "inline-test" {
		t.Fatalf("Get = %+v, %v; want the inline writer", rec, err)
	}
	if b, err := codec.Encode(rec.Value, codec.JSON); err != nil || string(b) != `{"a":1,"b":2}` {
		t.Fatalf("Get value %s, %v", b, err)
	}
}

func userProperty(m *paho.Publish, key string) string {
	if m.Properties == nil {
		return ""
	}
	return m.Properties.User.Get(key)
}
