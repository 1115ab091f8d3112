package broker

import (
	"sync"
	"sync/atomic"
	"time"
)

// subOpts is what the broker keeps per subscription.
type subOpts struct {
	qos            byte
	noLocal        bool
	retainAsPub    bool
	retainHandling byte
	id             uint32 // subscription identifier, 0 = none
}

// delivery is one message on its way to one session: the granted QoS, the
// retain flag to send and the matching subscription identifiers.
type delivery struct {
	msg    *Message
	qos    byte
	retain bool
	nids   uint8
	ids    [4]uint32
	more   []uint32 // identifiers beyond len(ids); rare
	jid    uint64   // the journal's message id when the delivery is journaled (session.journalDelivery); 0: not
	dseq   uint64   // its place in the journal's queue of the session (journal.Enqueue)
}

func (d *delivery) addID(id uint32) {
	if id == 0 {
		return
	}
	if int(d.nids) < len(d.ids) {
		d.ids[d.nids] = id
		d.nids++
		return
	}
	d.more = append(d.more, id)
}

// appendIDs appends the subscription identifiers to dst.
func (d *delivery) appendIDs(dst []uint32) []uint32 {
	dst = append(dst, d.ids[:d.nids]...)
	return append(dst, d.more...)
}

// Outbound in-flight states.
const (
	awaitAck  = iota // PUBLISH sent: waiting for PUBACK (QoS 1) or PUBREC (QoS 2)
	awaitComp        // PUBREL sent: waiting for PUBCOMP
)

type inflight struct {
	pid   uint16
	state uint8
	d     delivery // d.msg is nil once PUBREC released it
}

// will is a connection's last-will message and its delay.
type will struct {
	msg   *Message
	delay uint32 // seconds (5.0 Will Delay Interval)
}

// session is the state of one client identifier. It outlives connections
// when the client asked for a persistent session. Fields below mu are
// guarded by it; lock order is Server.mu → session.mu → conn.out.mu.
type session struct {
	srv *Server
	id  string
	// owner is the principal the session belongs to (Client.Principal),
	// set when it is created; "" only for a session restored from a
	// record saved before sessions had owners, until a principal claims
	// it (attach, under Server.mu and mu).
	owner  string
	seq    uint64      // orders sessions when merging overlapping matches
	online atomic.Bool // a connection is attached (read without mu by shared-subscription routing)

	mu        sync.Mutex
	c         *conn  // attached connection, nil while offline
	dead      bool   // removed from the server: deliveries are dropped
	expiry    uint32 // session expiry interval in seconds; 0xFFFFFFFF never
	subs      subSet
	subBytes  int64 // charged for subs (filters + SubscriptionOverhead); guarded by mu, kept by chargeSubLocked/uncharge
	inflight  []inflight
	queue     ring
	nextPID   uint16
	inQoS2    []uint16 // inbound QoS 2 packet identifiers awaiting PUBREL
	will      *will
	expTimer  *time.Timer
	willTimer *time.Timer
	dropped   uint64 // messages dropped for this session: queue full, too large, expired

	journaled bool // the journal holds this session (journalLocked)
	// maxDisk: Port.MaxQueuedDiskBytes of the port the session was last
	// attached through (set at attach); 0: none.
	maxDisk int64
	// Deliveries the journal holds beyond the in-memory window (durable.go):
	// how many, and the place of the first in the journal's queue.
	spilled      int
	spillFrom    uint64
	disconnected time.Time // when it went offline; zero while online

	// handler, when set, makes this an in-process subscriber: deliveries
	// call it instead of going to a connection.
	handler func(*Message)
}

// ring is a bounded FIFO of deliveries.
type ring struct {
	buf        []delivery
	head, size int
	bytes      int64 // Message.size of the queued messages; kept by session.pushQueued/popQueued
}

func (r *ring) len() int { return r.size }

// push appends d, growing up to limit; it returns false when full.
func (r *ring) push(d delivery, limit int) bool {
	if r.size == len(r.buf) {
		if len(r.buf) >= limit {
			return false
		}
		n := min(max(2*len(r.buf), 8), limit)
		nb := make([]delivery, n)
		for i := range r.size {
			nb[i] = r.buf[(r.head+i)%len(r.buf)]
		}
		r.buf, r.head = nb, 0
	}
	r.buf[(r.head+r.size)%len(r.buf)] = d
	r.size++
	return true
}

// pop removes and returns the oldest delivery.
func (r *ring) pop() (delivery, bool) {
	if r.size == 0 {
		return delivery{}, false
	}
	d := r.buf[r.head]
	r.buf[r.head] = delivery{}
	r.head = (r.head + 1) % len(r.buf)
	r.size--
	return d, true
}

// allocPID returns a packet identifier not in flight. Callers hold mu and
// have checked that the window is not full.
func (s *session) allocPID() uint16 {
	for {
		s.nextPID++
		if s.nextPID == 0 {
			s.nextPID = 1
		}
		if s.findInflight(s.nextPID) < 0 {
			return s.nextPID
		}
	}
}

func (s *session) findInflight(pid uint16) int {
	for i := range s.inflight {
		if s.inflight[i].pid == pid {
			return i
		}
	}
	return -1
}

// removeInflight deletes entry i keeping order, releases its message and
// retires it in the journal.
func (s *session) removeInflight(i int) {
	s.retire(&s.inflight[i].d)
	if m := s.inflight[i].d.msg; m != nil {
		m.release()
	}
	copy(s.inflight[i:], s.inflight[i+1:])
	s.inflight[len(s.inflight)-1] = inflight{}
	s.inflight = s.inflight[:len(s.inflight)-1]
}

func (s *session) hasInQoS2(pid uint16) bool {
	for _, p := range s.inQoS2 {
		if p == pid {
			return true
		}
	}
	return false
}

func (s *session) removeInQoS2(pid uint16) bool {
	for i, p := range s.inQoS2 {
		if p == pid {
			s.inQoS2[i] = s.inQoS2[len(s.inQoS2)-1]
			s.inQoS2 = s.inQoS2[:len(s.inQoS2)-1]
			return true
		}
	}
	return false
}

// clearLocked releases everything the session holds. Callers hold mu.
func (s *session) clearLocked() {
	for i := range s.inflight {
		if m := s.inflight[i].d.msg; m != nil {
			m.release()
		}
	}
	s.inflight = nil
	s.drainQueue()
	s.spilled, s.spillFrom = 0, 0
	s.inQoS2 = nil
	s.stopTimersLocked()
	if s.will != nil {
		s.will.msg.release()
		s.will = nil
	}
}

// expiryInterval is the session expiry interval as a duration (not for
// expiry 0 or neverExpires). Callers hold s.mu.
func (s *session) expiryInterval() time.Duration { return time.Duration(s.expiry) * time.Second }

// willDelay is how long after the disconnection the will is published:
// its delay, or the session's end if that comes first [MQTT-3.1.3-9].
// Callers hold s.mu; s.will is set.
func (s *session) willDelay() time.Duration {
	return time.Duration(min(s.will.delay, s.expiry)) * time.Second
}

func (s *session) stopTimersLocked() {
	if s.expTimer != nil {
		s.expTimer.Stop()
		s.expTimer = nil
	}
	if s.willTimer != nil {
		s.willTimer.Stop()
		s.willTimer = nil
	}
}
