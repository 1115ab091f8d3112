package broker

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"edgebroker/broker/packet"
	"edgebroker/broker/testenv"
	"edgebroker/broker/wsnet"
)

// TestSocketWriteAllocs: routing a PUBLISH to a subscriber on a real
// socket and writing it allocates nothing in steady state: on plain TCP,
// where the publisher's goroutine writes it (signalVia, flushDirect), on
// the broker's own TLS (Port.TLS), through crypto/tls and a writer
// goroutine, and on a WebSocket (wsnet), a binary frame per write. The
// subscriber is a real client on loopback; AllocsPerRun counts the whole
// process, the client's reads included.
func TestSocketWriteAllocs(t *testing.T) {
	for _, tr := range []string{"tcp", "tls"} {
		t.Run(tr, func(t *testing.T) { socketWriteAllocs(t, tr == "tls") })
	}
	t.Run("ws", wsWriteAllocs)
}

func socketWriteAllocs(t *testing.T, secure bool) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	cert, _, certPEM := testenv.SelfSigned(t, "broker.test")
	port := &Port{Name: "tcp"}
	if secure {
		port = &Port{Name: "tls", TLS: &tls.Config{Certificates: []tls.Certificate{cert}}}
	}
	s := New(Config{})
	addr := serveLoopback(t, s, port)

	var nc net.Conn // the subscriber's socket, read without decoding
	if secure {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(certPEM)
		cfg := &tls.Config{RootCAs: pool, ServerName: "broker.test", MinVersion: tls.VersionTLS13}
		sub, err := tlsIdleClient(addr.String(), cfg, 0) // subscribed to idle/0/state
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		nc = sub.NetConn()
	} else {
		fd, err := rawIdleClient(addr, 0)
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
	publishAllocs(t, s, &p, got)
}

// publishAllocs publishes p from a fake client until got says the
// subscriber read it, and counts the allocations per message.
func publishAllocs(t *testing.T, s *Server, p *packet.Publish, got <-chan struct{}) {
	stuck := time.AfterFunc(time.Minute, func() { panic("TestSocketWriteAllocs: the subscriber got nothing for a minute") })
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

// wsWriteAllocs is TestSocketWriteAllocs over a WebSocket: the subscriber
// upgrades a socket, subscribes in a masked frame and reads each message
// as one binary frame.
func wsWriteAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	s := New(Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wl := wsnet.Listen(ln, nil)
	defer wl.Close()
	go s.ServePort(wl, &Port{Name: "ws"})
	defer s.Close()

	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	cp := packet.Connect{ProtocolName: []byte("MQTT"), Version: packet.V311, CleanStart: true, KeepAlive: 60, ClientID: []byte("sub")}
	sp := packet.Subscribe{PacketID: 1, Filters: []packet.Subscription{{Filter: []byte("ws/state")}}}
	mqtt := sp.Append(cp.Append(nil), packet.V311)
	frame := []byte{0x82, 0x80 | byte(len(mqtt)), 0, 0, 0, 0} // masked with a zero key
	req := "GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
	if _, err := nc.Write(append(append([]byte(req), frame...), mqtt...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	var acks [2 + 4 + 2 + 5]byte // CONNACK and SUBACK, one frame or two
	if _, err := io.ReadFull(br, acks[:2]); err != nil {
		t.Fatal(err)
	}
	if n := int(acks[1]); n == 9 {
		_, err = io.ReadFull(br, acks[2:11])
	} else {
		_, err = io.ReadFull(br, acks[2:2+n+2+5])
	}
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Time{})

	p := packet.Publish{Topic: []byte("ws/state"), Payload: []byte("21.5 degrees celsius")}
	size := len(p.Append(nil, packet.V311))
	got := make(chan struct{}, 1)
	go func() {
		var hdr [2]byte
		body := make([]byte, 125)
		for {
			if _, err := io.ReadFull(br, hdr[:]); err != nil {
				return
			}
			if hdr[0] != 0x82 || int(hdr[1]) != size {
				panic(fmt.Sprintf("TestSocketWriteAllocs: frame header % x, want a binary frame of %d bytes", hdr, size))
			}
			if _, err := io.ReadFull(br, body[:size]); err != nil {
				return
			}
			got <- struct{}{}
		}
	}()
	publishAllocs(t, s, &p, got)
}
