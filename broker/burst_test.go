package broker

import (
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"edgebroker/broker/testenv"
)

// TestBurstScavenge connects a burst of burstConns clients and checks
// that the server returns free memory to the OS once, after the burst.
func TestBurstScavenge(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 1000 sockets")
	}
	s := New(Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	defer s.Close()
	addr := ln.Addr().(*net.TCPAddr)
	for i := range burstConns {
		fd, err := rawIdleClient(addr, i)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		defer unix.Close(fd)
	}
	testenv.Eventually(t, 10*time.Second, "a scavenge after the burst", func() bool { return s.scavenges.Load() > 0 })
	if n := s.scavenges.Load(); n != 1 {
		t.Errorf("%d scavenges after one burst, want 1", n)
	}
}
