package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Options configures a Store. The zero value is usable: every field
// documents what its zero value means.
type Options struct {
	// Timeout bounds the wait for the file lock held by another process.
	// Zero means 5 seconds (bbolt's own zero waits forever).
	Timeout time.Duration

	// CommitDelay is how long the committer waits for more changes after
	// the first one of a batch arrives, when no others are already waiting.
	// Zero or negative means no wait: batches then form from the changes
	// that queued up during the previous commit, which measured better than
	// any wait (docs/BENCHMARKS.md).
	CommitDelay time.Duration

	// MaxBatch caps the number of changes in one transaction. Zero means 1024.
	MaxBatch int

	// QueueLen is the number of requests that may wait for the committer
	// before callers block. Zero means 4096.
	QueueLen int

	// MaxSize caps the data file in bytes; a write that would grow the file
	// past it fails with ErrFull. Zero means no cap (set one on 32-bit ARM).
	MaxSize int

	// OnCommit, if set, is called by the committer after each transaction
	// with the number of changes it held, how long it took including the
	// sync, and its error. It runs on the committer goroutine: it must be
	// quick and must not call the Store.
	OnCommit func(changes int, elapsed time.Duration, err error)

	// OnError, if set, receives the error of every failed WriteAsync, on
	// the committer goroutine (so it must not call the Store). If nil, such
	// errors are dropped: set it.
	OnError func(error)
}

func (o *Options) withDefaults() Options {
	out := *o
	if out.Timeout == 0 {
		out.Timeout = 5 * time.Second
	}
	if out.MaxBatch <= 0 {
		out.MaxBatch = 1024
	}
	if out.QueueLen <= 0 {
		out.QueueLen = 4096
	}
	return out
}

// A Change is one mutation of the store, built by the constructors in
// changes.go and applied by Write or WriteAsync.
type Change interface {
	apply(tx *bolt.Tx) error
}

// request is one Write or WriteAsync call: its changes commit together or
// not at all.
type request struct {
	changes []Change
	done    chan error  // Write's; nil otherwise
	notify  func(error) // WriteNotify's; nil otherwise
}

// Store is Hearth's durable store: one bbolt file written through a group
// committer. It is safe for concurrent use.
type Store struct {
	db   *bolt.DB
	path string
	opts Options

	mu     sync.RWMutex // guards closed against sends on queue
	closed bool
	queue  chan *request

	loopDone chan struct{}
}

// Open opens or creates the store file at path, creating its directory if
// needed. It fails if another process holds the file past Options.Timeout,
// if the file is not a bbolt file, or if it was written by a newer Hearth.
func Open(path string, opts Options) (*Store, error) {
	o := opts.withDefaults()
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("storage: create data directory: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: o.Timeout,
		// The freelist is rebuilt by scanning at open instead of being
		// written on every commit: fewer pages per fsync.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
		MaxSize:        o.MaxSize,
	})
	if err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", path, err)
	}
	if err := db.Update(initBuckets); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("storage: open %s: %w", path, err)
	}
	s := &Store{
		db:       db,
		path:     path,
		opts:     o,
		queue:    make(chan *request, o.QueueLen),
		loopDone: make(chan struct{}),
	}
	go s.run()
	return s, nil
}

func initBuckets(tx *bolt.Tx) error {
	for _, name := range allBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	meta := tx.Bucket(bucketMeta)
	if v := meta.Get(keyFormat); v != nil {
		if len(v) != 1 {
			return fmt.Errorf("%w: format marker", ErrCorrupt)
		}
		if v[0] > formatVersion {
			return fmt.Errorf("storage: file format %d is newer than this binary's %d", v[0], formatVersion)
		}
		return nil
	}
	return meta.Put(keyFormat, []byte{formatVersion})
}

// Path returns the data file's path.
func (s *Store) Path() string { return s.path }

// Ready reports whether the store is open and accepting writes.
func (s *Store) Ready() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return !s.closed
}

// Write applies changes in one transaction and returns after that
// transaction is synced to disk. Either all of changes are applied or none.
// If ctx ends first, Write returns ctx's error, and the changes may still be
// applied later. It returns ErrClosed once Close has begun, ErrFull (wrapped)
// when the file or disk is full, and the error of the first change that
// could not be applied.
func (s *Store) Write(ctx context.Context, changes ...Change) error {
	if len(changes) == 0 {
		return nil
	}
	r := &request{changes: changes, done: make(chan error, 1)}
	if err := s.submit(ctx, r); err != nil {
		return err
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// WriteAsync queues changes to be applied in one transaction and returns
// without waiting for the commit. Failures go to Options.OnError. It blocks
// only while the queue is full, and returns ErrClosed once Close has begun.
func (s *Store) WriteAsync(changes ...Change) error {
	if len(changes) == 0 {
		return nil
	}
	return s.submit(context.Background(), &request{changes: changes})
}

// WriteNotify queues changes like WriteAsync, and calls done with the
// result of their transaction: nil once it is synced. done runs on the
// committer goroutine, so it must be quick and must not call the Store;
// Options.OnError is not called for these changes. Requests are applied in
// the order they were queued, whichever of Write, WriteAsync and WriteNotify
// queued them. It returns ErrClosed, without calling done, once Close has
// begun.
func (s *Store) WriteNotify(done func(error), changes ...Change) error {
	if len(changes) == 0 {
		done(nil)
		return nil
	}
	return s.submit(context.Background(), &request{changes: changes, notify: done})
}

func (s *Store) submit(ctx context.Context, r *request) error {
	if err := ctx.Err(); err != nil {
		return err // without this, select would pick at random
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	select {
	case s.queue <- r:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops accepting writes, commits everything already queued, and
// closes the file. It is safe to call more than once.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.loopDone
		return nil
	}
	s.closed = true
	close(s.queue)
	s.mu.Unlock()
	<-s.loopDone
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("storage: close: %w", err)
	}
	return nil
}

// run is the committer: it owns all write transactions.
func (s *Store) run() {
	defer close(s.loopDone)
	batch := make([]*request, 0, 64)
	for {
		r, ok := <-s.queue
		if !ok {
			return
		}
		batch = append(batch[:0], r)
		var open bool
		batch, open = s.gather(batch, len(r.changes))
		s.commit(batch)
		clear(batch)
		if !open {
			return
		}
	}
}

// gather adds waiting requests to batch until it holds MaxBatch changes, the
// queue is empty and CommitDelay has passed, or the queue is closed (open is
// then false).
func (s *Store) gather(batch []*request, n int) (_ []*request, open bool) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for n < s.opts.MaxBatch {
		select {
		case r, ok := <-s.queue:
			if !ok {
				return batch, false
			}
			batch = append(batch, r)
			n += len(r.changes)
			continue
		default:
		}
		if s.opts.CommitDelay <= 0 {
			return batch, true
		}
		if timer == nil {
			timer = time.NewTimer(s.opts.CommitDelay)
		}
		select {
		case r, ok := <-s.queue:
			if !ok {
				return batch, false
			}
			batch = append(batch, r)
			n += len(r.changes)
		case <-timer.C:
			return batch, true
		}
	}
	return batch, true
}

// errApply marks a transaction aborted because one request failed to apply.
var errApply = errors.New("storage: change failed")

// commit applies batch in one transaction. A request whose change fails is
// answered with its error and the rest are retried without it. If the commit
// itself fails because the file is full and the batch holds several requests,
// each is retried alone, so that those that fit still succeed.
func (s *Store) commit(batch []*request) {
	pending := batch
	for len(pending) > 0 {
		start := time.Now()
		failed, failErr := -1, error(nil)
		n := 0
		err := s.db.Update(func(tx *bolt.Tx) error {
			for i, r := range pending {
				for _, c := range r.changes {
					if err := c.apply(tx); err != nil {
						failed, failErr = i, err
						return errApply
					}
				}
				n += len(r.changes)
			}
			return nil
		})
		if failed >= 0 {
			s.finish(pending[failed], mapError(failErr))
			pending = append(pending[:failed:failed], pending[failed+1:]...)
			continue
		}
		err = mapError(err)
		if s.opts.OnCommit != nil {
			s.opts.OnCommit(n, time.Since(start), err)
		}
		if err != nil && errors.Is(err, ErrFull) && len(pending) > 1 {
			for _, r := range pending {
				s.commit([]*request{r})
			}
			return
		}
		for _, r := range pending {
			s.finish(r, err)
		}
		return
	}
}

func (s *Store) finish(r *request, err error) {
	if r.done != nil {
		r.done <- err
		return
	}
	if r.notify != nil {
		r.notify(err)
		return
	}
	if err != nil && s.opts.OnError != nil {
		s.opts.OnError(err)
	}
}

// mapError wraps bbolt's and the system's "no room" errors in ErrFull.
func mapError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, berrors.ErrMaxSizeReached) || errors.Is(err, syscall.ENOSPC) {
		return fmt.Errorf("%w: %w", ErrFull, err)
	}
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return fmt.Errorf("storage: commit: %w", err)
}
