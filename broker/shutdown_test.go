package broker_test

import (
	"testing"
	"time"

	"github.com/hearth-iot/hearth/storage"
)

// Shutdown tells MQTT 5 clients why with DISCONNECT 0x8B, closes MQTT 3.1.1
// connections, hands persistent sessions to the store, and returns nil.
func TestShutdown(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	v5 := connectV5(t, tb.MQTTAddr, nil)
	v3 := connectV3(t, tcpURL(tb.MQTTAddr), nil)
	ws := connectV3(t, wsURL(tb.HTTPAddr), nil)
	durableID := clientID(t, "persistent")
	durable := connectV3(t, tcpURL(tb.MQTTAddr), persistentV3(durableID))
	durable.subscribe(t, "shutdown/durable", 1)

	if err := tb.shutdown(); err != nil {
		t.Fatalf("Shutdown: %v, want nil", err)
	}
	select {
	case d := <-v5.disconnect:
		if d.ReasonCode != 0x8b {
			t.Errorf("v5 client: DISCONNECT reason 0x%02x, want 0x8b (server shutting down)", d.ReasonCode)
		}
	case <-time.After(waitTimeout):
		t.Error("v5 client: no DISCONNECT from the server")
	}
	v5.waitDone(t)
	for _, c := range []*v3Client{v3, ws, durable} {
		c.waitLost(t)
	}
	if err := tb.B.Shutdown(t.Context()); err != nil {
		t.Errorf("second Shutdown = %v, want nil", err)
	}

	tb.inspectStore(t, func(st *storage.Store) {
		sessions, err := st.Sessions()
		if err != nil {
			t.Fatal(err)
		}
		if len(sessions) != 1 || sessions[0].ClientID != durableID || sessions[0].Disconnected == 0 {
			t.Fatalf("store: sessions %+v, want only %s, disconnected", sessions, durableID)
		}
		subs, err := st.Subscriptions()
		if err != nil {
			t.Fatal(err)
		}
		if len(subs) != 1 || subs[0].Filter != "shutdown/durable" || subs[0].QoS != 1 {
			t.Fatalf("store: subscriptions %+v, want shutdown/durable at QoS 1", subs)
		}
	})

	// hook.go's disconnectReason names "server shutdown" for this case.
	for _, id := range []string{v5.ID, v3.ID, ws.ID, durableID} {
		if tb.logCount("client disconnected", "client="+id, `reason="server shutdown"`) != 1 {
			line, _ := tb.logs.find("client disconnected", "client="+id)
			t.Errorf("client %s: log %q, want reason=\"server shutdown\"", id, line)
		}
	}
}

// A connection that never sends CONNECT must not hold up Shutdown.
//
// Not parallel: while that connection is open, mochi's Close waits on a
// WaitGroup the connection's goroutine added to without synchronisation,
// which the race detector reports; alone, the report stays with this test.
func TestShutdownWithIdleConnection(t *testing.T) {
	tb := startBroker(t, brokerOpts{})
	idle := dialRaw(t, tb.MQTTAddr) // connected, sends nothing
	v3 := connectV3(t, tcpURL(tb.MQTTAddr), nil)

	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- tb.shutdown() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Shutdown with an idle connection: %v, want nil", err)
		}
	case <-time.After(8 * time.Second):
		_ = idle.Close() // unblock it, to let the test end
		err := <-done
		t.Fatalf("Shutdown(5s timeout) still running after 8s, with one TCP connection that never sent CONNECT; "+
			"it returned %v only after %s, once the client closed that connection", err, time.Since(start).Round(time.Millisecond))
	}
	v3.waitLost(t)
}

// The broker closes a connection that sends no CONNECT within a reasonable
// time (MQTT 3.1.4), instead of keeping a goroutine and a file descriptor
// for it forever. Hearth allows 10s.
//
// Not parallel, for the reason given at TestShutdownWithIdleConnection.
func TestIdleConnectionIsClosed(t *testing.T) {
	tb := startBroker(t, brokerOpts{})
	idle := dialRaw(t, tb.MQTTAddr)
	start := time.Now()
	if got := idle.expectClosedWithin(t, 15*time.Second); len(got) != 0 {
		t.Fatalf("broker sent %+v to a client that sent nothing", got)
	}
	if d := time.Since(start); d < 9*time.Second {
		t.Errorf("idle connection closed after %s, want about 10s", d.Round(time.Millisecond))
	}
	tb.waitLog(t, "connection closed", "listener=mqtt")
}
