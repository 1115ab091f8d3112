// Package brokertest is for tests only: it starts brokers and speaks MQTT
// to them, for the broker's tests and for any test above the broker that
// needs one. Import it only from _test.go files (tools/depcheck checks).
//
// Start runs a broker on a loopback socket; StartMem runs one on an
// in-memory listener, so that a whole conversation runs inside a
// testing/synctest bubble. Raw is a byte-level client for what real
// clients will not send, with helpers for 3.1.1 (V3*) and 5.0 (V5*);
// V3Paho and V5Paho connect the real clients, paho.mqtt.golang (3.1.1)
// and paho.golang (5.0). Every wait is bounded by WaitTime; conditions
// without an event are awaited with testenv.Eventually.
//
// The helpers that reach into the broker's internals (its export_test.go
// hooks) stay in the broker package's own _test.go files.
package brokertest

import (
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"edgebroker/broker"
	"edgebroker/broker/testenv"
)

// WaitTime bounds every wait of these helpers, and the waits of the tests
// that use them.
const WaitTime = 5 * time.Second

// Start runs a broker with cfg on a loopback port and returns it with the
// address. port names the listener (nil: a port named "test"). The server
// is closed when the test ends, and the test fails unless its ServePort
// then returns broker.ErrServerClosed (likewise Serve, StartMem, ServeMem).
func Start(t testing.TB, cfg broker.Config, port *broker.Port) (*broker.Server, string) {
	t.Helper()
	s := broker.New(cfg)
	return s, Serve(t, s, port)
}

// Serve serves s on a new loopback port until the test ends (for a server
// prepared before it serves, such as one restored) and returns the
// address. port names the listener (nil: a port named "test").
func Serve(t testing.TB, s *broker.Server, port *broker.Port) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if port == nil {
		port = &broker.Port{Name: "test"}
	}
	serve(t, s, ln, port)
	return ln.Addr().String()
}

// StartMem is Start on an in-memory listener: call it inside a synctest
// bubble (a bubble's fake clock cannot drive a real socket), and dial the
// address it returns with Dial (and the helpers built on it) or with
// MemPahoConn.
func StartMem(t testing.TB, cfg broker.Config, port *broker.Port) (*broker.Server, string) {
	t.Helper()
	s := broker.New(cfg)
	return s, ServeMem(t, s, port)
}

// ServeMem serves s on a new in-memory listener until the test ends (for a
// server prepared before it serves, such as one restored) and returns the
// listener's address. port names the listener (nil: a port named "mem").
func ServeMem(t testing.TB, s *broker.Server, port *broker.Port) string {
	t.Helper()
	if port == nil {
		port = &broker.Port{Name: "mem"}
	}
	ln := newMemListener()
	serve(t, s, ln, port)
	return ln.addr.String()
}

// serve runs s.ServePort(ln, port) until the test ends.
func serve(t testing.TB, s *broker.Server, ln net.Listener, port *broker.Port) {
	done := make(chan error, 1)
	go func() { done <- s.ServePort(ln, port) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, broker.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
}

// WaitConns waits until s counts conns connections: after a close, the
// closed connection is gone and its session detached.
func WaitConns(t testing.TB, s *broker.Server, conns int64) {
	t.Helper()
	testenv.Eventually(t, WaitTime, fmt.Sprintf("%d connections", conns), func() bool { return s.Stats.Connections.Load() == conns })
}

// Clock is a settable broker.Config.Now: tests move protocol time forward
// instead of sleeping through expiry intervals. The zero value is the real
// time.
type Clock struct{ off atomic.Int64 }

// Now returns the real time plus every Advance so far.
func (c *Clock) Now() time.Time { return time.Now().Add(time.Duration(c.off.Load())) }

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) { c.off.Add(int64(d)) }
