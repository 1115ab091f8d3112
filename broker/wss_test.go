package broker_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"edgebroker/broker"
	"edgebroker/broker/brokertest"
	"edgebroker/broker/packet"
	"edgebroker/broker/testenv"
	"edgebroker/broker/wsnet"
)

// MQTT over WebSockets over TLS (wss://), served by wsnet.ListenTLS:
// idle connections park in the reactor like ws:// and the broker's own
// TLS ones.

// serveWSS serves s behind a wss:// listener (wsnet.ListenTLS) with tc
// until the test ends and returns the address.
func serveWSS(t *testing.T, s *broker.Server, tc *tls.Config, p *broker.Port) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wl := wsnet.ListenTLS(ln, tc, nil, wsnet.DefaultMaxUpgrading, nil)
	done := make(chan error, 1)
	go func() { done <- s.ServePort(wl, p) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, broker.ErrServerClosed) {
			t.Errorf("ServePort: %v", err)
		}
		wl.Close()
	})
	return ln.Addr().String()
}

// wssConn is a client's MQTT byte stream over a WebSocket (over TLS or
// not): Write sends one masked binary frame, Read returns the payloads of
// the server's binary frames and records its pongs. It starts no
// goroutine, so tests can count the broker's.
type wssConn struct {
	net.Conn
	br    *bufio.Reader
	rest  []byte // payload read, not yet returned
	pongs []string
}

// dialWSS upgrades a TLS connection to addr (with tc; nil: a plain one)
// to a WebSocket with subprotocol "mqtt".
func dialWSS(t *testing.T, addr string, tc *tls.Config) *wssConn {
	t.Helper()
	d := &net.Dialer{Timeout: brokertest.WaitTime}
	var tlc net.Conn
	var err error
	if tc != nil {
		tlc, err = tls.DialWithDialer(d, "tcp", addr, tc)
	} else {
		tlc, err = d.Dial("tcp", addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tlc.Close() })
	tlc.SetDeadline(time.Now().Add(brokertest.WaitTime))
	req := "GET /mqtt HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
	if _, err := tlc.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	c := &wssConn{Conn: tlc, br: bufio.NewReaderSize(tlc, 512)}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %s", resp.Status)
	}
	tlc.SetDeadline(time.Time{})
	return c
}

// frame appends a client frame (masked with a zero key: the payload is
// sent as it is) of opcode op to b.
func frame(b []byte, op byte, p []byte) []byte {
	b = append(b, 0x80|op)
	switch n := len(p); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xffff:
		b = binary.BigEndian.AppendUint16(append(b, 0x80|126), uint16(n))
	default:
		b = binary.BigEndian.AppendUint64(append(b, 0x80|127), uint64(n))
	}
	return append(append(b, 0, 0, 0, 0), p...)
}

func (c *wssConn) Write(p []byte) (int, error) {
	if _, err := c.Conn.Write(frame(nil, 0x2, p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// ping sends a WebSocket ping with body.
func (c *wssConn) ping(body string) error {
	_, err := c.Conn.Write(frame(nil, 0x9, []byte(body)))
	return err
}

func (c *wssConn) Read(p []byte) (int, error) {
	for len(c.rest) == 0 {
		var h [2]byte
		if _, err := io.ReadFull(c.br, h[:]); err != nil {
			return 0, err
		}
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			var e [2]byte
			if _, err := io.ReadFull(c.br, e[:]); err != nil {
				return 0, err
			}
			n = uint64(binary.BigEndian.Uint16(e[:]))
		case 127:
			var e [8]byte
			if _, err := io.ReadFull(c.br, e[:]); err != nil {
				return 0, err
			}
			n = binary.BigEndian.Uint64(e[:])
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(c.br, body); err != nil {
			return 0, err
		}
		switch h[0] & 0x0f {
		case 0x0, 0x2:
			c.rest = body
		case 0xa:
			c.pongs = append(c.pongs, string(body))
		case 0x8:
			return 0, io.EOF
		}
	}
	n := copy(p, c.rest)
	c.rest = c.rest[n:]
	return n, nil
}

// wssClient is a raw 3.1.1 client over wss, connected as id.
func wssClient(t *testing.T, addr string, tc *tls.Config, id string) (*brokertest.Raw, *wssConn) {
	t.Helper()
	wc := dialWSS(t, addr, tc)
	r := &brokertest.Raw{T: t, Conn: wc, Version: packet.V311}
	if ack := r.Connect(&packet.Connect{ClientID: []byte(id), CleanStart: true, KeepAlive: 60}); ack.Code != 0 {
		t.Fatalf("CONNACK for %q: return code %d", id, ack.Code)
	}
	return r, wc
}

// TestWSSIdleParks: N wss clients, connected and subscribed, all park:
// the broker keeps no goroutine for them (before wsnet.ListenTLS, a wss
// connection kept its reader blocked in crypto/tls).
func TestWSSIdleParks(t *testing.T) {
	const n = 200
	cert, pool, _ := testenv.SelfSigned(t, "broker.test")
	s := broker.New(broker.Config{})
	broker.SetReaderIdle(s, 20*time.Millisecond)
	broker.SetWriterIdle(s, 20*time.Millisecond)
	addr := serveWSS(t, s, &tls.Config{Certificates: []tls.Certificate{cert}}, &broker.Port{Name: "wss"})
	runtime.GC()
	g0 := runtime.NumGoroutine()
	ctc := &tls.Config{RootCAs: pool, ServerName: "broker.test"}
	for i := range n {
		r, _ := wssClient(t, addr, ctc, fmt.Sprintf("idle-%d", i))
		r.V3Sub(fmt.Sprintf("idle/%d", i), 1)
	}
	waitParked(t, s, n)
	// The reactor's event loops (one per CPU, up to 4) and the timers'
	// come and go; a goroutine per connection would be 200.
	const slack = 20
	testenv.Eventually(t, brokertest.WaitTime, "the goroutines back to what they were", func() bool {
		return runtime.NumGoroutine()-g0 <= slack
	})
}

// x509Port accepts only the client certificate want (its raw bytes), as
// the broker sees it through Client.TLS.
type x509Port struct{ want []byte }

func (a x509Port) Authenticate(c *broker.Client, _ *broker.AuthRequest) broker.AuthResult {
	if c.TLS == nil || len(c.TLS.PeerCertificates) == 0 || !bytes.Equal(c.TLS.PeerCertificates[0].Raw, a.want) {
		return broker.AuthResult{Code: packet.NotAuthorized}
	}
	return broker.AuthResult{Code: packet.Success, Principal: "x509:device"}
}

// TestWebSocketParkAndResume: WebSocket clients, on wss:// authenticated
// by their certificate, park, and resume where they stopped each time: a
// message delivered to a parked subscriber and acknowledged, a 40 KiB
// message (larger than a TLS record and the read buffers: read whole, it
// leaves nothing behind, so both park again), a WebSocket ping and a
// PINGREQ, each after both parked again. On wss:// a client without the
// certificate is refused.
func TestWebSocketParkAndResume(t *testing.T) {
	for _, tr := range []string{"ws", "wss"} {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			parkAndResume(t, tr == "wss")
		})
	}
}

func parkAndResume(t *testing.T, secure bool) {
	s := broker.New(broker.Config{})
	broker.SetReaderIdle(s, 20*time.Millisecond)
	broker.SetWriterIdle(s, 20*time.Millisecond)
	var ctc *tls.Config
	var addr string
	if secure {
		cert, pool, _ := testenv.SelfSigned(t, "broker.test")
		device, _, _ := testenv.SelfSigned(t, "device")
		addr = serveWSS(t, s, &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequestClientCert},
			&broker.Port{Name: "wss", Authenticator: x509Port{device.Certificate[0]}})
		ctc = &tls.Config{RootCAs: pool, ServerName: "broker.test", Certificates: []tls.Certificate{device}}
		anon := &brokertest.Raw{T: t, Conn: dialWSS(t, addr, &tls.Config{RootCAs: pool, ServerName: "broker.test"}), Version: packet.V311}
		if ack := anon.Connect(&packet.Connect{ClientID: []byte("anon"), CleanStart: true}); ack.Code == 0 {
			t.Fatal("a wss client without the certificate was accepted")
		}
	} else {
		addr = serveWSS(t, s, nil, &broker.Port{Name: "ws"})
	}

	sub, subWS := wssClient(t, addr, ctc, "sub")
	sub.V3Sub("r/#", 1)
	pub, _ := wssClient(t, addr, ctc, "pub")
	waitParked(t, s, 2)

	pub.V3Pub("r/1", 1, false, 1, "one") // resumes pub, delivers to the parked sub
	sub.V3Expect("r/1", "one", 1)        // which acknowledges it: resumes sub
	waitParked(t, s, 2)

	big := strings.Repeat("0123456789abcdef", 40<<10/16)
	pub.V3Pub("r/big", 1, false, 2, big)
	sub.V3Expect("r/big", big, 1)
	waitParked(t, s, 2)

	if err := subWS.ping("hi"); err != nil {
		t.Fatal(err)
	}
	sub.Write(packet.AppendPingreq(nil))
	if h, _ := sub.Read(); h.Type != packet.PINGRESP {
		t.Fatalf("got packet type %d, want PINGRESP", h.Type)
	}
	if len(subWS.pongs) != 1 || subWS.pongs[0] != "hi" {
		t.Errorf("pongs %q, want [\"hi\"]", subWS.pongs)
	}
	waitParked(t, s, 2)
	pub.V3Pub("r/2", 0, false, 0, "two")
	sub.V3Expect("r/2", "two", 0)
}

// TestWSSParkAsksCryptoTLS: a wss connection does not park while
// crypto/tls holds plaintext its reader has not seen. The client ends a
// TLS record inside a ping's body, so that wsnet's buffer holds those 8
// bytes when the next record, a full 16 KiB, arrives: it takes 8 bytes
// less than the record, and crypto/tls keeps them. That record carries
// the ping's end, a frame with a PUBLISH and a SUBSCRIBE (a control
// packet: the reader parks right after it when nothing waits), and a
// last frame of 8 bytes with a PINGREQ: the one that stays in crypto/tls,
// not in the kernel, where the reactor would see it. It must be answered.
func TestWSSParkAsksCryptoTLS(t *testing.T) {
	cert, pool, _ := testenv.SelfSigned(t, "broker.test")
	s := broker.New(broker.Config{})
	addr := serveWSS(t, s, &tls.Config{Certificates: []tls.Certificate{cert}}, &broker.Port{Name: "wss"})
	// Full-size records from the first write on.
	ctc := &tls.Config{RootCAs: pool, ServerName: "broker.test", DynamicRecordSizingDisabled: true}
	c, wc := wssClient(t, addr, ctc, "c")
	tc := wc.Conn.(*tls.Conn)

	const record = 16 << 10 // TLS's largest plaintext record
	ping := frame(nil, 0x9, []byte("0123456789"))
	pingreq := frame(nil, 0x2, packet.AppendPingreq(nil))
	if len(pingreq) != 8 {
		t.Fatalf("the PINGREQ frame is %d bytes, want 8", len(pingreq))
	}
	split := len(ping) - 2 // the record ends 2 bytes before the ping's end: 8 of its body in wsnet's buffer
	sub := (&packet.Subscribe{PacketID: 1, Filters: []packet.Subscription{{Filter: []byte("x")}}}).Append(nil, packet.V311)
	// The middle frame (a 2-byte extended length: 8 bytes of header)
	// fills the record: a PUBLISH padded to fit, then the SUBSCRIBE.
	payload := record - 2 - 8 - len(pingreq)
	var mid []byte
	for pad := payload - len(sub) - 8; ; pad++ {
		pub := (&packet.Publish{Topic: []byte("pad"), Payload: make([]byte, pad)}).Append(nil, packet.V311)
		if len(pub)+len(sub) == payload {
			mid = append(pub, sub...)
			break
		}
	}
	second := append(append(append([]byte{}, ping[split:]...), frame(nil, 0x2, mid)...), pingreq...)
	if len(second) != record {
		t.Fatalf("the second record is %d bytes, want %d", len(second), record)
	}
	if _, err := tc.Write(ping[:split]); err != nil {
		t.Fatal(err)
	}
	if _, err := tc.Write(second); err != nil {
		t.Fatal(err)
	}
	for _, want := range []packet.Type{packet.SUBACK, packet.PINGRESP} {
		if h, _ := c.Read(); h.Type != want {
			t.Fatalf("got packet type %d, want %d", h.Type, want)
		}
	}
	if len(wc.pongs) != 1 || wc.pongs[0] != "0123456789" {
		t.Errorf("pongs %q, want the ping's body", wc.pongs)
	}
}
