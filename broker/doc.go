// Package broker runs Hearth's MQTT broker: mochi-mqtt with one Hearth hook.
//
// It owns the network side: an MQTT listener over TCP (optionally TLS), and
// one HTTP server (optionally TLS) that serves MQTT over WebSocket at /mqtt,
// GET /healthz and GET /metrics (Prometheus text format). The hook is the only
// implementation of mochi's hook interface in Hearth; it persists sessions,
// subscriptions, inflight messages and retained messages in the storage
// package, enforces limits, and counts what happens.
//
// # Durability
//
// A retained publish at QoS 1 or 2 is acknowledged (PUBACK or PUBREC) only
// after the group commit holding it has been synced. If the store fails, an
// MQTT 5 publisher gets a negative acknowledgement (0x97 quota exceeded when
// the store is full, 0x80 otherwise) and an MQTT 3.1.1 publisher is
// disconnected, its only error signal; the retained value is then unchanged.
//
// Session state (the session, its subscriptions, and the QoS 1/2 messages
// queued for it) is written through the same group committer without
// waiting: mochi acknowledges a publish before fanning it out, so a queued
// copy reaches the disk within one commit interval after the publisher's
// acknowledgement. A graceful shutdown flushes everything; a kill -9 may lose
// queued copies from that last interval, never retained values.
//
// # Restart
//
// On start the broker restores persistent sessions, their subscriptions and
// inflight messages, and retained messages, before any listener accepts a
// connection. Session expiry counts from the disconnect, downtime included:
// an MQTT 5 session gets what is left of its interval, an MQTT 3.1.1
// session what is left of Limits.MaxSessionExpiry.
package broker
