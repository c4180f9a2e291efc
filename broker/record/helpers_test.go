package record_test

import (
	"bytes"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/broker/codec"
	"github.com/hearth-iot/hearth/broker/document"
	"github.com/hearth-iot/hearth/broker/record"
	"github.com/hearth-iot/hearth/storage"
)

// openStore opens a store on a fresh file in t.TempDir and closes it when
// the test ends.
func openStore(t testing.TB, opts storage.Options) *storage.Store {
	t.Helper()
	return openStoreAt(t, filepath.Join(t.TempDir(), "hearth.db"), opts)
}

// openStoreAt opens the store file at path and closes it when the test ends
// (a store the test closed itself is closed again harmlessly).
func openStoreAt(t testing.TB, path string, opts storage.Options) *storage.Store {
	t.Helper()
	st, err := storage.Open(path, opts)
	if err != nil {
		t.Fatalf("storage.Open(%q): %v", path, err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("store Close: %v", err)
		}
	})
	return st
}

// newRecords returns Records over st, failing the test if New fails.
func newRecords(t testing.TB, st record.Store, pub record.Publisher, opts record.Options) *record.Records {
	t.Helper()
	r, err := record.New(st, pub, opts)
	if err != nil {
		t.Fatalf("record.New: %v", err)
	}
	return r
}

// env is Records over a fresh store, publishing to a recording publisher
// that checks every change is in the store before it is published.
type env struct {
	store *storage.Store
	pub   *publisher
	recs  *record.Records
}

func newEnv(t testing.TB, opts record.Options) *env {
	t.Helper()
	st := openStore(t, storage.Options{})
	pub := newPublisher(st)
	return &env{store: st, pub: pub, recs: newRecords(t, st, pub, opts)}
}

// published is one PublishRecord call.
type published struct {
	rec     record.Record
	payload *codec.Payload
	// stored is the version of the record in the store while the call ran
	// (0 if it was not there); storeErr is the error of reading it.
	stored   uint64
	storeErr error
}

// publisher records PublishRecord calls. With a store, it reads the record
// from the store during each call, so that tests can check a change is
// durable before it is published. It notes calls for one record that
// overlap, which the Publisher contract forbids.
type publisher struct {
	store *storage.Store

	mu       sync.Mutex
	calls    []published
	inFlight map[string]bool
	overlaps []string
	notify   chan struct{} // receives (without blocking) after every call
}

func newPublisher(st *storage.Store) *publisher {
	return &publisher{store: st, inFlight: make(map[string]bool), notify: make(chan struct{}, 1)}
}

func (p *publisher) PublishRecord(r record.Record, payload *codec.Payload) {
	p.mu.Lock()
	if p.inFlight[r.Name] {
		p.overlaps = append(p.overlaps, r.Name)
	}
	p.inFlight[r.Name] = true
	p.mu.Unlock()

	c := published{rec: r, payload: payload}
	if p.store != nil {
		s, found, err := p.store.Record(r.Name)
		c.storeErr = err
		if found {
			c.stored = s.Version
		}
	}

	p.mu.Lock()
	p.inFlight[r.Name] = false
	p.calls = append(p.calls, c)
	p.mu.Unlock()
	select {
	case p.notify <- struct{}{}:
	default:
	}
}

// of returns the calls for record name, in call order.
func (p *publisher) of(name string) []published {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []published
	for _, c := range p.calls {
		if c.rec.Name == name {
			out = append(out, c)
		}
	}
	return out
}

// versions returns the versions published for record name, in call order.
func (p *publisher) versions(name string) []uint64 {
	var out []uint64
	for _, c := range p.of(name) {
		out = append(out, c.rec.Version)
	}
	return out
}

// count returns the number of calls for every record.
func (p *publisher) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.calls)
}

// checkDurable fails t if calls for one record overlapped, or (for a
// publisher with a store) if a call ran before its version was in the
// store.
func (p *publisher) checkDurable(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.overlaps) > 0 {
		t.Errorf("PublishRecord ran concurrently for one record: %q", p.overlaps)
	}
	if p.store == nil {
		return
	}
	for _, c := range p.calls {
		// A batch of changes is written together: the store may already
		// hold a later version of the batch, never an earlier one.
		if c.storeErr != nil || c.stored < c.rec.Version {
			t.Errorf("PublishRecord(%s v%d): the store held version %d (err %v) during the call; want the published version or later, durable first",
				c.rec.Name, c.rec.Version, c.stored, c.storeErr)
		}
	}
}

// countingStore is the real store, counting the reads of single records
// and optionally failing RetainedCount.
type countingStore struct {
	*storage.Store
	reads      atomic.Int64
	countError error
}

func (s *countingStore) Record(topic string) (storage.Retained, bool, error) {
	s.reads.Add(1)
	return s.Store.Record(topic)
}

func (s *countingStore) RetainedCount() (int, error) {
	if s.countError != nil {
		return 0, s.countError
	}
	return s.Store.RetainedCount()
}

// gatedStore is the real store whose WriteNotify callbacks wait for open to
// be closed, so that a test can look at Records before an asynchronous write
// is reported.
type gatedStore struct {
	*storage.Store
	open chan struct{}
}

func (s *gatedStore) WriteNotify(done func(error), changes ...storage.Change) error {
	return s.Store.WriteNotify(func(err error) {
		<-s.open
		done(err)
	}, changes...)
}

// clock is an injectable Options.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// jsonPayload is a JSON publish of s.
func jsonPayload(s string) *codec.Payload {
	return codec.NewPayload([]byte(s), codec.JSON, codec.Limits{})
}

// cborPayload is a CBOR publish of document v.
func cborPayload(t testing.TB, v any) *codec.Payload {
	t.Helper()
	return codec.NewPayload(mustCBOR(t, v), codec.CBOR, codec.Limits{})
}

// opaquePayload is a publish that is neither JSON nor CBOR.
func opaquePayload(b []byte) *codec.Payload {
	return codec.NewPayload(b, 0, codec.Limits{})
}

// mustCBOR is the deterministic CBOR encoding of v.
func mustCBOR(t testing.TB, v any) []byte {
	t.Helper()
	b, err := codec.Encode(v, codec.CBOR)
	if err != nil {
		t.Fatalf("codec.Encode(%#v, CBOR): %v", v, err)
	}
	return b
}

// decodeJSON is the document of JSON text s.
func decodeJSON(t testing.TB, s string) any {
	t.Helper()
	v, err := codec.Decode([]byte(s), codec.JSON, codec.Limits{})
	if err != nil {
		t.Fatalf("codec.Decode(%q): %v", s, err)
	}
	return v
}

// jsonOf renders document v as JSON for messages.
func jsonOf(v any) string {
	b, err := codec.Encode(v, codec.JSON)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(b)
}

// path parses a deepstream path.
func path(t testing.TB, s string) document.Path {
	t.Helper()
	p, err := document.ParsePath(s)
	if err != nil {
		t.Fatalf("ParsePath(%q): %v", s, err)
	}
	return p
}

// sameDoc reports whether documents a and b are identical, types of numbers
// included: their deterministic CBOR encodings are equal.
func sameDoc(a, b any) bool {
	ea, errA := codec.Encode(a, codec.CBOR)
	eb, errB := codec.Encode(b, codec.CBOR)
	return errA == nil && errB == nil && bytes.Equal(ea, eb)
}

// apply applies op and fails the test if it fails.
func apply(t testing.TB, r *record.Records, op record.Op) record.Result {
	t.Helper()
	res, err := r.Apply(op)
	if err != nil {
		t.Fatalf("Apply(%s %s): %v", op.Kind, op.Name, err)
	}
	return res
}

// wantCode fails the test unless err is an *record.Error with code, and
// returns it.
func wantCode(t testing.TB, err error, code string) *record.Error {
	t.Helper()
	var e *record.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T), want a *record.Error with code %s", err, err, code)
	}
	if e.Code != code {
		t.Fatalf("error code %s (%v), want %s", e.Code, err, code)
	}
	if got := record.CodeOf(err); got != code {
		t.Errorf("CodeOf = %s, want %s", got, code)
	}
	return e
}

// storedRecord reads name from the store; found is false if it is not
// there at all.
func storedRecord(t testing.TB, st interface {
	Record(string) (storage.Retained, bool, error)
}, name string) (storage.Retained, bool) {
	t.Helper()
	s, found, err := st.Record(name)
	if err != nil {
		t.Fatalf("store.Record(%q): %v", name, err)
	}
	return s, found
}

// sameStored reports whether two reads of a stored record show the same
// version of it.
func sameStored(a, b storage.Retained) bool {
	return a.Version == b.Version && a.Deleted == b.Deleted && a.Structured == b.Structured &&
		a.Modified == b.Modified && bytes.Equal(a.Message.Payload, b.Message.Payload)
}

// waitFor polls cond until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// isSequence reports whether vs is exactly from, from+1, ..., to.
func isSequence(vs []uint64, from, to uint64) bool {
	if uint64(len(vs)) != to-from+1 {
		return false
	}
	for i, v := range vs {
		if v != from+uint64(i) {
			return false
		}
	}
	return true
}

// reportedStore is the real store whose WriteNotify returns only once the
// write's outcome has been reported to done: the committer can be that
// quick, before the caller of WriteNotify runs again.
type reportedStore struct {
	*storage.Store
}

func (s reportedStore) WriteNotify(done func(error), changes ...storage.Change) error {
	reported := make(chan struct{})
	err := s.Store.WriteNotify(func(err error) {
		done(err)
		close(reported)
	}, changes...)
	if err == nil {
		<-reported
	}
	return err
}

// errInjected is the failure failingNotifyStore reports.
var errInjected = errors.New("injected write failure")

// failingNotifyStore is the real store whose asynchronous writes all fail:
// WriteNotify writes nothing, and reports errInjected once release is
// closed.
type failingNotifyStore struct {
	*storage.Store
	release chan struct{}
}

func (s *failingNotifyStore) WriteNotify(done func(error), _ ...storage.Change) error {
	go func() {
		<-s.release
		done(errInjected)
	}()
	return nil
}
