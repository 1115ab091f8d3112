package broker_test

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"edgebroker/broker"
	"edgebroker/broker/brokertest"
	"edgebroker/broker/journal"
	"edgebroker/broker/packet"
	"edgebroker/broker/testenv"
)

// openJournal opens the journal in dir; it is closed when the test ends
// unless closed before.
func openJournal(t testing.TB, dir string) *journal.Journal {
	t.Helper()
	j, err := journal.Open(dir, journal.Options{SegmentSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

// startDurable runs a broker on the journal in dir, restored from it.
func startDurable(t testing.TB, dir string) (*broker.Server, *journal.Journal, string) {
	t.Helper()
	j := openJournal(t, dir)
	s := broker.New(broker.Config{Journal: j})
	if _, err := s.RestoreJournal(); err != nil {
		t.Fatalf("RestoreJournal: %v", err)
	}
	return s, j, brokertest.Serve(t, s, nil)
}

// TestDurableQueue: QoS 1 and 2 messages acknowledged to the publisher
// while a 3.1.1 and a 5.0 persistent subscriber are offline come back
// after a restart, in order, once; what a subscriber acknowledged does
// not come back again.
func TestDurableQueue(t *testing.T) {
	dir := t.TempDir()
	s1, j1, addr := startDurable(t, dir)
	v3, _ := brokertest.V3Dial(t, addr, "v3", false)
	v3.V3Sub("q/#", 2)
	v3.V3Disconnect()
	v5, _ := brokertest.V5Dial(t, addr, brokertest.V5Expiry(brokertest.V5Connect("v5", true), 3600))
	v5.V5SubID(1, 9, packet.Subscription{Filter: []byte("q/+"), QoS: 2})
	v5.Send(&packet.Disconnect{})
	v5.ExpectClosed()
	brokertest.WaitConns(t, s1, 0)

	pub, _ := brokertest.V5Dial(t, addr, brokertest.V5Connect("pub", true))
	const n = 50
	for i := range n {
		qos := byte(1 + i%2)
		pub.V5Pub("q/x", qos, uint16(i+1), fmt.Sprint(i))
		if qos == 1 {
			pub.ExpectAck(packet.PUBACK)
		} else {
			pub.ExpectAck(packet.PUBREC)
			pub.Ack(packet.PUBREL, uint16(i+1))
			pub.ExpectAck(packet.PUBCOMP)
		}
	}
	s1.Close()
	if err := j1.Close(); err != nil {
		t.Fatal(err)
	}

	s2, j2, addr := startDurable(t, dir)
	v3, present := brokertest.V3Dial(t, addr, "v3", false)
	if !present {
		t.Fatal("3.1.1 session not present after the restart")
	}
	for i, m := range receiveAll(t, v3, n) {
		if string(m.Payload) != fmt.Sprint(i) {
			t.Fatalf("3.1.1 message %d: %q", i, m.Payload)
		}
	}
	v3.V3Disconnect()
	v5, ack := brokertest.V5Dial(t, addr, brokertest.V5Expiry(brokertest.V5Connect("v5", false), 3600))
	if !ack.SessionPresent {
		t.Fatal("5.0 session not present after the restart")
	}
	for i, m := range receiveAll(t, v5, n) {
		if string(m.Payload) != fmt.Sprint(i) || len(m.Props.SubscriptionIDs) != 1 || m.Props.SubscriptionIDs[0] != 9 {
			t.Fatalf("5.0 message %d: %q ids %v", i, m.Payload, m.Props.SubscriptionIDs)
		}
	}
	v5.Sync()
	v5.Send(&packet.Disconnect{})
	v5.ExpectClosed()
	brokertest.WaitConns(t, s2, 0)
	s2.Close()
	j2.Close()

	_, j3, addr := startDurable(t, dir)
	if r := j3.Report(false); r.Messages != 0 {
		t.Errorf("%d messages on disk after every one was acknowledged", r.Messages)
	}
	v3, _ = brokertest.V3Dial(t, addr, "v3", false)
	v3.ExpectSilence(100e6)
}

// receiveAll reads n PUBLISH packets, acknowledging each (and completing
// QoS 2 flows) as they come, and returns them in order.
func receiveAll(t *testing.T, c *brokertest.Raw, n int) []*packet.Publish {
	t.Helper()
	var got []*packet.Publish
	open := 0 // QoS 2 flows awaiting PUBREL
	for len(got) < n || open > 0 {
		h, body := c.Read()
		switch h.Type {
		case packet.PUBLISH:
			p := new(packet.Publish)
			if err := p.Decode(c.Version, h.Flags, body); err != nil {
				t.Fatal(err)
			}
			p.Topic, p.Payload = bytes.Clone(p.Topic), bytes.Clone(p.Payload)
			p.Props.SubscriptionIDs = slices.Clone(p.Props.SubscriptionIDs)
			got = append(got, p)
			if p.QoS == 2 {
				c.Ack(packet.PUBREC, p.PacketID)
				open++
			} else {
				c.Ack(packet.PUBACK, p.PacketID)
			}
		case packet.PUBREL:
			a := new(packet.Ack)
			if err := a.Decode(h.Type, c.Version, h.Flags, body); err != nil {
				t.Fatal(err)
			}
			c.Ack(packet.PUBCOMP, a.PacketID)
			open--
		default:
			t.Fatalf("packet type %d", h.Type)
		}
	}
	return got
}

// TestDurableWindow: a journaled session's queue is bounded in memory by
// the queue limits (a window) and on disk by the journal's budget: 300
// messages to an offline session whose memory queue holds 10 are all
// kept, none dropped, and arrive in order, live and after a restart.
func TestDurableWindow(t *testing.T) {
	for _, restart := range []bool{false, true} {
		t.Run(fmt.Sprint("restart=", restart), func(t *testing.T) {
			dir := t.TempDir()
			lim := broker.Limits{MaxQueued: 10, MaxQueuedBytes: 10 << 10}
			j := openJournal(t, dir)
			s := broker.New(broker.Config{Journal: j, Limits: lim})
			addr := brokertest.Serve(t, s, nil)
			sub, _ := brokertest.V3Dial(t, addr, "sub", false)
			sub.V3Sub("w/#", 1)
			sub.V3Disconnect()
			brokertest.WaitConns(t, s, 0)
			pub, _ := brokertest.V5Dial(t, addr, brokertest.V5Connect("pub", true))
			const n = 300
			for i := range n {
				pub.V5Pub("w/x", 1, uint16(i+1), fmt.Sprint(i))
				if a := pub.ExpectAck(packet.PUBACK); a.Code != packet.Success {
					t.Fatalf("PUBACK %d: %#x", i, byte(a.Code))
				}
			}
			if q := broker.QueuedBytes(s); q > lim.MaxQueuedBytes {
				t.Errorf("%d bytes queued in memory, above the window's %d", q, lim.MaxQueuedBytes)
			}
			if d := s.Stats.MessagesDropped.Load(); d != 0 {
				t.Errorf("%d messages dropped", d)
			}
			if restart {
				s.Close()
				j.Close()
				j = openJournal(t, dir)
				s = broker.New(broker.Config{Journal: j, Limits: lim})
				if _, err := s.RestoreJournal(); err != nil {
					t.Fatal(err)
				}
				addr = brokertest.Serve(t, s, nil)
			}
			sub, _ = brokertest.V3Dial(t, addr, "sub", false)
			for i, m := range sub.V3Collect(n) {
				if string(m.Payload) != fmt.Sprint(i) {
					t.Fatalf("message %d: %q", i, m.Payload)
				}
			}
			testenv.Eventually(t, brokertest.WaitTime, "the journal to retire every message", func() bool {
				return j.Report(false).Messages == 0
			})
		})
	}
}

// TestDropOldestOnDisk: a persistent session attached through a port with
// MaxQueuedDiskBytes keeps at most that much in the journal while it is
// away: every publish is acknowledged (none refused), the oldest queued
// messages make room, and what comes back is the newest, in order.
func TestDropOldestOnDisk(t *testing.T) {
	j := openJournal(t, t.TempDir())
	s := broker.New(broker.Config{Journal: j})
	if _, err := s.RestoreJournal(); err != nil {
		t.Fatal(err)
	}
	const max = 16 << 10
	flow := brokertest.Serve(t, s, &broker.Port{Name: "flow", MaxQueuedDiskBytes: max})
	addr := brokertest.Serve(t, s, nil)
	sub, _ := brokertest.V3Dial(t, flow, "flow", false)
	sub.V3Sub("t/#", 1)
	sub.V3Disconnect()
	brokertest.WaitConns(t, s, 0)

	pub, _ := brokertest.V3Dial(t, addr, "pub", true)
	payload := string(bytes.Repeat([]byte("x"), 1000))
	const n = 100
	for i := range n {
		pub.V3Pub("t/x", 1, false, uint16(i+1), fmt.Sprintf("%03d%s", i, payload)) // waits for its PUBACK
	}
	if got := j.SessionBytes("flow"); got > max {
		t.Errorf("the session holds %d bytes on disk, more than %d", got, max)
	}
	dropped := s.Stats.MessagesDroppedOldest.Load()
	if dropped == 0 || s.Stats.MessagesRefusedDisk.Load() != 0 {
		t.Fatalf("dropped oldest %d, refused %d", dropped, s.Stats.MessagesRefusedDisk.Load())
	}
	sub, _ = brokertest.V3Dial(t, flow, "flow", false)
	got := receiveAll(t, sub, n-int(dropped))
	for i, m := range got {
		if want := fmt.Sprintf("%03d", int(dropped)+i); string(m.Payload[:3]) != want {
			t.Fatalf("message %d: %s, want %s (the newest, in order)", i, m.Payload[:3], want)
		}
	}
	if len(got) < 10 {
		t.Errorf("only %d kept within %d bytes", len(got), max)
	}
}
