package broker

import (
	"runtime/debug"
	"time"
)

// After a burst of connections (every device reconnecting when the
// gateway restarts) the heap holds, beside what the connections keep,
// the garbage their CONNECTs left, up to GOGC's worth, and Go's
// background scavenger keeps those pages resident for a long time. Once
// burstConns connections have been accepted and then none for
// burstQuiet, the server collects and returns free memory to the OS,
// once per burst (debug.FreeOSMemory, a full collection: a few
// milliseconds of CPU for thousands of connections). Measured with
// benchcompare's idle scenario (9,000 clients): 2.75 → 2.68 KiB of RSS a
// connection.
const (
	burstConns = 1000
	burstQuiet = 500 * time.Millisecond
)

// burstAcceptedLocked counts an accepted connection toward a burst.
// Callers hold s.mu.
func (s *Server) burstAcceptedLocked() {
	s.burstN++
	if s.burstN < burstConns || s.noScavenge {
		return
	}
	if s.burstT == nil {
		s.burstT = time.AfterFunc(burstQuiet, s.burstSettled)
		return
	}
	s.burstT.Reset(burstQuiet)
}

// burstSettled runs burstQuiet after the last connection of a burst.
func (s *Server) burstSettled() {
	s.mu.Lock()
	if s.closed || s.burstN < burstConns { // a Reset raced with this run
		s.mu.Unlock()
		return
	}
	s.burstN = 0
	s.mu.Unlock()
	debug.FreeOSMemory()
	s.scavenges.Add(1)
}
