package record

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hearth-iot/hearth/storage"
)

// A record written with an MQTT 5 message expiry is deleted when it expires:
// Run keeps the expiries in a heap and deletes each due record with a
// conditional delete, so a record rewritten meanwhile is left alone.

type expiry struct {
	at      int64 // unix seconds: the record is gone after this second
	name    string
	version uint64
}

type expiryHeap []expiry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// watchExpiry notes a committed record's expiry, if it has one.
func (r *Records) watchExpiry(rec Record) {
	if rec.Deleted || rec.Message.Expiry == 0 {
		return
	}
	r.expMu.Lock()
	heap.Push(&r.expiries, expiry{at: rec.Message.Expiry, name: rec.Name, version: rec.Version})
	first := r.expiries[0].name == rec.Name && r.expiries[0].version == rec.Version
	r.expMu.Unlock()
	if first {
		select {
		case r.expWake <- struct{}{}:
		default:
		}
	}
}

// Run deletes records as their message expiry passes, until ctx ends. It
// first reads the expiries of the stored records.
func (r *Records) Run(ctx context.Context) error {
	err := r.store.RetainedMatching("", func(s storage.Retained) bool {
		if s.Message.Expiry > 0 {
			r.expMu.Lock()
			heap.Push(&r.expiries, expiry{at: s.Message.Expiry, name: s.Message.Topic, version: s.Version})
			r.expMu.Unlock()
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("record: read expiries: %w", err)
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.expWake:
		case <-timer.C:
		}
		next := r.expireDue(r.now())
		timer.Reset(next)
	}
}

// expireDue deletes the records whose expiry has passed and returns how
// long until the next one is due.
func (r *Records) expireDue(now time.Time) time.Duration {
	for {
		r.expMu.Lock()
		if len(r.expiries) == 0 {
			r.expMu.Unlock()
			return time.Hour
		}
		e := r.expiries[0]
		if e.at >= now.Unix() {
			r.expMu.Unlock()
			return time.Until(time.Unix(e.at+1, 0))
		}
		heap.Pop(&r.expiries)
		r.expMu.Unlock()
		_, err := r.Apply(Op{Kind: Delete, Name: e.name, Conditional: true, IfVersion: e.version, IgnoreMissing: true, onlyExpired: true})
		var re *Error
		if err == nil || errors.As(err, &re) && re.Code == CodeVersionConflict {
			continue // deleted, or changed since: a newer version has its own expiry
		}
		if r.onError != nil {
			r.onError(e.name, err)
		}
		e.at = now.Unix() + 60 // the store failed: try again in a minute
		r.expMu.Lock()
		heap.Push(&r.expiries, e)
		r.expMu.Unlock()
	}
}
