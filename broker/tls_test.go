package broker_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"
	"github.com/hearth-iot/hearth/broker"
	"github.com/hearth-iot/hearth/storage"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key as
// PEM files, and returns them with a pool that trusts the certificate.
func selfSigned(t *testing.T) (broker.TLS, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "hearth test"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := broker.TLS{CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem")}
	for path, block := range map[string]*pem.Block{
		files.CertFile: {Type: "CERTIFICATE", Bytes: der},
		files.KeyFile:  {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return files, pool
}

// TestTLS: with TLS configured, MQTT over TLS and MQTT over secure
// WebSocket carry messages both ways, /healthz answers over HTTPS, and a
// client speaking plain MQTT to the TLS port gets no CONNACK.
func TestTLS(t *testing.T) {
	files, pool := selfSigned(t)
	tb := startBroker(t, brokerOpts{MQTTTLS: files, HTTPTLS: files})
	clientTLS := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	withTLS := func(o *mqtt.ClientOptions) { o.SetTLSConfig(clientTLS) }

	tcpSub := connectV3(t, "ssl://"+tb.MQTTAddr, withTLS)
	tcpSub.subscribe(t, "tls/#", 1)
	wssSub := connectV3(t, "wss://"+tb.HTTPAddr+"/mqtt", withTLS)
	wssSub.subscribe(t, "tls/#", 1)

	connectV3(t, "wss://"+tb.HTTPAddr+"/mqtt", withTLS).publish(t, "tls/from-wss", 1, false, []byte("over wss"))
	connectV3(t, "ssl://"+tb.MQTTAddr, withTLS).publish(t, "tls/from-tls", 1, false, []byte("over tls"))
	for name, sub := range map[string]*v3Client{"tls subscriber": tcpSub, "wss subscriber": wssSub} {
		got := map[string]string{}
		for range 2 {
			m := sub.recv(t)
			got[m.Topic()] = string(m.Payload())
		}
		want := map[string]string{"tls/from-wss": "over wss", "tls/from-tls": "over tls"}
		for topic, payload := range want {
			if got[topic] != payload {
				t.Errorf("%s: %s = %q, want %q (got %v)", name, topic, got[topic], payload, got)
			}
		}
	}

	hc := &http.Client{Timeout: waitTimeout, Transport: &http.Transport{TLSClientConfig: clientTLS}}
	resp, err := hc.Get("https://" + tb.HTTPAddr + "/healthz")
	if err != nil {
		t.Fatalf("GET https /healthz: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "ok" {
		t.Errorf("https /healthz = %d %q, want 200 ok", resp.StatusCode, body)
	}

	// Plain MQTT to the TLS port: the TLS handshake fails, no CONNACK.
	conn, err := net.DialTimeout("tcp", tb.MQTTAddr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(rawConnect("plain-on-tls", 30, true, nil)); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(waitTimeout))
	buf := make([]byte, 64)
	n, err := conn.Read(buf)
	if n >= 2 && buf[0] == 0x20 {
		t.Fatalf("plain CONNECT on the TLS port got a CONNACK % x", buf[:n])
	}
	if err == nil && n > 0 && buf[0] != 0x15 { // 0x15: a TLS alert record is the expected answer
		t.Fatalf("plain CONNECT on the TLS port got % x, want a TLS alert or a close", buf[:n])
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("plain CONNECT on the TLS port: neither answered nor closed")
	}
}

// TestTLSBadCertificate: a certificate file that is not PEM is an error
// from New naming the listener, and nothing listens.
func TestTLSBadCertificate(t *testing.T) {
	dir := t.TempDir()
	bad := broker.TLS{CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem")}
	for _, f := range []string{bad.CertFile, bad.KeyFile} {
		if err := os.WriteFile(f, []byte("not PEM\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	st, err := storage.Open(filepath.Join(dir, "hearth.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, err = broker.New(broker.Config{
		MQTT:   broker.Listener{Addr: "127.0.0.1:0", TLS: bad},
		HTTP:   broker.Listener{Addr: "127.0.0.1:0"},
		Logger: discardLogger(),
	}, st, nil)
	if err == nil || !strings.Contains(err.Error(), "mqtt.tls") {
		t.Fatalf("New with a bad certificate: err = %v, want an error naming mqtt.tls", err)
	}
}

// TestWebSocketTextFrameClosesConnection: MQTT over WebSocket is binary
// only; a text message closes the connection, is logged, and counted.
func TestWebSocketTextFrameClosesConnection(t *testing.T) {
	tb := startBroker(t, brokerOpts{})
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: waitTimeout}
	ws, _, err := d.Dial("ws://"+tb.HTTPAddr+"/mqtt", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if err := ws.WriteMessage(websocket.TextMessage, rawConnect("text-frame", 30, true, nil)); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(waitTimeout))
	if _, msg, err := ws.ReadMessage(); err == nil {
		t.Fatalf("text CONNECT got an answer % x, want the connection closed", msg)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("text CONNECT: connection neither answered nor closed")
	}
	tb.waitLog(t, "connection closed: not a valid MQTT CONNECT", "websocket text message")
	tb.waitMetric(t, errorsSeries("connect"), ">= 1", func(v float64) bool { return v >= 1 })

	// The broker keeps serving WebSocket clients.
	sub := connectV3(t, wsURL(tb.HTTPAddr), nil)
	sub.subscribe(t, "after/text", 0)
	connectV3(t, wsURL(tb.HTTPAddr), nil).publish(t, "after/text", 0, false, []byte("still here"))
	if m := sub.recv(t); string(m.Payload()) != "still here" {
		t.Fatalf("after a text frame: got %q", m.Payload())
	}
}
