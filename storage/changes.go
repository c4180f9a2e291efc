package storage

import (
	"bytes"
	"fmt"
	"time"

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

// retainedDisk is how a Retained is stored. The message stays encoded, so
// that a change only decodes the head (recordHead). A structured payload is
// embedded in Value as the CBOR item it is, not as a byte string in the
// message, so the stored record is one CBOR document. Deleted and Value came
// after format 1 without a format bump: both are omitted when unset, so values
// written before them read as live, opaque records, and live opaque records
// are still written exactly as before.
type retainedDisk struct {
	Message  rawItem `cbor:"m"`
	Version  uint64  `cbor:"v"`
	Modified int64   `cbor:"mt"`
	Deleted  bool    `cbor:"d,omitempty"`
	Value    rawItem `cbor:"x,omitzero"`
}

// recordHead is the part of a stored record that changes need.
type recordHead struct {
	Version uint64 `cbor:"v"`
	Deleted bool   `cbor:"d"`
}

// storedHead returns the head of topic's record, zero if there is none.
func storedHead(b *bolt.Bucket, topic []byte) (recordHead, error) {
	var h recordHead
	if old := b.Get(topic); old != nil {
		if err := decode(old, &h); err != nil {
			return h, fmt.Errorf("retained %q: %w", topic, err)
		}
	}
	return h, nil
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
	h, err := storedHead(b, p.topic)
	if err != nil {
		return err
	}
	value, err := encode(retainedDisk{Message: p.message, Version: h.Version + 1, Modified: p.modified})
	if err != nil {
		return err
	}
	return b.Put(p.topic, value)
}

// PutRetained sets the retained message of m.Topic as an opaque record,
// whatever version is stored: the version becomes the stored one (a
// tombstone's included) plus one, and modified the last-modified time.
func PutRetained(m Message, modified time.Time) Change {
	if m.Topic == "" {
		return invalid("retained message without topic")
	}
	b, err := encode(m)
	return putRetained{topic: []byte(m.Topic), message: b, modified: modified.UnixNano(), err: err}
}

type deleteRetained struct {
	topic    []byte
	message  []byte
	modified int64
	err      error
}

func (d deleteRetained) apply(tx *bolt.Tx) error {
	if d.err != nil {
		return d.err
	}
	b := tx.Bucket(bucketRetained)
	old := b.Get(d.topic)
	if old == nil {
		return nil
	}
	var h recordHead
	if decode(old, &h) != nil {
		// The version is lost with the value; removing it is the one way
		// to clear a damaged record, which the caller asked for anyway.
		return b.Delete(d.topic)
	}
	if h.Deleted {
		return nil
	}
	value, err := encode(retainedDisk{Message: d.message, Version: h.Version + 1, Modified: d.modified, Deleted: true})
	if err != nil {
		return err
	}
	return b.Put(d.topic, value)
}

// DeleteRetained replaces the record of topic with a tombstone whose version
// is the stored one plus one and whose Modified is the time DeleteRetained
// was called; the tombstone has no Origin. Deleting a missing record or a
// tombstone changes nothing. A value too damaged to read its version is
// removed outright, so its topic's versions start again from 1.
func DeleteRetained(topic string) Change {
	b, err := encode(Message{Topic: topic})
	return deleteRetained{topic: []byte(topic), message: b, modified: time.Now().UnixNano(), err: err}
}

type putRecord struct {
	topic []byte
	base  uint64
	value []byte
}

func (p putRecord) apply(tx *bolt.Tx) error {
	b := tx.Bucket(bucketRetained)
	h, err := storedHead(b, p.topic)
	if err != nil {
		return err
	}
	if h.Version != p.base {
		return fmt.Errorf("%w: retained %q is at version %d, not %d", ErrConflict, p.topic, h.Version, p.base)
	}
	return b.Put(p.topic, p.value)
}

// PutRecord stores r as the record of r.Message.Topic if the stored version
// (0 if there is none; a tombstone's counts) is base, and otherwise fails
// with ErrConflict, applying nothing of its Write. r.Version and r.Modified
// are stored as given. If r.Deleted, the record becomes a tombstone that
// keeps only Message.Topic and Message.Origin. If r.Structured,
// Message.Payload is stored as the CBOR item it must be.
//
// It fails with ErrInvalid if the topic is empty, if r.Version is not above
// base, or if a structured payload is not exactly one well-formed CBOR item
// in definite-length encoding within the decoder's limits.
func PutRecord(r Retained, base uint64) Change {
	m := r.Message
	if m.Topic == "" {
		return invalid("record without topic")
	}
	if r.Version <= base {
		return invalid("record %q: version %d not above base %d", m.Topic, r.Version, base)
	}
	d := retainedDisk{Version: r.Version, Modified: r.Modified, Deleted: r.Deleted}
	switch {
	case r.Deleted:
		m = Message{Topic: m.Topic, Origin: m.Origin}
	case r.Structured:
		if err := decMode.Wellformed(m.Payload); err != nil {
			return invalid("record %q: structured payload: %v", m.Topic, err)
		}
		d.Value, m.Payload = m.Payload, nil
	}
	var err error
	if d.Message, err = encode(m); err != nil {
		return put{err: err}
	}
	value, err := encode(d)
	if err == nil && d.Value != nil {
		// The payload's nesting adds to the record's: the whole value must
		// still pass decMode's limits, or it could never be read back.
		err = decMode.Wellformed(value)
	}
	if err != nil {
		return invalid("record %q: %v", m.Topic, err)
	}
	return putRecord{topic: []byte(m.Topic), base: base, value: value}
}
