package broker_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"edgebroker/broker"
	"edgebroker/broker/brokertest"
	"edgebroker/broker/journal"
	"edgebroker/broker/packet"
	"edgebroker/broker/seclog"
	"edgebroker/broker/testenv"
)

// smallDisk mounts a tmpfs of size bytes for the test: a disk that fills.
// It needs root (CI runs the suite as root); elsewhere the test skips,
// and under CI it fails.
func smallDisk(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		testenv.Unavailable(t, "mount a tmpfs: %v (needs root; CI runs the suite as root)", err)
		return ""
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// TestDiskFull: on a full disk, publishers to a persistent session are
// refused cleanly (5.0: PUBACK 0x97), nothing acknowledged is lost, and
// service resumes once the subscriber drained its queue and space
// returned.
func TestDiskFull(t *testing.T) {
	disk := smallDisk(t, 4<<20)
	dir := filepath.Join(disk, "journal")
	j, err := journal.Open(dir, journal.Options{SegmentSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	s := broker.New(broker.Config{Journal: j, Limits: broker.Limits{MaxQueued: 100}})
	addr := brokertest.Serve(t, s, nil)
	sub, _ := brokertest.V5Dial(t, addr, brokertest.V5Expiry(brokertest.V5Connect("sub", true), 3600))
	sub.V5Sub(1, packet.Subscription{Filter: []byte("f/#"), QoS: 1}, 1)
	sub.Send(&packet.Disconnect{})
	sub.ExpectClosed()
	brokertest.WaitConns(t, s, 0)

	pub, _ := brokertest.V5Dial(t, addr, brokertest.V5Connect("pub", true))
	payload := string(make([]byte, 1000))
	acked := 0
	pid := uint16(0)
	for {
		pid++
		pub.V5Pub("f/x", 1, pid, fmt.Sprintf("%06d%s", acked, payload))
		a := pub.ExpectAck(packet.PUBACK)
		if a.Code == packet.QuotaExceeded {
			break
		}
		if a.Code != packet.Success {
			t.Fatalf("PUBACK %#x", byte(a.Code))
		}
		if acked++; acked > 10000 {
			t.Fatal("the 4 MB disk never filled")
		}
	}
	t.Logf("%d messages acknowledged before the disk filled", acked)
	if acked < 1000 {
		t.Errorf("only %d messages of 1 KB on a 4 MB disk", acked)
	}
	// 3.1.1 has no refusal: its message is dropped for the persistent
	// session, acknowledged (it went where it could), counted and logged.
	v3, _ := brokertest.V3Dial(t, addr, "v3pub", true)
	v3.V3Pub("f/x", 1, false, 1, "dropped")
	if got := s.Stats.MessagesRefusedDisk.Load(); got < 2 {
		t.Errorf("%d refusals counted, want the 5.0 and the 3.1.1 one", got)
	}
	if s.Security().Count(seclog.LimitDisk) < 2 {
		t.Errorf("%d limit_disk events", s.Security().Count(seclog.LimitDisk))
	}

	// The subscriber gets every acknowledged message, in order.
	sub, _ = brokertest.V5Dial(t, addr, brokertest.V5Expiry(brokertest.V5Connect("sub", false), 3600))
	for i, m := range sub.V3Collect(acked) {
		if want := fmt.Sprintf("%06d", i); string(m.Payload[:6]) != want {
			t.Fatalf("message %d: %q", i, m.Payload[:6])
		}
	}
	// Space returns: publishing is accepted again.
	testenv.Eventually(t, 30e9, "publishing to be accepted again", func() bool {
		pid++
		pub.V5Pub("f/x", 1, pid, "again")
		if pub.ExpectAck(packet.PUBACK).Code != packet.Success {
			return false
		}
		sub.V3Collect(1)
		return true
	})
}
