package broker_test

import (
	"slices"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"edgebroker/broker"
	"edgebroker/broker/brokertest"
)

// TestBurstScavengeGap checks burst.go's bound on scavenges: a burst
// after a quiet time scavenges BurstQuiet after it settles, bursts that
// come every few seconds (anyone on the LAN can connect and disconnect)
// scavenge at most once per BurstMinGap, and the last of them is folded
// into a scavenge at the end of its gap, not lost. It runs in a synctest
// bubble: the minutes pass on the bubble's clock.
func TestBurstScavengeGap(t *testing.T) { synctest.Test(t, testBurstScavengeGap) }

func testBurstScavengeGap(t *testing.T) {
	s := broker.New(broker.Config{})
	var (
		mu sync.Mutex
		at []time.Duration // when each scavenge ran, from start
	)
	start := time.Now()
	broker.SetFreeOSMemory(s, func() {
		mu.Lock()
		at = append(at, time.Since(start))
		mu.Unlock()
	})
	addr := brokertest.ServeMem(t, s, nil)
	// burst connects and disconnects BurstConns clients, all at once on
	// the bubble's clock.
	burst := func() {
		for i := range broker.BurstConns {
			c, _ := brokertest.V3Dial(t, addr, "c"+strconv.Itoa(i), true)
			c.Conn.Close()
		}
		synctest.Wait()
	}
	scavenges := func() []time.Duration {
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		return append([]time.Duration(nil), at...)
	}

	// A restart burst: scavenged once it settles.
	burst()
	time.Sleep(broker.BurstQuiet)
	if got, want := scavenges(), []time.Duration{broker.BurstQuiet}; !slices.Equal(got, want) {
		t.Fatalf("after the first burst: scavenges at %v, want %v", got, want)
	}

	// A burst every 7 s for 2.5 gaps: one scavenge per gap, each at the
	// end of its gap. (7 s: no burst falls on a scavenge's instant, where
	// the two would run in either order.)
	const every = 7 * time.Second
	attack := broker.BurstMinGap*5/2 - broker.BurstQuiet
	for range attack / every {
		time.Sleep(every)
		burst()
	}
	last := time.Since(start) // the last burst, folded into the next gap's scavenge
	want := []time.Duration{broker.BurstQuiet, broker.BurstQuiet + broker.BurstMinGap, broker.BurstQuiet + 2*broker.BurstMinGap}
	if got := scavenges(); !slices.Equal(got, want) {
		t.Fatalf("bursts every %v until %v: scavenges at %v, want %v", every, last, got, want)
	}
	time.Sleep(broker.BurstQuiet + 3*broker.BurstMinGap - time.Since(start))
	want = append(want, broker.BurstQuiet+3*broker.BurstMinGap)
	if got := scavenges(); !slices.Equal(got, want) {
		t.Fatalf("the last burst (at %v) folded: scavenges at %v, want %v", last, got, want)
	}

	// Quiet for a gap, then a burst: scavenged at once again.
	time.Sleep(broker.BurstMinGap)
	b := time.Since(start)
	burst()
	time.Sleep(broker.BurstQuiet)
	want = append(want, b+broker.BurstQuiet)
	if got := scavenges(); !slices.Equal(got, want) {
		t.Fatalf("a burst after a quiet gap (at %v): scavenges at %v, want %v", b, got, want)
	}
}
