package broker

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hearth-iot/hearth/broker/codec"
	"github.com/hearth-iot/hearth/broker/record"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// presencePrefix names the presence records: $presence/<client id> is the
// broker's record of that client being online. A publish to presenceGet is
// a request for the clients online now.
const (
	presencePrefix = "$presence/"
	presenceGet    = "$presence/get"
)

// Why a client went offline, as its presence record says.
const (
	offlineClean    = "clean"    // it sent DISCONNECT
	offlineWill     = "will"     // it went without DISCONNECT (or with DISCONNECT 0x04) and had a will
	offlineTimeout  = "timeout"  // its keepalive expired (a will is published too)
	offlineError    = "error"    // it went without DISCONNECT and had no will: connection lost, protocol error
	offlineShutdown = "shutdown" // the broker shut down
	offlineRestart  = "restart"  // it was online when the broker stopped without a shutdown (a crash, kill -9)
)

// presenceTime formats a presence time: RFC 3339 in UTC, to the millisecond.
func presenceTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// protocolName names an MQTT protocol level as people do.
func protocolName(v byte) string {
	switch v {
	case 3:
		return "3.1"
	case 4:
		return "3.1.1"
	case 5:
		return "5"
	}
	return fmt.Sprint(v)
}

// setPresence writes cl's presence record: online, or offline for reason.
// The write does not wait for the disk: presence is rebuilt at start (see
// restorePresence). A client id that cannot name a record (it holds + or
// #, or is too long) has no presence record.
func (b *Broker) setPresence(cl *mqtt.Client, online bool, reason string, at time.Time) {
	if cl.Net.Inline {
		return
	}
	doc := map[string]any{
		"online":   online,
		"since":    presenceTime(at),
		"protocol": protocolName(cl.Properties.ProtocolVersion),
	}
	if u := b.hook.identity(cl).User; u != "" {
		doc["user"] = u
	}
	keep := time.Duration(0)
	if !online {
		doc["reason"] = reason
		keep = b.presenceKeep
	}
	b.writePresence(cl.ID, record.Put, doc, keep)
}

// writePresence applies a whole presence document (Put) or a merge patch
// (Merge) to client id's presence record, without waiting for the disk. A
// record kept for keep (an offline client's) then expires, so that the ids
// of clients that never return do not pile up.
func (b *Broker) writePresence(id string, kind record.Kind, doc map[string]any, keep time.Duration) {
	name := presencePrefix + id
	if name == presenceGet {
		return // the request's topic: a client named get has no record
	}
	if err := b.records.CheckName(name); err != nil {
		b.log.Debug("no presence record for this client id", "client", id, "error", err)
		return
	}
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: true}, TopicName: name}
	if keep > 0 {
		pk.Properties.MessageExpiryInterval = uint32(keep / time.Second)
		pk.Expiry = time.Now().Add(keep).Unix()
	}
	op := record.Op{Kind: kind, Name: name, Writer: id, Async: true, Message: messageOf(pk)}
	if kind == record.Merge {
		op.Value = doc
	} else {
		p, err := codec.Encode(doc, codec.CBOR)
		if err != nil { // cannot happen: text and bools
			b.log.Error("presence not encoded", "client", id, "error", err)
			return
		}
		op.Payload = codec.NewPayload(p, codec.CBOR, b.records.Limits().Codec())
	}
	if _, err := b.records.Apply(op); err != nil {
		b.metrics.storeError(err)
		b.log.Error("presence not stored", "client", id, "error", err)
	}
}

// presenceReason is the offline reason of a disconnect, from its log
// reason and whether the client had a will.
func presenceReason(reason string, hadWill bool) string {
	switch reason {
	case "disconnect":
		return offlineClean
	case "keepalive timeout":
		return offlineTimeout
	case "server shutdown":
		return offlineShutdown
	}
	if hadWill {
		return offlineWill
	}
	return offlineError
}

// restorePresence marks offline every client whose presence record says
// online: the broker stopped without recording their disconnect (a clean
// shutdown records it), and none of them is connected now.
func (b *Broker) restorePresence(now time.Time) (int, error) {
	patch := map[string]any{"online": false, "since": presenceTime(now), "reason": offlineRestart}
	n, after := 0, ""
	for {
		topics, last, err := b.store.RetainedTopics(presencePrefix, after, 256, nil)
		if err != nil {
			return n, fmt.Errorf("restore presence: %w", err)
		}
		for _, t := range topics {
			r, err := b.records.Peek(t)
			if err != nil {
				if record.CodeOf(err) != record.CodeNotFound {
					b.metrics.storeError(err)
					b.log.Error("presence record not read: it may still say online", "record", t, "error", err)
				}
				continue
			}
			if doc, ok := r.Value.(map[string]any); ok && doc["online"] == true {
				b.writePresence(strings.TrimPrefix(t, presencePrefix), record.Merge, patch, b.presenceKeep)
				n++
			}
		}
		if last == "" {
			return n, nil
		}
		after = last
	}
}

// servePresenceGet answers a publish to $presence/get with the ids of the
// clients online now, sorted, optionally only those starting with the
// payload's "prefix": {"prefix": "kitchen-"}.
func (h *hook) servePresenceGet(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	rq := &request{cl: cl, pk: pk, op: "get", name: strings.TrimSuffix(presencePrefix, "/"), codec: h.b.clientCodec(cl)}
	if err := checkResponseTopic(cl.ID, pk.Properties.ResponseTopic); err != nil {
		return h.fail(rq, err, false)
	}
	prefix := ""
	if len(pk.Payload) > 0 {
		if c, err := codec.Classify(pk.Payload, pk.Properties.ContentType, rq.codec); err == nil && c == 0 {
			return h.fail(rq, invalidPayload("$presence/get takes no payload or {\"prefix\": \"...\"}"), false)
		}
		v, err := h.requestValue(rq)
		if err != nil {
			return h.fail(rq, err, false)
		}
		env, ok := v.(map[string]any)
		for k, f := range env {
			if k != "prefix" {
				ok = false
				break
			}
			prefix, ok = f.(string)
		}
		if !ok {
			return h.fail(rq, invalidPayload("$presence/get takes no payload or {\"prefix\": \"...\"}"), false)
		}
	}
	var online []string
	for id, c := range h.b.srv.Clients.GetAll() {
		if !c.Closed() && !c.Net.Inline && strings.HasPrefix(id, prefix) {
			online = append(online, id)
		}
	}
	slices.Sort(online)
	ids := make([]any, len(online))
	for i, id := range online {
		ids[i] = id
	}
	h.reply(rq, map[string]any{"clients": ids})
	return pk, packets.CodeSuccessIgnore
}
