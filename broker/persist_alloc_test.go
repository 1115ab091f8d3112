package broker

import (
	"fmt"
	"runtime"
	"testing"

	"edgebroker/broker/journal"
	"edgebroker/broker/packet"
)

// TestFanoutJournalAllocs: with a journal configured, routing messages to
// sessions without an expiry (clean sessions) still allocates nothing
// and never touches the disk.
func TestFanoutJournalAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	for _, qos := range []byte{0, 1} {
		t.Run(fmt.Sprintf("qos%d", qos), func(t *testing.T) {
			pub, _, step := fanout(t, packet.V5, qos, 10)
			j, err := journal.Open(t.TempDir(), journal.Options{SegmentSize: 1 << 20})
			if err != nil {
				t.Fatal(err)
			}
			defer j.Close()
			pub.srv.jr = j
			for range 200 {
				step()
			}
			if got := testing.AllocsPerRun(200, step); got != 0 {
				t.Errorf("allocs per publish = %v, want 0", got)
			}
			if n := j.Seq(); n != 0 {
				t.Errorf("%d journal records for messages to clean sessions", n)
			}
		})
	}
}

// TestDurableAllocs: a QoS 1 message to a persistent session goes to the
// journal (message and delivery records, the commit, the subscriber's
// acknowledgement retiring it) without an allocation in steady state.
func TestDurableAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	for _, v := range []byte{packet.V311, packet.V5} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			j, err := journal.Open(t.TempDir(), journal.Options{SegmentSize: 1 << 20})
			if err != nil {
				t.Fatal(err)
			}
			defer j.Close()
			s := New(Config{Limits: Limits{MaxInflight: 16}, Journal: j})
			pub := fakeClient(t, s, "pub", v)
			sub := fakeClient(t, s, "sub", v) // persistent: fakeClient's sessions never expire
			sub.subscribe(&packet.Subscription{Filter: []byte("sensors/+/temp"), QoS: 1}, 1)
			h, body := publishBytes(v, 1)
			pub.rbuf = make([]byte, len(body))
			ack := packet.Ack{Type: packet.PUBACK}
			step := func() {
				buf := pub.rbuf[:len(body)]
				copy(buf, body)
				if err := pub.handle(h, buf); err != nil {
					t.Fatal(err)
				}
				pub.commitJournal()
				if err := j.Wait(j.Seq()); err != nil {
					t.Fatal(err)
				}
				for sub.pendingBytes() > 0 {
					runtime.Gosched()
				}
				sub.sess.mu.Lock()
				pid := sub.sess.inflight[0].pid
				sub.sess.mu.Unlock()
				ack.PacketID = pid
				if err := sub.handleAck(&ack); err != nil {
					t.Fatal(err)
				}
			}
			for range 500 {
				step()
			}
			before := j.Stats.BytesAppended.Load()
			if got := testing.AllocsPerRun(500, step); got != 0 {
				t.Errorf("allocs per durable publish = %v, want 0", got)
			}
			if j.Stats.BytesAppended.Load() == before {
				t.Fatal("nothing was journaled: the session is not persistent")
			}
		})
	}
}
