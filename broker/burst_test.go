package broker

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"edgebroker/broker/testenv"
)

// TestBurstScavenge connects a burst of burstConns clients and checks
// that the server returns free memory to the OS once, after the burst.
// It runs in a child process: returning the test process's free memory
// makes the tests after it fault their heap in again, and some of them
// time socket writes.
func TestBurstScavenge(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 1000 sockets")
	}
	if os.Getenv("EDGEBROKER_BURST_CHILD") == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestBurstScavenge$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), "EDGEBROKER_BURST_CHILD=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child process: %v\n%s", err, out)
		}
		if testing.Verbose() {
			t.Logf("child process:\n%s", out)
		}
		return
	}
	s := New(Config{})
	rawIdleClients(t, serveLoopback(t, s, nil), burstConns)
	testenv.Eventually(t, 10*time.Second, "a scavenge after the burst", func() bool { return s.scavenges.Load() > 0 })
	if n := s.scavenges.Load(); n != 1 {
		t.Errorf("%d scavenges after one burst, want 1", n)
	}
}
