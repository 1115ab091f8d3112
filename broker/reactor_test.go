package broker_test

import (
	"strings"
	"testing"
	"time"

	"edgebroker/broker"
	"edgebroker/broker/brokertest"
	"edgebroker/broker/packet"
	"edgebroker/broker/testenv"
)

// startIdleServer is brokertest.Start with a short reader idle time, so that
// connections park quickly, on plain TCP or (tr "tls") the broker's own
// TLS, whose idle connections park too.
func startIdleServer(t *testing.T, cfg broker.Config, idle time.Duration, tr string) (*broker.Server, string) {
	t.Helper()
	s := broker.New(cfg)
	broker.SetReaderIdle(s, idle)
	if tr == "tls" {
		return s, brokertest.ServeTLS(t, s, &broker.Port{Name: "default"})
	}
	return s, brokertest.Serve(t, s, &broker.Port{Name: "default"})
}

// transports runs f as a parallel subtest on plain TCP and on TLS.
func transports(t *testing.T, f func(t *testing.T, tr string)) {
	for _, tr := range []string{"tcp", "tls"} {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			f(t, tr)
		})
	}
}

func waitParked(t *testing.T, s *broker.Server, n int) {
	t.Helper()
	testenv.Eventually(t, brokertest.WaitTime, "parked connections", func() bool { return broker.ParkedConns(s) == n })
}

// A parked connection gets deliveries (its writer needs no reader) and
// resumes reading when the client sends: a PINGREQ, a PUBLISH, a
// SUBSCRIBE, each after the connection parked again.
func TestReactorParkAndResume(t *testing.T) {
	transports(t, func(t *testing.T, tr string) {
		s, addr := startIdleServer(t, broker.Config{}, 20*time.Millisecond, tr)
		sub, _ := brokertest.V3Dial(t, addr, "sub", true)
		sub.V3Sub("r/#", 1)
		pub, _ := brokertest.V3Dial(t, addr, "pub", true)
		waitParked(t, s, 2)

		pub.V3Pub("r/1", 1, false, 1, "one") // resumes pub, delivers to parked sub
		sub.V3Expect("r/1", "one", 1)        // and acknowledges it: resumes sub
		waitParked(t, s, 2)

		sub.Write(packet.AppendPingreq(nil))
		if h, _ := sub.Read(); h.Type != packet.PINGRESP {
			t.Fatalf("got packet type %d, want PINGRESP", h.Type)
		}
		waitParked(t, s, 2)
		sub.V3Sub("other/#", 0) // a control packet parks right after
		waitParked(t, s, 2)
		pub.V3Pub("other/x", 0, false, 0, "two")
		sub.V3Expect("other/x", "two", 0)

		// Packets larger than a TLS record and the read buffer, and
		// several in one write, wake a parked connection: nothing stays
		// behind in a buffer while it parks again.
		waitParked(t, s, 2)
		big1, big2 := strings.Repeat("a", 40<<10), strings.Repeat("b", 70<<10)
		var b []byte
		for _, m := range []string{big1, "small", big2, "last"} {
			b = (&packet.Publish{Topic: []byte("other/big"), Payload: []byte(m)}).Append(b, packet.V311)
		}
		pub.Write(b)
		for _, m := range []string{big1, "small", big2, "last"} {
			sub.V3Expect("other/big", m, 0)
		}
		waitParked(t, s, 2)
		sub.Write(packet.AppendPingreq(nil))
		if h, _ := sub.Read(); h.Type != packet.PINGRESP {
			t.Fatalf("got packet type %d, want PINGRESP", h.Type)
		}
	})
}

// A parked connection is closed after 1.5 × its keep-alive, and its will
// is published.
func TestReactorKeepAliveExpiry(t *testing.T) {
	transports(t, func(t *testing.T, tr string) {
		s, addr := startIdleServer(t, broker.Config{}, 20*time.Millisecond, tr)
		watcher, _ := brokertest.V3Dial(t, addr, "watcher", true)
		watcher.V3Sub("will/#", 0)
		c := brokertest.V3Connect(t, addr, &packet.Connect{ClientID: []byte("ka"), CleanStart: true, KeepAlive: 1,
			WillFlag: true, WillTopic: []byte("will/ka"), WillPayload: []byte("gone")})
		start := time.Now()
		waitParked(t, s, 2)
		c.V3Closed(4 * time.Second)
		if el := time.Since(start); el < time.Second {
			t.Errorf("closed after %v, want at least 1 s (1.5 × keep-alive)", el)
		}
		watcher.V3Expect("will/ka", "gone", 0)
	})
}

// Server.Close ends parked connections: they have no reader blocked on
// the socket to notice it.
func TestReactorCloseParked(t *testing.T) {
	transports(t, func(t *testing.T, tr string) {
		s, addr := startIdleServer(t, broker.Config{}, 20*time.Millisecond, tr)
		a, _ := brokertest.V3Dial(t, addr, "a", true)
		b, _ := brokertest.V3Dial(t, addr, "b", true)
		waitParked(t, s, 2)
		closed := make(chan struct{})
		go func() { s.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(brokertest.WaitTime):
			t.Fatal("Close did not return with parked connections")
		}
		a.V3Closed(brokertest.WaitTime)
		b.V3Closed(brokertest.WaitTime)
	})
}

// A session takeover closes the parked old connection.
func TestReactorTakeoverParked(t *testing.T) {
	transports(t, func(t *testing.T, tr string) {
		s, addr := startIdleServer(t, broker.Config{}, 20*time.Millisecond, tr)
		old, _ := brokertest.V3Dial(t, addr, "same", false)
		waitParked(t, s, 1)
		brokertest.V3Dial(t, addr, "same", false)
		old.V3Closed(brokertest.WaitTime)
		waitParked(t, s, 1)
	})
}

// With DisableReactor every connection keeps its reader goroutine.
func TestReactorDisabled(t *testing.T) {
	transports(t, func(t *testing.T, tr string) {
		s, addr := startIdleServer(t, broker.Config{DisableReactor: true}, 10*time.Millisecond, tr)
		c, _ := brokertest.V3Dial(t, addr, "c", true)
		c.V3Sub("x", 0)
		c.ExpectSilence(200 * time.Millisecond)
		if n := broker.ParkedConns(s); n != 0 {
			t.Fatalf("%d parked connections with the reactor disabled", n)
		}
		c.Write(packet.AppendPingreq(nil))
		if h, _ := c.Read(); h.Type != packet.PINGRESP {
			t.Fatalf("got packet type %d, want PINGRESP", h.Type)
		}
	})
}
