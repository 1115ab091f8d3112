package broker_test

import (
	"errors"
	"net"
	"testing"
	"time"

	"edgebroker/broker"
	"edgebroker/broker/packet"
)

// startIdleServer is startServer with a short reader idle time, so that
// connections park quickly.
func startIdleServer(t *testing.T, cfg broker.Config, idle time.Duration) (*broker.Server, string) {
	t.Helper()
	s := broker.New(cfg)
	broker.SetReaderIdle(s, idle)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, broker.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return s, ln.Addr().String()
}

func waitParked(t *testing.T, s *broker.Server, n int) {
	t.Helper()
	v3waitFor(t, "parked connections", func() bool { return broker.ParkedConns(s) == n })
}

// A parked connection gets deliveries (its writer needs no reader) and
// resumes reading when the client sends: a PINGREQ, a PUBLISH, a
// SUBSCRIBE, each after the connection parked again.
func TestReactorParkAndResume(t *testing.T) {
	t.Parallel()
	s, addr := startIdleServer(t, broker.Config{}, 20*time.Millisecond)
	sub, _ := v3dial(t, addr, "sub", true)
	sub.v3sub("r/#", 1)
	pub, _ := v3dial(t, addr, "pub", true)
	waitParked(t, s, 2)

	pub.v3pub("r/1", 1, false, 1, "one") // resumes pub, delivers to parked sub
	sub.v3expect("r/1", "one", 1)        // and acknowledges it: resumes sub
	waitParked(t, s, 2)

	sub.write(packet.AppendPingreq(nil))
	if h, _ := sub.read(); h.Type != packet.PINGRESP {
		t.Fatalf("got packet type %d, want PINGRESP", h.Type)
	}
	waitParked(t, s, 2)
	sub.v3sub("other/#", 0) // a control packet parks right after
	waitParked(t, s, 2)
	pub.v3pub("other/x", 0, false, 0, "two")
	sub.v3expect("other/x", "two", 0)
}

// A parked connection is closed after 1.5 × its keep-alive, and its will
// is published.
func TestReactorKeepAliveExpiry(t *testing.T) {
	t.Parallel()
	s, addr := startIdleServer(t, broker.Config{}, 20*time.Millisecond)
	watcher, _ := v3dial(t, addr, "watcher", true)
	watcher.v3sub("will/#", 0)
	c := v3connect(t, addr, &packet.Connect{ClientID: []byte("ka"), CleanStart: true, KeepAlive: 1,
		WillFlag: true, WillTopic: []byte("will/ka"), WillPayload: []byte("gone")})
	start := time.Now()
	waitParked(t, s, 2)
	c.v3closed(4 * time.Second)
	if el := time.Since(start); el < time.Second {
		t.Errorf("closed after %v, want at least 1 s (1.5 × keep-alive)", el)
	}
	watcher.v3expect("will/ka", "gone", 0)
}

// Server.Close ends parked connections: they have no reader blocked on
// the socket to notice it.
func TestReactorCloseParked(t *testing.T) {
	t.Parallel()
	s, addr := startIdleServer(t, broker.Config{}, 20*time.Millisecond)
	a, _ := v3dial(t, addr, "a", true)
	b, _ := v3dial(t, addr, "b", true)
	waitParked(t, s, 2)
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(waitTime):
		t.Fatal("Close did not return with parked connections")
	}
	a.v3closed(waitTime)
	b.v3closed(waitTime)
}

// A session takeover closes the parked old connection.
func TestReactorTakeoverParked(t *testing.T) {
	t.Parallel()
	s, addr := startIdleServer(t, broker.Config{}, 20*time.Millisecond)
	old, _ := v3dial(t, addr, "same", false)
	waitParked(t, s, 1)
	v3dial(t, addr, "same", false)
	old.v3closed(waitTime)
	waitParked(t, s, 1)
}

// With DisableReactor every connection keeps its reader goroutine.
func TestReactorDisabled(t *testing.T) {
	t.Parallel()
	s, addr := startIdleServer(t, broker.Config{DisableReactor: true}, 10*time.Millisecond)
	c, _ := v3dial(t, addr, "c", true)
	c.v3sub("x", 0)
	c.expectSilence(200 * time.Millisecond)
	if n := broker.ParkedConns(s); n != 0 {
		t.Fatalf("%d parked connections with the reactor disabled", n)
	}
	c.write(packet.AppendPingreq(nil))
	if h, _ := c.read(); h.Type != packet.PINGRESP {
		t.Fatalf("got packet type %d, want PINGRESP", h.Type)
	}
}
