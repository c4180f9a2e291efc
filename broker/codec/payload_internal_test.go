package codec

import (
	"sync"
	"sync/atomic"
	"testing"
)

// Many subscribers asking at once still cost one transcoding per codec.
func TestPayloadTranscodesOncePerCodec(t *testing.T) {
	for _, tt := range []struct {
		src   []byte
		from  Codec
		other Codec
	}{
		{[]byte(`{"temp":21,"tags":["a","b"]}`), JSON, CBOR},
		{[]byte{0xa1, 0x61, 0x61, 0x01}, CBOR, JSON},
	} {
		var encodes atomic.Int32
		p := NewPayload(tt.src, tt.from, Limits{})
		p.onEncode = func() { encodes.Add(1) }

		const subscribers = 64
		results := make([][]byte, subscribers)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range subscribers {
			wg.Go(func() {
				<-start
				c := tt.other
				if i%2 == 0 {
					c = tt.from
				}
				b, err := p.Bytes(c)
				if err != nil {
					t.Errorf("Bytes(%v): %v", c, err)
				}
				results[i] = b
			})
		}
		close(start)
		wg.Wait()

		if n := encodes.Load(); n != 1 {
			t.Fatalf("%v payload: %d encodings for %d subscribers, want 1", tt.from, n, subscribers)
		}
		for i, b := range results {
			want := results[1]
			if i%2 == 0 {
				want = tt.src
			}
			if len(b) == 0 || &b[0] != &want[0] {
				t.Fatalf("subscriber %d got a different slice", i)
			}
		}
	}
}
