package broker

import (
	"fmt"
	"sync/atomic"
	"testing"

	"edgebroker/broker/packet"
)

// countingPersister counts the calls it gets.
type countingPersister struct{ n atomic.Int64 }

func (p *countingPersister) RetainedChanged(string, *StoredMessage) { p.n.Add(1) }
func (p *countingPersister) SessionChanged(string, *StoredSession)  { p.n.Add(1) }

// TestFanoutPersistingAllocs: with a Persister configured and persistent
// sessions subscribed, routing non-retained messages still allocates
// nothing and never calls the Persister.
func TestFanoutPersistingAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	for _, qos := range []byte{0, 1} {
		t.Run(fmt.Sprintf("qos%d", qos), func(t *testing.T) {
			pub, _, step := fanout(t, packet.V5, qos, 10)
			p := new(countingPersister)
			pub.srv.persist = p
			for range 200 {
				step()
			}
			if got := testing.AllocsPerRun(200, step); got != 0 {
				t.Errorf("allocs per publish = %v, want 0", got)
			}
			if n := p.n.Load(); n != 0 {
				t.Errorf("Persister called %d times for non-retained messages", n)
			}
		})
	}
}
