package broker_test

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"edgebroker/broker"
	"edgebroker/broker/packet"
)

// waitTime bounds every wait in these tests.
const waitTime = 5 * time.Second

// startServer runs a broker on a loopback port and returns it with the
// address. It is closed when the test ends.
func startServer(t testing.TB, cfg broker.Config, port *broker.Port) (*broker.Server, string) {
	t.Helper()
	s := broker.New(cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if port == nil {
		port = &broker.Port{Name: "test"}
	}
	done := make(chan error, 1)
	go func() { done <- s.ServePort(ln, port) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, broker.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return s, ln.Addr().String()
}

// rawClient speaks MQTT byte by byte, for what real clients will not send.
type rawClient struct {
	t   testing.TB
	nc  net.Conn
	v   byte
	buf []byte
}

func dialRaw(t testing.TB, addr string, v byte) *rawClient {
	t.Helper()
	nc, mem, err := memDial(addr) // startMemServer's listener
	if !mem {
		nc, err = net.DialTimeout("tcp", addr, waitTime)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawClient{t: t, nc: nc, v: v}
}

// write sends raw bytes.
func (r *rawClient) write(b []byte) {
	r.t.Helper()
	r.nc.SetWriteDeadline(time.Now().Add(waitTime))
	if _, err := r.nc.Write(b); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// appender is any packet with an Append(dst, version) method.
type appender interface {
	Append(dst []byte, v byte) []byte
}

// send encodes and sends p.
func (r *rawClient) send(p appender) {
	r.t.Helper()
	r.write(p.Append(nil, r.v))
}

// connect sends CONNECT (client id, clean start) and returns the CONNACK.
func (r *rawClient) connect(c *packet.Connect) *packet.Connack {
	r.t.Helper()
	if c.Version == 0 {
		c.Version = r.v
	}
	if c.ProtocolName == nil {
		c.ProtocolName = []byte("MQTT")
	}
	r.write(c.Append(nil))
	h, body := r.read()
	if h.Type != packet.CONNACK {
		r.t.Fatalf("got packet type %d, want CONNACK", h.Type)
	}
	var ack packet.Connack
	if err := ack.Decode(r.v, h.Flags, body); err != nil {
		r.t.Fatalf("CONNACK: %v", err)
	}
	return &ack
}

// read returns the next packet, failing the test after waitTime.
func (r *rawClient) read() (packet.FixedHeader, []byte) {
	r.t.Helper()
	h, body, err := r.tryRead()
	if err != nil {
		r.t.Fatalf("read: %v", err)
	}
	return h, body
}

// tryRead returns the next packet or the error that ended the read.
func (r *rawClient) tryRead() (packet.FixedHeader, []byte, error) {
	r.nc.SetReadDeadline(time.Now().Add(waitTime))
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
		k, err := r.nc.Read(tmp[:])
		r.buf = append(r.buf, tmp[:k]...)
		if err != nil && k == 0 {
			return h, nil, err
		}
	}
}

// expectClosed waits for the server to close the connection, returning the
// DISCONNECT reason code it sent first (-1 if none).
func (r *rawClient) expectClosed() int {
	r.t.Helper()
	code := -1
	for {
		h, body, err := r.tryRead()
		if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err) {
			return code
		}
		if err != nil {
			r.t.Fatalf("waiting for close: %v", err)
		}
		if h.Type == packet.DISCONNECT {
			var d packet.Disconnect
			if err := d.Decode(r.v, h.Flags, body); err != nil {
				r.t.Fatalf("DISCONNECT: %v", err)
			}
			code = int(d.Code)
		}
	}
}

func isReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) && !ne.Timeout()
}

// expectPublish reads the next packet and requires a PUBLISH.
func (r *rawClient) expectPublish() *packet.Publish {
	r.t.Helper()
	h, body := r.read()
	if h.Type != packet.PUBLISH {
		r.t.Fatalf("got packet type %d, want PUBLISH", h.Type)
	}
	var p packet.Publish
	if err := p.Decode(r.v, h.Flags, body); err != nil {
		r.t.Fatalf("PUBLISH: %v", err)
	}
	return &p
}

// expectAck reads the next packet and requires an ack of type t.
func (r *rawClient) expectAck(t packet.Type) *packet.Ack {
	r.t.Helper()
	h, body := r.read()
	if h.Type != t {
		r.t.Fatalf("got packet type %d, want %d", h.Type, t)
	}
	var a packet.Ack
	if err := a.Decode(t, r.v, h.Flags, body); err != nil {
		r.t.Fatalf("ack: %v", err)
	}
	return &a
}

// subscribe sends SUBSCRIBE and returns the SUBACK codes.
func (r *rawClient) subscribe(pid uint16, subs ...packet.Subscription) []packet.Code {
	r.t.Helper()
	r.send(&packet.Subscribe{PacketID: pid, Filters: subs})
	h, body := r.read()
	if h.Type != packet.SUBACK {
		r.t.Fatalf("got packet type %d, want SUBACK", h.Type)
	}
	var a packet.Suback
	if err := a.Decode(r.v, h.Flags, body); err != nil {
		r.t.Fatalf("SUBACK: %v", err)
	}
	return a.Codes
}

// sync does a PINGREQ round trip: when it returns, the broker has handled
// everything sent before (a QoS 0 PUBLISH has no acknowledgement to wait
// for).
func (r *rawClient) sync() {
	r.t.Helper()
	r.write(packet.AppendPingreq(nil))
	if h, _ := r.read(); h.Type != packet.PINGRESP {
		r.t.Fatalf("got packet type %d, want PINGRESP", h.Type)
	}
}

// expectSilence requires that nothing arrives within d.
func (r *rawClient) expectSilence(d time.Duration) {
	r.t.Helper()
	r.nc.SetReadDeadline(time.Now().Add(d))
	var tmp [1]byte
	if len(r.buf) > 0 {
		r.t.Fatalf("unexpected bytes buffered: % x", r.buf)
	}
	if n, err := r.nc.Read(tmp[:]); n > 0 || err == nil {
		r.t.Fatalf("unexpected data: % x", tmp[:n])
	}
}

func TestHarnessSmoke(t *testing.T) {
	_, addr := startServer(t, broker.Config{}, nil)
	for _, v := range []byte{packet.V311, packet.V5} {
		sub := dialRaw(t, addr, v)
		if ack := sub.connect(&packet.Connect{ClientID: []byte("sub"), CleanStart: true}); ack.Code != 0 {
			t.Fatalf("v%d CONNACK code %#x", v, ack.Code)
		}
		if codes := sub.subscribe(1, packet.Subscription{Filter: []byte("a/+"), QoS: 1}); len(codes) != 1 || codes[0] != 1 {
			t.Fatalf("v%d SUBACK %v", v, codes)
		}
		pub := dialRaw(t, addr, v)
		pub.connect(&packet.Connect{ClientID: []byte("pub"), CleanStart: true})
		pub.send(&packet.Publish{Topic: []byte("a/b"), QoS: 1, PacketID: 7, Payload: []byte("x")})
		if a := pub.expectAck(packet.PUBACK); a.PacketID != 7 {
			t.Errorf("v%d PUBACK id %d", v, a.PacketID)
		}
		if p := sub.expectPublish(); string(p.Topic) != "a/b" || string(p.Payload) != "x" || p.QoS != 1 {
			t.Errorf("v%d got %q %q qos %d", v, p.Topic, p.Payload, p.QoS)
		}
		sub.nc.Close()
		pub.nc.Close()
	}
}
