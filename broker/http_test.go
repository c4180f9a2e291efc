package broker_test

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/broker"
	"github.com/hearth-iot/hearth/storage"
)

func TestHealthz(t *testing.T) {
	t.Parallel()

	t.Run("running", func(t *testing.T) {
		tb := startBroker(t, brokerOpts{})
		resp, err := http.Get("http://" + tb.HTTPAddr + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
			t.Errorf("Content-Type %q, want text/plain", ct)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control %q, want no-store", cc)
		}
		if code, body := tb.httpGet(t, "/healthz"); code != http.StatusOK || body != "ok\n" {
			t.Fatalf("GET /healthz = %d %q, want 200 \"ok\\n\"", code, body)
		}
		if err := tb.B.Health(); err != nil {
			t.Fatalf("Health() = %v, want nil", err)
		}
	})

	t.Run("store closed", func(t *testing.T) {
		tb := startBroker(t, brokerOpts{})
		if err := tb.Store.Close(); err != nil {
			t.Fatal(err)
		}
		if code, body := tb.httpGet(t, "/healthz"); code != http.StatusServiceUnavailable || body != "unavailable: store closed\n" {
			t.Fatalf("GET /healthz = %d %q, want 503 \"unavailable: store closed\\n\"", code, body)
		}
	})

	t.Run("after shutdown", func(t *testing.T) {
		tb := startBroker(t, brokerOpts{})
		addr := tb.HTTPAddr
		tb.stop(t)
		if err := tb.B.Health(); err == nil || err.Error() != "shutting down" {
			t.Fatalf("Health() after Shutdown = %v, want \"shutting down\"", err)
		}
		c := &http.Client{Timeout: 5 * time.Second}
		resp, err := c.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("GET /healthz after Shutdown = %d, want 503 or a refused connection", resp.StatusCode)
			}
		} else if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("GET /healthz after Shutdown: %v, want 503 or a refused connection", err)
		}
	})

	t.Run("before start", func(t *testing.T) {
		st, err := storage.Open(filepath.Join(t.TempDir(), "hearth.db"), storage.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		b, err := broker.New(broker.Config{
			MQTT:   broker.Listener{Addr: "127.0.0.1:0"},
			HTTP:   broker.Listener{Addr: "127.0.0.1:0"},
			Logger: discardLogger(),
		}, st, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Health(); err == nil || err.Error() != "starting" {
			t.Errorf("Health() before Start = %v, want \"starting\"", err)
		}
		if err := b.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown before Start = %v, want nil", err)
		}
	})
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerOpts{})
	if got := tb.metric(t, "hearth_store_commit_seconds_count"); got != 0 {
		t.Errorf("commits before any write = %v, want 0", got)
	}

	a := connectV5(t, tb.MQTTAddr, nil)
	b := connectV5(t, tb.MQTTAddr, nil)
	c := connectV3(t, tcpURL(tb.MQTTAddr), nil)
	a.subscribe(t, "m/#", 1)
	c.subscribe(t, "m/x", 0)
	tb.waitMetric(t, "hearth_connections", "3", func(v float64) bool { return v == 3 })

	publishes := 0
	for i := range 4 {
		b.publish(t, "m/x", byte(i%2), false, []byte("v5"))
		publishes++
	}
	for range 3 {
		c.publish(t, "m/y", 1, false, []byte("v3"))
		publishes++
	}
	retained := []string{"m/r1", "m/r2", "m/r3"}
	for _, topic := range retained {
		b.publish(t, topic, 1, true, []byte("kept"))
		publishes++
	}

	m := tb.scrape(t)
	for _, check := range []struct {
		series string
		ok     func(float64) bool
		want   string
	}{
		{"hearth_connections", func(v float64) bool { return v == 3 }, "3"},
		{"hearth_connections_total", func(v float64) bool { return v == 3 }, "3"},
		{"hearth_subscriptions", func(v float64) bool { return v == 2 }, "2"},
		{`hearth_packets_received_total{type="publish"}`, func(v float64) bool { return v >= float64(publishes) }, ">= publishes made"},
		{`hearth_packets_received_total{type="connect"}`, func(v float64) bool { return v == 3 }, "3"},
		{`hearth_packets_received_total{type="subscribe"}`, func(v float64) bool { return v == 2 }, "2"},
		{"hearth_messages_received_total", func(v float64) bool { return v >= float64(publishes) }, ">= publishes made"},
		{"hearth_store_commit_seconds_count", func(v float64) bool { return v > 0 }, "> 0 after retained QoS 1 publishes"},
		{"hearth_store_commit_changes_sum", func(v float64) bool { return v >= float64(len(retained)) }, ">= retained publishes"},
		{"hearth_retained_messages", func(v float64) bool { return v == float64(len(retained)+3) }, "the retained topics set and 3 presence records"},
		{errorsSeries("protocol"), func(v float64) bool { return v == 0 }, "0"},
	} {
		v, ok := m[check.series]
		if !ok || !check.ok(v) {
			t.Errorf("%s = %v (present %v), want %s", check.series, v, ok, check.want)
		}
	}
	t.Logf("%d publishes; packets received: %v", publishes, m[`hearth_packets_received_total{type="publish"}`])
}
