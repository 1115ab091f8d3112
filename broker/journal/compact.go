package journal

import (
	"encoding/binary"
	"os"
	"slices"
	"sync"
	"time"
)

// compactLoop reclaims the oldest segment after commits, while there is
// something to reclaim (see the package doc).
func (j *Journal) compactLoop() {
	defer close(j.cmpd)
	for range j.cmpk {
		for j.compactOnce() {
		}
	}
}

// compactOnce deletes or copies the oldest segment if the policy says
// so; true if it did.
func (j *Journal) compactOnce() bool {
	j.mu.Lock()
	if j.err != nil || j.closed || len(j.segs) < 2 {
		j.mu.Unlock()
		return false
	}
	head := j.segs[0]
	disk := int64(len(j.segs)) * j.opts.SegmentSize
	nearFull := int64(len(j.segs)+2)*j.opts.SegmentSize > j.opts.MaxBytes
	dead := head.live == 0
	copyHead := !dead && (disk > 2*j.live+2*j.opts.SegmentSize || nearFull && head.live < j.opts.SegmentSize/2)
	j.mu.Unlock()
	switch {
	case dead:
	case copyHead:
		if !j.copyLive(head) {
			return false
		}
	default:
		return false
	}
	return j.dropHead(head)
}

// copyLive appends the live records of seg again and waits until they
// are durable. It reads the segment a chunk at a time (scanner).
func (j *Journal) copyLive(seg *segment) bool {
	sc := newScanner(seg.f, seg.end)
	var seq uint64
	for sc.off < seg.end {
		off := sc.off
		rec, ok := sc.next()
		if !ok {
			j.log.Error("journal: compaction read", "segment", seg.f.Name(), "offset", off, "err", sc.err)
			return false
		}
		p := pos{seg: seg.n, off: uint32(off), n: uint32(len(rec))}
		j.mu.Lock()
		ok = j.moveLocked(p, rec) // appended as a copy
		seq = j.seq
		j.mu.Unlock()
		if !ok {
			return false
		}
	}
	return j.Wait(seq) == nil
}

// moveLocked appends rec (at p) again if it is live there, and points the
// index at the copy. False if the append failed.
func (j *Journal) moveLocked(p pos, rec []byte) bool {
	body := rec[headerLen:]
	d := decoder{b: body[1:]}
	switch body[0] {
	case kInQoS2:
		if se := j.sessions[string(d.bytes())]; se != nil && len(d.b) == 3 {
			if q, ok := se.inQoS[binary.LittleEndian.Uint16(d.b)]; ok && q == p {
				np, err := j.appendLocked(body[0], func(b []byte) []byte { return append(b, body[1:]...) })
				if err != nil {
					return false
				}
				// appendLocked may have let go of mu: look again.
				if q, ok := se.inQoS[binary.LittleEndian.Uint16(d.b)]; ok && q == p {
					se.inQoS[binary.LittleEndian.Uint16(d.b)] = np
					j.moved(p, np)
				}
			}
		}
		return true
	case kRetain:
		topic := string(d.bytes())
		if q, ok := j.retained[topic]; ok && q == p {
			np, err := j.appendLocked(kRetain, func(b []byte) []byte { return append(b, body[1:]...) })
			if err != nil {
				return false
			}
			if q, ok := j.retained[topic]; ok && q == p {
				j.retained[topic] = np
				j.moved(p, np)
			}
		}
		return true
	}
	if t := j.targetLocked(body); t == nil || *t != p {
		return true // dead
	}
	np, err := j.appendLocked(body[0], func(b []byte) []byte { return append(b, body[1:]...) })
	if err != nil {
		return false
	}
	// appendLocked may have let go of mu (a new segment, backpressure):
	// the record may have died meanwhile, and its index entry been
	// recycled (freeDels, freeMsgs) for another record: look it up again.
	if t := j.targetLocked(body); t != nil && *t == p {
		*t = np
		j.moved(p, np)
	}
	return true
}

// targetLocked returns the index's position field for the record body
// of a message, delivery, sent or session record; nil if the index has
// no such entry. Callers hold mu.
func (j *Journal) targetLocked(body []byte) *pos {
	d := decoder{b: body[1:]}
	switch body[0] {
	case kMsg:
		if me := j.msgs[binary.LittleEndian.Uint64(d.b)]; me != nil {
			return &me.p
		}
	case kEnq, kSent:
		id := binary.LittleEndian.Uint64(d.b)
		d.b = d.b[8:]
		if se := j.sessions[string(d.bytes())]; se != nil {
			if dl := se.dels[id]; dl != nil {
				if body[0] == kEnq {
					return &dl.enq
				}
				return &dl.sent
			}
		}
	case kSession:
		if se := j.sessions[string(d.bytes())]; se != nil {
			return &se.rec
		}
	}
	return nil
}

func (j *Journal) moved(from, to pos) {
	j.markLive(from, -int64(from.n))
	j.markLive(to, int64(to.n))
	j.Stats.BytesCompacted.Add(int64(to.n))
}

// dropHead deletes the oldest segment, now without live records.
func (j *Journal) dropHead(head *segment) bool {
	j.mu.Lock()
	if len(j.segs) < 2 || j.segs[0] != head || head.live != 0 {
		j.mu.Unlock()
		return false
	}
	j.segs = j.segs[1:]
	j.mu.Unlock()
	head.f.Close()
	if err := os.Remove(j.segPath(head.n)); err != nil {
		j.log.Error("journal: remove segment", "err", err)
	}
	if err := syncDir(j.dir); err != nil {
		j.log.Error("journal: sync dir", "err", err)
	}
	j.Stats.SegmentsDeleted.Add(1)
	j.signal(j.kick) // a spare may fit in the budget again
	return true
}

// latencies keeps the last commit latencies for quantiles.
type latencies struct {
	mu   sync.Mutex
	ring [1024]time.Duration
	n    int
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.ring[l.n%len(l.ring)] = d
	l.n++
	l.mu.Unlock()
}

func (l *latencies) quantiles() (p50, p99 time.Duration) {
	l.mu.Lock()
	k := min(l.n, len(l.ring))
	s := slices.Clone(l.ring[:k])
	l.mu.Unlock()
	if k == 0 {
		return 0, 0
	}
	slices.Sort(s)
	return s[k/2], s[min(k-1, k*99/100)]
}
