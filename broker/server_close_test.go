package broker

import (
	"errors"
	"net"
	"testing"
	"time"

	"edgebroker/broker/testenv"
)

// failingListener closes its listener and reports an error.
type failingListener struct {
	net.Listener
	err error
}

func (l failingListener) Close() error {
	l.Listener.Close()
	return l.err
}

// TestCloseReturnsListenerErrors: Server.Close returns what closing its
// listeners gave; a listener closed already is no error.
func TestCloseReturnsListenerErrors(t *testing.T) {
	boom := errors.New("close failed")
	s := New(Config{})
	served := make(chan error, 3)
	for _, wrap := range []func(net.Listener) net.Listener{
		func(ln net.Listener) net.Listener { return failingListener{ln, boom} },
		func(ln net.Listener) net.Listener { return ln },
		func(ln net.Listener) net.Listener { return failingListener{ln, net.ErrClosed} },
	} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() { served <- s.Serve(wrap(ln)) }()
	}
	testenv.Eventually(t, 10*time.Second, "3 listeners registered", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.listeners) == 3
	})
	err := s.Close()
	if !errors.Is(err, boom) {
		t.Fatalf("Close() = %v, want the listener's error %v", err, boom)
	}
	if errors.Is(err, net.ErrClosed) {
		t.Errorf("Close() = %v: a listener closed already is no error", err)
	}
	for range 3 {
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve() = %v, want ErrServerClosed", err)
		}
	}

	s = New(Config{})
	if err := s.Close(); err != nil {
		t.Fatalf("Close() of a server without failing listeners = %v, want nil", err)
	}
}
