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
//
// A burst needs no credentials (accepting a socket is enough), so
// anyone on the LAN who opens and closes burstConns sockets a second
// could force a full collection a second. Scavenges are therefore at
// least burstMinGap apart: a burst that settles sooner is folded into
// the next allowed one, which then comes at the end of the gap (or
// burstQuiet after the folded connections, whichever is later), so no
// burst's garbage stays resident for more than about burstMinGap. A
// minute bounds a forced collection to a few milliseconds a minute
// (well under 0.1% of one core) while a real restart burst, the case
// this exists for, comes minutes apart from the one before and still
// scavenges burstQuiet after it settles; the pages a folded burst left
// wait at most a minute, much less than the background scavenger takes.
const (
	burstConns  = 1000
	burstQuiet  = 500 * time.Millisecond
	burstMinGap = time.Minute
)

// burstAcceptedLocked counts an accepted connection toward a burst.
// Callers hold s.mu.
func (s *Server) burstAcceptedLocked() {
	s.burstN++
	if s.burstN < burstConns || s.noScavenge {
		return
	}
	d := max(burstQuiet, s.burstWaitLocked())
	if s.burstT == nil {
		s.burstT = time.AfterFunc(d, s.burstSettled)
		return
	}
	s.burstT.Reset(d)
}

// burstWaitLocked is how long until burstMinGap has passed since the
// last scavenge (0 or less: it has). The gap is real time, as the timer
// that waits for it, not the protocol clock. Callers hold s.mu.
func (s *Server) burstWaitLocked() time.Duration {
	if s.burstLast.IsZero() {
		return 0
	}
	return burstMinGap - time.Since(s.burstLast)
}

// burstSettled runs burstQuiet after the last connection of a burst, and
// no sooner than burstMinGap after the last scavenge.
func (s *Server) burstSettled() {
	s.mu.Lock()
	if s.closed || s.burstN < burstConns { // a Reset raced with this run
		s.mu.Unlock()
		return
	}
	if d := s.burstWaitLocked(); d > 0 { // armed before a run that scavenged: fold into the next
		s.burstT.Reset(d)
		s.mu.Unlock()
		return
	}
	s.burstN = 0
	s.burstLast = time.Now()
	s.mu.Unlock()
	if s.freeOSMemory != nil {
		s.freeOSMemory()
	} else {
		debug.FreeOSMemory()
	}
	s.scavenges.Add(1)
}
