package record

import (
	"time"

	"github.com/hearth-iot/hearth/broker/codec"
	"github.com/hearth-iot/hearth/storage"
)

// Record is one committed version of a record. Records are values: Value is
// shared with the cache and other readers and must be treated as immutable
// (see package document).
type Record struct {
	Name    string
	Version uint64 // 0: the record has never existed
	// Modified is when this version was written.
	Modified time.Time
	// Writer is the client id that wrote this version.
	Writer string
	// Deleted marks a tombstone: this version deleted the record.
	Deleted bool

	// Structured records hold a document: Value, and Bytes its
	// deterministic CBOR encoding. Opaque records (a payload that is neither
	// JSON nor CBOR) have a nil Value and Bytes as published.
	Structured bool
	Value      any
	Bytes      []byte

	// Message holds the MQTT properties kept with the record and given to
	// its retained message: QoS, message expiry, content type (opaque
	// records), user properties. Its Topic, Payload and Origin are unused.
	Message storage.Message
}

// Exists reports whether the record holds a value at time now: it has been
// set, is not deleted, and its MQTT 5 message expiry has not passed.
func (r *Record) Exists(now time.Time) bool {
	if r.Version == 0 || r.Deleted {
		return false
	}
	return r.Message.Expiry == 0 || r.Message.Expiry >= now.Unix()
}

// Payload returns the record's value for fan-out: CBOR for a structured
// record, the published bytes for an opaque one, nil for a tombstone.
func (r *Record) Payload(lim codec.Limits) *codec.Payload {
	if r.Deleted {
		return nil
	}
	c := codec.Codec(0)
	if r.Structured {
		c = codec.CBOR
	}
	return codec.NewPayload(r.Bytes, c, lim)
}

// size estimates the memory a cached record takes: a decoded document takes
// a few times its CBOR encoding.
func (r *Record) size() int {
	n := 256 + len(r.Name) + len(r.Bytes)
	if r.Structured {
		n += 3 * len(r.Bytes)
	}
	return n
}

// StoredCodec returns the codec of a stored record's payload: CBOR for a
// structured record, zero (opaque) for a tombstone or an opaque one, and
// JSON for a JSON object or array stored before records were structured
// (a format 1 retained message without a content type).
func StoredCodec(s storage.Retained) codec.Codec {
	switch {
	case s.Deleted:
		return 0
	case s.Structured:
		return codec.CBOR
	case s.Message.Properties.ContentType == "":
		c, _ := codec.Detect(s.Message.Payload, 0) // hint 0: objects and arrays only
		return c
	}
	return 0
}

// stored is r in the store's form.
func (r *Record) stored() storage.Retained {
	m := r.Message
	m.Topic = r.Name
	m.Origin = r.Writer
	m.Payload = nil
	m.Retain = true
	m.PacketID = 0
	if !r.Deleted {
		m.Payload = r.Bytes
	}
	return storage.Retained{
		Message:    m,
		Version:    r.Version,
		Modified:   r.Modified.UnixNano(),
		Deleted:    r.Deleted,
		Structured: r.Structured && !r.Deleted,
	}
}

// fromStored turns a stored record into a Record, decoding its document.
func fromStored(s storage.Retained, lim codec.Limits) (Record, error) {
	r := Record{
		Name:       s.Message.Topic,
		Version:    s.Version,
		Modified:   time.Unix(0, s.Modified),
		Writer:     s.Message.Origin,
		Deleted:    s.Deleted,
		Structured: s.Structured,
		Bytes:      s.Message.Payload,
		Message:    s.Message,
	}
	r.Message.Payload = nil
	if StoredCodec(s) == codec.JSON {
		// Written before records were structured: read it as the document
		// it is (left opaque if it does not decode); the next change stores
		// it as CBOR.
		if v, err := codec.Decode(r.Bytes, codec.JSON, lim); err == nil {
			if b, err := codec.Encode(v, codec.CBOR); err == nil {
				r.Structured, r.Value, r.Bytes = true, v, b
				return r, nil
			}
		}
	}
	if r.Structured && !r.Deleted {
		v, err := codec.Decode(r.Bytes, codec.CBOR, lim)
		if err != nil {
			return Record{}, err
		}
		r.Value = v
	}
	return r, nil
}
