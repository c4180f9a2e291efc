package broker

import (
	"strconv"
	"strings"
	"time"

	"github.com/hearth-iot/hearth/broker/codec"
	"github.com/hearth-iot/hearth/broker/record"
	"github.com/hearth-iot/hearth/storage"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// versionProperty is the MQTT 5 user property that carries a record's
// version on its deliveries, and a conditional write's expected version.
const versionProperty = "version"

// recordPublisher hands committed record changes to mochi's subscribers.
// The records themselves are the retained messages: mochi's retained index
// holds only $SYS, and a new subscription gets records from the store
// (Broker.retainedFor).
type recordPublisher struct{ b *Broker }

func (p recordPublisher) PublishRecord(r record.Record, payload *codec.Payload) {
	pk := recordPacket(r.Name, r.Version, r.Deleted, r.Message, payload)
	pk.Origin = r.Writer
	pk.Created = r.Modified.Unix()
	p.b.srv.PublishToSubscribers(pk)
}

// recordPacket builds the retained PUBLISH of a record version. A nil
// payload (a deletion) gives the empty payload MQTT deletes with.
func recordPacket(name string, version uint64, deleted bool, m storage.Message, payload *codec.Payload) packets.Packet {
	pk := packetOf(m)
	pk.FixedHeader.Type = packets.Publish
	pk.FixedHeader.Retain = true
	pk.FixedHeader.Dup = false
	pk.TopicName = name
	pk.PacketID = 0
	pk.Payload = nil
	if !deleted && payload != nil {
		pk.Payload = payload.Raw()
		if payload.Codec() != 0 {
			pk.Attachment = payload
		}
	}
	user := make([]packets.UserProperty, 0, len(pk.Properties.User)+1)
	for _, u := range pk.Properties.User {
		if u.Key != versionProperty {
			user = append(user, u)
		}
	}
	pk.Properties.User = append(user, packets.UserProperty{Key: versionProperty, Val: strconv.FormatUint(version, 10)})
	return pk
}

// retainedFor returns the records matching filter, as retained messages
// for a new subscription: those in the store, updated by the QoS 0 changes
// published but not yet committed. mochi sends its own $SYS messages.
func (b *Broker) retainedFor(filter string) []packets.Packet {
	if isSysTopic(filter) {
		return nil
	}
	var pending []record.Record // taken before the store is read: see Records.Pending
	for _, r := range b.records.Pending() {
		if topicMatch(filter, r.Name) {
			pending = append(pending, r)
		}
	}
	prefix := filter
	if i := strings.IndexAny(filter, "+#"); i >= 0 {
		prefix = filter[:i]
	}
	var out []packets.Packet
	var versions []uint64
	index := map[string]int{}
	now := time.Now()
	lim := b.records.Limits().Codec()
	err := b.store.RetainedMatching(prefix, func(r storage.Retained) bool {
		topic := r.Message.Topic
		if !topicMatch(filter, topic) {
			return true
		}
		index[topic] = len(out)
		versions = append(versions, r.Version)
		if r.Message.Expiry > 0 && r.Message.Expiry < now.Unix() {
			out = append(out, packets.Packet{}) // expired: a placeholder, dropped below
			return true
		}
		m := r.Message
		if r.Structured {
			m.Properties.ContentType = "" // the publisher's, not the stored CBOR's
		}
		pk := recordPacket(topic, r.Version, false, m, codec.NewPayload(m.Payload, record.StoredCodec(r), lim))
		pk.Created = time.Unix(0, r.Modified).Unix()
		out = append(out, pk)
		return true
	})
	if err != nil {
		b.metrics.storeError(err)
		b.log.Error("retained messages not read for a subscription", "filter", filter, "error", err)
	}
	for _, r := range pending {
		i, stored := index[r.Name]
		if stored && versions[i] >= r.Version {
			continue // committed meanwhile: the store has it
		}
		var pk packets.Packet // a deletion or an expiry: dropped below
		if r.Exists(now) {
			m := r.Message
			if r.Structured {
				m.Properties.ContentType = ""
			}
			pk = recordPacket(r.Name, r.Version, false, m, r.Payload(lim))
			pk.Origin = r.Writer
			pk.Created = r.Modified.Unix()
		}
		if stored {
			out[i] = pk
		} else {
			out = append(out, pk)
		}
	}
	kept := out[:0]
	for _, pk := range out {
		if pk.TopicName != "" {
			kept = append(kept, pk)
		}
	}
	return kept
}

// topicMatch reports whether topic matches filter (MQTT 4.7): '+' matches
// one level, a final '#' the rest (and the parent level), and a filter
// starting with a wildcard does not match a topic starting with '$'.
func topicMatch(filter, topic string) bool {
	if topic != "" && topic[0] == '$' && filter != "" && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	for {
		f, frest, fmore := strings.Cut(filter, "/")
		switch f {
		case "#":
			return true
		case "+":
		default:
			t, _, _ := strings.Cut(topic, "/")
			if f != t {
				return false
			}
		}
		_, trest, tmore := strings.Cut(topic, "/")
		if !fmore || !tmore {
			// "a/#" also matches "a".
			return fmore == tmore || (!tmore && frest == "#")
		}
		filter, topic = frest, trest
	}
}

// clientCodec returns cl's codec: the MQTT 5 CONNECT user property "codec"
// if present (OnConnect refuses unknown ones), else its listener's default.
func (b *Broker) clientCodec(cl *mqtt.Client) codec.Codec {
	for _, u := range cl.Properties.Props.User {
		if u.Key == codecProperty {
			if c, err := codec.ParseCodec(u.Val); err == nil {
				return c
			}
		}
	}
	if cl.Net.Listener == listenerWS {
		return b.codecs.ws
	}
	return b.codecs.mqtt
}

// codecProperty is the MQTT 5 CONNECT user property declaring a client's
// codec.
const codecProperty = "codec"

// deliver sets pk's payload to the bytes for cl's codec, transcoded once per
// codec per message, with the matching MQTT 5 Content Type. It runs in
// OnPacketEncode for every PUBLISH.
func (b *Broker) deliver(cl *mqtt.Client, pk *packets.Packet) {
	p, ok := pk.Attachment.(*codec.Payload)
	if !ok || p.Codec() == 0 {
		return
	}
	want := b.clientCodec(cl)
	if want == p.Codec() {
		if pk.Properties.ContentType == "" {
			pk.Properties.ContentType = want.ContentType()
		}
		return
	}
	out, err := p.Bytes(want)
	if err != nil {
		// The payload looked structured but is not a valid document (a
		// duplicate key, say): it goes out untouched, as opaque ones do.
		b.metrics.errTranscode.Inc()
		b.log.Debug("payload not transcoded: delivered as published",
			"client", cl.ID, "topic", pk.TopicName, "from", p.Codec(), "to", want, "error", err)
		return
	}
	pk.Payload = out
	pk.Properties.ContentType = want.ContentType()
}
