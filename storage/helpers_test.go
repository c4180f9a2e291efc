package storage

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// openTest opens a Store on a fresh file in t.TempDir and closes it when
// the test ends.
func openTest(t testing.TB, opts Options) *Store {
	t.Helper()
	return openAt(t, filepath.Join(t.TempDir(), "hearth.db"), opts)
}

// openAt opens a Store on path and closes it when the test ends.
func openAt(t testing.TB, path string, opts Options) *Store {
	t.Helper()
	s, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open(%q): %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// commitLog records what the committer reports through Options.OnCommit
// and Options.OnError. If hold is set, the first commit blocks inside
// OnCommit until release is called, so that a test can queue requests that
// the committer will then gather into one batch.
type commitLog struct {
	mu        sync.Mutex
	sizes     []int   // changes of each successful transaction
	failed    []int   // changes of each failed transaction
	commitErr []error // errors of failed transactions
	asyncErr  []error // errors given to OnError

	hold     bool
	held     chan struct{} // closed when the first commit is blocked
	released chan struct{}
	heldOnce sync.Once
	relOnce  sync.Once
}

func newCommitLog(hold bool) *commitLog {
	return &commitLog{hold: hold, held: make(chan struct{}), released: make(chan struct{})}
}

// options returns base with OnCommit and OnError pointing at l.
func (l *commitLog) options(base Options) Options {
	base.OnCommit = l.onCommit
	base.OnError = l.onError
	return base
}

func (l *commitLog) onCommit(n int, _ time.Duration, err error) {
	l.mu.Lock()
	if err == nil {
		l.sizes = append(l.sizes, n)
	} else {
		l.failed = append(l.failed, n)
		l.commitErr = append(l.commitErr, err)
	}
	l.mu.Unlock()
	if l.hold {
		l.heldOnce.Do(func() {
			close(l.held)
			<-l.released
		})
	}
}

func (l *commitLog) onError(err error) {
	l.mu.Lock()
	l.asyncErr = append(l.asyncErr, err)
	l.mu.Unlock()
}

func (l *commitLog) release() { l.relOnce.Do(func() { close(l.released) }) }

// waitHeld waits until the committer is blocked in its first OnCommit.
func (l *commitLog) waitHeld(t testing.TB) {
	t.Helper()
	select {
	case <-l.held:
	case <-time.After(10 * time.Second):
		t.Fatal("committer never reached OnCommit")
	}
}

func (l *commitLog) snapshot() (sizes, failed []int, commitErr, asyncErr []error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.sizes), slices.Clone(l.failed), slices.Clone(l.commitErr), slices.Clone(l.asyncErr)
}

// holdCommitter opens a store whose committer is blocked in OnCommit after
// committing one WriteAsync. Requests written afterwards stay queued until
// log.release, and are then gathered into as few batches as MaxBatch allows.
func holdCommitter(t *testing.T, base Options) (*Store, *commitLog) {
	t.Helper()
	log := newCommitLog(true)
	s := openTest(t, log.options(base))
	t.Cleanup(log.release) // runs before Close: cleanups are LIFO
	if err := s.WriteAsync(PutRetained(Message{Topic: "hold"}, time.Unix(1, 0))); err != nil {
		t.Fatalf("WriteAsync: %v", err)
	}
	log.waitHeld(t)
	return s, log
}

// waitQueued waits until n requests wait in the committer's queue. It only
// waits; it asserts nothing about time.
func waitQueued(t testing.TB, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(s.queue) < n {
		if time.Now().After(deadline) {
			t.Fatalf("queue holds %d requests, want %d", len(s.queue), n)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// rawUpdate opens the closed store file at path with bbolt directly.
func rawUpdate(t testing.TB, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("bolt.Open: %v", err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatalf("bolt Update: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("bolt Close: %v", err)
	}
}

func fullSession(id string) Session {
	return Session{
		ClientID:              id,
		Username:              []byte("user\x00name"),
		Listener:              "tls",
		Remote:                "192.0.2.7:50312",
		Clean:                 true,
		ProtocolVersion:       5,
		SessionExpiry:         3600,
		SessionExpiryFlag:     true,
		ReceiveMaximum:        20,
		TopicAliasMaximum:     10,
		MaximumPacketSize:     1 << 20,
		RequestProblemInfo:    1,
		RequestProblemInfoSet: true,
		RequestResponseInfo:   1,
		User:                  []UserProperty{{Key: "region", Val: "eu"}, {Key: "empty", Val: ""}, {Key: "region", Val: "us"}},
		Will: Will{
			Flag:          1,
			Topic:         "devices/" + id + "/status",
			Payload:       []byte("offline\x00\xff"),
			QoS:           2,
			Retain:        true,
			DelayInterval: 30,
			User:          []UserProperty{{Key: "reason", Val: "lost"}},
		},
		Disconnected: 1700000123,
	}
}

func fullMessage(topic string, packetID uint16) Message {
	return Message{
		Type:            3,
		Topic:           topic,
		Payload:         []byte{0, 1, 2, 0xfe, 0xff},
		QoS:             2,
		Retain:          true,
		Dup:             true,
		PacketID:        packetID,
		Origin:          "publisher-1",
		Created:         1700000000,
		Expiry:          1700003600,
		Sent:            1700000001,
		ProtocolVersion: 5,
		ReasonCode:      0x10,
		Properties: Properties{
			PayloadFormat:         1,
			PayloadFormatFlag:     true,
			MessageExpiryInterval: 3600,
			ContentType:           "application/json",
			ResponseTopic:         "replies/" + topic,
			CorrelationData:       []byte{0xde, 0xad, 0xbe, 0xef},
			User:                  []UserProperty{{Key: "a", Val: "1"}, {Key: "b", Val: "2"}},
		},
	}
}

func fullSubscription(clientID, filter string) Subscription {
	return Subscription{
		ClientID:          clientID,
		Filter:            filter,
		QoS:               2,
		Identifier:        268435455,
		NoLocal:           true,
		RetainAsPublished: true,
		RetainHandling:    2,
	}
}

func sortSessions(v []Session) {
	slices.SortFunc(v, func(a, b Session) int { return strings.Compare(a.ClientID, b.ClientID) })
}

func sortSubscriptions(v []Subscription) {
	slices.SortFunc(v, func(a, b Subscription) int {
		if c := strings.Compare(a.ClientID, b.ClientID); c != 0 {
			return c
		}
		return strings.Compare(a.Filter, b.Filter)
	})
}

func sortInflight(v []Inflight) {
	slices.SortFunc(v, func(a, b Inflight) int {
		if c := strings.Compare(a.ClientID, b.ClientID); c != 0 {
			return c
		}
		return int(a.Message.PacketID) - int(b.Message.PacketID)
	})
}

func sortRetained(v []Retained) {
	slices.SortFunc(v, func(a, b Retained) int { return strings.Compare(a.Message.Topic, b.Message.Topic) })
}

// wait waits for wg, failing the test instead of hanging if a Write is
// never answered.
func wait(t testing.TB, wg *sync.WaitGroup) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("writers still blocked after 30s: a request was never answered")
	}
}

// writeWithin calls s.Write, failing the test instead of hanging if it
// does not return.
func writeWithin(t testing.TB, s *Store, ctx context.Context, changes ...Change) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.Write(ctx, changes...) }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("Write did not return within 30s")
		return nil
	}
}
