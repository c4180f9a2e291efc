package storage

import (
	"bytes"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// view runs fn in a read transaction, or returns ErrClosed. It holds the
// read lock throughout, so Close waits for it.
func (s *Store) view(fn func(tx *bolt.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	return s.db.View(fn)
}

// each decodes every value of bucket into a fresh T and passes it to fn.
func each[T any](s *Store, bucket []byte, fn func(k []byte, v *T) error) error {
	return s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(k, b []byte) error {
			v := new(T)
			if err := decode(b, v); err != nil {
				return fmt.Errorf("read %s %q: %w", bucket, k, err)
			}
			if err := fn(k, v); err != nil {
				return fmt.Errorf("read %s %q: %w", bucket, k, err)
			}
			return nil
		})
	})
}

// Sessions returns every stored session. A value that cannot be decoded
// fails the whole read with ErrCorrupt (wrapped).
func (s *Store) Sessions() ([]Session, error) {
	var out []Session
	err := each(s, bucketSessions, func(_ []byte, v *Session) error {
		out = append(out, *v)
		return nil
	})
	return out, err
}

// Subscriptions returns every stored subscription.
func (s *Store) Subscriptions() ([]Subscription, error) {
	var out []Subscription
	err := each(s, bucketSubscriptions, func(_ []byte, v *Subscription) error {
		out = append(out, *v)
		return nil
	})
	return out, err
}

// Inflight returns every stored inflight message with its client id.
func (s *Store) Inflight() ([]Inflight, error) {
	var out []Inflight
	err := each(s, bucketInflight, func(k []byte, v *Message) error {
		out = append(out, Inflight{ClientID: clientOfKey(k), Message: *v})
		return nil
	})
	return out, err
}

// RetainedMessages returns every live record (no tombstones), in topic
// byte order.
func (s *Store) RetainedMessages() ([]Retained, error) {
	var out []Retained
	err := s.RetainedMatching("", func(r Retained) bool {
		out = append(out, r)
		return true
	})
	return out, err
}

// RetainedMatching calls fn for every live record (no tombstones) whose topic
// starts with prefix, in topic byte order, until fn returns false. All calls
// happen in one read transaction, so fn must not call the Store: a Write
// could wait on that transaction forever. A value that cannot be decoded
// fails the read with ErrCorrupt (wrapped).
func (s *Store) RetainedMatching(prefix string, fn func(Retained) bool) error {
	p := []byte(prefix)
	return s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRetained).Cursor()
		for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			r, err := decodeRecord(v)
			if err != nil {
				return fmt.Errorf("read %s %q: %w", bucketRetained, k, err)
			}
			if !r.Deleted && !fn(r) {
				return nil
			}
		}
		return nil
	})
}

// RetainedTopics pages through the topics of live records (no tombstones)
// that start with prefix, in topic byte order: it examines at most limit
// topics after after, and returns those that satisfy match (nil matches
// all) and last, the last topic examined, from which the next page
// continues; last is "" when no topic is left. A reader pages through a
// large set this way without holding a read transaction (and the records'
// values) between pages, and a page's transaction stays short however few
// topics match. A value whose head cannot be decoded fails the read with
// ErrCorrupt (wrapped).
func (s *Store) RetainedTopics(prefix, after string, limit int, match func(topic string) bool) (topics []string, last string, err error) {
	p := []byte(prefix)
	err = s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRetained).Cursor()
		k, v := c.Seek(p)
		if after >= prefix {
			k, v = c.Seek([]byte(after))
			if k != nil && string(k) == after {
				k, v = c.Next()
			}
		}
		for n := 0; k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			if n == limit {
				return nil
			}
			n++
			last = string(k)
			if match != nil && !match(last) {
				continue
			}
			var h recordHead
			if err := decode(v, &h); err != nil {
				return fmt.Errorf("read %s %q: %w", bucketRetained, k, err)
			}
			if !h.Deleted {
				topics = append(topics, last)
			}
		}
		last = ""
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return topics, last, nil
}

// RetainedCount returns the number of live records (tombstones not counted).
// It reads only each record's version and tombstone flag: a value that
// cannot be decoded that far fails with ErrCorrupt (wrapped).
func (s *Store) RetainedCount() (int, error) {
	n := 0
	err := each(s, bucketRetained, func(_ []byte, h *recordHead) error {
		if !h.Deleted {
			n++
		}
		return nil
	})
	return n, err
}

// Retained returns the live record of topic, and false if there is none or
// it is a tombstone.
func (s *Store) Retained(topic string) (Retained, bool, error) {
	r, found, err := s.Record(topic)
	if err != nil || !found || r.Deleted {
		return Retained{}, false, err
	}
	return r, true, nil
}

// Record returns the record of topic, tombstone or not, and false if there
// is none: its Version is the base for the next PutRecord. A value that
// cannot be decoded fails with ErrCorrupt (wrapped).
func (s *Store) Record(topic string) (Retained, bool, error) {
	var r Retained
	var found bool
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRetained).Get([]byte(topic))
		if b == nil {
			return nil
		}
		var err error
		if r, err = decodeRecord(b); err != nil {
			return fmt.Errorf("read %s %q: %w", bucketRetained, topic, err)
		}
		found = true
		return nil
	})
	return r, found, err
}

// decodeRecord decodes a stored record, copying everything out of b.
func decodeRecord(b []byte) (Retained, error) {
	var d retainedDisk
	if err := decode(b, &d); err != nil {
		return Retained{}, err
	}
	r := Retained{Version: d.Version, Modified: d.Modified, Deleted: d.Deleted}
	if err := decode(d.Message, &r.Message); err != nil {
		return Retained{}, err
	}
	if len(d.Value) > 0 {
		r.Message.Payload, r.Structured = d.Value, true
	}
	return r, nil
}

// clientOfKey returns the client id of a subscriptions or inflight key.
func clientOfKey(k []byte) string {
	n, w := binary.Uvarint(k)
	if w <= 0 || uint64(len(k)-w) < n {
		return ""
	}
	return string(k[w : w+int(n)])
}
