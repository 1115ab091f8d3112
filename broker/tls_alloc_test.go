package broker

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"testing"
	"time"

	"edgebroker/broker/packet"
)

// TestTLSWriteAllocs: routing a PUBLISH to a subscriber on the broker's
// own TLS (Port.TLS) and writing it through crypto/tls and the socket
// allocates nothing in steady state, as on plain TCP (TestFanoutAllocs).
// The subscriber is a real TLS 1.3 client on loopback; AllocsPerRun counts
// the whole process, the client's reads included.
func TestTLSWriteAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	cert, certPEM := idleTLSCert(t)
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
	sub, err := tlsIdleClient(ln.Addr().String(), cfg, 0) // subscribed to idle/0/state
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	p := packet.Publish{Topic: []byte("idle/0/state"), Payload: []byte("21.5 degrees celsius")}
	got := make(chan struct{}, 1)
	go func() {
		// The subscriber reads the TLS records off the socket without
		// decrypting them (crypto/tls allocates per record it reads; the
		// broker's write path is what is measured): one record a message.
		nc := sub.NetConn()
		var hdr [5]byte
		body := make([]byte, 1<<14+256)
		for {
			if _, err := io.ReadFull(nc, hdr[:]); err != nil {
				return
			}
			if _, err := io.ReadFull(nc, body[:int(hdr[3])<<8|int(hdr[4])]); err != nil {
				return
			}
			got <- struct{}{}
		}
	}()
	stuck := time.AfterFunc(time.Minute, func() { panic("TestTLSWriteAllocs: the TLS subscriber got nothing for a minute") })
	defer stuck.Stop()
	pub := fakeClient(t, s, "pub", packet.V311)
	raw := p.Append(nil, packet.V311)
	h, n, _ := packet.ParseFixedHeader(raw)
	body := raw[n:]
	pub.rbuf = make([]byte, len(body))
	step := func() {
		buf := pub.rbuf[:len(body)]
		copy(buf, body)
		if err := pub.handle(h, buf); err != nil {
			t.Fatal(err)
		}
		<-got
	}
	for range 200 { // grow buffers and pools
		step()
	}
	if a := testing.AllocsPerRun(500, step); a != 0 {
		t.Errorf("allocs per message to a TLS subscriber = %v, want 0", a)
	}
}
