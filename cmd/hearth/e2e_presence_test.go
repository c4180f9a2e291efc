package main

import (
	"encoding/json"
	"syscall"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/broker/codec"
)

// A client online when the broker is killed (SIGKILL: nothing is recorded
// at the kill) is not reported online after the restart: the start marks
// its presence record offline, reason restart, before serving.
func TestPresenceAfterKill(t *testing.T) {
	requireMosquitto(t)
	dir := t.TempDir()
	h := startHearth(t, dir)
	online := startSub(t, h.MQTT, "-i", "e2e-online", "-t", "unused")
	online.WaitSubscribed()
	// A durable write after the presence record's: the group commit is in
	// order, so the record is on disk once this is acknowledged.
	mosquittoPub(t, h.MQTT, "", "-q", "1", "-r", "-t", "sync", "-m", "x")
	h.Kill()

	s := openTestStore(t, dir)
	r, ok, err := s.Retained("$presence/e2e-online")
	closeTestStore(t, s)
	if err != nil || !ok {
		t.Fatalf("presence record after SIGKILL: stored %v, %v", ok, err)
	}
	v, err := codec.Decode(r.Message.Payload, codec.CBOR, codec.Limits{})
	if doc, _ := v.(map[string]any); err != nil || doc["online"] != true {
		t.Fatalf("presence record after SIGKILL = %v, %v; want online (the kill recorded nothing)", v, err)
	}

	before := time.Now()
	h = startHearth(t, dir)
	// e2e-online, and the mosquitto_pub of the sync write if its offline
	// record was not written before the kill.
	h.WaitLog(`msg="restored state" .*presence_marked_offline=[12]\b`)
	watch := startSub(t, h.MQTT, "-t", "$presence/e2e-online", "-C", "1", "-W", "20")
	msgs := watch.Messages(1)
	if len(msgs) != 1 || !msgs[0].Retain {
		t.Fatalf("$presence/e2e-online after the restart: %v, want one retained record", msgs)
	}
	var doc struct {
		Online bool
		Since  time.Time
		Reason string
	}
	if err := json.Unmarshal([]byte(msgs[0].Payload), &doc); err != nil {
		t.Fatalf("presence %q: %v", msgs[0].Payload, err)
	}
	if doc.Online || doc.Reason != "restart" || doc.Since.Before(before.Truncate(time.Millisecond)) {
		t.Errorf("presence after the restart = %+v (%s), want offline, reason restart, since the restart (after %s)",
			doc, msgs[0].Payload, before.UTC().Format(time.RFC3339Nano))
	}
	online.Signal(syscall.SIGKILL)
	if code := h.Stop(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
}
