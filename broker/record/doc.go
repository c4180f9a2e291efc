// Package record keeps Hearth's records: durable, versioned documents named
// by MQTT topics. A retained publish sets a record, an empty retained publish
// deletes it, and the $rec namespace reads it, merges into it, sets or
// deletes a value at a path, and edits arrays in it.
//
// # Consistency
//
// Every change of a record increments its version by one, is durable before
// Apply returns, and is handed to the Publisher once, in version order, after
// it is durable. Operations on one record are serialised; operations waiting
// on a record while a change of it is being written are applied one after
// the other and written together, with one sync (Records combines them).
// Operations on different records run concurrently and share syncs through
// the store's group commit. A change that fails leaves the record as it was:
// nothing is half-applied.
//
// Deleting a record leaves a tombstone holding its version, so a record that
// is deleted and created again continues its count, and a conditional write
// against an old version can never succeed by accident.
//
// # Memory
//
// Records keeps recently used records in a cache bounded in bytes
// (Options.CacheBytes), so reads and merges of hot records do not touch the
// store. Everything else is read from the store when needed.
//
// This package knows nothing of MQTT: the broker turns publishes into
// operations, and Publisher back into publishes.
package record
