package broker

import (
	"errors"
	"hash/maphash"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hearth-iot/hearth/broker/record"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Retained delivery. A new subscription's retained messages are the records
// matching its filter, which may be many more than a client's outbound
// queue holds (a dashboard subscribing to "#"). They are streamed: read
// from the store a page of topics at a time, each record read when it is
// sent, and sent only while the client has room, so that a subscription
// costs a page of names and a few queued records whatever it matches, and
// no record is dropped for a full queue. Live messages keep priority: the
// stream leaves most of the queue and the inflight window to them.
const (
	// retainedPage is the number of topics examined per store read.
	retainedPage = 256
	// retainedQueued is the most packets a client may have queued (or, for
	// QoS 1/2, inflight) for the stream to send it another record; at most
	// half of Limits.MaxPendingWrites (MaxInflight).
	retainedQueued = 64
	// The stream polls for room from retainedPollMin, doubling each time
	// up to retainedPollMax while the client is slow.
	retainedPollMin = 100 * time.Microsecond
	retainedPollMax = 25 * time.Millisecond
)

// retainedSender runs the streams. Each client has at most one goroutine,
// which serves its subscriptions in the order they were made, so that the
// retained messages of one SUBSCRIBE come before those of the next.
type retainedSender struct {
	b *Broker
	// maxQueued and maxInflight are the room a client must have to be sent
	// another record (see retainedQueued).
	maxQueued, maxInflight int

	mu      sync.Mutex
	stopped bool
	clients map[*mqtt.Client]*retainedQueue
	wg      sync.WaitGroup
	stop    chan struct{} // closed by close

	// streaming is len(clients), read without mu by the publishers, which
	// note what they publish only while some stream runs.
	streaming atomic.Int64
}

// retainedQueue is one client's waiting subscriptions. gen holds the newest
// request of each filter: a subscription made again (or unsubscribed)
// supersedes a stream still sending for the old one.
type retainedQueue struct {
	reqs []retainedRequest
	gen  map[string]uint64
	// dropped holds the records whose live publish to the client was
	// dropped while its streams ran.
	dropped map[string]bool
}

type retainedRequest struct {
	sub packets.Subscription
	gen uint64
	// since is the publish sequence (Broker.published) when the request
	// was made, the subscription being in mochi's index already: a record
	// published live after it has reached the client that way, and is not
	// sent again.
	since uint64
}

func newRetainedSender(b *Broker) *retainedSender {
	return &retainedSender{
		b:           b,
		maxQueued:   max(1, min(retainedQueued, int(b.limits.MaxPendingWrites)/2)),
		maxInflight: max(1, min(retainedQueued, int(b.limits.MaxInflight)/2)),
		clients:     make(map[*mqtt.Client]*retainedQueue),
		stop:        make(chan struct{}),
	}
}

// request queues the retained records of sub for cl. It is mochi's
// Options.RetainedMessages, called from the client's read loop after the
// SUBACK was written: it never blocks.
func (s *retainedSender) request(cl *mqtt.Client, sub packets.Subscription) {
	if isSysTopic(sub.Filter) {
		return // mochi sends its own $SYS messages
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	q, running := s.clients[cl]
	if !running {
		q = &retainedQueue{gen: make(map[string]uint64)}
		s.clients[cl] = q
		s.streaming.Add(1)
	}
	q.gen[sub.Filter]++
	q.reqs = append(q.reqs, retainedRequest{sub: sub, gen: q.gen[sub.Filter], since: s.b.published.Load()})
	if !running {
		s.wg.Add(1)
		s.b.metrics.retainedStreams.Inc()
		go s.run(cl, q)
	}
}

// close stops the streams and waits for them to end. Requests made after
// it are ignored.
func (s *retainedSender) close() {
	s.mu.Lock()
	if !s.stopped {
		s.stopped = true
		close(s.stop)
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// run serves cl's queue until it is empty.
func (s *retainedSender) run(cl *mqtt.Client, q *retainedQueue) {
	defer s.wg.Done()
	for {
		s.mu.Lock()
		if len(q.reqs) == 0 {
			delete(s.clients, cl)
			s.streaming.Add(-1)
			s.mu.Unlock()
			s.b.metrics.retainedStreams.Dec()
			return
		}
		req := q.reqs[0]
		q.reqs = q.reqs[1:]
		s.mu.Unlock()
		s.stream(cl, q, req)
	}
}

// current reports whether req is still the subscription to serve: the
// client holds it with the same options, and it was not made again since.
// A subscription replaced with other options (a QoS, or retain handling
// that asks for no retained messages) ends the stream of the old one.
func (s *retainedSender) current(cl *mqtt.Client, q *retainedQueue, req retainedRequest) bool {
	s.mu.Lock()
	gen := q.gen[req.sub.Filter]
	s.mu.Unlock()
	if gen != req.gen {
		return false
	}
	cur, ok := cl.State.Subscriptions.Get(req.sub.Filter)
	return ok && cur.Qos == req.sub.Qos && cur.NoLocal == req.sub.NoLocal &&
		cur.RetainAsPublished == req.sub.RetainAsPublished && cur.RetainHandling == req.sub.RetainHandling &&
		cur.Identifier == req.sub.Identifier
}

// stream sends the records matching req's filter to cl, in topic order,
// then those created by asynchronous changes not yet in the store.
func (s *retainedSender) stream(cl *mqtt.Client, q *retainedQueue, req retainedRequest) {
	b := s.b
	filter := req.sub.Filter
	if cl.Closed() {
		return
	}
	// Taken before the store is read: see record.Records.Pending.
	pending := map[string]bool{}
	for _, r := range b.records.Pending() {
		if topicMatch(filter, r.Name) {
			pending[r.Name] = true
		}
	}
	prefix := filter
	if i := strings.IndexAny(filter, "+#"); i >= 0 {
		prefix = filter[:i]
	}
	// "a/#" also matches "a", which sorts before the prefix "a/": first.
	if parent, ok := strings.CutSuffix(filter, "/#"); ok && parent != "" && !strings.ContainsAny(parent, "+#") {
		delete(pending, parent)
		if !s.send(cl, q, req, parent) {
			return
		}
	}
	match := func(topic string) bool { return topicMatch(filter, topic) }
	after := ""
	for {
		topics, last, err := b.store.RetainedTopics(prefix, after, retainedPage, match)
		if err != nil {
			b.metrics.storeError(err)
			b.log.Error("retained messages not read for a subscription",
				"client", cl.ID, "filter", filter, "after", after, "error", err)
			return
		}
		for _, topic := range topics {
			delete(pending, topic)
			if !s.send(cl, q, req, topic) {
				return
			}
		}
		if last == "" {
			break
		}
		after = last
	}
	for _, topic := range slices.Sorted(maps.Keys(pending)) {
		if !s.send(cl, q, req, topic) {
			return
		}
	}
}

// send sends record name to cl as a retained message, once the client has
// room for it. It returns false when the stream must end: the client is
// gone, the subscription was superseded, or the broker is stopping.
func (s *retainedSender) send(cl *mqtt.Client, q *retainedQueue, req retainedRequest, name string) bool {
	b := s.b
	for {
		if !s.waitRoom(cl, q, req) {
			return false
		}
		// Under the record's publish lock, a change published after this
		// read reaches the client after this version, never before it.
		mu := b.recordLock(name)
		mu.Lock()
		if seq, ok := mu.published[name]; ok && seq > req.since && !s.wasDropped(q, name) {
			mu.Unlock()
			return true // published live since the subscription: the client has it
		}
		r, err := b.records.Peek(name)
		if err == nil && b.records.Busy(name) {
			// A change is being applied: what was read may be committed
			// but not yet published, and it will reach the client live.
			// Sent now, it would arrive twice: read again once published.
			mu.Unlock()
			if !s.sleep(retainedPollMin) {
				return false
			}
			continue
		}
		if err != nil {
			mu.Unlock()
			if record.CodeOf(err) != record.CodeNotFound {
				b.log.Error("retained message not read for a subscription",
					"client", cl.ID, "filter", req.sub.Filter, "topic", name, "error", err)
			}
			return true // deleted or expired since the page was read, or unreadable: skipped
		}
		err = b.srv.SendRetained(cl, req.sub, retainedPacket(r, b.records.Limits()))
		mu.Unlock()
		switch {
		case err == nil:
			b.metrics.retainedSent.Inc()
			return true
		case errors.Is(err, packets.ErrPendingClientWritesExceeded), errors.Is(err, packets.ErrQuotaExceeded):
			continue // live messages took the room meanwhile: wait again
		case errors.Is(err, packets.ErrNotAuthorized):
			return true
		default:
			return false // the client is gone
		}
	}
}

// sleep waits d, or returns false if the broker stops first.
func (s *retainedSender) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.stop:
		return false
	case <-t.C:
		return true
	}
}

// noteDropped notes that a record publish to cl was dropped (its queue or
// inflight store was full), so that cl's stream sends the record even if
// it was published live meanwhile. It is called under the record's lock.
func (s *retainedSender) noteDropped(cl *mqtt.Client, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if q, ok := s.clients[cl]; ok {
		if q.dropped == nil {
			q.dropped = make(map[string]bool)
		}
		q.dropped[name] = true
	}
}

func (s *retainedSender) wasDropped(q *retainedQueue, name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return q.dropped[name]
}

// waitRoom waits until cl has room for a retained message of req: few
// packets queued and, for a QoS 1/2 subscription, few inflight and quota to
// send at once. It returns false if the client goes, req is superseded or
// unsubscribed, or the broker stops first.
func (s *retainedSender) waitRoom(cl *mqtt.Client, q *retainedQueue, req retainedRequest) bool {
	wait := retainedPollMin
	var t *time.Timer
	for {
		select {
		case <-s.stop:
			return false
		default:
		}
		if cl.Closed() || !s.current(cl, q, req) {
			return false
		}
		room := int(cl.PendingWrites()) < s.maxQueued
		if req.sub.Qos > 0 {
			room = room && cl.State.Inflight.Len() < s.maxInflight && cl.State.Inflight.SendQuotaAvailable()
		}
		if room {
			return true
		}
		if t == nil {
			t = time.NewTimer(wait)
			defer t.Stop()
		} else {
			t.Reset(wait)
		}
		select {
		case <-t.C:
		case <-s.stop:
			return false
		}
		wait = min(2*wait, retainedPollMax)
	}
}

// retainedPacket is the retained PUBLISH of record r for a new
// subscription.
func retainedPacket(r record.Record, lim record.Limits) packets.Packet {
	m := r.Message
	if r.Structured {
		m.Properties.ContentType = "" // the publisher's, not the stored CBOR's
	}
	pk := recordPacket(r.Name, r.Version, false, m, r.Payload(lim.Codec()))
	pk.Created = r.Modified.Unix()
	return pk
}

// recordLocks serialise, per record, publishing a change to subscribers
// and sending the record to a new subscription (striped by name).
type recordLocks [256]recordLock

// recordLock is one stripe of recordLocks. While retained streams run, it
// notes the publish sequence of each record published live, so that a
// stream does not send again what its subscription has had live (see
// retainedRequest.since). A stripe's notes are dropped at its first publish
// with no stream running; with streams running back to back they grow to
// at most one entry per record published meanwhile.
type recordLock struct {
	sync.Mutex
	published map[string]uint64
}

var recordLockSeed = maphash.MakeSeed()

// recordLock returns the lock of record name.
func (b *Broker) recordLock(name string) *recordLock {
	return &b.recordLocks[maphash.String(recordLockSeed, name)%uint64(len(b.recordLocks))]
}

// notePublished notes record name's live publish seq, under its lock,
// while streams run; with none running it drops the stripe's notes, which
// no stream can use (a new stream's since is above every one of them).
func (l *recordLock) notePublished(name string, seq uint64, streaming bool) {
	switch {
	case streaming && l.published == nil:
		l.published = map[string]uint64{name: seq}
	case streaming:
		l.published[name] = seq
	default:
		l.published = nil
	}
}
