package broker

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hearth-iot/hearth/storage"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// persistent reports whether cl's session outlives its connection.
func persistent(cl *mqtt.Client) bool {
	if cl.Net.Inline {
		return false
	}
	if cl.Properties.ProtocolVersion == 5 {
		return cl.Properties.Props.SessionExpiryInterval > 0
	}
	return !cl.Properties.Clean
}

func userToStore(in []packets.UserProperty) []storage.UserProperty {
	if len(in) == 0 {
		return nil
	}
	out := make([]storage.UserProperty, len(in))
	for i, p := range in {
		out[i] = storage.UserProperty{Key: p.Key, Val: p.Val}
	}
	return out
}

func userFromStore(in []storage.UserProperty) []packets.UserProperty {
	if len(in) == 0 {
		return nil
	}
	out := make([]packets.UserProperty, len(in))
	for i, p := range in {
		out[i] = packets.UserProperty{Key: p.Key, Val: p.Val}
	}
	return out
}

// sessionOf is the stored form of cl's session; disconnected is the unix
// time its connection ended, or 0 while connected.
func sessionOf(cl *mqtt.Client, disconnected int64) storage.Session {
	p := cl.Properties.Props
	w := cl.Properties.Will
	return storage.Session{
		ClientID:              cl.ID,
		Username:              cl.Properties.Username,
		Listener:              cl.Net.Listener,
		Remote:                cl.Net.Remote,
		Clean:                 cl.Properties.Clean,
		ProtocolVersion:       cl.Properties.ProtocolVersion,
		SessionExpiry:         p.SessionExpiryInterval,
		SessionExpiryFlag:     p.SessionExpiryIntervalFlag,
		ReceiveMaximum:        p.ReceiveMaximum,
		TopicAliasMaximum:     p.TopicAliasMaximum,
		MaximumPacketSize:     p.MaximumPacketSize,
		RequestProblemInfo:    p.RequestProblemInfo,
		RequestProblemInfoSet: p.RequestProblemInfoFlag,
		RequestResponseInfo:   p.RequestResponseInfo,
		User:                  userToStore(p.User),
		Will: storage.Will{
			Flag:          atomic.LoadUint32(&w.Flag),
			Topic:         w.TopicName,
			Payload:       w.Payload,
			QoS:           w.Qos,
			Retain:        w.Retain,
			DelayInterval: w.WillDelayInterval,
			User:          userToStore(w.User),
		},
		Disconnected: disconnected,
	}
}

func messageOf(pk packets.Packet) storage.Message {
	p := pk.Properties
	return storage.Message{
		Type:            pk.FixedHeader.Type,
		Topic:           pk.TopicName,
		Payload:         pk.Payload,
		QoS:             pk.FixedHeader.Qos,
		Retain:          pk.FixedHeader.Retain,
		Dup:             pk.FixedHeader.Dup,
		PacketID:        pk.PacketID,
		Origin:          pk.Origin,
		Created:         pk.Created,
		Expiry:          pk.Expiry,
		ProtocolVersion: pk.ProtocolVersion,
		ReasonCode:      pk.ReasonCode,
		Properties: storage.Properties{
			PayloadFormat:         p.PayloadFormat,
			PayloadFormatFlag:     p.PayloadFormatFlag,
			MessageExpiryInterval: p.MessageExpiryInterval,
			ContentType:           p.ContentType,
			ResponseTopic:         p.ResponseTopic,
			CorrelationData:       p.CorrelationData,
			User:                  userToStore(p.User),
		},
	}
}

func packetOf(m storage.Message) packets.Packet {
	return packets.Packet{
		FixedHeader: packets.FixedHeader{
			Type:   m.Type,
			Qos:    m.QoS,
			Retain: m.Retain,
			Dup:    m.Dup,
		},
		TopicName:       m.Topic,
		Payload:         m.Payload,
		PacketID:        m.PacketID,
		Origin:          m.Origin,
		Created:         m.Created,
		Expiry:          m.Expiry,
		ProtocolVersion: m.ProtocolVersion,
		ReasonCode:      m.ReasonCode,
		Properties: packets.Properties{
			PayloadFormat:         m.Properties.PayloadFormat,
			PayloadFormatFlag:     m.Properties.PayloadFormatFlag,
			MessageExpiryInterval: m.Properties.MessageExpiryInterval,
			ContentType:           m.Properties.ContentType,
			ResponseTopic:         m.Properties.ResponseTopic,
			CorrelationData:       m.Properties.CorrelationData,
			User:                  userFromStore(m.Properties.User),
		},
	}
}

// restore loads the stored sessions, subscriptions and inflight messages
// into srv; records stay in the store (retainedSender). It runs before any listener serves. Sessions that
// expired while the broker was down, and anything they owned, are removed
// from the store.
func (b *Broker) restore(now time.Time) error {
	srv, h := b.srv, b.hook
	maxExpiry := int64(b.limits.MaxSessionExpiry / time.Second)

	sessions, err := b.store.Sessions()
	if err != nil {
		return fmt.Errorf("restore sessions: %w", err)
	}
	var stale []storage.Change
	for _, s := range sessions {
		expiry := maxExpiry
		if s.ProtocolVersion == 5 && s.SessionExpiryFlag {
			expiry = min(int64(s.SessionExpiry), maxExpiry)
		}
		var away int64 // a session connected when the broker stopped is disconnected now
		if s.Disconnected > 0 {
			away = max(now.Unix()-s.Disconnected, 0)
		}
		if away >= expiry {
			stale = append(stale, storage.DeleteSession(s.ClientID))
			continue
		}
		cl := srv.NewClient(nil, s.Listener, s.ClientID, false)
		cl.Properties.Username = s.Username
		cl.Properties.Clean = s.Clean
		cl.Properties.ProtocolVersion = s.ProtocolVersion
		cl.Properties.Props = packets.Properties{
			SessionExpiryInterval:     s.SessionExpiry,
			SessionExpiryIntervalFlag: s.SessionExpiryFlag,
			ReceiveMaximum:            s.ReceiveMaximum,
			TopicAliasMaximum:         s.TopicAliasMaximum,
			MaximumPacketSize:         s.MaximumPacketSize,
			RequestProblemInfo:        s.RequestProblemInfo,
			RequestProblemInfoFlag:    s.RequestProblemInfoSet,
			RequestResponseInfo:       s.RequestResponseInfo,
			User:                      userFromStore(s.User),
		}
		if s.ProtocolVersion == 5 {
			// mochi counts expiry from now: give it only what is left.
			cl.Properties.Props.SessionExpiryInterval = uint32(expiry - away)
			cl.Properties.Props.SessionExpiryIntervalFlag = true
		} else {
			// mochi would give an MQTT 3.1.1 session the full maximum from
			// now; expire it when what is left has passed.
			b.expireLater(cl, time.Duration(expiry-away)*time.Second)
		}
		cl.Properties.Will = mqtt.Will{
			Payload:           s.Will.Payload,
			User:              userFromStore(s.Will.User),
			TopicName:         s.Will.Topic,
			Flag:              s.Will.Flag,
			WillDelayInterval: s.Will.DelayInterval,
			Qos:               s.Will.QoS,
			Retain:            s.Will.Retain,
		}
		cl.Stop(packets.ErrServerShuttingDown) // marks it disconnected, as of now
		srv.Clients.Add(cl)
		h.persisted.Store(s.ClientID, struct{}{})
	}

	subs, err := b.store.Subscriptions()
	if err != nil {
		return fmt.Errorf("restore subscriptions: %w", err)
	}
	for _, s := range subs {
		cl, ok := srv.Clients.Get(s.ClientID)
		if !ok {
			stale = append(stale, storage.DeleteSubscription(s.ClientID, s.Filter))
			continue
		}
		sub := packets.Subscription{
			Filter:            s.Filter,
			Qos:               s.QoS,
			Identifier:        s.Identifier,
			NoLocal:           s.NoLocal,
			RetainAsPublished: s.RetainAsPublished,
			RetainHandling:    s.RetainHandling,
		}
		if srv.Topics.Subscribe(s.ClientID, sub) {
			atomic.AddInt64(&srv.Info.Subscriptions, 1)
		}
		cl.State.Subscriptions.Add(s.Filter, sub)
		b.listening.subscribed(cl, sub, false)
	}

	inflight, err := b.store.Inflight()
	if err != nil {
		return fmt.Errorf("restore inflight messages: %w", err)
	}
	// Insert in send order: mochi resends in insertion order.
	slices.SortFunc(inflight, func(a, b storage.Inflight) int { return cmp.Compare(a.Message.Seq, b.Message.Seq) })
	if n := len(inflight); n > 0 {
		h.seq.Store(inflight[n-1].Message.Seq)
	}
	for _, m := range inflight {
		cl, ok := srv.Clients.Get(m.ClientID)
		// An RPC request of an earlier run has no call any more: resent,
		// its answer could be taken for a new call's with the same id.
		if !ok || strings.HasPrefix(m.Message.Topic, rpcPrefix) {
			stale = append(stale, storage.DeleteInflight(m.ClientID, m.Message.PacketID))
			continue
		}
		if cl.State.Inflight.Set(packetOf(m.Message)) {
			atomic.AddInt64(&srv.Info.Inflight, 1)
		}
	}

	offline, err := b.restorePresence(now)
	if err != nil {
		return err
	}

	if len(stale) > 0 {
		if err := b.store.WriteAsync(stale...); err != nil {
			return fmt.Errorf("restore: remove expired state: %w", err)
		}
	}
	b.log.Info("restored state",
		"sessions", srv.Clients.Len(), "subscriptions", len(subs), "inflight", len(inflight),
		"records", b.records.Count(), "stale_entries_removed", len(stale), "presence_marked_offline", offline)
	return nil
}

// expireLater ends the restored session cl after d unless its client has
// reconnected (mochi then holds a new *Client under its id).
func (b *Broker) expireLater(cl *mqtt.Client, d time.Duration) {
	b.timersMu.Lock()
	defer b.timersMu.Unlock()
	b.timers = append(b.timers, time.AfterFunc(d, func() {
		if cur, ok := b.srv.Clients.Get(cl.ID); !ok || cur != cl {
			return
		}
		b.hook.OnClientExpired(cl)
		b.srv.Clients.Delete(cl.ID)
	}))
}

func (b *Broker) stopTimers() {
	b.timersMu.Lock()
	defer b.timersMu.Unlock()
	for _, t := range b.timers {
		t.Stop()
	}
	b.timers = nil
}
