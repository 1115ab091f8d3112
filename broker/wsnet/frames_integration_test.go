package wsnet_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"edgebroker/broker/packet"
	"edgebroker/broker/testenv"
	"edgebroker/broker/wsnet"
)

// TestPublishAcrossFramesAndSegments: a PUBLISH cut into a fragmented
// message (with a ping inside it), written to the socket in pieces of 7
// bytes, arrives whole; the CONNECT sent in the same write as the upgrade
// request (buffered by net/http) is read first.
func TestPublishAcrossFramesAndSegments(t *testing.T) {
	_, addr := serve(t, nil)
	c, err := connect(addr, nil, "split", 60, "t/split")
	if err != nil {
		t.Fatal(err)
	}
	defer c.nc.Close()
	payload := make([]byte, 3000)
	for i := range payload {
		payload[i] = byte(i % 251)
	}
	pub := packet.Publish{Topic: []byte("t/split"), Payload: payload}
	b := pub.Append(nil, packet.V311)
	var stream []byte
	stream = append(stream, wsnet.ClientFrame(false, wsnet.OpBinary, b[:1], false)...)
	stream = append(stream, wsnet.ClientFrame(false, wsnet.OpContinuation, b[1:5], false)...)
	stream = append(stream, wsnet.ClientFrame(true, wsnet.OpPing, []byte("mid"), false)...)
	stream = append(stream, wsnet.ClientFrame(false, wsnet.OpContinuation, b[5:2000], false)...)
	stream = append(stream, wsnet.ClientFrame(true, wsnet.OpContinuation, b[2000:], false)...)
	for len(stream) > 0 {
		k := min(7, len(stream))
		if err := c.write(stream[:k]); err != nil {
			t.Fatal(err)
		}
		stream = stream[k:]
	}
	h, body, err := c.packet(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var got packet.Publish
	if h.Type != packet.PUBLISH || got.Decode(packet.V311, h.Flags, body) != nil || !bytes.Equal(got.Payload, payload) {
		t.Fatalf("got packet type %d with %d payload bytes, want the PUBLISH back", h.Type, len(got.Payload))
	}
	if len(c.pongs) != 1 || c.pongs[0] != "mid" {
		t.Errorf("pongs %q, want [\"mid\"]", c.pongs)
	}
}

// TestClosingFrames: a close frame gets a close with its code and the
// connection ends cleanly; a text frame (MQTT allows binary only) and an
// unmasked frame end it with 1003 and 1002.
func TestClosingFrames(t *testing.T) {
	s, addr := serve(t, nil)
	for _, tc := range []struct {
		name  string
		frame []byte
		code  uint16
	}{
		{"close", wsnet.ClientFrame(true, wsnet.OpClose, []byte{0x03, 0xe8}, false), 1000},
		{"text", wsnet.ClientFrame(true, wsnet.OpText, []byte("{}"), false), 1003},
		{"unmasked", wsnet.ClientFrame(true, wsnet.OpBinary, []byte{0xc0, 0}, true), 1002},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := connect(addr, nil, "closing-"+tc.name, 60, "")
			if err != nil {
				t.Fatal(err)
			}
			defer c.nc.Close()
			if err := c.write(tc.frame); err != nil {
				t.Fatal(err)
			}
			c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			f, err := c.frame()
			if err != nil {
				t.Fatal(err)
			}
			if f.op != wsnet.OpClose || len(f.payload) < 2 || binary.BigEndian.Uint16(f.payload) != tc.code {
				t.Fatalf("got op %#x % x, want close %d", f.op, f.payload, tc.code)
			}
			if _, err := c.frame(); err != io.EOF {
				t.Errorf("after the close: %v, want the socket closed", err)
			}
			testenv.Eventually(t, 5*time.Second, "the broker dropped the connection", func() bool {
				return s.Stats.Connections.Load() == 0
			})
		})
	}
}

// TestKeepAliveWhileParked: connected clients park (no goroutine left in
// the broker but the reactor's event loops, one per CPU up to 4). Six
// silent clients with a keep-alive of 3 s are closed by the reactor's
// keep-alive watch after 4.5 s; a client with a keep-alive of 4 s that is
// woken by a WebSocket ping and a PINGREQ once it parked gets its pong and
// PINGRESP, parks again and stays connected.
func TestKeepAliveWhileParked(t *testing.T) {
	if raceEnabled {
		t.Skip("goroutine counts of the race detector's runtime")
	}
	const quietN = 6
	shards := max(1, min(runtime.GOMAXPROCS(0), 4))
	s, addr := serve(t, nil)
	_, g0 := memSample()
	var quiet []*rawClient
	for i := range quietN {
		c, err := connect(addr, nil, fmt.Sprintf("quiet-%d", i), 3, "")
		if err != nil {
			t.Fatal(err)
		}
		defer c.nc.Close()
		quiet = append(quiet, c)
	}
	connected := time.Now()
	busy, err := connect(addr, nil, "busy", 4, "")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.nc.Close()
	parked := func() error {
		if g := runtime.NumGoroutine() - g0; g > shards {
			return fmt.Errorf("%d goroutines more than before the clients", g)
		}
		return nil
	}
	ping := wsnet.ClientFrame(true, wsnet.OpPing, []byte("hi"), false)
	pingreq := wsnet.ClientFrame(true, wsnet.OpBinary, []byte{byte(packet.PINGREQ) << 4, 0}, false)
	open := quietN
	round := 0
	for ; open > 0 || round < 2; round++ {
		if time.Since(connected) > 20*time.Second {
			t.Fatalf("%d silent clients still connected after 20 s", open)
		}
		if err := testenv.Poll(5*time.Second, nil, parked); err != nil {
			t.Fatalf("round %d: the clients did not park: %v", round, err)
		}
		if n := s.Stats.Connections.Load(); round == 0 && n != quietN+1 {
			t.Fatalf("%d clients connected when they parked, want all %d", n, quietN+1)
		}
		if err := busy.write(ping, pingreq); err != nil {
			t.Fatal(err)
		}
		h, _, err := busy.packet(5 * time.Second)
		if err != nil || h.Type != packet.PINGRESP {
			t.Fatalf("round %d: got type %d, %v; want PINGRESP", round, h.Type, err)
		}
		for i, c := range quiet {
			if c == nil || !isClosed(c) {
				continue
			}
			if d := time.Since(connected); d < 3*time.Second {
				t.Fatalf("silent client %d closed after %v, before its keep-alive", i, d)
			}
			quiet[i] = nil
			open--
		}
	}
	if len(busy.pongs) != round {
		t.Errorf("%d pongs for %d pings", len(busy.pongs), round)
	}
	if n := s.Stats.Connections.Load(); n != 1 {
		t.Errorf("%d connections, want the busy one", n)
	}
}

// isClosed reports whether the server closed c (a close frame or the
// socket's end), looking without waiting.
func isClosed(c *rawClient) bool {
	c.nc.SetReadDeadline(time.Now().Add(time.Millisecond))
	f, err := c.frame()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return err != nil || f.op == wsnet.OpClose
}

// TestListenerCloseEndsConnections: connections the listener handed out
// and nobody closed end with it.
func TestListenerCloseEndsConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wl := wsnet.Listen(ln, nil)
	defer wl.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := wl.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	c, err := dialRaw(ln.Addr().String(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.nc.Close()
	select {
	case <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("Accept returned nothing")
	}
	wl.Close()
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		f, err := c.frame()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("the connection is still open after Listener.Close")
		}
		if err != nil {
			return
		}
		if f.op != wsnet.OpClose {
			t.Fatalf("got op %#x", f.op)
		}
	}
}
