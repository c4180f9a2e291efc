package broker

import (
	"strconv"
	"strings"

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
// (retainedSender).
type recordPublisher struct{ b *Broker }

func (p recordPublisher) PublishRecord(r record.Record, payload *codec.Payload) {
	pk := recordPacket(r.Name, r.Version, r.Deleted, r.Message, payload)
	pk.Origin = r.Writer
	pk.Created = r.Modified.Unix()
	mu := p.b.recordLock(r.Name) // see retainedSender.send
	mu.Lock()
	defer mu.Unlock()
	mu.notePublished(r.Name, p.b.published.Add(1), p.b.retained.streaming.Load() > 0)
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
