package broker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"edgebroker/broker/journal"
	"edgebroker/broker/packet"
	"edgebroker/broker/seclog"
)

// The durable path (Config.Journal). What the broker promises with an
// acknowledgement is in the journal before the acknowledgement leaves:
//
//   - a QoS 1/2 message routed to a persistent session (one with an
//     expiry, not an in-process subscriber) gets a message record (once)
//     and a delivery record per such session; PUBACK/PUBREC wait for them;
//   - a retained message (set or delete, not $SYS/) likewise;
//   - a persistent session's state (owner, expiry, subscriptions, will)
//     is a session record written when it changes; SUBACK and UNSUBACK
//     wait for it;
//   - the inbound QoS 2 packet identifiers of a persistent session whose
//     message went to disk: PUBREC waits for the record, PUBCOMP for its
//     removal, so that after a restart a resent PUBLISH is recognised and
//     a new one with a reused identifier is not;
//   - the packet identifier of a QoS 2 delivery in flight, and its
//     PUBREL, so that a restart resends it with the same identifier.
//
// A delivery is retired (an acknowledgement record) when the subscriber
// acknowledges it, or it is dropped (expired, too large, over a queue
// limit); a session's end retires all of its deliveries. QoS 0 messages,
// clean sessions and messages with no persistent subscriber never touch
// the disk.

// AppendJournal appends m's encoding (StoredMessage's) to b: the journal's
// message records (journal.Encoder).
func (m *Message) AppendJournal(b []byte) []byte {
	sm := StoredMessage{Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, Props: m.Props}
	if m.Expiry > 0 {
		sm.Expires = time.Unix(0, m.Received).Add(time.Duration(m.Expiry) * time.Second)
	}
	b = append(b, storedVersion)
	return sm.appendBody(b)
}

// appendDeliveryBody encodes what a delivery record says beside its
// message: flags (bit 0 retain), QoS, subscription identifiers.
func appendDeliveryBody(b []byte, d *delivery) []byte {
	var flags byte
	if d.retain {
		flags |= 1
	}
	b = append(b, flags, d.qos)
	b = binary.AppendUvarint(b, uint64(int(d.nids)+len(d.more)))
	for _, id := range d.ids[:d.nids] {
		b = binary.AppendUvarint(b, uint64(id))
	}
	for _, id := range d.more {
		b = binary.AppendUvarint(b, uint64(id))
	}
	return b
}

func decodeDeliveryBody(b []byte, sd *StoredDelivery) error {
	d := decoder{b: b}
	flags := d.byte()
	if flags>>1 != 0 {
		d.fail("delivery flags %#x", flags)
	}
	sd.Retain = flags&1 != 0
	sd.QoS = d.qos()
	if k := d.count(1); k > 0 {
		sd.SubIDs = make([]uint32, k)
		for j := range sd.SubIDs {
			sd.SubIDs[j] = d.u32()
		}
	}
	return d.finish("delivery")
}

// journalLocked writes the session's record (or its end) if the journal
// keeps it, and returns the sequence number to wait for; 0 if nothing
// was written. Callers hold ss.mu.
func (ss *session) journalLocked() uint64 {
	j := ss.srv.jr
	if j == nil || ss.handler != nil {
		return 0
	}
	if ss.dead || ss.expiry == 0 {
		if !ss.journaled {
			return 0
		}
		ss.journaled = false
		return j.End(ss.id)
	}
	if !ss.journaled {
		// A session new to the journal. Under its identifier the journal
		// may still hold a session the memory budget left on disk at the
		// restore (RestoreJournal): that one is not this session's state,
		// and must not come back with it after a restart.
		j.End(ss.id)
	}
	ss.journaled = true
	st := ss.snapshotLocked()
	if w := ss.will; w != nil {
		st.Will = &StoredWill{Message: storedMessage(w.msg), Retain: w.msg.Retain, Delay: w.delay, Expiry: w.msg.Expiry}
		st.Will.Message.Expires = time.Time{}
	}
	b, _ := st.AppendBinary(nil)
	return j.Session(ss.id, b)
}

// journalDelivery puts a QoS 1/2 delivery to a journaled session on
// disk, noting the sequence number in sc. False when the journal refused
// it (full, failed): the delivery is then dropped for this session, and
// counted and logged. Callers hold ss.mu.
func (ss *session) journalDelivery(d *delivery, sc *scratch) bool {
	s := ss.srv
	var buf [64]byte // called directly, not through a func value: buf stays on the stack
	var mid, dseq, seq uint64
	var err error
	if sc.commitDue != nil {
		*sc.commitDue = true
		mid, dseq, seq, err = s.jr.EnqueueDeferred(&d.msg.jid, d.msg, ss.id, appendDeliveryBody(buf[:0], d))
	} else {
		mid, dseq, seq, err = s.jr.Enqueue(&d.msg.jid, d.msg, ss.id, appendDeliveryBody(buf[:0], d))
	}
	if err != nil {
		sc.diskFull++
		ss.drop()
		s.Stats.MessagesRefusedDisk.Add(1)
		if s.sec.Allow(seclog.LimitDisk) {
			s.sec.Log(seclog.LimitDisk, "broker: message for a persistent session refused: no room on disk",
				senderArgs(d.msg, "client", ss.id, "err", err.Error())...)
		}
		return false
	}
	d.jid, d.dseq = mid, dseq
	sc.jseq = max(sc.jseq, seq)
	return true
}

// makeDiskRoomLocked drops the session's oldest queued messages while its
// deliveries in the journal and d would exceed maxDisk (the port's
// MaxQueuedDiskBytes): oldest first, as a store-and-forward buffer does.
// In-flight messages are not dropped. Callers hold ss.mu.
func (ss *session) makeDiskRoomLocked(d *delivery, now time.Time) {
	s := ss.srv
	need := int64(d.msg.size()) + 64 + int64(len(ss.id)) // its records, about
	for s.jr.SessionBytes(ss.id)+need > ss.maxDisk {
		if ss.queue.len() == 0 && (ss.spilled == 0 || !ss.unspillLocked(now)) {
			return
		}
		old, _ := ss.popQueued()
		ss.drop()
		s.Stats.MessagesDroppedOldest.Add(1)
		if s.sec.Allow(seclog.LimitDisk) {
			s.sec.Log(seclog.LimitDisk, "broker: oldest queued message dropped: the session's disk budget is full",
				"session", ss.id, "topic", string(old.msg.Topic), "size", old.msg.size(), "max_bytes", ss.maxDisk)
		}
		ss.retire(&old)
		old.msg.release()
	}
}

// spillLocked keeps a journaled delivery on disk only, behind the
// session's in-memory window: from the first one spilled, every later
// delivery is spilled too, so that the queue keeps its order, until
// unspillLocked brings them back. Callers hold ss.mu.
func (ss *session) spillLocked(d *delivery) {
	if ss.spilled == 0 {
		ss.spillFrom = d.dseq
	}
	ss.spilled++
}

// unspillLocked refills the in-memory window from the journal; false if
// nothing came back. Callers hold ss.mu.
func (ss *session) unspillLocked(now time.Time) bool {
	s := ss.srv
	lim := &s.lim
	room, roomBytes := lim.MaxQueued-ss.queue.len(), lim.MaxQueuedBytes-ss.queue.bytes
	if ss.spilled == 0 || room <= 0 || roomBytes <= 0 {
		return false
	}
	ds, err := s.jr.Load(ss.id, ss.spillFrom, min(room, 256), roomBytes)
	if err != nil || len(ds) == 0 {
		s.log.Error("broker: the journal did not return a session's queued messages", "client", ss.id, "err", err,
			"spilled", ss.spilled)
		ss.spilled = 0
		return false
	}
	loaded := 0
	for _, jd := range ds {
		sd := StoredDelivery{JournalID: jd.ID}
		err := decodeDeliveryBody(jd.Body, &sd)
		if err == nil {
			err = sd.Message.UnmarshalBinary(jd.Message)
		}
		if err != nil {
			ss.spillFrom, ss.spilled = jd.Dseq+1, ss.spilled-1
			ss.retire(&delivery{jid: jd.ID})
			continue
		}
		d, ok := s.restoreDelivery(&sd, now)
		if !ok { // expired on disk
			ss.spillFrom, ss.spilled = jd.Dseq+1, ss.spilled-1
			ss.retire(&delivery{jid: jd.ID})
			continue
		}
		if !ss.queueRoom(d.msg.size()) {
			d.msg.release()
			break
		}
		d.dseq = jd.Dseq
		ss.pushQueued(d)
		ss.spillFrom, ss.spilled = jd.Dseq+1, ss.spilled-1
		loaded++
	}
	if ss.spilled < 0 {
		ss.spilled = 0
	}
	return loaded > 0
}

// retire removes a journaled delivery that left the session (delivered
// and acknowledged, dropped or expired). Callers hold ss.mu.
func (ss *session) retire(d *delivery) {
	if d.jid != 0 {
		if d.qos == 2 {
			ss.srv.jr.Ack(ss.id, d.jid) // a QoS 2 delivery must not come again
		} else {
			ss.srv.jr.AckLater(ss.id, d.jid)
		}
		d.jid = 0
	}
}

// waitDurable blocks until the journal holds what seq promises.
func (s *Server) waitDurable(seq uint64) error {
	if s.jr == nil || seq == 0 {
		return nil
	}
	return s.jr.Wait(seq)
}

// maxPendingAcks bounds a connection's acknowledgements waiting for the
// journal; beyond it the reader waits (the publisher is throttled).
const maxPendingAcks = 1024

// ackQueue keeps a connection's acknowledgements in the order of its
// packets while some of them wait for the journal [MQTT-4.6.0-2..4].
type ackQueue struct {
	mu      sync.Mutex
	q       []pendingAck // oldest first; seq non-decreasing
	waiting bool         // registered with the journal (Notify)
	last    uint64       // the largest seq queued
	// n is len(q), for the lock-free fast path: only the connection's
	// reader adds to q (ackAfter), so when it reads 0 nothing is queued.
	n atomic.Int32
}

type pendingAck struct {
	typ  packet.Type
	pid  uint16
	code packet.Code
	seq  uint64
}

// ackAfter writes an acknowledgement once the journal holds seq, after
// every acknowledgement queued before it.
func (c *conn) ackAfter(t packet.Type, pid uint16, code packet.Code, seq uint64) {
	j := c.srv.jr
	if j == nil {
		c.writeAck(t, pid, code, replyBatched)
		return
	}
	a := &c.acks
	if a.n.Load() == 0 && seq <= j.Durable() { // the common case: no lock
		c.writeAck(t, pid, code, replyBatched)
		return
	}
	a.mu.Lock()
	if len(a.q) == 0 && seq <= j.Durable() {
		a.mu.Unlock()
		c.writeAck(t, pid, code, replyBatched)
		return
	}
	a.last = max(a.last, seq)
	a.q = append(a.q, pendingAck{typ: t, pid: pid, code: code, seq: a.last})
	a.n.Store(int32(len(a.q)))
	register := !a.waiting
	a.waiting = true
	n, front := len(a.q), a.q[0].seq
	a.mu.Unlock()
	if register {
		j.NotifyDeferred(front, c)
	}
	c.commitDue = true // the reader commits after the batch (commitJournal)
	if n >= maxPendingAcks {
		j.Wait(a.last)
	}
}

// commitJournal commits what the reader's batch appended to the journal
// for its acknowledgements, on the reader's goroutine when no commit is
// running (journal.Commit): at a few thousand messages a second, the
// PUBLISH, its commit and its PUBACK then cost no goroutine hand-off.
// The reader calls it once it has handled a batch and flushed its
// deliveries (they do not wait for the disk).
func (c *conn) commitJournal() {
	if c.commitDue {
		c.commitDue = false
		c.srv.jr.Commit()
	}
}

// Durable writes the acknowledgements the journal now holds
// (journal.Waiter). A failed journal closes the connection: what it
// sent is not stored, and the client resends it after reconnecting.
func (c *conn) Durable(seq uint64, err error) {
	a := &c.acks
	a.mu.Lock()
	if err != nil {
		a.q, a.waiting = nil, false
		a.n.Store(0)
		a.mu.Unlock()
		if !errors.Is(err, journal.ErrClosed) {
			c.closeWith(packet.UnspecifiedError, "")
		}
		return
	}
	k := 0
	for k < len(a.q) && a.q[k].seq <= seq {
		p := a.q[k]
		var b [ackBuf]byte
		c.out.put(c.appendAck(b[:0], p.typ, p.pid, p.code))
		k++
	}
	a.q = append(a.q[:0], a.q[k:]...)
	a.n.Store(int32(len(a.q)))
	register := len(a.q) > 0
	a.waiting = register
	var front uint64
	if register {
		front = a.q[0].seq
	}
	a.mu.Unlock()
	if k > 0 {
		c.sendAcks()
	}
	if register {
		c.srv.jr.Notify(front, c)
	}
}

// --- restore from the journal ------------------------------------------------

// RestoreJournal loads what Config.Journal holds: retained messages, then
// sessions with their queued and in-flight messages. Call it once, before
// the server serves. What is expired or invalid is dropped (and retired
// in the journal); what the memory budget leaves no room for stays on
// disk (the Restorer's counters and Err say how much).
func (s *Server) RestoreJournal() (*Restorer, error) {
	if s.jr == nil {
		return nil, errors.New("broker: RestoreJournal without a journal")
	}
	r, err := s.NewRestorer()
	if err != nil {
		return nil, err
	}
	r.fromJournal = true
	var errs []error
	err = s.jr.EachRetained(func(jr *journal.Retained) error {
		var sm StoredMessage
		if err := sm.UnmarshalBinary(jr.Body); err != nil || string(sm.Topic) != string(jr.Topic) {
			s.jr.Retain(jr.Topic, nil)
			errs = append(errs, errors.Join(errors.New("broker: a retained record does not decode: dropped"), err))
			return nil
		}
		if err := r.Retained(&sm); err != nil {
			errs = append(errs, err)
		}
		return nil
	})
	if err != nil {
		return r, err
	}
	lim := &s.lim
	err = s.jr.Sessions(func(js *journal.Session) error {
		// Only a window of the queue is read: the rest stays on disk,
		// behind it (spilled), until the window drains.
		var lastDseq uint64
		if js.Queued > 0 {
			ds, err := s.jr.Load(js.ID, 0, lim.MaxQueued+int(lim.MaxInflight), lim.MaxQueuedBytes)
			if err != nil {
				return err
			}
			js.Deliveries = ds
			if len(ds) > 0 {
				lastDseq = ds[len(ds)-1].Dseq
			}
		}
		var st StoredSession
		bad, err := decodeJournalSession(js, &st)
		if err != nil {
			s.jr.End(js.ID)
			errs = append(errs, fmt.Errorf("broker: a session record does not decode: dropped: %w", err))
			return nil
		}
		for _, id := range bad {
			s.jr.Ack(js.ID, id)
		}
		if err := r.Session(&st); err != nil {
			errs = append(errs, err)
		}
		if rest := js.Queued - len(js.Deliveries); rest > 0 {
			s.mu.Lock()
			ss := s.sessions[js.ID]
			s.mu.Unlock()
			if ss != nil {
				ss.mu.Lock()
				if ss.spilled == 0 {
					ss.spillFrom = lastDseq + 1
				}
				ss.spilled += rest
				ss.mu.Unlock()
			}
		}
		return nil
	})
	if err != nil {
		return r, err
	}
	r.Finish()
	return r, errors.Join(append(errs, r.Err())...)
}

// decodeJournalSession decodes a session as the journal holds it into
// st: its record, its inbound QoS 2 packet identifiers and its
// deliveries (in flight: a QoS 2 delivery with a packet identifier;
// queued: the others, in message order). It returns the journal ids of
// the deliveries that do not decode, and an error if the record does
// not. st does not alias js.
func decodeJournalSession(js *journal.Session, st *StoredSession) (bad []uint64, err error) {
	if err := st.UnmarshalBinary(js.Body); err != nil {
		return nil, err
	}
	if st.ID != js.ID {
		return nil, fmt.Errorf("%w: the record of session %q is under %q", errStored, st.ID, js.ID)
	}
	st.InboundQoS2 = slices.Clone(js.InQoS2)
	for _, jd := range js.Deliveries {
		sd := StoredDelivery{PacketID: jd.PacketID, Released: jd.Released, JournalID: jd.ID, JournalPlace: jd.Dseq}
		err := decodeDeliveryBody(jd.Body, &sd)
		if err == nil {
			err = sd.Message.UnmarshalBinary(jd.Message)
		}
		if err != nil {
			bad = append(bad, jd.ID)
			continue
		}
		if sd.PacketID != 0 && sd.QoS == 2 {
			st.Inflight = append(st.Inflight, sd)
		} else {
			sd.PacketID, sd.Released = 0, false
			st.Queue = append(st.Queue, sd)
		}
	}
	return bad, nil
}

// journalRestoredLocked writes the queued and in-flight messages and the
// inbound QoS 2 identifiers of an imported session to the journal.
// Callers hold ss.mu; the session record is written.
func (ss *session) journalRestoredLocked() {
	j := ss.srv.jr
	var sc scratch
	for i := range ss.inflight {
		f := &ss.inflight[i]
		if f.d.msg == nil || f.d.qos == 0 || !ss.journalDelivery(&f.d, &sc) {
			continue
		}
		if f.d.qos == 2 {
			j.Sent(ss.id, f.d.jid, f.pid, false)
		}
	}
	for i := range ss.queue.size {
		if d := &ss.queue.buf[(ss.queue.head+i)%len(ss.queue.buf)]; d.qos > 0 {
			ss.journalDelivery(d, &sc)
		}
	}
	for _, pid := range ss.inQoS2 {
		j.InQoS2(ss.id, pid, true)
	}
}
