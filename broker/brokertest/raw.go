package brokertest

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"edgebroker/broker/packet"
)

// Raw speaks MQTT byte by byte, for what real clients will not send. Its
// methods fail the test (through T) on an error or after WaitTime. A Raw
// is used by one goroutine.
type Raw struct {
	T       testing.TB // the test the client fails
	Conn    net.Conn   // the connection, for closing it or reading it directly
	Version byte       // protocol version: packet.V311 or packet.V5
	buf     []byte     // bytes read and not yet returned as packets
}

// Dial connects a raw client of protocol version v to addr (a loopback
// address from Start, or an in-memory one from StartMem). It sends
// nothing; the connection is closed when the test ends.
func Dial(t testing.TB, addr string, v byte) *Raw {
	t.Helper()
	nc, mem, err := memDial(addr)
	if !mem {
		var secure bool
		if nc, secure, err = tlsDial(addr); !secure {
			nc, err = net.DialTimeout("tcp", addr, WaitTime)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &Raw{T: t, Conn: nc, Version: v}
}

// Write sends raw bytes.
func (r *Raw) Write(b []byte) {
	r.T.Helper()
	r.Conn.SetWriteDeadline(time.Now().Add(WaitTime))
	if _, err := r.Conn.Write(b); err != nil {
		r.T.Fatalf("write: %v", err)
	}
}

// Appender is any packet with an Append(dst, version) method.
type Appender interface {
	Append(dst []byte, v byte) []byte
}

// Send encodes p in r's protocol version and sends it.
func (r *Raw) Send(p Appender) {
	r.T.Helper()
	r.Write(p.Append(nil, r.Version))
}

// Connect sends CONNECT c and returns the CONNACK. An unset Version and
// ProtocolName are filled in from r.
func (r *Raw) Connect(c *packet.Connect) *packet.Connack {
	r.T.Helper()
	if c.Version == 0 {
		c.Version = r.Version
	}
	if c.ProtocolName == nil {
		c.ProtocolName = []byte("MQTT")
	}
	r.Write(c.Append(nil))
	h, body := r.Read()
	if h.Type != packet.CONNACK {
		r.T.Fatalf("got packet type %d, want CONNACK", h.Type)
	}
	var ack packet.Connack
	if err := ack.Decode(r.Version, h.Flags, body); err != nil {
		r.T.Fatalf("CONNACK: %v", err)
	}
	return &ack
}

// Read returns the next packet's header and body, failing the test after
// WaitTime.
func (r *Raw) Read() (packet.FixedHeader, []byte) {
	r.T.Helper()
	h, body, err := r.TryRead()
	if err != nil {
		r.T.Fatalf("read: %v", err)
	}
	return h, body
}

// TryRead returns the next packet or the error that ended the read (a
// timeout after WaitTime among them).
func (r *Raw) TryRead() (packet.FixedHeader, []byte, error) {
	r.Conn.SetReadDeadline(time.Now().Add(WaitTime))
	for {
		h, n, err := packet.ParseFixedHeader(r.buf)
		if err == nil && len(r.buf) >= n+h.Remaining {
			body := append([]byte(nil), r.buf[n:n+h.Remaining]...)
			r.buf = r.buf[n+h.Remaining:]
			return h, body, nil
		}
		if err != nil && err != packet.ErrIncomplete {
			return h, nil, err
		}
		var tmp [4096]byte
		k, err := r.Conn.Read(tmp[:])
		r.buf = append(r.buf, tmp[:k]...)
		if err != nil && k == 0 {
			return h, nil, err
		}
	}
}

// ExpectClosed waits for the server to close the connection, returning the
// DISCONNECT reason code it sent first (-1 if none).
func (r *Raw) ExpectClosed() int {
	r.T.Helper()
	code := -1
	for {
		h, body, err := r.TryRead()
		if isClosed(err) {
			return code
		}
		if err != nil {
			r.T.Fatalf("waiting for close: %v", err)
		}
		if h.Type == packet.DISCONNECT {
			var d packet.Disconnect
			if err := d.Decode(r.Version, h.Flags, body); err != nil {
				r.T.Fatalf("DISCONNECT: %v", err)
			}
			code = int(d.Code)
		}
	}
}

// isClosed reports whether a read error means the peer closed or reset the
// connection (not a timeout).
func isClosed(err error) bool {
	var ne *net.OpError
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || (errors.As(err, &ne) && !ne.Timeout())
}

// ExpectPublish reads the next packet and requires a PUBLISH.
func (r *Raw) ExpectPublish() *packet.Publish {
	r.T.Helper()
	h, body := r.Read()
	if h.Type != packet.PUBLISH {
		r.T.Fatalf("got packet type %d, want PUBLISH", h.Type)
	}
	var p packet.Publish
	if err := p.Decode(r.Version, h.Flags, body); err != nil {
		r.T.Fatalf("PUBLISH: %v", err)
	}
	return &p
}

// ExpectAck reads the next packet and requires an ack of type typ (PUBACK,
// PUBREC, PUBREL, PUBCOMP or UNSUBACK).
func (r *Raw) ExpectAck(typ packet.Type) *packet.Ack {
	r.T.Helper()
	h, body := r.Read()
	if h.Type != typ {
		r.T.Fatalf("got packet type %d, want %d", h.Type, typ)
	}
	var a packet.Ack
	if err := a.Decode(typ, r.Version, h.Flags, body); err != nil {
		r.T.Fatalf("ack: %v", err)
	}
	return &a
}

// Ack sends a PUBACK, PUBREC, PUBREL or PUBCOMP for pid.
func (r *Raw) Ack(typ packet.Type, pid uint16) {
	r.T.Helper()
	r.Send(&packet.Ack{Type: typ, PacketID: pid})
}

// Subscribe sends SUBSCRIBE and returns the SUBACK codes.
func (r *Raw) Subscribe(pid uint16, subs ...packet.Subscription) []packet.Code {
	r.T.Helper()
	r.Send(&packet.Subscribe{PacketID: pid, Filters: subs})
	h, body := r.Read()
	if h.Type != packet.SUBACK {
		r.T.Fatalf("got packet type %d, want SUBACK", h.Type)
	}
	var a packet.Suback
	if err := a.Decode(r.Version, h.Flags, body); err != nil {
		r.T.Fatalf("SUBACK: %v", err)
	}
	return a.Codes
}

// Sync does a PINGREQ round trip: when it returns, the broker has handled
// everything sent before (a QoS 0 PUBLISH has no acknowledgement to wait
// for).
func (r *Raw) Sync() {
	r.T.Helper()
	r.Write(packet.AppendPingreq(nil))
	if h, _ := r.Read(); h.Type != packet.PINGRESP {
		r.T.Fatalf("got packet type %d, want PINGRESP", h.Type)
	}
}

// ExpectSilence requires that nothing arrives within d.
func (r *Raw) ExpectSilence(d time.Duration) {
	r.T.Helper()
	r.Conn.SetReadDeadline(time.Now().Add(d))
	var tmp [1]byte
	if len(r.buf) > 0 {
		r.T.Fatalf("unexpected bytes buffered: % x", r.buf)
	}
	if n, err := r.Conn.Read(tmp[:]); n > 0 || err == nil {
		r.T.Fatalf("unexpected data: % x", tmp[:n])
	}
}
