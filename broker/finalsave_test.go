package broker_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"edgebroker/broker"
	"edgebroker/broker/brokertest"
	"edgebroker/broker/packet"
)

// gatedListener accepts connections whose writes, once armed, block until
// release is closed and then fail: a client that stopped reading, whose
// connection outlives Shutdown's context.
type gatedListener struct {
	net.Listener
	armed   atomic.Bool
	release chan struct{}
}

func (l *gatedListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &gatedConn{Conn: nc, l: l}, nil
}

type gatedConn struct {
	net.Conn
	l *gatedListener
}

func (c *gatedConn) Write(b []byte) (int, error) {
	if c.l.armed.Load() {
		<-c.l.release
		return 0, net.ErrClosed
	}
	return c.Conn.Write(b)
}

// TestShutdownTimeoutFinalSave: when Shutdown gives up waiting for a
// connection, its final save keeps the session's messages, and the
// connection ending later does not overwrite that save with a snapshot
// without them.
func TestShutdownTimeoutFinalSave(t *testing.T) {
	p := newMemPersister()
	s := broker.New(broker.Config{Persister: p})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gl := &gatedListener{Listener: ln, release: make(chan struct{})}
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(gl.release) }) }
	done := make(chan error, 1)
	go func() { done <- s.Serve(gl) }()
	t.Cleanup(func() {
		release()
		s.Close()
		if err := <-done; !errors.Is(err, broker.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})

	c, _ := brokertest.V5Dial(t, ln.Addr().String(), brokertest.V5Expiry(brokertest.V5Connect("slow", false), 3600))
	c.V5Sub(1, packet.Subscription{Filter: []byte("q"), QoS: 1}, 1)
	gl.armed.Store(true)
	for _, m := range []string{"one", "two"} {
		if err := s.Publish(&packet.Publish{Topic: []byte("q"), Payload: []byte(m), QoS: 1}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the connection cannot end while its write blocks
	if err := s.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown: %v, want context.Canceled", err)
	}
	saved := func() int {
		st := p.session("slow")
		if st == nil {
			return -1
		}
		return len(st.Inflight) + len(st.Queue)
	}
	if n := saved(); n != 2 {
		t.Fatalf("final save holds %d messages, want 2", n)
	}
	release()
	brokertest.WaitConns(t, s, 0) // the connection ended: detached
	if n := saved(); n != 2 {
		t.Errorf("after the late end of the connection the save holds %d messages, want 2", n)
	}
}

// TestShutdownSavesWholeQueue: a clean shutdown saves every queued
// message of an offline session, beyond the 16 MiB it used to keep
// (with queue byte limits that let 20 MiB be queued).
func TestShutdownSavesWholeQueue(t *testing.T) {
	p := newMemPersister()
	s, addr := startPersisting(t, p, false, broker.Limits{MaxQueuedBytes: 64 << 20, MaxTotalQueuedBytes: 64 << 20})
	c, _ := brokertest.V3Dial(t, addr, "big", false)
	c.V3Sub("big", 1)
	c.V3Disconnect()
	brokertest.WaitConns(t, s, 0)

	const n, size = 20, 1 << 20 // 20 MiB
	payload := bytes.Repeat([]byte("x"), size)
	for range n {
		if err := s.Publish(&packet.Publish{Topic: []byte("big"), Payload: payload, QoS: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if d := s.Stats.MessagesDropped.Load(); d != 0 {
		t.Fatalf("%d messages dropped while queueing", d)
	}
	shutdown(t, s)
	st := p.session("big")
	if st == nil {
		t.Fatal("session not saved")
	}
	total := 0
	for _, d := range st.Queue {
		total += len(d.Message.Payload)
	}
	if len(st.Queue) != n || total != n*size {
		t.Errorf("saved %d messages, %d bytes; want %d, %d", len(st.Queue), total, n, n*size)
	}
	if d := s.Stats.MessagesDropped.Load(); d != 0 {
		t.Errorf("%d messages dropped", d)
	}
}
