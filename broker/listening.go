package broker

import (
	"errors"
	"slices"
	"strings"
	"sync"

	"github.com/hearth-iot/hearth/broker/codec"
	"github.com/hearth-iot/hearth/broker/listen"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// listenPrefix starts the listening namespace: a client subscribed to
// $listen/<filter> is told when a subscription overlapping <filter> is the
// first of its filter, and when the last one goes.
const listenPrefix = "$listen/"

// listening knows every subscription filter in use and who listens, and
// notifies the listeners of each filter's first subscription and of its
// last one going. Its lock is held while notifications are queued, so each
// listener sees a filter's changes in the order they happened.
type listening struct {
	b *Broker

	mu sync.Mutex
	// watched holds, by the filter they receive on ($share/<group>/
	// removed), the subscriptions that exist: in sessions, connected or
	// not, until unsubscribed or ended.
	watched map[string]map[subscriptionKey]struct{}
	// listeners holds, by listen filter, the ids of the clients listening.
	listeners map[string]map[string]struct{}
}

type subscriptionKey struct{ client, filter string }

func newListening(b *Broker) *listening {
	return &listening{
		b:         b,
		watched:   make(map[string]map[subscriptionKey]struct{}),
		listeners: make(map[string]map[string]struct{}),
	}
}

// subscribed records cl's new subscription sub, notifying the listeners if
// it is its filter's first. notify false records without notifying: for
// sessions being restored, whose clients are not connected.
//
// A listen subscription becomes a listener once its SUBACK is out, in
// sendState, which tells it the current state under the same lock, so that
// no change is told twice or missed. One that asks for no retained
// messages (Retain Handling 2) gets no sendState, so it becomes a listener
// here. (Retain Handling 1 gets sendState when new, and was a listener
// already when not.)
func (l *listening) subscribed(cl *mqtt.Client, sub packets.Subscription, notify bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	filter := sub.Filter
	if lf, ok := strings.CutPrefix(filter, listenPrefix); ok {
		if !notify || sub.RetainHandling == 2 {
			l.addListener(lf, cl.ID)
		}
		return
	}
	f := listen.Watched(filter)
	if f == "" {
		return
	}
	subs := l.watched[f]
	if subs == nil {
		subs = make(map[subscriptionKey]struct{})
		l.watched[f] = subs
	}
	k := subscriptionKey{cl.ID, filter}
	if _, ok := subs[k]; ok {
		return // a subscription replaced: nothing appears
	}
	subs[k] = struct{}{}
	if len(subs) == 1 && notify {
		l.notifyAll(f, true)
	}
}

func (l *listening) addListener(lf, id string) {
	if l.listeners[lf] == nil {
		l.listeners[lf] = make(map[string]struct{})
	}
	l.listeners[lf][id] = struct{}{}
}

// unsubscribed records that cl's subscription to filter is gone, notifying
// the listeners if it was its filter's last.
func (l *listening) unsubscribed(cl *mqtt.Client, filter string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if lf, ok := strings.CutPrefix(filter, listenPrefix); ok {
		if ids := l.listeners[lf]; ids != nil {
			delete(ids, cl.ID)
			if len(ids) == 0 {
				delete(l.listeners, lf)
			}
		}
		return
	}
	f := listen.Watched(filter)
	subs := l.watched[f]
	k := subscriptionKey{cl.ID, filter}
	if _, ok := subs[k]; !ok {
		return
	}
	delete(subs, k)
	if len(subs) == 0 {
		delete(l.watched, f)
		l.notifyAll(f, false)
	}
}

// sendState makes cl, which has just subscribed to sub (a $listen filter),
// a listener, and tells it of every filter in use that overlaps it, in
// filter order.
func (l *listening) sendState(cl *mqtt.Client, sub packets.Subscription) {
	lf := strings.TrimPrefix(sub.Filter, listenPrefix)
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := cl.State.Subscriptions.Get(sub.Filter); !ok {
		return // unsubscribed meanwhile
	}
	l.addListener(lf, cl.ID)
	var in []string
	for f := range l.watched {
		if listen.Overlap(lf, f) {
			in = append(in, f)
		}
	}
	slices.Sort(in)
	for _, f := range in {
		l.notify(cl, sub, lf, f, true)
	}
}

// notifyAll tells every listener whose filter overlaps f that f got its
// first subscription (on) or lost its last. l.mu is held.
func (l *listening) notifyAll(f string, on bool) {
	for lf, ids := range l.listeners {
		if !listen.Overlap(lf, f) {
			continue
		}
		for id := range ids {
			cl, ok := l.b.srv.Clients.Get(id)
			if !ok {
				continue
			}
			if sub, ok := cl.State.Subscriptions.Get(listenPrefix + lf); ok {
				l.notify(cl, sub, lf, f, on)
			}
		}
	}
}

// notify sends one notification to cl through its listen subscription sub:
// {"filter": f, "subscribed": on} in cl's codec, on the topic
// $listen/<the most specific topic matching both lf and f>.
func (l *listening) notify(cl *mqtt.Client, sub packets.Subscription, lf, f string, on bool) {
	c := l.b.clientCodec(cl)
	payload, err := codec.Encode(map[string]any{"filter": f, "subscribed": on}, c)
	if err != nil { // cannot happen: text and a bool
		l.b.log.Error("listening notification not encoded", "client", cl.ID, "error", err)
		return
	}
	err = l.b.srv.PublishToClient(cl, sub, packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: sub.Qos},
		TopicName:   listenPrefix + listen.Topic(lf, f),
		Payload:     payload,
		Properties:  packets.Properties{ContentType: c.ContentType()},
	})
	switch {
	case err == nil, errors.Is(err, packets.CodeDisconnect) && sub.Qos > 0:
		// Sent, or queued in the listener's session.
		l.b.metrics.listenNotify.Inc()
	default:
		// A full queue is counted and logged as a drop by the hooks.
		l.b.log.Debug("listening notification not delivered", "client", cl.ID, "filter", f, "error", err)
	}
}
