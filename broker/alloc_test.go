package broker

import (
	"fmt"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"edgebroker/broker/packet"
)

// sinkConn is a net.Conn that discards writes and blocks reads until
// closed: a subscriber socket without the kernel, so allocation counts see
// only the broker.
type sinkConn struct {
	once sync.Once
	done chan struct{}
}

func newSinkConn() *sinkConn { return &sinkConn{done: make(chan struct{})} }

func (c *sinkConn) Read([]byte) (int, error)        { <-c.done; return 0, net.ErrClosed }
func (c *sinkConn) Write(b []byte) (int, error)     { return len(b), nil }
func (c *sinkConn) Close() error                    { c.once.Do(func() { close(c.done) }); return nil }
func (c *sinkConn) LocalAddr() net.Addr             { return &net.TCPAddr{} }
func (c *sinkConn) RemoteAddr() net.Addr            { return &net.TCPAddr{} }
func (c *sinkConn) SetDeadline(time.Time) error     { return nil }
func (c *sinkConn) SetReadDeadline(time.Time) error { return nil }
func (c *sinkConn) SetWriteDeadline(time.Time) error {
	return nil
}

// fakeClient attaches a connected client with a sink socket, bypassing
// the reader. Its writer goroutine starts with the CONNACK (signal).
func fakeClient(t testing.TB, s *Server, id string, v byte) *conn {
	t.Helper()
	nc := newSinkConn()
	c := newConn(s, nc, &Port{Name: "test"})
	c.version = v
	c.client = &Client{ID: id, Version: v}
	c.pending = &pendingConnect{recvMax: 65535, problem: true, expiry: 0xFFFFFFFF}
	if err := c.authDone(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.closeWith(0, "")
		<-c.out.done
		nc.Close()
	})
	return c
}

// publishBytes is a PUBLISH as it arrives from a client.
func publishBytes(v byte, qos byte) (packet.FixedHeader, []byte) {
	p := packet.Publish{Topic: []byte("sensors/line1/temp"), QoS: qos, PacketID: 1, Payload: []byte("21.5 degrees celsius")}
	if v == packet.V5 {
		p.Props.Set(packet.PropMessageExpiry)
		p.Props.MessageExpiry = 60
		p.Props.Set(packet.PropContentType)
		p.Props.ContentType = []byte("text/plain")
		p.Props.User = []packet.UserProperty{{Key: []byte("site"), Value: []byte("plant-7")}}
	}
	raw := p.Append(nil, v)
	h, n, err := packet.ParseFixedHeader(raw)
	if err != nil {
		panic(err)
	}
	return h, raw[n:]
}

// fanout builds a publisher and n subscribers to "sensors/+/temp" (plus an
// overlapping "sensors/#" for every other one, with subscription ids).
func fanout(t testing.TB, v byte, qos byte, n int) (pub *conn, subs []*conn, step func()) {
	s := New(Config{Limits: Limits{MaxInflight: 16}})
	pub = fakeClient(t, s, "pub", v)
	for i := range n {
		c := fakeClient(t, s, fmt.Sprintf("sub-%d", i), v)
		c.subscribe(&packet.Subscription{Filter: []byte("sensors/+/temp"), QoS: qos}, 1)
		if i%2 == 1 {
			c.subscribe(&packet.Subscription{Filter: []byte("sensors/#"), QoS: qos}, 2)
		}
		subs = append(subs, c)
	}
	h, body := publishBytes(v, qos)
	ack := packet.Ack{Type: packet.PUBACK}
	step = func() {
		// The handler decodes in place: give it a fresh copy of the body
		// (the read buffer), as the read loop would.
		buf := pub.rbuf[:len(body)]
		copy(buf, body)
		if err := pub.handle(h, buf); err != nil {
			t.Fatal(err)
		}
		// Steady state: subscribers keep up, so their writers flush before
		// the next publish and buffers stop growing.
		for _, c := range subs {
			for c.pendingBytes() > 0 {
				runtime.Gosched()
			}
		}
		if qos == 0 {
			return
		}
		for _, c := range subs {
			c.sess.mu.Lock()
			pid := c.sess.inflight[0].pid
			c.sess.mu.Unlock()
			ack.PacketID = pid
			if err := c.handleAck(&ack); err != nil {
				t.Fatal(err)
			}
		}
	}
	pub.rbuf = make([]byte, len(body))
	return pub, subs, step
}

// TestFanoutAllocs proves the hot path: decoding a PUBLISH, matching and
// encoding it for N subscribers (and taking their PUBACKs) allocates
// nothing in steady state.
func TestFanoutAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	for _, v := range []byte{packet.V311, packet.V5} {
		for _, qos := range []byte{0, 1} {
			for _, n := range []int{1, 10, 100} {
				t.Run(fmt.Sprintf("v%d/qos%d/subs%d", v, qos, n), func(t *testing.T) {
					_, _, step := fanout(t, v, qos, n)
					for range 200 { // grow buffers and pools
						step()
					}
					if got := testing.AllocsPerRun(200, step); got != 0 {
						t.Errorf("allocs per publish = %v, want 0", got)
					}
				})
			}
		}
	}
}

func BenchmarkFanout(b *testing.B) {
	for _, v := range []byte{packet.V311, packet.V5} {
		for _, qos := range []byte{0, 1} {
			for _, n := range []int{1, 10, 100} {
				b.Run(fmt.Sprintf("v%d/qos%d/subs%d", v, qos, n), func(b *testing.B) {
					_, _, step := fanout(b, v, qos, n)
					for range 100 {
						step()
					}
					b.ReportAllocs()
					b.ResetTimer()
					for b.Loop() {
						step()
					}
					b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "deliveries/s")
				})
			}
		}
	}
}

// pendingBytes reports how much is buffered for the socket.
func (c *conn) pendingBytes() int {
	return c.out.pending()
}
