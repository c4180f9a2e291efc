package codec_test

import (
	"fmt"

	"github.com/hearth-iot/hearth/broker/codec"
)

// A plain MQTT client publishes JSON; a CBOR device subscribed to the topic
// gets CBOR, and a JSON dashboard the publisher's own bytes.
func ExamplePayload() {
	published := []byte(`{"temp":21}`)
	c, _ := codec.Detect(published, 0) // no Content Type, no declared codec
	p := codec.NewPayload(published, c, codec.Limits{})

	toDevice, _ := p.Bytes(codec.CBOR)
	toDashboard, _ := p.Bytes(codec.JSON)
	fmt.Printf("%v\n% x\n%s\n", c, toDevice, toDashboard)
	// Output:
	// json
	// a1 64 74 65 6d 70 15
	// {"temp":21}
}

// CBOR-only values have JSON forms: byte strings become base64url text and
// integer map keys become strings.
func ExampleTranscode() {
	in := []byte{0xa2, 0x01, 0x43, 0x01, 0x02, 0x03, 0x61, 0x62, 0xf9, 0x3c, 0x00} // {1: h'010203', "b": 1.0}
	out, err := codec.Transcode(in, codec.CBOR, codec.JSON, codec.Limits{})
	fmt.Println(string(out), err)
	// Output: {"1":"AQID","b":1} <nil>
}
