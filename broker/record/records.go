package record

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/hearth-iot/hearth/broker/codec"
	"github.com/hearth-iot/hearth/storage"
)

// Store is what Records needs of the store; *storage.Store has it.
type Store interface {
	Write(ctx context.Context, changes ...storage.Change) error
	Record(topic string) (storage.Retained, bool, error)
	WriteNotify(done func(error), changes ...storage.Change) error
	RetainedCount() (int, error)
	RetainedMatching(prefix string, fn func(storage.Retained) bool) error
}

var _ Store = (*storage.Store)(nil)

// Publisher hands committed changes to subscribers. PublishRecord is called
// once per change, after it is durable, in version order for each record,
// never concurrently for one record. payload is nil for a deletion.
type Publisher interface {
	PublishRecord(r Record, payload *codec.Payload)
}

// Limits bound records. Zero fields take the defaults.
type Limits struct {
	// MaxSize is the largest record value in bytes: a document's CBOR
	// encoding, or an opaque payload. Zero means 1 MiB.
	MaxSize int
	// MaxNameLen is the longest record name in bytes. Zero means 256.
	MaxNameLen int
	// MaxDepth is the deepest nesting of arrays and maps in a document.
	// Zero means codec.DefaultMaxDepth (32).
	MaxDepth int
}

// Default limits.
const (
	DefaultMaxSize    = 1 << 20
	DefaultMaxNameLen = 256
	DefaultCacheBytes = 16 << 20
)

func (l Limits) withDefaults() Limits {
	if l.MaxSize <= 0 {
		l.MaxSize = DefaultMaxSize
	}
	if l.MaxNameLen <= 0 {
		l.MaxNameLen = DefaultMaxNameLen
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = codec.DefaultMaxDepth
	}
	return l
}

// Codec returns the codec limits matching l, for decoding record values.
func (l Limits) Codec() codec.Limits {
	l = l.withDefaults()
	return codec.Limits{MaxSize: l.MaxSize, MaxDepth: l.MaxDepth}
}

// Options configures Records.
type Options struct {
	Limits Limits
	// CacheBytes bounds the memory of the record cache (an estimate: a
	// record counts its encoded size four times, plus its name and a fixed
	// overhead). Zero means 16 MiB; negative disables the cache.
	CacheBytes int
	// Now returns the time; nil means time.Now. For tests.
	Now func() time.Time
	// OnError, if set, receives errors nobody waits for: of an asynchronous
	// operation (Op.Async) whose write failed, and of a failed deletion of
	// an expired record, which Run tries again a minute later.
	OnError func(name string, err error)
}

// Records applies operations to records. It is safe for concurrent use.
type Records struct {
	store  Store
	pub    Publisher
	limits Limits
	cache  *cache
	now    func() time.Time

	mu     sync.Mutex
	queues map[string]*queue // records with an operation in progress

	combined atomic.Int64 // operations written in a batch with others
	count    atomic.Int64 // records stored and not deleted

	pendingMu sync.Mutex
	pending   map[string]Record // asynchronous changes not yet committed

	expMu    sync.Mutex
	expiries expiryHeap
	expWake  chan struct{}
	onError  func(name string, err error)
}

// New returns Records over store, publishing through pub. It counts the
// stored records, and fails if the store cannot be read.
func New(store Store, pub Publisher, opts Options) (*Records, error) {
	n, err := store.RetainedCount()
	if err != nil {
		return nil, fmt.Errorf("record: count stored records: %w", err)
	}
	cb := opts.CacheBytes
	if cb == 0 {
		cb = DefaultCacheBytes
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	r := &Records{
		store:  store,
		pub:    pub,
		limits: opts.Limits.withDefaults(),
		cache:  newCache(max(cb, 0)),
		now:    now,
		queues: make(map[string]*queue),

		pending: make(map[string]Record),
		expWake: make(chan struct{}, 1),
		onError: opts.OnError,
	}
	r.count.Store(int64(n))
	return r, nil
}

// Count returns the number of records stored and not deleted (expired ones
// included until they are overwritten or deleted).
func (r *Records) Count() int64 { return r.count.Load() }

// live reports whether rec is a stored, undeleted record.
func live(rec Record) bool { return rec.Version > 0 && !rec.Deleted }

// Limits returns the limits in force, defaults applied.
func (r *Records) Limits() Limits { return r.limits }

// CheckName returns an INVALID_NAME error if name cannot name a record:
// empty, longer than Limits.MaxNameLen, not valid UTF-8, or holding a
// wildcard or NUL, which a topic name cannot.
func (r *Records) CheckName(name string) error {
	switch {
	case name == "":
		return newError(CodeInvalidName, "empty record name")
	case len(name) > r.limits.MaxNameLen:
		return newError(CodeInvalidName, "record name of %d bytes, more than the limit of %d", len(name), r.limits.MaxNameLen)
	case !utf8.ValidString(name):
		return newError(CodeInvalidName, "record name is not valid UTF-8")
	case strings.ContainsAny(name, "+#\x00"):
		return newError(CodeInvalidName, "record name %q holds a wildcard or NUL, which a topic name cannot", name)
	}
	return nil
}

// Get returns the current record name. A record that does not exist (never
// set, deleted, or expired) is NOT_FOUND; the error's Current still holds
// its version.
func (r *Records) Get(name string) (Record, error) { return r.get(name, true) }

// Peek is Get for a scan over many records (the retained messages of a new
// subscription): a record it reads from the store is not cached, so that
// the scan does not evict the hot records.
func (r *Records) Peek(name string) (Record, error) { return r.get(name, false) }

func (r *Records) get(name string, fill bool) (Record, error) {
	if err := r.CheckName(name); err != nil {
		return Record{}, err
	}
	rec, err := r.read(name, fill)
	if err != nil {
		return Record{}, err
	}
	if !rec.Exists(r.now()) {
		return Record{}, &Error{Code: CodeNotFound, Message: name + ": no such record", Current: &rec}
	}
	return rec, nil
}

// read returns the current record: the committed one from the cache or the
// store, unless an asynchronous change of it has not committed yet (and
// was evicted from the cache meanwhile). The pending change is looked up
// first: it leaves the pending set only once it is in the store.
// A record read from the store is cached if fill is set.
func (r *Records) read(name string, fill bool) (Record, error) {
	r.pendingMu.Lock()
	p, pending := r.pending[name]
	r.pendingMu.Unlock()
	// What the store holds is older than a pending change: not cached.
	rec, err := r.readCommitted(name, fill && !pending)
	if err == nil && pending && p.Version > rec.Version {
		return p, nil
	}
	return rec, err
}

// readCommitted returns the committed record from the cache or the store.
func (r *Records) readCommitted(name string, fill bool) (Record, error) {
	if rec, ok := r.cache.get(name); ok {
		return rec, nil
	}
	gen := r.cache.generation()
	rec, err := r.load(name)
	if err != nil {
		return Record{}, err
	}
	if fill {
		r.cache.fill(rec, gen)
	}
	return rec, nil
}

// load reads name from the store; a missing record has version 0.
func (r *Records) load(name string) (Record, error) {
	s, ok, err := r.store.Record(name)
	if err != nil {
		return Record{}, &Error{Code: CodeStorageError, Message: fmt.Sprintf("%s: reading: %v", name, err), Err: err}
	}
	if !ok {
		return Record{Name: name}, nil
	}
	rec, err := fromStored(s, r.limits.Codec())
	if err != nil {
		return Record{}, &Error{Code: CodeStorageError, Message: fmt.Sprintf("%s: stored value unreadable: %v", name, err), Err: err}
	}
	return rec, nil
}

// queue holds the operations waiting on one record while a batch of its
// operations is being written.
type queue struct {
	waiting []*call
	batch   []*call // the batch the current leader writes
}

type call struct {
	op   *Op
	done chan struct{} // closed when res and err are set, or lead is
	lead bool          // this call's goroutine writes the next batch
	res  Result
	err  error
}

// Apply applies op and returns after its change is durable and published.
// It fails with an *Error: the codes say why. A STORAGE_ERROR leaves the
// record unchanged.
func (r *Records) Apply(op Op) (Result, error) {
	if err := r.CheckName(op.Name); err != nil {
		return Result{}, err
	}
	c := &call{op: &op, done: make(chan struct{})}
	r.mu.Lock()
	q, busy := r.queues[op.Name]
	if busy {
		q.waiting = append(q.waiting, c)
		r.mu.Unlock()
		<-c.done
		if !c.lead {
			return c.res, c.err
		}
	} else {
		q = &queue{batch: []*call{c}}
		r.queues[op.Name] = q
		r.mu.Unlock()
	}

	// This goroutine leads: it writes q.batch, which starts with c, then
	// hands the operations that queued meanwhile to the first of them.
	batch := q.batch
	r.write(op.Name, batch)
	r.mu.Lock()
	if len(q.waiting) > 0 {
		q.batch, q.waiting = q.waiting, nil
		q.batch[0].lead = true
		close(q.batch[0].done)
	} else {
		delete(r.queues, op.Name)
	}
	r.mu.Unlock()
	for _, o := range batch[1:] {
		close(o.done)
	}
	return c.res, c.err
}

// write applies batch, operations on one record, in order, writes all their
// changes in one store request, and publishes them. A store conflict (the
// cached version was stale) is retried once from the store.
func (r *Records) write(name string, batch []*call) {
	for attempt := 0; ; attempt++ {
		err := r.writeOnce(name, batch, attempt > 0)
		if err == nil {
			return
		}
		if !errors.Is(err, storage.ErrConflict) || attempt > 0 {
			e := &Error{Code: CodeStorageError, Message: fmt.Sprintf("%s: not stored: %v", name, err), Err: err}
			for _, c := range batch {
				if c.err == nil && c.res.Changed {
					c.res, c.err = Result{}, e
				}
			}
			return
		}
		r.cache.forget(name)
	}
}

func (r *Records) writeOnce(name string, batch []*call, fromStore bool) error {
	var cur Record
	var err error
	if fromStore {
		cur, err = r.load(name)
	} else {
		cur, err = r.read(name, true)
	}
	if err != nil {
		for _, c := range batch {
			c.res, c.err = Result{}, err
		}
		return nil
	}
	now := r.now()
	var changes []storage.Change
	var changed []*call
	wasLive := live(cur)
	async := true
	for _, c := range batch {
		c.res, c.err = c.op.apply(cur, now, r.limits)
		if c.err != nil || !c.res.Changed {
			continue
		}
		next := c.res.Record
		changes = append(changes, storage.PutRecord(next.stored(), cur.Version))
		changed = append(changed, c)
		async = async && c.op.Async
		cur = next
	}
	if len(changes) == 0 {
		return nil
	}
	var delta int64 // to the count of live records
	switch isLive := live(cur); {
	case isLive && !wasLive:
		delta = 1
	case !isLive && wasLive:
		delta = -1
	}
	if async {
		// Queued in order before any later change of this record, whose
		// base version is this one: if this write fails, so do they (their
		// base is missing), until the cache is refreshed from the store.
		// The cache has the change before the write can fail and forget it.
		r.cache.put(cur)
		r.pendingMu.Lock()
		r.pending[name] = cur
		r.pendingMu.Unlock()
		version := cur.Version
		err := r.store.WriteNotify(func(err error) {
			r.pendingMu.Lock()
			if p, ok := r.pending[name]; ok && p.Version == version {
				delete(r.pending, name)
			}
			r.pendingMu.Unlock()
			if err == nil {
				r.cache.forgetOlder(name, version)
			} else {
				r.count.Add(-delta)
				r.cache.forget(name)
				if r.onError != nil {
					r.onError(name, err)
				}
			}
		}, changes...)
		if err != nil {
			r.pendingMu.Lock()
			delete(r.pending, name)
			r.pendingMu.Unlock()
			r.cache.forget(name)
			return err
		}
	} else {
		// No timeout: a change given up on could still commit later,
		// after its requester was told it failed.
		if err := r.store.Write(context.Background(), changes...); err != nil {
			return err
		}
		r.cache.put(cur)
	}
	if len(changes) > 1 {
		r.combined.Add(int64(len(changes)))
	}
	r.count.Add(delta)
	lim := r.limits.Codec()
	for _, c := range changed {
		r.watchExpiry(c.res.Record)
		p := c.res.Record.Payload(lim)
		if c.op.Kind == Put && c.res.Record.Structured {
			// Subscribers in the publisher's codec get its bytes.
			p = c.op.Payload
		}
		r.pub.PublishRecord(c.res.Record, p)
	}
	return nil
}

// Busy reports whether a change of record name is being applied: read,
// written or published. A reader that must not see a change before its
// subscribers are sent it (the retained stream) reads, then checks Busy:
// false means what it read has been published, if it was changed at all.
func (r *Records) Busy(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.queues[name]
	return ok
}

// Combined returns how many changes were written in a batch with changes
// of other operations on the same record.
func (r *Records) Combined() int64 { return r.combined.Load() }

// Pending returns the records changed by asynchronous operations whose
// writes have not committed yet (tombstones included): published already,
// but not yet in the store. A reader of the store that must see every
// published change takes this snapshot first, reads the store, then lets
// a pending record replace what it read if its version is higher.
func (r *Records) Pending() []Record {
	r.pendingMu.Lock()
	defer r.pendingMu.Unlock()
	if len(r.pending) == 0 {
		return nil
	}
	out := make([]Record, 0, len(r.pending))
	for _, rec := range r.pending {
		out = append(out, rec)
	}
	return out
}

// CacheStats returns the number of cached records and their estimated
// memory in bytes.
func (r *Records) CacheStats() (records, bytes int) { return r.cache.stats() }
