package storage

// UserProperty is an MQTT 5 user property, a key and value pair.
type UserProperty struct {
	Key string `cbor:"k"`
	Val string `cbor:"v"`
}

// Properties are the MQTT 5 publish properties kept with a stored message.
type Properties struct {
	PayloadFormat         byte           `cbor:"pf,omitempty"`
	PayloadFormatFlag     bool           `cbor:"pff,omitempty"`
	MessageExpiryInterval uint32         `cbor:"mei,omitempty"`
	ContentType           string         `cbor:"ct,omitempty"`
	ResponseTopic         string         `cbor:"rt,omitempty"`
	CorrelationData       []byte         `cbor:"cd,omitempty"`
	User                  []UserProperty `cbor:"up,omitempty"`
}

// Message is a stored MQTT message: a retained message, or an inflight or
// queued QoS 1/2 packet of a persistent session.
type Message struct {
	Type            byte       `cbor:"ty"` // MQTT packet type (3 publish, 5 pubrec, 6 pubrel)
	Topic           string     `cbor:"t,omitempty"`
	Payload         []byte     `cbor:"p,omitempty"`
	QoS             byte       `cbor:"q,omitempty"`
	Retain          bool       `cbor:"r,omitempty"`
	Dup             bool       `cbor:"d,omitempty"`
	PacketID        uint16     `cbor:"id,omitempty"`
	Origin          string     `cbor:"o,omitempty"` // publishing client id
	Created         int64      `cbor:"c,omitempty"` // unix seconds
	Expiry          int64      `cbor:"e,omitempty"` // unix seconds; 0 never
	Sent            int64      `cbor:"s,omitempty"` // unix seconds of the last send attempt
	ProtocolVersion byte       `cbor:"pv,omitempty"`
	ReasonCode      byte       `cbor:"rc,omitempty"`
	Properties      Properties `cbor:"pr"`
	// Seq orders a session's inflight messages: resends must keep the
	// order of the original sends (MQTT-4.6.0-1), which packet ids do not.
	Seq uint64 `cbor:"sq,omitempty"`
}

// Retained is a retained message with its record metadata: the broker keeps
// durable, versioned documents ("records") on retained topics.
type Retained struct {
	// Message is the retained message. Its Origin is the client id of the
	// writer of this version.
	Message Message `cbor:"m"`
	// Version counts the changes to this topic's record and never goes back:
	// PutRetained and DeleteRetained add one, PutRecord sets a higher one.
	// The first value written by PutRetained has version 1.
	Version uint64 `cbor:"v"`
	// Modified is when the value was last set, in unix nanoseconds.
	Modified int64 `cbor:"mt"`
	// Deleted marks a tombstone: the record was deleted by the change with
	// this Version. A tombstone keeps Message.Topic, Message.Origin and
	// Modified; its payload is empty. It stays so that re-creating the
	// record continues the count, and a PutRecord based on a version read
	// before the delete cannot succeed again (no ABA).
	Deleted bool `cbor:"d,omitempty"`
	// Structured reports that Message.Payload is one CBOR data item, the
	// record's document, stored embedded in the record rather than as a
	// byte string. The store keeps its bytes as given: choosing a
	// deterministic encoding is the writer's job.
	Structured bool `cbor:"st,omitempty"`
}

// Will is a stored last-will message of a persistent session.
type Will struct {
	Flag          uint32         `cbor:"f,omitempty"`
	Topic         string         `cbor:"t,omitempty"`
	Payload       []byte         `cbor:"p,omitempty"`
	QoS           byte           `cbor:"q,omitempty"`
	Retain        bool           `cbor:"r,omitempty"`
	DelayInterval uint32         `cbor:"di,omitempty"`
	User          []UserProperty `cbor:"up,omitempty"`
}

// Session is the stored state of a persistent MQTT session (MQTT 5 with a
// session expiry interval, or MQTT 3.1.1 with clean session false).
type Session struct {
	ClientID              string         `cbor:"id"`
	Username              []byte         `cbor:"u,omitempty"`
	Listener              string         `cbor:"l,omitempty"`
	Remote                string         `cbor:"ra,omitempty"`
	Clean                 bool           `cbor:"c,omitempty"`
	ProtocolVersion       byte           `cbor:"pv"`
	SessionExpiry         uint32         `cbor:"se,omitempty"`
	SessionExpiryFlag     bool           `cbor:"sef,omitempty"`
	ReceiveMaximum        uint16         `cbor:"rm,omitempty"`
	TopicAliasMaximum     uint16         `cbor:"tam,omitempty"`
	MaximumPacketSize     uint32         `cbor:"mps,omitempty"`
	RequestProblemInfo    byte           `cbor:"rpi,omitempty"`
	RequestProblemInfoSet bool           `cbor:"rpis,omitempty"`
	RequestResponseInfo   byte           `cbor:"rri,omitempty"`
	User                  []UserProperty `cbor:"up,omitempty"`
	Will                  Will           `cbor:"w"`
	// Disconnected is when the session's last connection ended, in unix
	// seconds; 0 while it is connected.
	Disconnected int64 `cbor:"dt,omitempty"`
}

// Subscription is a stored subscription of a persistent session.
type Subscription struct {
	ClientID          string `cbor:"id"`
	Filter            string `cbor:"f"`
	QoS               byte   `cbor:"q,omitempty"`
	Identifier        int    `cbor:"si,omitempty"`
	NoLocal           bool   `cbor:"nl,omitempty"`
	RetainAsPublished bool   `cbor:"rap,omitempty"`
	RetainHandling    byte   `cbor:"rh,omitempty"`
}

// Inflight is a stored inflight or queued packet of a persistent session.
type Inflight struct {
	ClientID string
	Message  Message
}
