package broker_test

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// Hand-encoded MQTT 3.1.1 packets, so that tests can send what no client
// library would, and do not depend on the broker's own codec.

// MQTT control packet types (MQTT 3.1.1 section 2.2.1).
const (
	typeConnect = 1
	typeConnack = 2
	typePublish = 3
)

func appendRemaining(b []byte, n int) []byte {
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func packet(first byte, body []byte) []byte {
	return append(appendRemaining([]byte{first}, len(body)), body...)
}

// rawWill is the will of rawConnect.
type rawWill struct {
	Topic   string
	Payload string
	QoS     byte
	Retain  bool
}

// rawConnect is an MQTT 3.1.1 CONNECT.
func rawConnect(clientID string, keepalive uint16, clean bool, will *rawWill) []byte {
	body := appendString(nil, "MQTT")
	body = append(body, 4) // protocol level 3.1.1
	var flags byte
	if clean {
		flags |= 0x02
	}
	if will != nil {
		flags |= 0x04 | will.QoS<<3
		if will.Retain {
			flags |= 0x20
		}
	}
	body = append(body, flags)
	body = binary.BigEndian.AppendUint16(body, keepalive)
	body = appendString(body, clientID)
	if will != nil {
		body = appendString(body, will.Topic)
		body = appendString(body, will.Payload)
	}
	return packet(typeConnect<<4, body)
}

// rawPublish is an MQTT 3.1.1 PUBLISH; packetID is used for QoS 1 and 2.
func rawPublish(topic string, qos byte, retain bool, packetID uint16, payload []byte) []byte {
	first := byte(typePublish<<4) | qos<<1
	if retain {
		first |= 1
	}
	body := appendString(nil, topic)
	if qos > 0 {
		body = binary.BigEndian.AppendUint16(body, packetID)
	}
	return packet(first, append(body, payload...))
}

// rawPacket is one packet read from the broker.
type rawPacket struct {
	Type  byte
	Flags byte
	Body  []byte
}

// rawConn is a TCP connection speaking hand-encoded MQTT.
type rawConn struct {
	net.Conn
	r *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	closeConn := func() { _ = c.Close() }
	trackClient(addr, closeConn)
	t.Cleanup(closeConn)
	return &rawConn{Conn: c, r: bufio.NewReader(c)}
}

func (c *rawConn) send(t testing.TB, b []byte) {
	t.Helper()
	_ = c.SetWriteDeadline(time.Now().Add(waitTimeout))
	if _, err := c.Write(b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// read reads one packet, or returns the read error.
func (c *rawConn) read(timeout time.Duration) (rawPacket, error) {
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	first, err := c.r.ReadByte()
	if err != nil {
		return rawPacket{}, err
	}
	n, mul := 0, 1
	for i := 0; ; i++ {
		d, err := c.r.ReadByte()
		if err != nil {
			return rawPacket{}, err
		}
		n += int(d&0x7f) * mul
		mul *= 128
		if d&0x80 == 0 {
			break
		}
		if i == 3 {
			return rawPacket{}, errors.New("bad remaining length")
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return rawPacket{}, err
	}
	return rawPacket{Type: first >> 4, Flags: first & 0x0f, Body: body}, nil
}

// connect sends CONNECT and expects a successful CONNACK.
func (c *rawConn) connect(t testing.TB, clientID string, will *rawWill) {
	t.Helper()
	c.send(t, rawConnect(clientID, 30, true, will))
	p, err := c.read(waitTimeout)
	if err != nil {
		t.Fatalf("read CONNACK: %v", err)
	}
	if p.Type != typeConnack || len(p.Body) != 2 || p.Body[1] != 0 {
		t.Fatalf("CONNACK: got type %d body %x, want type 2 return code 0", p.Type, p.Body)
	}
}

// expectClosed reads until the broker closes the connection, and returns
// the packets it sent first. It fails the test if the connection is still
// open after waitTimeout.
func (c *rawConn) expectClosed(t testing.TB) []rawPacket {
	t.Helper()
	return c.expectClosedWithin(t, waitTimeout)
}

func (c *rawConn) expectClosedWithin(t testing.TB, d time.Duration) []rawPacket {
	t.Helper()
	var got []rawPacket
	deadline := time.Now().Add(d)
	for {
		p, err := c.read(time.Until(deadline))
		if err == nil {
			got = append(got, p)
			continue
		}
		if isClosed(err) {
			return got
		}
		t.Fatalf("connection not closed by the broker within %s: %v (packets before: %+v)", d, err, got)
	}
}

// isClosed reports whether err means the peer closed the connection.
func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
