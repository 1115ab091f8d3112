package broker_test

import (
	"errors"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"edgebroker/broker"
	"edgebroker/broker/packet"
)

// servePort adds a listening port to a running server.
func servePort(t *testing.T, s *broker.Server, p *broker.Port) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.ServePort(ln, p) }()
	t.Cleanup(func() {
		ln.Close()
		if err := <-done; err != nil && !errors.Is(err, broker.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			t.Errorf("ServePort: %v", err)
		}
	})
	return ln.Addr().String()
}

// TestDisconnectPort: a policy change on one port disconnects exactly the
// clients that came in through it, telling 5.0 clients why.
func TestDisconnectPort(t *testing.T) {
	changed := &broker.Port{Name: "changed"}
	s, addrA := startServer(t, broker.Config{}, changed)
	addrB := servePort(t, s, &broker.Port{Name: "unchanged"})

	a5 := dialRaw(t, addrA, packet.V5)
	a5.connect(&packet.Connect{ClientID: []byte("a5"), CleanStart: true})
	a3 := dialRaw(t, addrA, packet.V311)
	a3.connect(&packet.Connect{ClientID: []byte("a3"), CleanStart: true})
	b := dialRaw(t, addrB, packet.V5)
	b.connect(&packet.Connect{ClientID: []byte("b"), CleanStart: true})

	if got, want := s.DisconnectPort(changed, packet.AdministrativeAction), 2; got != want {
		t.Errorf("DisconnectPort closed %d connections, want %d", got, want)
	}
	if got, want := a5.expectClosed(), int(packet.AdministrativeAction); got != want {
		t.Errorf("5.0 client: DISCONNECT %#x, want %#x", got, want)
	}
	if got := a3.expectClosed(); got != -1 {
		t.Errorf("3.1.1 client got DISCONNECT %#x; 3.1.1 has none from the server", got)
	}
	b.write(packet.AppendPingreq(nil))
	if h, _ := b.read(); h.Type != packet.PINGRESP {
		t.Errorf("client on the other port: got packet type %d, want PINGRESP", h.Type)
	}
}

// expiringAuth accepts everyone with a credential valid for d.
type expiringAuth struct{ d time.Duration }

func (e expiringAuth) Authenticate(*broker.Client, *broker.AuthRequest) broker.AuthResult {
	return broker.AuthResult{Code: packet.Success, Expiry: time.Now().Add(e.d)}
}

// TestCredentialExpiryCloses: when the credential expires the connection
// is closed, without a DISCONNECT (as AIO does).
func TestCredentialExpiryCloses(t *testing.T) { synctest.Test(t, testCredentialExpiryCloses) }

// testCredentialExpiryCloses runs in a synctest bubble: the credential
// expires on the bubble's clock, exactly on time.
func testCredentialExpiryCloses(t *testing.T) {
	_, addr := startMemServer(t, broker.Config{}, &broker.Port{Name: "exp", Authenticator: expiringAuth{300 * time.Millisecond}})
	c := dialRaw(t, addr, packet.V5)
	if ack := c.connect(&packet.Connect{ClientID: []byte("c"), CleanStart: true}); ack.Code != 0 {
		t.Fatalf("CONNACK %#x", byte(ack.Code))
	}
	t0 := time.Now()
	if got := c.expectClosed(); got != -1 {
		t.Errorf("got DISCONNECT %#x before the close, want none", got)
	}
	if d, want := time.Since(t0), 300*time.Millisecond; d != want {
		t.Errorf("closed after %v, want %v: when the credential expired", d, want)
	}
}

// TestOnDisconnect: the hook hears about every connected client that
// goes, once, whatever the reason.
func TestOnDisconnect(t *testing.T) {
	gone := make(chan string, 4)
	s, addr := startServer(t, broker.Config{OnDisconnect: func(c *broker.Client) { gone <- c.ID }}, nil)
	a := dialRaw(t, addr, packet.V5)
	a.connect(&packet.Connect{ClientID: []byte("a"), CleanStart: true})
	a.send(&packet.Disconnect{})
	b := dialRaw(t, addr, packet.V311)
	b.connect(&packet.Connect{ClientID: []byte("b"), CleanStart: true})
	s.Disconnect("b", packet.AdministrativeAction)
	never := dialRaw(t, addr, packet.V311) // closes before CONNECT: not a client
	never.nc.Close()
	got := map[string]bool{}
	for range 2 {
		select {
		case id := <-gone:
			got[id] = true
		case <-time.After(waitTime):
			t.Fatalf("OnDisconnect calls: %v", got)
		}
	}
	if !got["a"] || !got["b"] {
		t.Errorf("OnDisconnect for %v, want a and b", got)
	}
	select {
	case id := <-gone:
		t.Errorf("extra OnDisconnect for %q", id)
	case <-time.After(200 * time.Millisecond):
	}
}
