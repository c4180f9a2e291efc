package storage

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

func benchWrite(b *testing.B, parallel bool) {
	var txs, changes atomic.Int64
	s := openTest(b, Options{
		OnCommit: func(n int, _ time.Duration, err error) {
			if err == nil {
				txs.Add(1)
				changes.Add(int64(n))
			}
		},
	})
	payload := make([]byte, 64)
	var seq atomic.Int64
	write := func() {
		topic := "bench/" + strconv.FormatInt(seq.Add(1), 10)
		if err := s.Write(context.Background(), PutRetained(Message{Topic: topic, Payload: payload}, time.Unix(1, 0))); err != nil {
			b.Error(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	if parallel {
		// Many more writers than cores, as with many connected clients.
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				write()
			}
		})
	} else {
		for b.Loop() {
			write()
		}
	}
	b.StopTimer()
	if n := txs.Load(); n > 0 {
		b.ReportMetric(float64(changes.Load())/float64(n), "changes/commit")
		b.ReportMetric(float64(n)/float64(b.N), "commits/op")
	}
}

func BenchmarkWriteParallel(b *testing.B) { benchWrite(b, true) }
func BenchmarkWriteSerial(b *testing.B)   { benchWrite(b, false) }
