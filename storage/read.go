package storage

import (
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

// RetainedMessages returns every stored retained message.
func (s *Store) RetainedMessages() ([]Retained, error) {
	var out []Retained
	err := each(s, bucketRetained, func(_ []byte, v *retainedDisk) error {
		r := Retained{Version: v.Version, Modified: v.Modified}
		if err := decode(v.Message, &r.Message); err != nil {
			return err
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

// Retained returns the retained message of topic, and false if there is none.
func (s *Store) Retained(topic string) (Retained, bool, error) {
	var r Retained
	var found bool
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRetained).Get([]byte(topic))
		if b == nil {
			return nil
		}
		var d retainedDisk
		if err := decode(b, &d); err != nil {
			return err
		}
		r.Version, r.Modified = d.Version, d.Modified
		found = true
		return decode(d.Message, &r.Message)
	})
	return r, found, err
}

// clientOfKey returns the client id of a subscriptions or inflight key.
func clientOfKey(k []byte) string {
	n, w := binary.Uvarint(k)
	if w <= 0 || uint64(len(k)-w) < n {
		return ""
	}
	return string(k[w : w+int(n)])
}
