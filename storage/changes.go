package storage

import (
	"bytes"
	"fmt"
	"time"

	"github.com/fxamacker/cbor/v2"
	bolt "go.etcd.io/bbolt"
)

// Values are encoded by the constructors, in the caller's goroutine, so the
// single committer spends its time in bbolt rather than in CBOR.

// put stores an encoded value under key.
type put struct {
	bucket []byte
	key    []byte
	value  []byte
	err    error // from encoding: reported when applied
}

func (p put) apply(tx *bolt.Tx) error {
	if p.err != nil {
		return p.err
	}
	return tx.Bucket(p.bucket).Put(p.key, p.value)
}

// del removes key; removing a missing key is not an error.
type del struct {
	bucket []byte
	key    []byte
}

func (d del) apply(tx *bolt.Tx) error { return tx.Bucket(d.bucket).Delete(d.key) }

// delPrefix removes every key starting with prefix.
type delPrefix struct {
	bucket []byte
	prefix []byte
}

func (d delPrefix) apply(tx *bolt.Tx) error {
	c := tx.Bucket(d.bucket).Cursor()
	for k, _ := c.Seek(d.prefix); k != nil && bytes.HasPrefix(k, d.prefix); k, _ = c.Seek(d.prefix) {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// multi applies several changes as one.
type multi []Change

func (m multi) apply(tx *bolt.Tx) error {
	for _, c := range m {
		if err := c.apply(tx); err != nil {
			return err
		}
	}
	return nil
}

func invalid(format string, args ...any) put {
	return put{err: fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)}
}

func encoded(bucket, key []byte, v any) put {
	b, err := encode(v)
	return put{bucket: bucket, key: key, value: b, err: err}
}

// PutSession stores or replaces a persistent session.
func PutSession(s Session) Change {
	if s.ClientID == "" {
		return invalid("session without client id")
	}
	return encoded(bucketSessions, []byte(s.ClientID), s)
}

// DeleteSession removes a session with all its subscriptions and inflight
// messages.
func DeleteSession(clientID string) Change {
	p := clientPrefix(clientID)
	return multi{
		del{bucket: bucketSessions, key: []byte(clientID)},
		delPrefix{bucket: bucketSubscriptions, prefix: p},
		delPrefix{bucket: bucketInflight, prefix: p},
	}
}

// PutSubscription stores or replaces one subscription of a session.
func PutSubscription(sub Subscription) Change {
	if sub.ClientID == "" || sub.Filter == "" {
		return invalid("subscription without client id or filter")
	}
	return encoded(bucketSubscriptions, subscriptionKey(sub.ClientID, sub.Filter), sub)
}

// DeleteSubscription removes one subscription of a session.
func DeleteSubscription(clientID, filter string) Change {
	return del{bucket: bucketSubscriptions, key: subscriptionKey(clientID, filter)}
}

// PutInflight stores or replaces the inflight message with m.PacketID.
func PutInflight(clientID string, m Message) Change {
	if clientID == "" {
		return invalid("inflight message without client id")
	}
	return encoded(bucketInflight, inflightKey(clientID, m.PacketID), m)
}

// DeleteInflight removes the inflight message with packetID.
func DeleteInflight(clientID string, packetID uint16) Change {
	return del{bucket: bucketInflight, key: inflightKey(clientID, packetID)}
}

// retainedDisk is Retained with its message kept encoded, so that setting a
// value only decodes the old version number.
type retainedDisk struct {
	Message  cbor.RawMessage `cbor:"m"`
	Version  uint64          `cbor:"v"`
	Modified int64           `cbor:"mt"`
}

type putRetained struct {
	topic    []byte
	message  []byte
	modified int64
	err      error
}

func (p putRetained) apply(tx *bolt.Tx) error {
	if p.err != nil {
		return p.err
	}
	b := tx.Bucket(bucketRetained)
	var version uint64
	if old := b.Get(p.topic); old != nil {
		var v struct {
			Version uint64 `cbor:"v"`
		}
		if err := decode(old, &v); err != nil {
			return err
		}
		version = v.Version
	}
	value, err := encode(retainedDisk{Message: p.message, Version: version + 1, Modified: p.modified})
	if err != nil {
		return err
	}
	return b.Put(p.topic, value)
}

// PutRetained sets the retained message of m.Topic, incrementing its
// version, with modified as its last-modified time.
func PutRetained(m Message, modified time.Time) Change {
	if m.Topic == "" {
		return invalid("retained message without topic")
	}
	b, err := encode(m)
	return putRetained{topic: []byte(m.Topic), message: b, modified: modified.UnixNano(), err: err}
}

// DeleteRetained removes the retained message of topic.
func DeleteRetained(topic string) Change {
	return del{bucket: bucketRetained, key: []byte(topic)}
}
