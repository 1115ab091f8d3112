package broker_test

import (
	"errors"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"edgebroker/broker"
	"edgebroker/broker/brokertest"
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
	s, addrA := brokertest.Start(t, broker.Config{}, changed)
	addrB := servePort(t, s, &broker.Port{Name: "unchanged"})

	a5 := brokertest.Dial(t, addrA, packet.V5)
	a5.Connect(&packet.Connect{ClientID: []byte("a5"), CleanStart: true})
	a3 := brokertest.Dial(t, addrA, packet.V311)
	a3.Connect(&packet.Connect{ClientID: []byte("a3"), CleanStart: true})
	b := brokertest.Dial(t, addrB, packet.V5)
	b.Connect(&packet.Connect{ClientID: []byte("b"), CleanStart: true})

	if got, want := s.DisconnectPort(changed, packet.AdministrativeAction), 2; got != want {
		t.Errorf("DisconnectPort closed %d connections, want %d", got, want)
	}
	if got, want := a5.ExpectClosed(), int(packet.AdministrativeAction); got != want {
		t.Errorf("5.0 client: DISCONNECT %#x, want %#x", got, want)
	}
	if got := a3.ExpectClosed(); got != -1 {
		t.Errorf("3.1.1 client got DISCONNECT %#x; 3.1.1 has none from the server", got)
	}
	b.Write(packet.AppendPingreq(nil))
	if h, _ := b.Read(); h.Type != packet.PINGRESP {
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
	_, addr := brokertest.StartMem(t, broker.Config{}, &broker.Port{Name: "exp", Authenticator: expiringAuth{300 * time.Millisecond}})
	c := brokertest.Dial(t, addr, packet.V5)
	if ack := c.Connect(&packet.Connect{ClientID: []byte("c"), CleanStart: true}); ack.Code != 0 {
		t.Fatalf("CONNACK %#x", byte(ack.Code))
	}
	t0 := time.Now()
	if got := c.ExpectClosed(); got != -1 {
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
	s, addr := brokertest.Start(t, broker.Config{OnDisconnect: func(c *broker.Client) { gone <- c.ID }}, nil)
	a := brokertest.Dial(t, addr, packet.V5)
	a.Connect(&packet.Connect{ClientID: []byte("a"), CleanStart: true})
	a.Send(&packet.Disconnect{})
	b := brokertest.Dial(t, addr, packet.V311)
	b.Connect(&packet.Connect{ClientID: []byte("b"), CleanStart: true})
	s.Disconnect("b", packet.AdministrativeAction)
	never := brokertest.Dial(t, addr, packet.V311) // closes before CONNECT: not a client
	never.Conn.Close()
	got := map[string]bool{}
	for range 2 {
		select {
		case id := <-gone:
			got[id] = true
		case <-time.After(brokertest.WaitTime):
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
