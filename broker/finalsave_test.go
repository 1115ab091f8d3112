package broker_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"edgebroker/broker"
	"edgebroker/broker/brokertest"
	"edgebroker/broker/packet"
)

// TestShutdownKeepsQueues: a SIGTERM-like Shutdown saves nothing and needs
// not: every message was in the journal before its PUBACK. An offline
// session's queue (megabytes, across several segments) and an online
// session's messages (in flight unacknowledged, and queued behind its
// full window) come back, in order, after a restart
// from the journal Shutdown left, and after one from a copy of the
// journal's folder taken right after the last PUBACK (a power cut there).
func TestShutdownKeepsQueues(t *testing.T) {
	d := newDurable(t, broker.Config{})
	off, _ := brokertest.V3Dial(t, d.addr, "off", false)
	off.V3Sub("big", 1)
	off.V3Disconnect()
	on, _ := brokertest.V5Dial(t, d.addr, brokertest.V5Expiry(brokertest.V5Connect("on", true), 3600))
	on.V5Sub(1, packet.Subscription{Filter: []byte("big"), QoS: 1}, 1)
	brokertest.WaitConns(t, d.s, 1)

	const n, size = 48, 64 << 10 // 3 MiB: more than three 1 MiB segments
	window := int(broker.DefaultLimits().MaxInflight)
	payload := func(i int) []byte {
		return append([]byte(fmt.Sprintf("%04d", i)), bytes.Repeat([]byte("x"), size-4)...)
	}
	pub, _ := brokertest.V5Dial(t, d.addr, brokertest.V5Connect("pub", true))
	for i := range n {
		pub.Send(&packet.Publish{Topic: []byte("big"), Payload: payload(i), QoS: 1, PacketID: uint16(i + 1)})
		if a := pub.ExpectAck(packet.PUBACK); a.Code != packet.Success {
			t.Fatalf("PUBACK %d: code %#x", i, byte(a.Code))
		}
		if i >= window {
			continue // queued: the window is full
		}
		if m := on.ExpectPublish(); !bytes.Equal(m.Payload, payload(i)) {
			t.Fatalf("online: message %d is %.4q", i, m.Payload)
		}
	}
	cut := t.TempDir()
	copyDir(t, d.dir, cut)
	if r := d.j.Report(false); r.Segments < 3 || r.Messages != n {
		t.Errorf("the journal has %d segments, %d messages; want at least 3, %d", r.Segments, r.Messages, n)
	}

	ctx, cancel := context.WithTimeout(context.Background(), brokertest.WaitTime)
	defer cancel()
	if err := d.s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if code := on.ExpectClosed(); code != int(packet.ServerShuttingDown) {
		t.Errorf("online client: DISCONNECT %#x, want 0x8B", code)
	}
	for _, dir := range []string{d.dir, cut} {
		d.stop()
		d.dir = dir
		d.mustStart()
		off, present := brokertest.V3Dial(t, d.addr, "off", false)
		if !present {
			t.Fatalf("%s: offline session not present", dir)
		}
		on, ack := brokertest.V5Dial(t, d.addr, brokertest.V5Expiry(brokertest.V5Connect("on", false), 3600))
		if !ack.SessionPresent {
			t.Fatalf("%s: online session not present", dir)
		}
		for i := range n {
			if m := off.V3Recv(); !bytes.Equal(m.Payload, payload(i)) {
				t.Fatalf("%s: offline session's message %d is %.4q", dir, i, m.Payload)
			}
			m := on.ExpectPublish()
			if !bytes.Equal(m.Payload, payload(i)) {
				t.Fatalf("%s: online session's message %d is %.4q", dir, i, m.Payload)
			}
			on.Ack(packet.PUBACK, m.PacketID)
		}
	}
}

// copyDir copies the regular files of src into dst.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
