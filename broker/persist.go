package broker

import (
	"errors"
	"fmt"
	"time"

	"edgebroker/broker/packet"
)

// The Stored types are the broker's saved state in a form other packages
// can hold: the journal's records encode them (persistcodec.go), and a
// Restorer loads them (RestoreJournal, or an import of state saved by
// earlier versions).

// StoredMessage is an application message as it is saved: a retained
// message, or one queued or in flight for a session.
type StoredMessage struct {
	Topic   []byte
	Payload []byte
	QoS     byte
	// Props holds the 5.0 properties that travel with a message: those
	// of the broker's travelling list (each marked present in
	// Props.Present: payload format, content type, response topic,
	// correlation data) and user properties. Others are not saved.
	Props packet.Properties
	// Expires is when the message expires (its Message Expiry Interval
	// counted from its arrival); zero means never.
	Expires time.Time
}

// StoredSubscription is one subscription of a saved session.
type StoredSubscription struct {
	Filter            string
	QoS               byte
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte
	ID                uint32 // subscription identifier; 0: none
}

// StoredDelivery is a message on its way to a saved session.
type StoredDelivery struct {
	// PacketID is the packet identifier of a message in flight; 0 for a
	// queued message.
	PacketID uint16
	// Released marks an outgoing QoS 2 message past PUBREC: its PUBREL
	// was sent and PUBCOMP has not arrived. Message is then empty.
	Released bool
	QoS      byte     // the granted QoS the message is sent with
	Retain   bool     // the retain flag it is sent with
	SubIDs   []uint32 // the matching subscription identifiers
	Message  StoredMessage

	// JournalID is the message's id in the journal when RestoreJournal
	// read it from there; 0 otherwise (it is then written to the journal).
	JournalID uint64

	// JournalPlace is its place in the journal's queue of the session
	// (RestoreJournal); 0 otherwise.
	JournalPlace uint64
}

// StoredSession is a session as it is saved. The journal's session record
// holds the session itself (no Inflight, Queue or InboundQoS2: those are
// records of their own); a Restorer takes them all.
type StoredSession struct {
	ID string
	// Owner is the principal the session belongs to (Client.Principal).
	// Empty in records saved before sessions had owners: the first
	// principal to connect with ID after the restart claims the session.
	Owner  string
	Expiry uint32 // session expiry interval in seconds; 0xFFFFFFFF never
	// Disconnected is when the session went offline; zero if it was
	// online when saved (Restore then counts the expiry from its own
	// time).
	Disconnected  time.Time
	Subscriptions []StoredSubscription
	Inflight      []StoredDelivery // in send order
	Queue         []StoredDelivery // oldest first
	InboundQoS2   []uint16         // packet identifiers of QoS 2 messages received, PUBREL not yet
	// Will is the will message of the session's connection, waiting for
	// the connection to end or, offline, for its delay; nil: none.
	Will *StoredWill
}

// StoredWill is a saved will message.
type StoredWill struct {
	Message StoredMessage // its Expires is zero: the expiry counts from the will's publication
	Retain  bool
	Delay   uint32 // will delay interval in seconds
	Expiry  uint32 // message expiry interval in seconds; 0: none
}

// storedMessage copies m into a StoredMessage.
func storedMessage(m *Message) StoredMessage {
	sm := StoredMessage{QoS: m.QoS}
	a := arena{b: make([]byte, 0, len(m.Topic)+len(m.Payload)+travellingLen(&m.Props)), nilEmpty: true}
	sm.Topic = a.keep(m.Topic)
	sm.Payload = a.keep(m.Payload)
	copyTravelling(&sm.Props, &m.Props, a)
	if m.Expiry > 0 {
		sm.Expires = time.Unix(0, m.Received).Add(time.Duration(m.Expiry) * time.Second)
	}
	return sm
}

// isSys reports whether topic is under $SYS/.
func isSys(topic []byte) bool { return len(topic) >= 5 && string(topic[:5]) == "$SYS/" }

// restoreMessage makes a pooled Message of sm, or returns nil if it has
// expired at now. Its expiry keeps counting down from sm.Expires.
func (s *Server) restoreMessage(sm *StoredMessage, retain bool, now time.Time) *Message {
	var expiry uint32
	if !sm.Expires.IsZero() {
		left := sm.Expires.Sub(now)
		if left <= 0 {
			return nil
		}
		secs := (left + time.Second - 1) / time.Second // rounded up
		expiry = uint32(min(secs, 0xFFFFFFFF))
	}
	// newMessage copies the travelling properties; the expiry is
	// counted from sm.Expires instead.
	p := packet.Publish{Topic: sm.Topic, Payload: sm.Payload, QoS: sm.QoS, Retain: retain, Props: sm.Props}
	p.Props.Clear(packet.PropMessageExpiry)
	m := s.newMessage(&p, now, nil)
	if expiry > 0 {
		// Received is set so that the interval left runs out at Expires.
		m.Expiry = expiry
		m.Received = sm.Expires.UnixNano() - int64(expiry)*int64(time.Second)
	}
	return m
}

// journalChanged is journalLocked taking the lock: the sequence number
// to wait for before answering (SUBACK, UNSUBACK).
func (ss *session) journalChanged() uint64 {
	if ss.srv.jr == nil {
		return 0
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.journalLocked()
}

// snapshotLocked is the session's own state (no messages). Callers hold
// ss.mu.
func (ss *session) snapshotLocked() *StoredSession {
	st := &StoredSession{ID: ss.id, Owner: ss.owner, Expiry: ss.expiry, Disconnected: ss.disconnected}
	if ss.subs.len() > 0 {
		st.Subscriptions = make([]StoredSubscription, 0, ss.subs.len())
	}
	for _, e := range ss.subs.all() {
		o := e.opts
		st.Subscriptions = append(st.Subscriptions, StoredSubscription{Filter: e.filter, QoS: o.qos, NoLocal: o.noLocal,
			RetainAsPublished: o.retainAsPub, RetainHandling: o.retainHandling, ID: o.id})
	}
	return st
}

// Restore loads saved state: an import of what an earlier version's store
// held (RestoreJournal loads the journal). With a journal, what it loads
// is written to the journal. Call it once, before the server serves. Retained messages and queued messages whose
// expiry passed are dropped, the others keep counting down; a session
// whose expiry passed while the broker was down is not restored (one
// that was online when saved gets its whole expiry from now). Restored
// sessions are offline: a client reconnecting without clean start finds
// its subscriptions (session present), and messages published in the
// meantime are queued for it.
//
// What the limits of the memory budget leave no room for (retained
// messages, sessions, queued messages) is not loaded, but not deleted
// either: the error then wraps ErrOverBudget and says how much.
//
// Entries that are not valid (a bad topic or filter, QoS above 2) are
// skipped and listed in the error; everything else is restored.
//
// Restore needs every entry in memory at once; a Restorer takes them one
// by one.
func (s *Server) Restore(retained []StoredMessage, sessions []StoredSession) error {
	r, err := s.NewRestorer()
	if err != nil {
		return err
	}
	var errs []error
	for i := range retained {
		if err := r.Retained(&retained[i]); err != nil {
			errs = append(errs, err)
		}
	}
	for i := range sessions {
		if err := r.Session(&sessions[i]); err != nil {
			errs = append(errs, err)
		}
	}
	r.Finish()
	return errors.Join(append(errs, r.Err())...)
}

// A Restorer loads saved state one entry at a time, as Restore does, so
// that a store can stream it (see NewRestorer); Finish ends it. Its counters say what
// was loaded and what the limits left stored but not loaded. It is not
// safe for concurrent use.
type Restorer struct {
	s   *Server
	now time.Time

	RetainedLoaded, SessionsLoaded int // loaded; owned by the Restorer
	// Skipped by the memory budget's limits (still stored): retained
	// messages, sessions, and queued messages and subscriptions of restored
	// sessions. Owned by the Restorer.
	SkippedRetained, SkippedSessions, SkippedQueued int

	fromJournal bool       // the entries come from the journal (RestoreJournal): what is dropped is retired there
	wills       []*session // restored sessions with a will, armed by Finish
}

// NewRestorer returns a Restorer; an error if the server already started.
// Call it once, before the server serves.
func (s *Server) NewRestorer() (*Restorer, error) {
	s.mu.Lock()
	busy := s.closed || len(s.conns) > 0 || len(s.sessions) > 0
	s.mu.Unlock()
	if busy {
		return nil, errors.New("broker: Restore after the server started")
	}
	return &Restorer{s: s, now: s.now()}, nil
}

// Retained restores one retained message; an error if it is not valid.
func (r *Restorer) Retained(sm *StoredMessage) error {
	loaded, skipped, err := r.s.restoreRetained(sm, r.now, r.fromJournal)
	switch {
	case loaded:
		r.RetainedLoaded++
	case skipped:
		r.SkippedRetained++
	}
	return err
}

// Session restores one session; an error if it is not valid.
func (r *Restorer) Session(st *StoredSession) error {
	if st.Expiry != 0 && r.s.nPersist.Load() >= int64(r.s.lim.MaxSessions) && !expired(st, r.now) {
		r.SkippedSessions++ // an expired one is deleted below, as usual
		return nil
	}
	ss, skipped, err := r.s.restoreSession(st, r.now, r.fromJournal)
	r.SkippedQueued += skipped
	if ss != nil { // nil: not valid, or expired
		r.SessionsLoaded++
	}
	if ss != nil && ss.will != nil {
		r.wills = append(r.wills, ss)
	}
	return err
}

// Finish arms the timers of the restored sessions' wills, now that every
// session that may subscribe to them is back. A will whose delay passed
// while the broker was down is published at once.
func (r *Restorer) Finish() {
	for _, ss := range r.wills {
		ss.mu.Lock()
		if ss.will != nil && ss.c == nil && !ss.dead {
			left := ss.disconnected.Add(ss.willDelay()).Sub(r.now)
			ss.willTimer = time.AfterFunc(max(left, 0), func() { r.s.fireWill(ss) })
		}
		ss.mu.Unlock()
	}
	r.wills = nil
}

// Err reports what the limits skipped, wrapping ErrOverBudget; nil if
// nothing.
func (r *Restorer) Err() error {
	if r.SkippedRetained == 0 && r.SkippedSessions == 0 && r.SkippedQueued == 0 {
		return nil
	}
	return fmt.Errorf("%w: not loaded (still stored): %d retained messages, %d sessions, %d queued messages and subscriptions",
		ErrOverBudget, r.SkippedRetained, r.SkippedSessions, r.SkippedQueued)
}

// forgetRetained deletes a dropped retained message from the journal if
// it came from there.
func (s *Server) forgetRetained(topic []byte, fromJournal bool) {
	if s.jr != nil && fromJournal {
		s.jr.Retain(topic, nil)
	}
}

// restoreRetained restores sm (loaded). It is not loaded when it is not
// valid (an error) or expired (both dropped), or when the retained limits
// leave no room (skipped: it stays stored).
func (s *Server) restoreRetained(sm *StoredMessage, now time.Time, fromJournal bool) (loaded, skipped bool, err error) {
	if err := s.checkStored(sm); err != nil {
		s.forgetRetained(sm.Topic, fromJournal)
		return false, false, fmt.Errorf("broker: retained message %q: %w", sm.Topic, err)
	}
	m := s.restoreMessage(sm, true, now)
	if m == nil || len(m.Payload) == 0 {
		if m != nil {
			m.release()
		}
		s.forgetRetained(sm.Topic, fromJournal)
		return false, false, nil
	}
	s.retMu.Lock()
	if !s.retainRoomLocked(m) {
		s.retMu.Unlock()
		m.release()
		return false, true, nil
	}
	if s.jr != nil && !fromJournal { // an import: the journal keeps it from now on
		if _, err := s.jr.Retain(m.Topic, m); err != nil {
			s.retMu.Unlock()
			m.release()
			return false, false, fmt.Errorf("broker: retained message %q: %w", sm.Topic, err)
		}
	}
	old, had := s.retained.Set(m.Topic, m)
	s.retBytes += m.size()
	if had {
		s.retBytes -= old.size()
	}
	s.retMu.Unlock()
	if had {
		old.release()
	}
	return true, false, nil
}

func (s *Server) checkStored(sm *StoredMessage) error {
	if sm.QoS > 2 {
		return fmt.Errorf("QoS %d", sm.QoS)
	}
	return s.tlim.ValidName(sm.Topic)
}

// restoreSession restores st and returns it with how many of its
// messages the queue limits left out (they stay in the journal).
func (s *Server) restoreSession(st *StoredSession, now time.Time, fromJournal bool) (*session, int, error) {
	ss, skipped, err := s.newRestored(st, now, fromJournal)
	if err != nil || ss == nil {
		if s.jr != nil && fromJournal {
			s.jr.End(st.ID)
		}
		return nil, 0, err
	}
	for i, e := range ss.subs.all() {
		s.subMu.Lock()
		s.subs.Subscribe([]byte(e.filter), ss, e.opts)
		if f := s.subs.Filter([]byte(e.filter)); f == e.filter {
			ss.subs.intern(i, f) // the session shares the tree's copy
		}
		s.subMu.Unlock()
	}
	s.mu.Lock()
	if old := s.sessions[ss.id]; old != nil { // a duplicate: the last wins
		old.mu.Lock()
		s.endSessionLocked(old)
		old.mu.Unlock()
	}
	s.sessions[ss.id] = ss
	s.nPersist.Add(1) // st.Expiry != 0 (newRestored)
	s.mu.Unlock()
	ss.mu.Lock()
	switch {
	case s.jr == nil:
	case !fromJournal:
		// An import: the journal keeps the session and its messages
		// from now on.
		ss.journalLocked()
		ss.journalRestoredLocked()
	case st.Disconnected.IsZero():
		// Online when saved: its expiry counts from now, and keeps
		// counting from now if the broker stops again uncleanly.
		ss.journaled = true
		ss.journalLocked()
	default:
		ss.journaled = true
	}
	if ss.expiry != neverExpires {
		left := ss.disconnected.Add(time.Duration(ss.expiry) * time.Second).Sub(now)
		ss.expTimer = time.AfterFunc(left, func() { s.expire(ss) })
	}
	ss.mu.Unlock()
	return ss, skipped, nil
}

// newRestored builds the offline session st describes, or returns nil if
// its expiry passed. It also returns how many subscriptions and queued
// messages the limits left out.
func (s *Server) newRestored(st *StoredSession, now time.Time, fromJournal bool) (*session, int, error) {
	if st.ID == "" || len(st.ID) > s.lim.MaxClientIDLength {
		return nil, 0, fmt.Errorf("broker: session %q: bad client identifier", st.ID)
	}
	if st.Expiry == 0 || expired(st, now) {
		return nil, 0, nil
	}
	disc := st.Disconnected
	if disc.IsZero() || disc.After(now) {
		disc = now
	}
	s.mu.Lock()
	s.seq++
	ss := &session{srv: s, id: st.ID, owner: st.Owner, seq: s.seq,
		expiry: st.Expiry, disconnected: disc}
	s.mu.Unlock()
	skipped := 0 // subscriptions and messages the limits leave out
	for _, sub := range st.Subscriptions {
		if err := s.tlim.ValidFilter([]byte(sub.Filter)); err != nil || sub.QoS > 2 || sub.RetainHandling > 2 {
			s.subBytes.Add(-ss.subBytes) // the session is dropped
			return nil, 0, fmt.Errorf("broker: session %q: bad subscription %q", st.ID, sub.Filter)
		}
		if ss.subs.has(sub.Filter) {
			continue
		}
		if !ss.chargeSubLocked(sub.Filter) {
			skipped++
			continue
		}
		ss.subs.set(sub.Filter, subOpts{qos: sub.QoS, noLocal: sub.NoLocal, retainAsPub: sub.RetainAsPublished,
			retainHandling: sub.RetainHandling, id: sub.ID})
	}
	for i := range st.Inflight {
		sd := &st.Inflight[i]
		if sd.PacketID == 0 || ss.findInflight(sd.PacketID) >= 0 {
			continue
		}
		if sd.Released {
			ss.inflight = append(ss.inflight, inflight{pid: sd.PacketID, state: awaitComp, d: delivery{qos: 2, jid: sd.JournalID}})
			continue
		}
		if d, ok := s.restoreDelivery(sd, now); ok {
			ss.inflight = append(ss.inflight, inflight{pid: sd.PacketID, d: d})
		} else {
			ss.retire(&delivery{jid: sd.JournalID})
		}
	}
	for i := range st.Queue {
		// The size is checked before the message is built. What does not
		// fit stays in the journal: spilled, behind the window, when it
		// came from there.
		size := int64(len(st.Queue[i].Message.Topic) + len(st.Queue[i].Message.Payload))
		if fromJournal && ss.spilled > 0 {
			ss.spilled++
			continue
		}
		if !ss.queueRoom(size) {
			if fromJournal && st.Queue[i].JournalPlace != 0 {
				ss.spillFrom, ss.spilled = st.Queue[i].JournalPlace, 1
				continue
			}
			skipped++
			continue
		}
		d, ok := s.restoreDelivery(&st.Queue[i], now)
		switch {
		case !ok:
			ss.retire(&delivery{jid: st.Queue[i].JournalID}) // expired or invalid
		case !ss.queueRoom(d.msg.size()): // its properties did not fit
			d.msg.release()
			if fromJournal && st.Queue[i].JournalPlace != 0 {
				ss.spillFrom, ss.spilled = st.Queue[i].JournalPlace, 1
			} else {
				skipped++
			}
		default:
			d.dseq = st.Queue[i].JournalPlace
			ss.pushQueued(d)
		}
	}
	if w := st.Will; w != nil && s.checkStored(&w.Message) == nil {
		w.Message.Expires = time.Time{}
		if m := s.restoreMessage(&w.Message, w.Retain, now); m != nil {
			m.Expiry = w.Expiry
			ss.will = &will{msg: m, delay: w.Delay}
		}
	}
	for _, pid := range st.InboundQoS2 {
		if pid != 0 && !ss.hasInQoS2(pid) && len(ss.inQoS2) < int(s.lim.MaxInflight) {
			ss.inQoS2 = append(ss.inQoS2, pid)
		}
	}
	return ss, skipped, nil
}

// expired reports whether a saved session's expiry passed at now (one
// saved while online counts from now).
func expired(st *StoredSession, now time.Time) bool {
	disc := st.Disconnected
	if disc.IsZero() || disc.After(now) {
		disc = now
	}
	return st.Expiry != neverExpires && !disc.Add(time.Duration(st.Expiry)*time.Second).After(now)
}

// restoreDelivery rebuilds a queued or in-flight message; false if it is
// not valid or has expired.
func (s *Server) restoreDelivery(sd *StoredDelivery, now time.Time) (delivery, bool) {
	if sd.QoS > 2 || s.checkStored(&sd.Message) != nil {
		return delivery{}, false
	}
	m := s.restoreMessage(&sd.Message, false, now)
	if m == nil {
		return delivery{}, false
	}
	d := delivery{msg: m, qos: sd.QoS, retain: sd.Retain, jid: sd.JournalID}
	for _, id := range sd.SubIDs {
		d.addID(id)
	}
	return d, true
}
