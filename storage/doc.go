// Package storage owns Hearth's single bbolt file and its on-disk format.
//
// Nothing else in Hearth opens the database. The package stores what must
// survive a restart: persistent MQTT sessions, their subscriptions, their
// inflight and queued QoS 1/2 messages, and retained messages. Values are
// CBOR (RFC 8949) in core deterministic encoding.
//
// # Group commit
//
// All writes go through one committer goroutine. Callers hand it a list of
// [Change] values; the committer gathers every change that is waiting (up to
// [Options.MaxBatch], and optionally waiting up to [Options.CommitDelay] for
// more), applies them in one bbolt transaction and syncs the file once.
// While one batch syncs, the next one queues, so concurrent writers share
// syncs without any added wait. [Store.Write] returns
// only after the transaction holding its changes is on disk; [Store.WriteAsync]
// returns at once and reports failures to [Options.OnError]. Both kinds share
// one FIFO queue, so changes from one caller are applied in the order given.
//
// A change that fails to apply (an encoding error, a full file) fails only
// its own Write: the transaction is rolled back and retried without it, so no
// request is ever half-applied and others are not lost. A failed commit (an
// I/O error, a full disk) fails every request in that batch and leaves the
// file as it was before the batch.
//
// # Caveats
//
// bbolt maps the whole file into memory. On 32-bit ARM the address space
// limits the file to well under 2 GB: set [Options.MaxSize], and writes that
// would grow past it fail with [ErrFull] instead of corrupting anything.
package storage
