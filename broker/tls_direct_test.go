package broker

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"edgebroker/broker/packet"
	"edgebroker/broker/testenv"
)

// TestTLSDirectWrite: a delivery to a TLS subscriber is encrypted and
// written by the publisher's goroutine, as on plain TCP (signalVia),
// without a writer goroutine, while the socket takes it. When the
// subscriber does not read, the tlsnet.Sock holds the encrypted rest, a
// writer goroutine takes over and writes it, and what comes later
// follows it in order: the subscriber gets every message whole.
func TestTLSDirectWrite(t *testing.T) {
	cert, _, certPEM := testenv.SelfSigned(t, "broker.test")
	s := New(Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.ServePort(ln, &Port{Name: "tls", TLS: &tls.Config{Certificates: []tls.Certificate{cert}}})
	defer s.Close()

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	cfg := &tls.Config{RootCAs: pool, ServerName: "broker.test", MinVersion: tls.VersionTLS13}
	// A small receive buffer: the broker's socket fills after a few KiB.
	d := &net.Dialer{Timeout: 10 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	nc, err := tls.DialWithDialer(d, "tcp", ln.Addr().String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	cp := packet.Connect{ProtocolName: []byte("MQTT"), Version: packet.V311, CleanStart: true, KeepAlive: 60, ClientID: []byte("sub")}
	sp := packet.Subscribe{PacketID: 1, Filters: []packet.Subscription{{Filter: []byte("t/#")}}}
	if _, err := nc.Write(sp.Append(cp.Append(nil), packet.V311)); err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(nc)
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	for _, want := range []packet.Type{packet.CONNACK, packet.SUBACK} {
		if typ, _, err := readRaw(rd); err != nil || typ != want {
			t.Fatalf("got packet %v, %v; want %v", typ, err, want)
		}
	}
	var sub *conn
	testenv.Eventually(t, 10*time.Second, "the subscriber's connection, its writer parked", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for c := range s.conns {
			if c.client != nil && c.client.ID == "sub" {
				sub = c
			}
		}
		return sub != nil && !sub.out.writing.Load()
	})

	// And a small send buffer on the broker's side.
	if err := sub.tlsSocket().SetWriteBuffer(8 << 10); err != nil {
		t.Fatal(err)
	}
	pub := fakeClient(t, s, "pub", packet.V311)
	publish := func(topic string, payload []byte) {
		t.Helper()
		p := packet.Publish{Topic: []byte(topic), Payload: payload}
		raw := p.Append(nil, packet.V311)
		h, n, _ := packet.ParseFixedHeader(raw)
		if err := pub.handle(h, raw[n:]); err != nil {
			t.Fatal(err)
		}
		pub.flushDirect() // as the read loop does after a batch
	}

	// The socket takes it: written on this goroutine, the writer role
	// given back at once.
	publish("t/small", []byte("hello"))
	if sub.out.writing.Load() {
		t.Fatal("a small delivery to an idle TLS subscriber left a writer running: it was not written directly")
	}
	if _, body, err := readRaw(rd); err != nil || !bytes.HasSuffix(body, []byte("hello")) {
		t.Fatalf("read %q, %v; want the small message", body, err)
	}

	// The subscriber does not read: 512 KiB do not fit the socket. The
	// rest is held, encrypted, and a writer goroutine owns the
	// connection; the next messages queue behind it.
	big := bytes.Repeat([]byte("0123456789abcdef"), 32<<10)
	publish("t/big", big)
	if !sub.out.writing.Load() {
		t.Fatal("after a delivery larger than the socket takes, no writer goroutine writes the rest")
	}
	for i := range 3 {
		publish("t/after", fmt.Appendf(nil, "after-%d", i))
	}
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, body, err := readRaw(rd); err != nil || !bytes.HasSuffix(body, big) {
		t.Fatalf("read %d bytes, %v; want the 512 KiB message whole", len(body), err)
	}
	for i := range 3 {
		if _, body, err := readRaw(rd); err != nil || !bytes.HasSuffix(body, fmt.Appendf(nil, "after-%d", i)) {
			t.Fatalf("read %q, %v; want after-%d", body, err, i)
		}
	}
}

// readRaw reads one MQTT packet: its type and body.
func readRaw(r *bufio.Reader) (packet.Type, []byte, error) {
	b0, err := r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return 0, nil, err
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, err
	}
	return packet.Type(b0 >> 4), body, nil
}
