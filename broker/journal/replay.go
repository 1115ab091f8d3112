package journal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// DamagedDir is the folder (inside the journal's) where a segment with a
// torn or corrupt record is copied before it is repaired.
const DamagedDir = "damaged"

// replay opens the segments in order and builds the index.
func (j *Journal) replay() error {
	ents, err := os.ReadDir(j.dir)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	var nums []uint32
	for _, e := range ents {
		if n, ok := parseSegName(e.Name()); ok && e.Type().IsRegular() {
			nums = append(nums, n)
		}
	}
	slices.Sort(nums)
	r := replayer{j: j, dels: map[string]map[uint64]*delivery{}, inQoS: map[string]map[uint16]pos{}}
	for i, n := range nums {
		f, err := os.OpenFile(j.segPath(n), os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("journal: %w", err)
		}
		s := &segment{n: n, f: f}
		j.segs = append(j.segs, s)
		j.nextSeg = n + 1
		if err := r.segment(s, i == len(nums)-1); err != nil {
			return err
		}
	}
	r.finish()
	// Trailing segments with no record (preallocated spares) stay: the
	// last one is the active segment, appended to at its end.
	for len(j.segs) > 1 && j.segs[len(j.segs)-1].end == 0 && j.segs[len(j.segs)-2].end == 0 {
		s := j.segs[len(j.segs)-1]
		j.segs = j.segs[:len(j.segs)-1]
		s.f.Close()
		os.Remove(j.segPath(s.n))
	}
	return nil
}

type replayer struct {
	j       *Journal
	dels    map[string]map[uint64]*delivery // by session, then message id
	inQoS   map[string]map[uint16]pos
	sess    map[string]pos
	dropped int
}

// segment reads one segment's records. A record that does not check
// ends it; the rest must be zero (unwritten), or the segment is damaged:
// copied aside and zeroed from there.
func (r *replayer) segment(s *segment, last bool) error {
	st, err := s.f.Stat()
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	size := st.Size()
	sc := newScanner(s.f, size)
	off := int64(0)
	for {
		rec, ok := sc.next()
		if !ok {
			off = sc.off
			break
		}
		body := rec[headerLen:]
		if binary.LittleEndian.Uint32(rec[4:]) != crc32.Checksum(body, crcTable) {
			break
		}
		p := pos{seg: s.n, off: uint32(off), n: uint32(len(rec))}
		if err := r.record(p, body); err != nil {
			r.j.log.Warn("journal: skipping a record that does not decode", "segment", s.f.Name(), "offset", off, "err", err)
		}
		off += int64(len(rec))
	}
	if sc.err != nil {
		return fmt.Errorf("journal: read %s: %w", s.f.Name(), sc.err)
	}
	s.end = off
	zero, err := sc.zeroFrom(off)
	if err != nil {
		return fmt.Errorf("journal: read %s: %w", s.f.Name(), err)
	}
	if !zero {
		if err := r.repair(s, off, size, last); err != nil {
			return err
		}
	}
	return nil
}

func allZero(b []byte) bool {
	return len(bytes.TrimLeft(b, "\x00")) == 0
}

// repair keeps a copy of a damaged segment and zeroes it from off.
func (r *replayer) repair(s *segment, off, size int64, last bool) error {
	j := r.j
	dir := filepath.Join(j.dir, DamagedDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	name := filepath.Join(dir, fmt.Sprintf("%08x.seg.%d", s.n, time.Now().UnixNano()))
	if err := copyFile(name, s.f, size); err != nil {
		return fmt.Errorf("journal: keep the damaged segment: %w", err)
	}
	if _, err := s.f.WriteAt(make([]byte, size-off), off); err != nil {
		return fmt.Errorf("journal: repair %s: %w", s.f.Name(), err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("journal: repair %s: %w", s.f.Name(), err)
	}
	what := "a torn tail (a write cut short)"
	if !last {
		what = "a corrupt record before the end of the log"
	}
	j.log.Warn("journal: repaired "+what+": a copy is kept", "segment", s.f.Name(), "offset", off, "copy", name)
	return nil
}

func (r *replayer) record(p pos, body []byte) error {
	j := r.j
	d := decoder{b: body[1:]}
	switch body[0] {
	case kMsg:
		if len(d.b) < 8 {
			return errors.New("short message record")
		}
		id := binary.LittleEndian.Uint64(d.b)
		j.msgs[id] = &msgEnt{p: p}
		j.nextID = max(j.nextID, id+1)
	case kEnq, kAck, kSent:
		if len(d.b) < 8 {
			return errors.New("short delivery record")
		}
		id := binary.LittleEndian.Uint64(d.b)
		d.b = d.b[8:]
		session := string(d.bytes())
		if d.err != nil {
			return d.err
		}
		m := r.dels[session]
		if m == nil {
			m = map[uint64]*delivery{}
			r.dels[session] = m
		}
		switch body[0] {
		case kEnq:
			dl := m[id]
			if dl == nil {
				dl = &delivery{}
				m[id] = dl
			}
			dl.enq = p
		case kAck:
			delete(m, id)
		case kSent:
			if len(d.b) != 3 {
				return errors.New("bad sent record")
			}
			dl := m[id]
			if dl == nil {
				dl = &delivery{}
				m[id] = dl
			}
			dl.sent, dl.pid, dl.released = p, binary.LittleEndian.Uint16(d.b), d.b[2] == 1
		}
	case kSession, kEnd, kInQoS2:
		session := string(d.bytes())
		if d.err != nil {
			return d.err
		}
		if r.sess == nil {
			r.sess = map[string]pos{}
		}
		switch body[0] {
		case kSession:
			r.sess[session] = p
		case kEnd:
			delete(r.sess, session)
			delete(r.dels, session)
			delete(r.inQoS, session)
		case kInQoS2:
			if len(d.b) != 3 {
				return errors.New("bad inbound QoS 2 record")
			}
			m := r.inQoS[session]
			if m == nil {
				m = map[uint16]pos{}
				r.inQoS[session] = m
			}
			pid := binary.LittleEndian.Uint16(d.b)
			if d.b[2] == 1 {
				m[pid] = p
			} else {
				delete(m, pid)
			}
		}
	case kRetain:
		topic := string(d.bytes())
		if d.err != nil {
			return d.err
		}
		if len(d.b) == 0 {
			delete(j.retained, topic)
		} else {
			j.retained[topic] = p
		}
	default:
		return fmt.Errorf("unknown record kind %d", body[0])
	}
	return nil
}

// finish joins deliveries to sessions and messages and counts the live
// bytes of each segment.
func (r *replayer) finish() {
	j := r.j
	for id, p := range r.sess {
		se := &sessEnt{rec: p, dels: map[uint64]*delivery{}, inQoS: map[uint16]pos{}}
		mids := make([]uint64, 0, len(r.dels[id]))
		for mid := range r.dels[id] {
			mids = append(mids, mid)
		}
		slices.Sort(mids) // message ids were assigned in append order
		for _, mid := range mids {
			dl := r.dels[id][mid]
			me := j.msgs[mid]
			if me == nil || dl.enq.n == 0 {
				r.dropped++
				continue
			}
			me.refs++
			se.add(mid, dl)
			se.bytes += int64(dl.enq.n) + int64(me.p.n)
			j.ndel++
		}
		for pid, q := range r.inQoS[id] {
			se.inQoS[pid] = q
		}
		j.sessions[id] = se
	}
	for id, me := range j.msgs {
		if me.refs == 0 {
			delete(j.msgs, id)
			continue
		}
		j.markLive(me.p, int64(me.p.n))
	}
	for _, se := range j.sessions {
		j.markLive(se.rec, int64(se.rec.n))
		for _, dl := range se.dels {
			j.markLive(dl.enq, int64(dl.enq.n))
			if dl.sent.n > 0 {
				j.markLive(dl.sent, int64(dl.sent.n))
			}
		}
		for _, q := range se.inQoS {
			j.markLive(q, int64(q.n))
		}
	}
	for _, p := range j.retained {
		j.markLive(p, int64(p.n))
	}
	if r.dropped > 0 {
		j.log.Warn("journal: deliveries without their message or session dropped", "count", r.dropped)
	}
}

// copyFile writes the first size bytes of src to a new file name,
// streaming, and syncs it.
func copyFile(name string, src *os.File, size int64) error {
	dst, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(dst, io.NewSectionReader(src, 0, size))
	if err == nil {
		err = dst.Sync()
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	return err
}
