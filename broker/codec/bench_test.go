package codec_test

import (
	"testing"

	"github.com/hearth-iot/hearth/broker/codec"
)

// telemetryJSON is a typical ~300-byte device report.
const telemetryJSON = `{"device":"greenhouse-07","boot":3,"seq":184467,"ts":1763900000123,` +
	`"temp":21.5,"hum":48.25,"pressure":1013.2,"co2":612,"battery":{"mv":3712,"pct":87,"charging":false},` +
	`"relays":[true,false,false,true],"fw":"1.4.2","rssi":-67,"tags":["north","bench-2"],"alarm":null,` +
	`"soil":[31.5,29.75,33.0,30.125]}`

func BenchmarkTranscodeJSONToCBOR(b *testing.B) {
	in := []byte(telemetryJSON)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := codec.Transcode(in, codec.JSON, codec.CBOR, codec.Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTranscodeCBORToJSON(b *testing.B) {
	in, err := codec.Transcode([]byte(telemetryJSON), codec.JSON, codec.CBOR, codec.Limits{})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := codec.Transcode(in, codec.CBOR, codec.JSON, codec.Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDetectJSON(b *testing.B) {
	in := []byte(telemetryJSON)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if c, _ := codec.Detect(in, codec.CBOR); c != codec.JSON {
			b.Fatal(c)
		}
	}
}
