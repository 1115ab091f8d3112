package broker

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	"edgebroker/broker/packet"
	"edgebroker/broker/testenv"
	"edgebroker/broker/tlsnet"
)

// TestTLSReleaseInput: a parked TLS connection holds no crypto/tls input
// buffer, and works on after it: a message of many records arrives whole,
// and the connection parks again (a large packet read whole filled the
// read buffer: tlsnet.HoldsInput tells that nothing more waits) and lets its
// buffers go again.
func TestTLSReleaseInput(t *testing.T) {
	cert, _, certPEM := testenv.SelfSigned(t, "broker.test")
	s := New(Config{})
	SetReaderIdle(s, 10*time.Millisecond)
	SetWriterIdle(s, 10*time.Millisecond)
	addr := serveLoopback(t, s, &Port{Name: "tls", TLS: &tls.Config{Certificates: []tls.Certificate{cert}}})
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	nc, err := tls.Dial("tcp", addr.String(), &tls.Config{RootCAs: pool, ServerName: "broker.test"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	cp := packet.Connect{ProtocolName: []byte("MQTT"), Version: packet.V311, CleanStart: true, KeepAlive: 60, ClientID: []byte("rel")}
	sp := packet.Subscribe{PacketID: 1, Filters: []packet.Subscription{{Filter: []byte("big")}}}
	if _, err := nc.Write(sp.Append(cp.Append(nil), packet.V311)); err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(nc)
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	for range 2 { // CONNACK, SUBACK
		if _, _, err := readRaw(rd); err != nil {
			t.Fatal(err)
		}
	}
	server := func() *tls.Conn {
		s.mu.Lock()
		defer s.mu.Unlock()
		for c := range s.conns {
			if c.client != nil && c.client.ID == "rel" {
				return c.nc.(*tls.Conn)
			}
		}
		return nil
	}
	parkedEmpty := func(what string) {
		t.Helper()
		testenv.Eventually(t, 10*time.Second, what, func() bool {
			tc := server()
			return ParkedConns(s) == 1 && tc != nil && tlsnet.InputCap(tc) == 0
		})
	}
	parkedEmpty("the connection parked, crypto/tls's input buffers let go")

	// 100 KiB to itself: several records in, several out.
	big := bytes.Repeat([]byte("0123456789"), 10<<10)
	p := packet.Publish{Topic: []byte("big"), Payload: big}
	if _, err := nc.Write(p.Append(nil, packet.V311)); err != nil {
		t.Fatal(err)
	}
	if _, body, err := readRaw(rd); err != nil || !bytes.HasSuffix(body, big) {
		t.Fatalf("read %d bytes, %v; want the 100 KiB message back", len(body), err)
	}
	parkedEmpty("the connection parked again, its buffers let go again")
	// And it still answers.
	if _, err := nc.Write([]byte{byte(packet.PINGREQ) << 4, 0}); err != nil {
		t.Fatal(err)
	}
	if typ, _, err := readRaw(rd); err != nil || typ != packet.PINGRESP {
		t.Fatalf("got %v, %v; want PINGRESP", typ, err)
	}
}
