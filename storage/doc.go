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
// # Retained records
//
// The retained bucket holds one record per topic: the retained message, a
// version and a last-modified time. The version never goes back. Deleting a
// record leaves a tombstone ([Retained.Deleted]) that keeps its version, so
// re-creating the record continues the count. [PutRecord] is a conditional
// write: it applies only if the stored version is still the one the writer
// based its change on (read with [Store.Record]), and fails with
// [ErrConflict] otherwise; tombstones make sure a base read before a delete
// never matches again. A record's payload may be structured
// ([Retained.Structured]): one CBOR item embedded as it is, so the stored
// record is a single CBOR document. [Store.Retained],
// [Store.RetainedMessages], [Store.RetainedMatching],
// [Store.RetainedTopics] and [Store.RetainedCount] see live records only.
//
// # Caveats
//
// bbolt maps the whole file into memory. On 32-bit ARM the address space
// limits the file to well under 2 GB: set [Options.MaxSize], and writes that
// would grow past it fail with [ErrFull] instead of corrupting anything.
//
// Tombstones are never removed: every topic that was ever retained keeps a
// small record, as the price of versions that never repeat.
package storage
