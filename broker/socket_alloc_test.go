package broker

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"edgebroker/broker/packet"
	"edgebroker/broker/testenv"
)

// TestSocketWriteAllocs: routing a PUBLISH to a subscriber on a real
// socket and writing it allocates nothing in steady state: on plain TCP,
// where the publisher's goroutine writes it (signalVia, flushDirect), and
// on the broker's own TLS (Port.TLS), through crypto/tls and a writer
// goroutine. The subscriber is a real client on loopback; AllocsPerRun
// counts the whole process, the client's reads included.
func TestSocketWriteAllocs(t *testing.T) {
	for _, tr := range []string{"tcp", "tls"} {
		t.Run(tr, func(t *testing.T) { socketWriteAllocs(t, tr == "tls") })
	}
}

func socketWriteAllocs(t *testing.T, secure bool) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	cert, _, certPEM := testenv.SelfSigned(t, "broker.test")
	s := New(Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := &Port{Name: "tcp"}
	if secure {
		port = &Port{Name: "tls", TLS: &tls.Config{Certificates: []tls.Certificate{cert}}}
	}
	go s.ServePort(ln, port)
	defer s.Close()

	var nc net.Conn // the subscriber's socket, read without decoding
	if secure {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(certPEM)
		cfg := &tls.Config{RootCAs: pool, ServerName: "broker.test", MinVersion: tls.VersionTLS13}
		sub, err := tlsIdleClient(ln.Addr().String(), cfg, 0) // subscribed to idle/0/state
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		nc = sub.NetConn()
	} else {
		fd, err := rawIdleClient(ln.Addr().(*net.TCPAddr), 0)
		if err != nil {
			t.Fatal(err)
		}
		f := os.NewFile(uintptr(fd), "subscriber")
		defer f.Close()
		if nc, err = net.FileConn(f); err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
	}

	p := packet.Publish{Topic: []byte("idle/0/state"), Payload: []byte("21.5 degrees celsius")}
	got := make(chan struct{}, 1)
	size := len(p.Append(nil, packet.V311))
	go func() {
		// The subscriber reads the bytes off the socket without decoding
		// them (crypto/tls allocates per record it reads; the broker's
		// write path is what is measured): on TLS one record a message.
		var hdr [5]byte
		body := make([]byte, 1<<14+256)
		for {
			n := size
			if secure {
				if _, err := io.ReadFull(nc, hdr[:]); err != nil {
					return
				}
				n = int(hdr[3])<<8 | int(hdr[4])
			}
			if _, err := io.ReadFull(nc, body[:n]); err != nil {
				return
			}
			got <- struct{}{}
		}
	}()
	stuck := time.AfterFunc(time.Minute, func() { panic("TestSocketWriteAllocs: the TLS subscriber got nothing for a minute") })
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
		pub.flushDirect() // as the read loop does after a batch
		<-got
	}
	for range 200 { // grow buffers and pools
		step()
	}
	if a := testing.AllocsPerRun(500, step); a != 0 {
		t.Errorf("allocs per message to the subscriber = %v, want 0", a)
	}
}
