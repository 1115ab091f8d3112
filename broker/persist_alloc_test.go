package broker

import (
	"fmt"
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
