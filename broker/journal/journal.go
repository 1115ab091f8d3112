// Package journal is the broker's write-ahead log: the one place where
// retained messages, persistent sessions and the QoS 1 and 2 messages on
// their way to them become durable. The broker acknowledges a message it
// routed to a persistent session (PUBACK, PUBREC) only after the journal
// reports the record durable; concurrent publishers share one fsync
// (group commit).
//
// # Why a segment log
//
// The log is a folder of preallocated segment files (SegmentSize bytes
// each, fallocate'd so that a full disk shows when a segment is created,
// not halfway through a record). Records are appended in one order;
// each carries its length and a CRC-32C. A message is written once; a
// subscriber's acknowledgement appends a small record that retires it.
// Space is reclaimed a segment at a time from the oldest: a segment whose
// records are all dead is deleted; when the log holds more than twice
// its live bytes, the oldest segment's live records are appended again
// and the segment deleted. Copying only while at least half of the log is
// garbage bounds write amplification at 2×, and nothing rewrites a whole
// queue. buntdb (the state store's engine) keeps every value in memory
// and rewrites the whole file to compact it: right for keys and values,
// wrong for a disk buffer meant to hold more than memory.
//
// Reclaiming only the oldest segment is what keeps the log correct
// without tombstone bookkeeping: a record that kills another (an
// acknowledgement, a session end, a retained delete) always sits after
// the record it kills, so the killed record's segment goes first.
//
// # Replay
//
// Open reads every segment in order and keeps an index of the live
// records' positions (never their bodies): the broker reads the bodies
// it restores with ReadAt. A record that fails its CRC ends the log: if
// the rest of its segment is not zero (a torn write, not the end of the
// data), the segment is copied to damaged/ first and the tail zeroed.
// Because live records can be appended again by compaction, replay does
// not assume that a message precedes its deliveries: deliveries are
// joined to messages once every record was read, and a session's
// deliveries are ordered by message id (assigned in append order).
package journal

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Errors returned by appends.
var (
	// ErrFull: the disk budget (Options.MaxBytes) or the disk has no room
	// for another message.
	ErrFull = errors.New("journal: full")
	// ErrFailed: a write or fsync failed; the journal accepts nothing
	// more until it is opened again.
	ErrFailed = errors.New("journal: failed")
	// ErrTooLarge: a record does not fit in a segment.
	ErrTooLarge = errors.New("journal: record larger than a segment")
	// ErrClosed: Close was called.
	ErrClosed = errors.New("journal: closed")
)

// LockFile is the file in the journal's folder whose flock keeps a second
// process (or a second Open) from appending to the same segments.
const LockFile = "journal.lock"

// Record kinds.
const (
	kMsg     = 1 // id, message body
	kEnq     = 2 // id, session, delivery body
	kAck     = 3 // id, session
	kSent    = 4 // id, session, packet id, released
	kSession = 5 // session, session body
	kEnd     = 6 // session
	kRetain  = 7 // topic, message body (empty: deleted)
	kInQoS2  = 8 // session, packet id, add
)

// header: length of kind+payload (4), CRC-32C of kind+payload (4).
const headerLen = 8

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Options configures a Journal. The zero value is usable.
type Options struct {
	// SegmentSize is the size of one segment file (default 16 MiB).
	SegmentSize int64
	// MaxBytes is the disk budget: segments never take more (default
	// 1 GiB; at least four segments).
	MaxBytes int64
	// MaxDeliveries bounds the deliveries the journal holds (its index
	// costs about IndexBytesPerDelivery of memory each); beyond it
	// Enqueue returns ErrFull. Default: unbounded.
	MaxDeliveries int
	Logger        *slog.Logger // nil: discard
}

// IndexBytesPerDelivery is about what the journal's index costs in memory
// for each delivery it holds (map entry, order entry, positions).
const IndexBytesPerDelivery = 128

// pos is where a record is: segment number, offset, length with header.
type pos struct {
	seg uint32
	off uint32
	n   uint32
}

// delivery is a message on its way to one session.
type delivery struct {
	dseq     uint64 // its place in the session's queue (orderEnt)
	enq      pos    // its kEnq record
	sent     pos    // its latest kSent record; n == 0: none
	pid      uint16
	released bool
}

type msgEnt struct {
	p    pos
	refs int32 // live deliveries
}

type sessEnt struct {
	rec   pos // its latest kSession record; n == 0: none (replay only)
	dels  map[uint64]*delivery
	inQoS map[uint16]pos
	// order lists the deliveries in queue order (dseq increasing); an
	// entry whose delivery was retired is skipped, and trimmed once it
	// reaches the front.
	order    []orderEnt
	nextDseq uint64
	// bytes: its delivery records and the message records they refer
	// to (a message shared with other sessions counts for each).
	bytes int64
}

type orderEnt struct {
	dseq, id uint64
}

// add appends a new delivery to the queue order.
func (se *sessEnt) add(id uint64, d *delivery) {
	se.nextDseq++
	d.dseq = se.nextDseq
	se.dels[id] = d
	se.order = append(se.order, orderEnt{dseq: d.dseq, id: id})
}

// maxKeptOrder is the largest order array a drained session keeps for
// its next deliveries (16 bytes an entry); a larger one, left by a
// backlog, is let go.
const maxKeptOrder = 1024

// trim drops retired entries from the front of order.
func (se *sessEnt) trim() {
	k := 0
	for k < len(se.order) {
		e := se.order[k]
		if d := se.dels[e.id]; d != nil && d.dseq == e.dseq {
			break
		}
		k++
	}
	switch {
	case k == len(se.order) && cap(se.order) <= maxKeptOrder:
		se.order = se.order[:0] // drained: the next add reuses the array
	case k == len(se.order):
		se.order = nil
	case k > 0:
		se.order = se.order[k:]
	}
}

type segment struct {
	n    uint32
	f    *os.File
	live int64 // bytes of live records; guarded by Journal.mu
	end  int64 // bytes appended (in memory) ; guarded by Journal.mu
	// raw is f's, for raw commits (rawCommitLimit): its Control keeps the
	// descriptor open during the call. Made by the first raw commit to
	// the segment; guarded by Journal.cmu.
	raw syscall.RawConn
}

// Journal is an open journal. Appends are safe for concurrent use; each
// returns a sequence number that Wait or Notify turn into durability.
type Journal struct {
	dir  string
	lock *os.File // holds the flock on LockFile until Close
	opts Options
	log  *slog.Logger

	mu       sync.Mutex // guards the fields below (index, segments, pending)
	segs     []*segment // oldest first; the last is active
	spare    *segment   // preallocated, not yet in segs; nil: none
	nextSeg  uint32
	nextID   uint64
	msgs     map[uint64]*msgEnt
	sessions map[string]*sessEnt
	retained map[string]pos
	live     int64 // bytes of live records
	ndel     int   // deliveries held
	seq      uint64
	pending  []chunk
	pendingN int64
	err      error // ErrFailed wrapped with the cause, once failed
	closed   bool
	full     bool // the last spare allocation failed
	lastTry  time.Time
	// later: the record being appended is AckLater's (no commit of its
	// own); laterArmed: a kickLater is scheduled.
	later, laterArmed bool
	// deferred: the record being appended asks for a commit but does not
	// wake the committer: its appender commits (Commit) or waits later
	// (EnqueueDeferred).
	deferred bool
	want     uint64     // the largest seq a commit is asked for
	space    *sync.Cond // signalled when pending bytes drained (backpressure)

	// cmu is held by whoever commits: the committer goroutine, or an
	// appender that commits on its own goroutine (Commit). batchSpare is
	// the chunk slice the last commit emptied, reused; guarded by cmu.
	cmu        sync.Mutex
	batchSpare []chunk
	// lastCommit is how long the last commit's write and fdatasync took
	// (rawCommitLimit); guarded by cmu. rawOK: there is more than one P
	// (with one, a raw call would stop every goroutine for the disk's
	// time); set by Open.
	lastCommit time.Duration
	rawOK      bool
	// A raw system call's arguments and result (rawCall), guarded by
	// cmu; rawWriteFn and rawSyncFn are bound once by Open, so a raw
	// commit allocates nothing.
	rawB       []byte
	rawOff     int64
	rawErr     unix.Errno
	rawWriteFn func(fd uintptr)
	rawSyncFn  func(fd uintptr)

	kick chan struct{}
	done chan struct{}
	cmpk chan struct{}
	cmpd chan struct{}

	wmu     sync.Mutex
	waiters []waiter
	cond    *sync.Cond // on wmu: durable advanced or failed

	durable atomic.Uint64
	Stats   Stats

	// freeDels and freeMsgs keep index entries the index let go of
	// (retireLocked, dropIfUnusedLocked) for the next enqueue, at most
	// maxFree each, so that the durable path allocates nothing per
	// message. Whoever lets go of mu between finding an entry and
	// writing to it looks it up again (moveLocked, Sent): the entry may
	// have been recycled meanwhile. Guarded by mu.
	freeDels []*delivery
	freeMsgs []*msgEnt
}

// Stats counts what the journal did; read with the atomics' Load.
type Stats struct {
	Fsyncs          atomic.Int64
	RawCommits      atomic.Int64 // commits whose system calls were raw (rawCommitLimit)
	BytesAppended   atomic.Int64 // by the broker
	BytesCompacted  atomic.Int64 // appended again by compaction
	SegmentsDeleted atomic.Int64
	Refused         atomic.Int64 // messages refused: ErrFull or ErrTooLarge
	commitNanos     latencies
}

type chunk struct {
	seg *segment
	off int64
	b   []byte
}

type waiter struct {
	seq uint64
	w   Waiter
}

// Waiter is told when the records up to a sequence number are durable,
// or that they never will be (err wraps ErrFailed). It is called from
// the journal's committer: it must be quick and must not append.
type Waiter interface {
	Durable(seq uint64, err error)
}

const maxPending = 8 << 20 // bytes appended but not yet written

// maxKeptChunk is the largest chunk buffer a commit keeps for the next
// batch: a burst's buffer is not held for good.
const maxKeptChunk = 1 << 20

// Open opens (creating if needed) the journal in dir and replays it.
func Open(dir string, opts Options) (*Journal, error) {
	if opts.SegmentSize <= 0 {
		opts.SegmentSize = 16 << 20
	}
	if opts.SegmentSize > 1<<31 {
		return nil, fmt.Errorf("journal: segment size %d above 2 GiB", opts.SegmentSize)
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 1 << 30
	}
	if opts.MaxBytes < 4*opts.SegmentSize {
		opts.MaxBytes = 4 * opts.SegmentSize
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, LockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("journal: %s is in use by another process: %w", dir, err)
	}
	j := &Journal{dir: dir, lock: lock, opts: opts, log: log, msgs: map[uint64]*msgEnt{}, sessions: map[string]*sessEnt{},
		retained: map[string]pos{}, nextID: 1,
		kick: make(chan struct{}, 1), done: make(chan struct{}), cmpk: make(chan struct{}, 1), cmpd: make(chan struct{})}
	j.rawWriteFn, j.rawSyncFn = j.rawWrite, j.rawSync
	j.rawOK = runtime.GOMAXPROCS(0) > 1
	j.space = sync.NewCond(&j.mu)
	j.cond = sync.NewCond(&j.wmu)
	if err := j.replay(); err != nil {
		j.closeFiles()
		return nil, err
	}
	if len(j.segs) == 0 {
		if err := j.allocSpare(); err != nil {
			j.closeFiles()
			return nil, err
		}
		j.segs = append(j.segs, j.spare)
		j.spare = nil
	}
	go j.commitLoop()
	go j.compactLoop()
	return j, nil
}

func (j *Journal) segPath(n uint32) string {
	return filepath.Join(j.dir, fmt.Sprintf("%08x.seg", n))
}

// allocSpare creates and preallocates the next segment file. Callers
// own the journal (Open) or are the committer.
func (j *Journal) allocSpare() error {
	j.mu.Lock()
	n := j.nextSeg
	j.nextSeg++
	j.mu.Unlock()
	path := j.segPath(n)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if err := unix.Fallocate(int(f.Fd()), 0, 0, j.opts.SegmentSize); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("journal: preallocate %s: %w", path, err)
	}
	err = f.Sync()
	if err == nil {
		err = syncDir(j.dir)
	}
	if err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("journal: %w", err)
	}
	j.mu.Lock()
	j.spare = &segment{n: n, f: f}
	j.mu.Unlock()
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// --- appending ---------------------------------------------------------

// Encoder appends a record body: a message's encoding.
type Encoder interface {
	AppendJournal(dst []byte) []byte
}

// appendLocked frames and places one record; it returns its position.
// Callers hold mu and have checked room (roomLocked).
func (j *Journal) appendLocked(kind byte, fill func([]byte) []byte) (pos, error) {
	if j.err != nil {
		return pos{}, j.err
	}
	if j.closed {
		return pos{}, ErrClosed
	}
	for j.pendingN > maxPending && j.err == nil && !j.closed {
		j.want = j.seq
		j.signal(j.kick)
		j.space.Wait()
	}
	a := j.segs[len(j.segs)-1]
	c := j.tailChunkLocked(a)
	start := len(c.b)
	c.b = append(c.b, 0, 0, 0, 0, 0, 0, 0, 0, kind)
	c.b = fill(c.b)
	n := len(c.b) - start
	if int64(n) > j.opts.SegmentSize {
		c.b = c.b[:start]
		return pos{}, ErrTooLarge
	}
	if a.end+int64(n) > j.opts.SegmentSize {
		// Roll over to the spare segment and move the record there.
		rec := append([]byte(nil), c.b[start:]...)
		c.b = c.b[:start]
		if len(c.b) == 0 {
			j.pending = j.pending[:len(j.pending)-1]
		}
		if j.spare == nil {
			j.mu.Unlock()
			err := j.allocSpare()
			j.mu.Lock()
			if err != nil {
				j.log.Error("journal: no room for a record", "err", err)
				return pos{}, ErrFull
			}
			if j.spare == nil { // taken by another appender meanwhile
				return j.appendLocked(kind, func(b []byte) []byte { return append(b, rec[headerLen+1:]...) })
			}
		}
		j.segs = append(j.segs, j.spare)
		j.spare = nil
		j.signal(j.kick)
		a = j.segs[len(j.segs)-1]
		c = j.tailChunkLocked(a)
		start = len(c.b)
		c.b = append(c.b, rec...)
	}
	body := c.b[start+headerLen:]
	binary.LittleEndian.PutUint32(c.b[start:], uint32(len(body)))
	binary.LittleEndian.PutUint32(c.b[start+4:], crc32.Checksum(body, crcTable))
	p := pos{seg: a.n, off: uint32(a.end), n: uint32(n)}
	a.end += int64(n)
	j.pendingN += int64(n)
	j.seq++
	switch {
	case j.deferred:
		j.want = j.seq
	case !j.later:
		j.want = j.seq
		j.signal(j.kick)
	case !j.laterArmed:
		j.laterArmed = true
		time.AfterFunc(laterDelay, j.kickLater)
	}
	return p, nil
}

// laterDelay bounds how long a record appended by AckLater may wait for
// a commit that another record asks for.
const laterDelay = 100 * time.Millisecond

// kickLater commits what AckLater appended if nothing else did meanwhile.
func (j *Journal) kickLater() {
	j.mu.Lock()
	j.laterArmed = false
	j.want = j.seq
	j.mu.Unlock()
	j.signal(j.kick)
}

// commitUpTo asks the committer for a commit that covers seq (it may be
// AckLater's, which asks for none), in the same critical section as the
// check that the journal still commits (failureLocked).
func (j *Journal) commitUpTo(seq uint64) error {
	j.mu.Lock()
	err := j.failureLocked()
	j.want = max(j.want, min(seq, j.seq))
	j.mu.Unlock()
	j.signal(j.kick)
	return err
}

func (j *Journal) tailChunkLocked(a *segment) *chunk {
	if k := len(j.pending); k > 0 && j.pending[k-1].seg == a {
		return &j.pending[k-1]
	}
	if k := len(j.pending); k < cap(j.pending) {
		// The slot keeps the buffer of a chunk committed earlier
		// (commitOnce empties, not drops, them): appending reuses it.
		j.pending = j.pending[:k+1]
		c := &j.pending[k]
		c.seg, c.off, c.b = a, a.end, c.b[:0]
		return c
	}
	j.pending = append(j.pending, chunk{seg: a, off: a.end})
	return &j.pending[len(j.pending)-1]
}

func (j *Journal) signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// roomLocked reports whether a message record of about n bytes may be
// appended: the budget leaves room, and a spare segment exists or the
// active one keeps a reserve for the records that retire messages.
func (j *Journal) roomLocked(n int) error {
	if j.err != nil {
		return j.err
	}
	if int64(n)+headerLen+64 > j.opts.SegmentSize/2 {
		return ErrTooLarge
	}
	a := j.segs[len(j.segs)-1]
	reserve := j.opts.SegmentSize / 8
	if j.spare != nil || a.end+int64(n)+reserve <= j.opts.SegmentSize {
		return nil
	}
	j.signal(j.cmpk) // reclaiming may make room
	j.signal(j.kick) // and so may a spare
	return ErrFull
}

func (j *Journal) markLive(p pos, delta int64) {
	for _, s := range j.segs {
		if s.n == p.seg {
			s.live += delta
			j.live += delta
			return
		}
	}
}

// Enqueue makes a message durable for one session: the message record
// (once per message: *id is 0, or an id the journal no longer holds,
// until then; it is read and set under the journal's lock) and a
// delivery record with the delivery body. It returns the message's id,
// the delivery's place in the session's queue (for Load) and the
// sequence number to wait for.
func (j *Journal) Enqueue(id *uint64, m Encoder, session string, body []byte) (mid, dseq, seq uint64, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.enqueueLocked(id, m, session, body)
}

// EnqueueDeferred is Enqueue without waking the committer: the caller
// promises to call Commit, Wait or Notify for seq once it has appended a
// batch (a connection's reader, after the packets of one read), so that
// one commit on its own goroutine covers them: at a few thousand messages
// a second that saves waking the committer for each.
func (j *Journal) EnqueueDeferred(id *uint64, m Encoder, session string, body []byte) (mid, dseq, seq uint64, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.deferred = true
	defer func() { j.deferred = false }()
	return j.enqueueLocked(id, m, session, body)
}

func (j *Journal) enqueueLocked(id *uint64, m Encoder, session string, body []byte) (mid, dseq, seq uint64, err error) {
	se := j.sessions[session]
	if se == nil {
		return 0, 0, 0, fmt.Errorf("journal: enqueue for session %q without a session record", session)
	}
	if j.opts.MaxDeliveries > 0 && j.ndel >= j.opts.MaxDeliveries {
		j.Stats.Refused.Add(1)
		return 0, 0, 0, ErrFull
	}
	if *id == 0 || j.msgs[*id] == nil {
		if err := j.roomLocked(0); err != nil {
			j.Stats.Refused.Add(1)
			return 0, 0, 0, err
		}
		nid := j.nextID
		j.nextID++ // taken before appendLocked, which may let go of mu to make a segment
		p, err := j.appendLocked(kMsg, func(b []byte) []byte { return m.AppendJournal(binary.LittleEndian.AppendUint64(b, nid)) })
		if err != nil {
			if errors.Is(err, ErrTooLarge) || errors.Is(err, ErrFull) {
				j.Stats.Refused.Add(1)
			}
			return 0, 0, 0, err
		}
		*id = nid
		me := take(&j.freeMsgs)
		me.p = p
		j.msgs[nid] = me
		j.markLive(p, int64(p.n))
		j.Stats.BytesAppended.Add(int64(p.n))
	}
	mid = *id
	if d := se.dels[mid]; d != nil {
		return mid, d.dseq, j.seq, nil
	}
	p, err := j.appendLocked(kEnq, func(b []byte) []byte {
		b = appendID(b, mid, session)
		return append(b, body...)
	})
	if err != nil {
		j.dropIfUnusedLocked(mid)
		return 0, 0, 0, err
	}
	j.msgs[mid].refs++
	d := take(&j.freeDels)
	d.enq = p
	se.add(mid, d)
	se.bytes += int64(p.n) + int64(j.msgs[mid].p.n)
	j.ndel++
	j.markLive(p, int64(p.n))
	j.Stats.BytesAppended.Add(int64(p.n))
	return mid, d.dseq, j.seq, nil
}

// Load returns up to max deliveries of a session, in queue order, from
// the one at dseq from on, whose messages total at most maxBytes (at
// least one is returned if any exists). Their slices are the caller's.
// It reads from the disk: the broker calls it to refill a session's
// in-memory window from what only the journal holds.
func (j *Journal) Load(session string, from uint64, max int, maxBytes int64) ([]Delivery, error) {
	j.mu.Lock()
	se := j.sessions[session]
	var snaps []delSnap
	if se != nil {
		k, _ := slices.BinarySearchFunc(se.order, from, func(e orderEnt, t uint64) int { return cmp.Compare(e.dseq, t) })
		var bytes int64
		for ; k < len(se.order) && len(snaps) < max; k++ {
			e := se.order[k]
			d := se.dels[e.id]
			me := j.msgs[e.id]
			if d == nil || d.dseq != e.dseq || me == nil {
				continue
			}
			if bytes += int64(me.p.n); bytes > maxBytes && len(snaps) > 0 {
				break
			}
			snaps = append(snaps, delSnap{id: e.id, dseq: e.dseq, enq: d.enq, msg: me.p, pid: d.pid, released: d.released})
		}
	}
	seq := j.seq
	j.mu.Unlock()
	if err := j.Wait(seq); err != nil {
		return nil, err
	}
	out := make([]Delivery, 0, len(snaps))
	for _, dl := range snaps {
		d, err := j.readDelivery(dl)
		if err != nil {
			return out, err
		}
		out = append(out, d)
	}
	return out, nil
}

// readDelivery reads a delivery's records.
func (j *Journal) readDelivery(dl delSnap) (Delivery, error) {
	eb, err := j.readRecordLocking(dl.enq, nil)
	if err != nil {
		return Delivery{}, err
	}
	dd := decoder{b: eb[1+8:]}
	dd.bytes()
	mb, err := j.readRecordLocking(dl.msg, nil)
	if err != nil {
		return Delivery{}, err
	}
	return Delivery{ID: dl.id, Dseq: dl.dseq, Body: dd.b, Message: mb[1+8:], PacketID: dl.pid, Released: dl.released}, nil
}

// dropIfUnusedLocked forgets a message record no delivery refers to.
func (j *Journal) dropIfUnusedLocked(id uint64) {
	if me := j.msgs[id]; me != nil && me.refs == 0 {
		j.markLive(me.p, -int64(me.p.n))
		delete(j.msgs, id)
		recycle(&j.freeMsgs, me)
	}
}

// maxFree bounds each of the journal's free lists of index entries.
const maxFree = 1024

// take returns a zero index entry, recycled from free if one is there.
// Callers hold Journal.mu.
func take[T any](free *[]*T) *T {
	if n := len(*free); n > 0 {
		e := (*free)[n-1]
		*free = (*free)[:n-1]
		return e
	}
	return new(T)
}

// recycle keeps e, which the index no longer holds, zeroed in free (at
// most maxFree). Callers hold Journal.mu.
func recycle[T any](free *[]*T, e *T) {
	if len(*free) < maxFree {
		var zero T
		*e = zero
		*free = append(*free, e)
	}
}

func appendID(b []byte, id uint64, session string) []byte {
	b = binary.LittleEndian.AppendUint64(b, id)
	b = binary.AppendUvarint(b, uint64(len(session)))
	return append(b, session...)
}

// Ack retires a message's delivery to a session: delivered and
// acknowledged, dropped or expired.
func (j *Journal) Ack(session string, id uint64) uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	se := j.sessions[session]
	if se == nil || se.dels[id] == nil {
		return j.seq
	}
	j.controlLocked(kAck, func(b []byte) []byte { return appendID(b, id, session) })
	j.retireLocked(se, id)
	return j.seq
}

// SessionBytes returns the bytes a session's deliveries hold in the
// journal: their delivery records and the message records they refer to.
func (j *Journal) SessionBytes(session string) int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	if se := j.sessions[session]; se != nil {
		return se.bytes
	}
	return 0
}

// AckLater is Ack without a commit of its own: the record goes to disk
// with the next commit another record asks for, or within laterDelay
// (one fsync fewer per message at low rates). A power cut before then
// delivers the message again after the restart: a duplicate, which QoS 1
// allows and QoS 2 does not (retire QoS 2 deliveries with Ack).
func (j *Journal) AckLater(session string, id uint64) uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	se := j.sessions[session]
	if se == nil || se.dels[id] == nil {
		return j.seq
	}
	j.later = true
	j.controlLocked(kAck, func(b []byte) []byte { return appendID(b, id, session) })
	j.later = false
	j.retireLocked(se, id)
	return j.seq
}

func (j *Journal) retireLocked(se *sessEnt, id uint64) {
	d := se.dels[id]
	delete(se.dels, id)
	j.ndel--
	se.bytes -= int64(d.enq.n)
	se.trim()
	j.markLive(d.enq, -int64(d.enq.n))
	if d.sent.n > 0 {
		j.markLive(d.sent, -int64(d.sent.n))
	}
	if me := j.msgs[id]; me != nil {
		se.bytes -= int64(me.p.n)
		if me.refs--; me.refs <= 0 {
			j.markLive(me.p, -int64(me.p.n))
			delete(j.msgs, id)
			recycle(&j.freeMsgs, me)
		}
	}
	recycle(&j.freeDels, d)
}

// controlLocked appends a record that does not add a message; a failure
// (a full disk) is logged: the in-memory state is still right, and a
// restart may then deliver a message twice or restore an older session
// state.
func (j *Journal) controlLocked(kind byte, fill func([]byte) []byte) (pos, bool) {
	p, err := j.appendLocked(kind, fill)
	if err != nil {
		if !errors.Is(err, ErrFailed) && !errors.Is(err, ErrClosed) {
			j.log.Error("journal: a record was not written", "kind", kind, "err", err)
		}
		return pos{}, false
	}
	j.Stats.BytesAppended.Add(int64(p.n))
	return p, true
}

// Sent records the packet identifier of a QoS 2 delivery in flight, and
// whether its PUBREL was sent (released), so that a restart resends it
// with the same identifier.
func (j *Journal) Sent(session string, id uint64, pid uint16, released bool) uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	se := j.sessions[session]
	if se == nil || se.dels[id] == nil {
		return j.seq
	}
	p, ok := j.controlLocked(kSent, func(b []byte) []byte {
		b = appendID(b, id, session)
		b = binary.LittleEndian.AppendUint16(b, pid)
		return append(b, b2u(released))
	})
	// controlLocked may have let go of mu: the delivery may be gone.
	if d := se.dels[id]; ok && d != nil && j.sessions[session] == se {
		if d.sent.n > 0 {
			j.markLive(d.sent, -int64(d.sent.n))
		}
		d.sent, d.pid, d.released = p, pid, released
		j.markLive(p, int64(p.n))
	}
	return j.seq
}

func b2u(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// Session records a persistent session's state (its body is the
// broker's encoding), creating it in the journal.
func (j *Journal) Session(session string, body []byte) uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	se := j.sessions[session]
	isNew := se == nil
	if isNew {
		se = &sessEnt{dels: map[uint64]*delivery{}, inQoS: map[uint16]pos{}}
	}
	p, ok := j.controlLocked(kSession, func(b []byte) []byte {
		b = binary.AppendUvarint(b, uint64(len(session)))
		b = append(b, session...)
		return append(b, body...)
	})
	if ok {
		if isNew {
			// Only a session on disk takes deliveries (Enqueue): a
			// message acknowledged for one that is not would be lost.
			j.sessions[session] = se
		}
		if se.rec.n > 0 {
			j.markLive(se.rec, -int64(se.rec.n))
		}
		se.rec = p
		j.markLive(p, int64(p.n))
	}
	return j.seq
}

// End removes a session with its deliveries.
func (j *Journal) End(session string) uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	se := j.sessions[session]
	if se == nil {
		return j.seq
	}
	j.controlLocked(kEnd, func(b []byte) []byte {
		b = binary.AppendUvarint(b, uint64(len(session)))
		return append(b, session...)
	})
	for id := range se.dels {
		j.retireLocked(se, id)
	}
	for _, p := range se.inQoS {
		j.markLive(p, -int64(p.n))
	}
	if se.rec.n > 0 {
		j.markLive(se.rec, -int64(se.rec.n))
	}
	delete(j.sessions, session)
	return j.seq
}

// InQoS2 records an inbound QoS 2 packet identifier of a session
// received (add) or released by PUBREL (!add).
func (j *Journal) InQoS2(session string, pid uint16, add bool) uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	se := j.sessions[session]
	if se == nil {
		return j.seq
	}
	old, had := se.inQoS[pid]
	if had == add {
		return j.seq
	}
	p, ok := j.controlLocked(kInQoS2, func(b []byte) []byte {
		b = binary.AppendUvarint(b, uint64(len(session)))
		b = append(b, session...)
		b = binary.LittleEndian.AppendUint16(b, pid)
		return append(b, b2u(add))
	})
	if had {
		j.markLive(old, -int64(old.n))
		delete(se.inQoS, pid)
	}
	if add && ok {
		se.inQoS[pid] = p
		j.markLive(p, int64(p.n))
	}
	return j.seq
}

// Retain records the retained message of topic; m nil deletes it.
func (j *Journal) Retain(topic []byte, m Encoder) (uint64, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	old, had := j.retained[string(topic)]
	if m == nil && !had {
		return j.seq, nil
	}
	if m != nil {
		if err := j.roomLocked(0); err != nil {
			j.Stats.Refused.Add(1)
			return 0, err
		}
	}
	fill := func(b []byte) []byte {
		b = binary.AppendUvarint(b, uint64(len(topic)))
		b = append(b, topic...)
		if m != nil {
			b = m.AppendJournal(b)
		}
		return b
	}
	var p pos
	if m != nil {
		var err error
		if p, err = j.appendLocked(kRetain, fill); err != nil {
			return 0, err
		}
		j.Stats.BytesAppended.Add(int64(p.n))
	} else {
		// A delete that does not reach the disk (controlLocked logs it):
		// the index forgets the topic anyway.
		j.controlLocked(kRetain, fill)
	}
	if had {
		j.markLive(old, -int64(old.n))
		delete(j.retained, string(topic))
	}
	if m != nil {
		j.retained[string(topic)] = p
		j.markLive(p, int64(p.n))
	}
	return j.seq, nil
}

// --- durability ----------------------------------------------------------

// Seq returns the sequence number of the last append.
func (j *Journal) Seq() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.seq
}

// Durable returns the sequence number up to which records are durable.
func (j *Journal) Durable() uint64 { return j.durable.Load() }

// Wait blocks until the records up to seq are durable; an error wrapping
// ErrFailed (or ErrClosed) if they never will be.
func (j *Journal) Wait(seq uint64) error {
	j.wmu.Lock()
	defer j.wmu.Unlock()
	for j.durable.Load() < seq {
		if err := j.commitUpTo(seq); err != nil {
			return err
		}
		j.cond.Wait()
	}
	return nil
}

// failureLocked is why nothing more will become durable: the journal
// failed or is closed with nothing pending; nil if it goes on. Callers
// hold mu.
func (j *Journal) failureLocked() error {
	if j.err != nil {
		return j.err
	}
	if j.closed && j.pendingN == 0 {
		return ErrClosed
	}
	return nil
}

// Notify calls w.Durable once the records up to seq are durable (at
// once, from this goroutine, if they are already).
func (j *Journal) Notify(seq uint64, w Waiter) {
	if j.NotifyDeferred(seq, w) {
		if err := j.commitUpTo(seq); err != nil {
			j.wake(err)
		}
	}
}

// NotifyDeferred is Notify without asking for a commit: the caller
// commits (Commit) after it, as EnqueueDeferred's callers do. It reports
// whether w waits (false: it was told at once).
func (j *Journal) NotifyDeferred(seq uint64, w Waiter) bool {
	if d := j.durable.Load(); d >= seq {
		w.Durable(d, nil)
		return false
	}
	j.wmu.Lock()
	if j.durable.Load() >= seq {
		j.wmu.Unlock()
		w.Durable(j.durable.Load(), nil)
		return false
	}
	j.waiters = append(j.waiters, waiter{seq: seq, w: w})
	j.wmu.Unlock()
	return true
}

// Commit makes what was appended durable on the caller's goroutine,
// waiters told, unless a commit is running: then it asks the committer
// for the next one and returns at once. Callers hold no lock the
// waiters' Durable takes.
func (j *Journal) Commit() {
	if !j.cmu.TryLock() {
		j.signal(j.kick)
		return
	}
	loop := j.commitOnce()
	j.cmu.Unlock()
	if loop {
		j.signal(j.kick)
	}
}

// wake tells the waiters whose records are durable (all of them, with
// the error, when err is not nil).
func (j *Journal) wake(err error) {
	d := j.durable.Load()
	j.wmu.Lock()
	var ready []waiter
	keep := j.waiters[:0]
	for _, w := range j.waiters {
		if err != nil || w.seq <= d {
			ready = append(ready, w)
		} else {
			keep = append(keep, w)
		}
	}
	clear(j.waiters[len(keep):])
	j.waiters = keep
	j.cond.Broadcast()
	j.wmu.Unlock()
	for _, w := range ready {
		w.w.Durable(d, err)
	}
}

func (j *Journal) commitLoop() {
	defer close(j.done)
	for {
		<-j.kick
		j.cmu.Lock()
		j.commitOnce()
		j.mu.Lock()
		needSpare := j.spare == nil && j.err == nil && !j.closed
		closed, empty := j.closed, len(j.pending) == 0
		j.mu.Unlock()
		j.cmu.Unlock()
		if needSpare { // only the committer makes spares: no lock needed
			j.trySpare()
		}
		if closed {
			if empty {
				return
			}
			j.signal(j.kick)
		}
	}
}

// commitOnce writes and fsyncs what is pending if a record asks for a
// commit (or the journal is closing), then tells the waiters. It reports
// whether the committer has work left: a spare segment to make. Callers
// hold cmu.
func (j *Journal) commitOnce() bool {
	j.mu.Lock()
	var batch []chunk
	seq := j.durable.Load()
	if j.want > seq || j.closed {
		// Commit only when a record asks for it: what AckLater
		// appended waits for the next such record (or kickLater).
		batch = j.pending
		j.pending = j.batchSpare[:0]
		seq = j.seq
	}
	j.mu.Unlock()
	if len(batch) > 0 {
		start := time.Now()
		err := j.write(batch, j.rawOK && j.lastCommit < rawCommitLimit)
		j.lastCommit = time.Since(start)
		j.mu.Lock()
		for i := range batch {
			j.pendingN -= int64(len(batch[i].b))
		}
		if err != nil && j.err == nil {
			j.err = fmt.Errorf("%w: %v", ErrFailed, err)
			j.log.Error("journal: write failed: accepting nothing more until restarted", "err", err)
		}
		failed := j.err
		j.space.Broadcast()
		j.mu.Unlock()
		if failed == nil {
			j.durable.Store(seq)
			j.Stats.commitNanos.add(j.lastCommit)
		}
		j.wake(failed)
		j.signal(j.cmpk)
	}
	for i := range batch {
		b := batch[i].b[:0]
		if cap(b) > maxKeptChunk {
			b = nil
		}
		batch[i] = chunk{b: b}
	}
	j.batchSpare = batch[:0]
	j.mu.Lock()
	needSpare := j.spare == nil && j.err == nil && !j.closed
	j.mu.Unlock()
	return needSpare
}

// trySpare preallocates the next segment if the budget allows; at most
// once a second after a failure (a full disk).
func (j *Journal) trySpare() {
	j.mu.Lock()
	segs := int64(len(j.segs)) + 1
	recent := j.full && time.Since(j.lastTry) < time.Second
	j.mu.Unlock()
	if segs*j.opts.SegmentSize > j.opts.MaxBytes || recent {
		return
	}
	err := j.allocSpare()
	j.mu.Lock()
	j.lastTry = time.Now()
	if err != nil && !j.full {
		j.log.Error("journal: cannot preallocate a segment: messages for persistent sessions are refused until there is room", "err", err)
	}
	if err == nil && j.full {
		j.log.Info("journal: room again: accepting messages")
	}
	j.full = err != nil
	j.mu.Unlock()
}

// rawCommitLimit decides how a commit makes its system calls. After a
// commit that took less (write and fdatasync: a fast disk), the next one
// makes them raw (syscall.RawSyscall: the goroutine keeps its P, as if
// the call were computation); after a slower one, ordinary blocking
// calls, which let the runtime hand the P to another thread while the
// disk works.
//
// Why: an ordinary system call that blocks more than 20 µs has the
// runtime's monitor thread (sysmon) take its P and wake another thread
// to run it, the committer then finds its P gone and sleeps until one is
// free, and sysmon, having found work, polls every 20 µs for the next
// millisecond. With commits back to back (durable publishers waiting for
// their PUBACKs) that is the broker's largest cost after the disk: raw
// calls measured 0.55 → 0.30 context switches and 30 → 25 CPU-s per
// million durable messages at saturation, 210 → 150 at 2,000 msg/s (64
// and 1 publishers; tools/benchcompare). The price: a P stays busy for
// the length of the call, and a stop-the-world (GC) waits for it; the
// limit keeps both to about a millisecond, and a slow disk (an SD card,
// whose fsyncs take several) makes blocking calls, where the hand-off
// costs little beside the disk's own time. With a single P (GOMAXPROCS
// 1) every commit makes blocking calls: a raw one would stop every
// other goroutine for the disk's time.
const rawCommitLimit = time.Millisecond

// write writes the batch's chunks and fdatasyncs their segments, with raw
// system calls if raw (rawCommitLimit).
func (j *Journal) write(batch []chunk, raw bool) error {
	var synced []*segment
	for _, c := range batch {
		if len(c.b) == 0 {
			continue
		}
		if err := j.pwrite(c.seg, c.b, c.off, raw); err != nil {
			return err
		}
		if !slices.Contains(synced, c.seg) {
			synced = append(synced, c.seg)
		}
	}
	for _, s := range synced {
		if err := j.fdatasync(s, raw); err != nil {
			return fmt.Errorf("fdatasync %s: %w", s.f.Name(), err)
		}
		j.Stats.Fsyncs.Add(1)
	}
	if raw {
		j.Stats.RawCommits.Add(1)
	}
	return nil
}

// pwrite writes all of b at off in s: with raw system calls if raw
// (rawCommitLimit), else with WriteAt. Callers hold cmu.
func (j *Journal) pwrite(s *segment, b []byte, off int64, raw bool) error {
	if !raw {
		_, err := s.f.WriteAt(b, off)
		return err
	}
	j.rawB, j.rawOff = b, off
	err := j.rawCall(s, j.rawWriteFn)
	j.rawB = nil
	if err != nil {
		return &os.PathError{Op: "write", Path: s.f.Name(), Err: err}
	}
	return nil
}

// fdatasync flushes s's data to the disk: with a raw system call if raw
// (rawCommitLimit). Callers hold cmu.
func (j *Journal) fdatasync(s *segment, raw bool) error {
	if !raw {
		return unix.Fdatasync(int(s.f.Fd()))
	}
	return j.rawCall(s, j.rawSyncFn)
}

// rawCall runs fn on s's descriptor, kept open meanwhile (a segment
// closed under it fails the call instead of letting it reach a reused
// descriptor), and returns the system call's error.
func (j *Journal) rawCall(s *segment, fn func(fd uintptr)) error {
	if s.raw == nil {
		rc, err := s.f.SyscallConn()
		if err != nil {
			return err
		}
		s.raw = rc
	}
	j.rawErr = 0
	if err := s.raw.Control(fn); err != nil {
		return os.ErrClosed // Control fails only for a closed file
	}
	if j.rawErr != 0 {
		return j.rawErr
	}
	return nil
}

// rawWrite is pwrite's raw callback: it writes all of rawB at rawOff.
func (j *Journal) rawWrite(fd uintptr) {
	for len(j.rawB) > 0 {
		n, _, e := unix.RawSyscall6(unix.SYS_PWRITE64, fd, uintptr(unsafe.Pointer(&j.rawB[0])), uintptr(len(j.rawB)), uintptr(j.rawOff), 0, 0)
		switch {
		case e == unix.EINTR:
			continue
		case e != 0:
			j.rawErr = e
			return
		case n == 0:
			j.rawErr = unix.EIO // a regular file takes what it is given or fails
			return
		}
		j.rawB, j.rawOff = j.rawB[n:], j.rawOff+int64(n)
	}
}

// rawSync is fdatasync's raw callback.
func (j *Journal) rawSync(fd uintptr) {
	for {
		_, _, e := unix.RawSyscall(unix.SYS_FDATASYNC, fd, 0, 0)
		if e != unix.EINTR {
			j.rawErr = e
			return
		}
	}
}

// Close writes what is pending, fsyncs it and closes the files.
func (j *Journal) Close() error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return nil
	}
	j.closed = true
	j.space.Broadcast()
	j.mu.Unlock()
	j.signal(j.kick)
	<-j.done
	j.cmu.Lock() // an appender's Commit finishes (it finds nothing more to write)
	defer j.cmu.Unlock()
	close(j.cmpk)
	<-j.cmpd
	j.wake(ErrClosed)
	j.mu.Lock()
	err := j.err
	j.mu.Unlock()
	j.closeFiles()
	return err
}

func (j *Journal) closeFiles() {
	defer j.lock.Close()
	for _, s := range j.segs {
		s.f.Close()
	}
	if j.spare != nil {
		j.spare.f.Close()
	}
}

// --- reading -------------------------------------------------------------

// readAt reads and checks the record at p in f.
func readAt(f *os.File, p pos, buf []byte) ([]byte, error) {
	if f == nil {
		return nil, fmt.Errorf("journal: segment %d is gone", p.seg)
	}
	buf = slices.Grow(buf[:0], int(p.n))[:p.n]
	if _, err := f.ReadAt(buf, int64(p.off)); err != nil {
		return nil, fmt.Errorf("journal: read %s at %d: %w", f.Name(), p.off, err)
	}
	body := buf[headerLen:]
	if binary.LittleEndian.Uint32(buf) != uint32(len(body)) || binary.LittleEndian.Uint32(buf[4:]) != crc32.Checksum(body, crcTable) {
		return nil, fmt.Errorf("journal: %s at %d: bad record", f.Name(), p.off)
	}
	return body, nil
}

// Retained is a retained message as restored.
type Retained struct {
	Topic []byte
	Body  []byte // the message's encoding (Encoder)
}

// Delivery is a message on its way to a restored session.
type Delivery struct {
	ID       uint64
	Dseq     uint64 // its place in the session's queue (Load)
	Body     []byte // the delivery body given to Enqueue
	Message  []byte // the message's encoding
	PacketID uint16 // of a QoS 2 delivery in flight; 0: none
	Released bool   // its PUBREL was sent
}

// Session is a session as restored.
type Session struct {
	ID         string
	Body       []byte
	InQoS2     []uint16
	Deliveries []Delivery // in queue order (EachSession)
	Queued     int        // how many deliveries it has (Sessions)
}

// EachRetained hands every retained message to fn, in topic order. Its
// slices are valid only during the call. It reads what was durable when
// it was called; the broker may go on appending meanwhile (but a
// compaction running meanwhile can make it fail).
func (j *Journal) EachRetained(fn func(*Retained) error) error {
	j.mu.Lock()
	topics := make([]string, 0, len(j.retained))
	at := make(map[string]pos, len(j.retained))
	for t, p := range j.retained {
		topics = append(topics, t)
		at[t] = p
	}
	seq := j.seq
	j.mu.Unlock()
	if err := j.Wait(seq); err != nil {
		return err
	}
	sort.Strings(topics)
	var buf []byte
	for _, t := range topics {
		body, err := j.readRecordLocking(at[t], buf)
		if err != nil {
			return err
		}
		buf = body[:0]
		d := decoder{b: body[1:]}
		topic := d.bytes()
		if d.err != nil {
			return d.err
		}
		if err := fn(&Retained{Topic: topic, Body: d.b}); err != nil {
			return err
		}
	}
	return nil
}

// Sessions hands every session to fn without its deliveries (Queued
// says how many it has; Load reads them), in id order.
func (j *Journal) Sessions(fn func(*Session) error) error {
	j.mu.Lock()
	snaps := make([]sessionSnap, 0, len(j.sessions))
	for id, se := range j.sessions {
		sn := sessionSnap{id: id, rec: se.rec, queued: len(se.dels)}
		for pid := range se.inQoS {
			sn.inQoS = append(sn.inQoS, pid)
		}
		snaps = append(snaps, sn)
	}
	seq := j.seq
	j.mu.Unlock()
	if err := j.Wait(seq); err != nil {
		return err
	}
	slices.SortFunc(snaps, func(a, b sessionSnap) int { return strings.Compare(a.id, b.id) })
	for i := range snaps {
		sn := &snaps[i]
		body, err := j.readRecordLocking(sn.rec, nil)
		if err != nil {
			return err
		}
		d := decoder{b: body[1:]}
		d.bytes()
		slices.Sort(sn.inQoS)
		if err := fn(&Session{ID: sn.id, Body: d.b, InQoS2: sn.inQoS, Queued: sn.queued}); err != nil {
			return err
		}
	}
	return nil
}

// sessionSnap is what Sessions reads of one session under the lock.
type sessionSnap struct {
	id     string
	rec    pos
	queued int
	inQoS  []uint16
}

type delSnap struct {
	id, dseq uint64
	enq, msg pos
	pid      uint16
	released bool
}

// EachSession hands every session with its deliveries to fn, one session
// at a time, in id order. Its slices are valid only during the call. Like
// EachRetained, it reads what was durable when it was called.
func (j *Journal) EachSession(fn func(*Session) error) error {
	return j.Sessions(func(s *Session) error {
		if s.Queued > 0 {
			ds, err := j.Load(s.ID, 0, s.Queued, math.MaxInt64)
			if err != nil {
				return err
			}
			s.Deliveries = ds
		}
		return fn(s)
	})
}

// readRecordLocking is readRecord finding the segment under mu.
func (j *Journal) readRecordLocking(p pos, buf []byte) ([]byte, error) {
	j.mu.Lock()
	var f *os.File
	for _, s := range j.segs {
		if s.n == p.seg {
			f = s.f
		}
	}
	j.mu.Unlock()
	return readAt(f, p, buf)
}

// Report is what the journal holds, for status and metrics.
type Report struct {
	Segments   int
	DiskBytes  int64 // preallocated segment bytes
	LiveBytes  int64
	MaxBytes   int64
	Messages   int
	Sessions   int
	Retained   int
	Full       bool
	Failed     bool
	Fsyncs     int64
	Appended   int64
	Compacted  int64
	Refused    int64
	CommitP50  time.Duration
	CommitP99  time.Duration
	PerSession map[string]SessionUsage
}

// SessionUsage is one session's deliveries on disk.
type SessionUsage struct {
	Messages int   `json:"messages"`
	Bytes    int64 `json:"bytes"` // its delivery records and the message records they refer to
}

// Report returns the journal's figures; perSession adds each session's.
func (j *Journal) Report(perSession bool) Report {
	j.mu.Lock()
	r := Report{Segments: len(j.segs), DiskBytes: int64(len(j.segs)) * j.opts.SegmentSize, LiveBytes: j.live,
		MaxBytes: j.opts.MaxBytes, Messages: len(j.msgs), Sessions: len(j.sessions), Retained: len(j.retained),
		Full: j.full && j.spare == nil, Failed: j.err != nil}
	if j.spare != nil {
		r.DiskBytes += j.opts.SegmentSize
	}
	if perSession {
		r.PerSession = make(map[string]SessionUsage, len(j.sessions))
		for id, se := range j.sessions {
			r.PerSession[id] = SessionUsage{Messages: len(se.dels), Bytes: se.bytes}
		}
	}
	j.mu.Unlock()
	r.Fsyncs, r.Appended, r.Compacted, r.Refused = j.Stats.Fsyncs.Load(), j.Stats.BytesAppended.Load(),
		j.Stats.BytesCompacted.Load(), j.Stats.Refused.Load()
	r.CommitP50, r.CommitP99 = j.Stats.commitNanos.quantiles()
	return r
}

// --- helpers -------------------------------------------------------------

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) bytes() []byte {
	n, k := binary.Uvarint(d.b)
	if k <= 0 || n > uint64(len(d.b)-k) {
		d.err = errors.New("journal: bad record")
		d.b = nil
		return nil
	}
	s := d.b[k : k+int(n)]
	d.b = d.b[k+int(n):]
	return s
}

func parseSegName(name string) (uint32, bool) {
	hex, ok := strings.CutSuffix(name, ".seg")
	if !ok || len(hex) != 8 {
		return 0, false
	}
	n, err := strconv.ParseUint(hex, 16, 32)
	return uint32(n), err == nil
}
