package broker_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
)

var clientSeq atomic.Int64

// clientID returns a client id unique in the test binary, readable in logs.
func clientID(t testing.TB, role string) string {
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-':
			return r
		}
		return '_'
	}, t.Name())
	return fmt.Sprintf("%s-%s-%d", name, role, clientSeq.Add(1))
}

// v3Client is a paho.mqtt.golang (MQTT 3.1.1) client. Every message it
// receives, on any subscription, goes to msgs.
type v3Client struct {
	mqtt.Client
	ID   string
	msgs chan mqtt.Message
	lost chan error // connection lost (not after Disconnect)

	mu   sync.Mutex
	conn net.Conn // the TCP connection, when dialed over tcp://
}

// v3Options are the defaults of dialV3; configure may change them.
func dialV3(t testing.TB, brokerURL string, configure func(*mqtt.ClientOptions)) (*v3Client, *mqtt.ConnectToken, error) {
	t.Helper()
	c := &v3Client{
		ID:   clientID(t, "v3"),
		msgs: make(chan mqtt.Message, 4096),
		lost: make(chan error, 1),
	}
	o := mqtt.NewClientOptions().
		AddBroker(brokerURL).
		SetClientID(c.ID).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(waitTimeout).
		SetWriteTimeout(waitTimeout).
		SetKeepAlive(30 * time.Second).
		SetOrderMatters(true).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { c.msgs <- m }).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			select {
			case c.lost <- err:
			default:
			}
		})
	if strings.HasPrefix(brokerURL, "tcp://") {
		o.SetCustomOpenConnectionFn(func(u *url.URL, _ mqtt.ClientOptions) (net.Conn, error) {
			conn, err := net.DialTimeout("tcp", u.Host, waitTimeout)
			if err != nil {
				return nil, err
			}
			c.mu.Lock()
			c.conn = conn
			c.mu.Unlock()
			return conn, nil
		})
	}
	if configure != nil {
		configure(o)
	}
	c.ID = o.ClientID
	c.Client = mqtt.NewClient(o)
	tok := c.Connect().(*mqtt.ConnectToken)
	if !tok.WaitTimeout(waitTimeout) {
		return nil, tok, errors.New("v3 connect: timeout")
	}
	if err := tok.Error(); err != nil {
		return nil, tok, err
	}
	disconnect := func() {
		if c.IsConnectionOpen() {
			c.Disconnect(250)
		}
	}
	if u, err := url.Parse(brokerURL); err == nil {
		trackClient(u.Host, disconnect)
	}
	t.Cleanup(disconnect)
	return c, tok, nil
}

// connectV3 connects a v3 client or fails the test.
func connectV3(t testing.TB, brokerURL string, configure func(*mqtt.ClientOptions)) *v3Client {
	t.Helper()
	c, _, err := dialV3(t, brokerURL, configure)
	if err != nil {
		t.Fatalf("v3 connect to %s: %v", brokerURL, err)
	}
	return c
}

func tcpURL(addr string) string { return "tcp://" + addr }
func wsURL(addr string) string  { return "ws://" + addr + "/mqtt" }

// dropConn closes the client's TCP connection without a DISCONNECT, as a
// crashed device would.
func (c *v3Client) dropConn(t testing.TB) {
	t.Helper()
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	if conn == nil {
		t.Fatal("dropConn: no TCP connection")
	}
	_ = conn.Close()
}

func (c *v3Client) subscribe(t testing.TB, filter string, qos byte) {
	t.Helper()
	tok := c.Subscribe(filter, qos, nil)
	if !tok.WaitTimeout(waitTimeout) {
		t.Fatalf("v3 subscribe %s: timeout", filter)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("v3 subscribe %s: %v", filter, err)
	}
	key := filter // paho keys the result by the filter without $share/<group>/
	if parts := strings.SplitN(filter, "/", 3); len(parts) == 3 && parts[0] == "$share" {
		key = parts[2]
	}
	if got, ok := tok.(*mqtt.SubscribeToken).Result()[key]; !ok || got != qos {
		t.Fatalf("v3 subscribe %s: granted QoS %d, want %d", filter, got, qos)
	}
}

func (c *v3Client) publish(t testing.TB, topic string, qos byte, retain bool, payload []byte) {
	t.Helper()
	tok := c.Publish(topic, qos, retain, payload)
	if !tok.WaitTimeout(waitTimeout) {
		t.Fatalf("v3 publish %s: timeout", topic)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("v3 publish %s: %v", topic, err)
	}
}

// recv waits for the next message.
func (c *v3Client) recv(t testing.TB) mqtt.Message {
	t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(waitTimeout):
		t.Fatalf("v3 client %s: no message within %s", c.ID, waitTimeout)
		return nil
	}
}

// waitLost waits until the broker closes the client's connection.
func (c *v3Client) waitLost(t testing.TB) error {
	t.Helper()
	select {
	case err := <-c.lost:
		return err
	case <-time.After(waitTimeout):
		t.Fatalf("v3 client %s: still connected after %s", c.ID, waitTimeout)
		return nil
	}
}

// v5Client is a paho.golang (MQTT 5) client on its own TCP connection.
type v5Client struct {
	*paho.Client
	ID         string
	Connack    *paho.Connack
	conn       net.Conn
	msgs       chan *paho.Publish
	disconnect chan *paho.Disconnect // DISCONNECT packets from the server
}

// dialV5 connects an MQTT 5 client with cp, by default a clean start with
// keepalive 30; an empty ClientID is replaced by a unique one. It returns
// the CONNACK also when the broker refused the connection.
func dialV5(t testing.TB, addr string, cp *paho.Connect) (*v5Client, error) {
	t.Helper()
	if cp == nil {
		cp = &paho.Connect{CleanStart: true, KeepAlive: 30}
	}
	if cp.ClientID == "" {
		cp.ClientID = clientID(t, "v5")
	}
	conn, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		return nil, err
	}
	c := &v5Client{
		ID:         cp.ClientID,
		conn:       conn,
		msgs:       make(chan *paho.Publish, 4096),
		disconnect: make(chan *paho.Disconnect, 1),
	}
	c.Client = paho.NewClient(paho.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) {
				c.msgs <- pr.Packet
				return true, nil
			},
		},
		OnServerDisconnect: func(d *paho.Disconnect) {
			select {
			case c.disconnect <- d:
			default:
			}
		},
		PacketTimeout: waitTimeout,
	})
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	ca, err := c.Connect(ctx, cp)
	c.Connack = ca
	if err != nil {
		_ = conn.Close()
		return c, err
	}
	trackClient(addr, c.close)
	t.Cleanup(c.close)
	return c, nil
}

// connectV5 connects an MQTT 5 client or fails the test.
func connectV5(t testing.TB, addr string, cp *paho.Connect) *v5Client {
	t.Helper()
	c, err := dialV5(t, addr, cp)
	if err != nil {
		t.Fatalf("v5 connect to %s: %v", addr, err)
	}
	return c
}

// close sends DISCONNECT (reason 0) and waits for the client to stop.
func (c *v5Client) close() {
	_ = c.Disconnect(&paho.Disconnect{ReasonCode: 0})
	select {
	case <-c.Done():
	case <-time.After(waitTimeout):
	}
}

// waitDone waits until the client's connection has ended.
func (c *v5Client) waitDone(t testing.TB) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(waitTimeout):
		t.Fatalf("v5 client %s: still connected after %s", c.ID, waitTimeout)
	}
}

func (c *v5Client) subscribe(t testing.TB, filter string, qos byte) {
	t.Helper()
	c.subscribeOpts(t, paho.SubscribeOptions{Topic: filter, QoS: qos})
}

func (c *v5Client) subscribeOpts(t testing.TB, opts ...paho.SubscribeOptions) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	sa, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: opts})
	if err != nil {
		t.Fatalf("v5 subscribe %+v: %v", opts, err)
	}
	for i, o := range opts {
		if sa.Reasons[i] != o.QoS {
			t.Fatalf("v5 subscribe %s: reason 0x%02x, want granted QoS %d", o.Topic, sa.Reasons[i], o.QoS)
		}
	}
}

func (c *v5Client) unsubscribe(t testing.TB, filters ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := c.Unsubscribe(ctx, &paho.Unsubscribe{Topics: filters}); err != nil {
		t.Fatalf("v5 unsubscribe %v: %v", filters, err)
	}
}

// pub publishes p and returns the broker's answer (nil for QoS 0) and the
// client's error, which is set for a negative acknowledgement.
func (c *v5Client) pub(p *paho.Publish) (*paho.PublishResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	return c.Publish(ctx, p)
}

// publish publishes and fails the test unless the broker accepted it.
func (c *v5Client) publish(t testing.TB, topic string, qos byte, retain bool, payload []byte) {
	t.Helper()
	resp, err := c.pub(&paho.Publish{Topic: topic, QoS: qos, Retain: retain, Payload: payload})
	if err != nil {
		t.Fatalf("v5 publish %s: %v", topic, err)
	}
	if qos > 0 && resp.ReasonCode >= 0x80 {
		t.Fatalf("v5 publish %s: reason 0x%02x", topic, resp.ReasonCode)
	}
}

func (c *v5Client) recv(t testing.TB) *paho.Publish {
	t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(waitTimeout):
		t.Fatalf("v5 client %s: no message within %s", c.ID, waitTimeout)
		return nil
	}
}

// recvUntil collects messages until one arrives on topic sentinel.
func (c *v5Client) recvUntil(t testing.TB, sentinel string) []*paho.Publish {
	t.Helper()
	var got []*paho.Publish
	for {
		m := c.recv(t)
		if m.Topic == sentinel {
			return got
		}
		got = append(got, m)
	}
}

func ptr[T any](v T) *T { return &v }

// received is a delivered message, whichever client received it.
type received struct {
	Topic   string
	Payload string
	QoS     byte
	Retain  bool
}

// testClient is what protocol-independent tests need of a client.
type testClient interface {
	subscribe(t testing.TB, filter string, qos byte)
	publish(t testing.TB, topic string, qos byte, retain bool, payload []byte)
	next(t testing.TB) received
}

func (c *v3Client) next(t testing.TB) received {
	t.Helper()
	m := c.recv(t)
	return received{Topic: m.Topic(), Payload: string(m.Payload()), QoS: m.Qos(), Retain: m.Retained()}
}

func (c *v5Client) next(t testing.TB) received {
	t.Helper()
	m := c.recv(t)
	return received{Topic: m.Topic, Payload: string(m.Payload), QoS: m.QoS, Retain: m.Retain}
}

// nextUntil collects messages until one arrives on topic sentinel, which it
// does not return. A message published before the sentinel by the same
// client, and matching the same receiver, has arrived by then.
func nextUntil(t testing.TB, c testClient, sentinel string) []received {
	t.Helper()
	var got []received
	for {
		m := c.next(t)
		if m.Topic == sentinel {
			return got
		}
		got = append(got, m)
	}
}

// protocols connects clean-session clients of either MQTT version.
var protocols = []struct {
	name    string
	connect func(t testing.TB, tb *testBroker) testClient
}{
	{"3.1.1", func(t testing.TB, tb *testBroker) testClient { return connectV3(t, tcpURL(tb.MQTTAddr), nil) }},
	{"5", func(t testing.TB, tb *testBroker) testClient { return connectV5(t, tb.MQTTAddr, nil) }},
}
