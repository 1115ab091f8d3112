package broker

import (
	"cmp"
	"slices"
	"time"
	"unicode/utf8"

	"edgebroker/broker/journal"
	"edgebroker/broker/packet"
	"edgebroker/broker/seclog"
	"edgebroker/broker/topic"
)

// handlePublish processes a PUBLISH from the client.
func (c *conn) handlePublish(flags byte, body []byte) error {
	p := &c.handling().in
	if err := p.Decode(c.version, flags, body); err != nil {
		return err
	}
	s := c.srv
	s.Stats.MessagesReceived.Add(1)
	if c.version == packet.V5 {
		if err := c.resolveAlias(p); err != nil {
			return err
		}
		if len(p.Props.SubscriptionIDs) > 0 {
			return packet.ProtocolError // [MQTT-3.3.4-6]
		}
	}
	if err := s.tlim.ValidName(p.Topic); err != nil {
		return packet.TopicNameInvalid // [MQTT-3.3.2-2]
	}
	sess := c.sess
	if p.QoS == 2 {
		sess.mu.Lock()
		dup := sess.hasInQoS2(p.PacketID)
		full := !dup && len(sess.inQoS2) >= int(s.lim.MaxInflight)
		sess.mu.Unlock()
		if dup { // a resend: already routed [MQTT-4.3.3-10]
			c.ackAfter(packet.PUBREC, p.PacketID, packet.Success, 0)
			return nil
		}
		if full && c.version == packet.V5 {
			return packet.ReceiveMaximumExceeded // [MQTT-3.3.4-8]
		}
	}
	code := packet.Success
	var seq uint64 // the journal's sequence number the acknowledgement waits for
	switch {
	case c.version == packet.V5 && p.Props.Has(packet.PropPayloadFormat) && p.Props.PayloadFormat == 1 && !utf8.Valid(p.Payload):
		if p.QoS == 0 {
			return packet.PayloadFormatInvalid
		}
		code = packet.PayloadFormatInvalid // [MQTT-3.3.2-4]: may answer with 0x99
	case c.perms != nil && !c.perms.AllowPublish(p.Topic):
		// 3.1.1 cannot say so: the message is dropped. Counted, and
		// logged unless the rate limit suppresses it (no allocation then).
		code = packet.NotAuthorized
		if s.sec.Allow(seclog.PublishDenied) {
			s.sec.Log(seclog.PublishDenied, "publish not authorized: dropped", "principal", c.client.Principal,
				"client", c.client.ID, "topic", string(p.Topic), "remote", remoteString(c.nc))
		}
	default:
		m := s.newMessage(p, s.now(), c.client)
		s.capExpiry(m)
		sc := &c.handling().sc
		switch n := s.publish(m, sess, sc); {
		case n < 0 || n > 0 && sc.full == n || sc.diskFull > 0:
			// Retained or queued nowhere: a limit of the memory budget;
			// or a persistent session's copy is not on disk.
			code = packet.QuotaExceeded
		case n == 0 && c.version == packet.V5:
			code = packet.NoMatchingSubscribers
		}
		seq = sc.jseq
		m.release()
	}
	if c.version != packet.V5 && code >= 0x80 {
		code = packet.Success
	}
	switch p.QoS {
	case 1:
		c.ackAfter(packet.PUBACK, p.PacketID, code, seq)
	case 2:
		if code < 0x80 {
			sess.mu.Lock()
			sess.inQoS2 = append(sess.inQoS2, p.PacketID)
			if seq > 0 && sess.journaled {
				// Durable with the message: after a restart, a resend
				// of it is recognised.
				seq = s.jr.InQoS2(sess.id, p.PacketID, true)
			}
			sess.mu.Unlock()
		}
		c.ackAfter(packet.PUBREC, p.PacketID, code, seq)
	}
	return nil
}

// resolveAlias applies a 5.0 Topic Alias from the client [MQTT-3.3.2-7..12].
func (c *conn) resolveAlias(p *packet.Publish) error {
	if !p.Props.Has(packet.PropTopicAlias) {
		if len(p.Topic) == 0 {
			return packet.ProtocolError
		}
		return nil
	}
	a := p.Props.TopicAlias
	if a == 0 || a > c.srv.lim.MaxTopicAliases {
		return packet.TopicAliasInvalid
	}
	x := c.ext // every 5.0 client has one
	if x.aliasesIn == nil {
		x.aliasesIn = make([][]byte, c.srv.lim.MaxTopicAliases)
	}
	if len(p.Topic) > 0 {
		x.aliasesIn[a-1] = append(x.aliasesIn[a-1][:0], p.Topic...)
		return nil
	}
	if len(x.aliasesIn[a-1]) == 0 {
		return packet.ProtocolError // alias never set
	}
	p.Topic = x.aliasesIn[a-1]
	return nil
}

// publish stores m if it is retained and routes it to every matching
// subscriber. It returns how many sessions it was delivered to (sc.full
// of them dropped it at a queue limit), or -1 when the retained limits
// refused it: then it is neither stored nor routed.
func (s *Server) publish(m *Message, origin *session, sc *scratch) int {
	sc.jseq, sc.diskFull = 0, 0
	if m.Retain && !s.storeRetained(m, sc) {
		return -1
	}
	return s.route(m, origin, sc)
}

// storeRetained sets, replaces or (empty payload) deletes the retained
// message for m's topic [MQTT-3.3.1-5..7]. It returns false, storing
// nothing, when m is beyond the retained limits ($SYS/ topics, the
// broker's own, are not limited) or the journal refuses it. The journal's
// sequence number goes to sc.jseq.
func (s *Server) storeRetained(m *Message, sc *scratch) bool {
	var old *Message
	var had bool
	if len(m.Payload) > 0 && !isSys(m.Topic) {
		// Checked again below; this saves a copy of what is refused.
		s.retMu.RLock()
		room := s.retainRoomLocked(m)
		s.retMu.RUnlock()
		if !room {
			s.refuseRetained(m)
			return false
		}
	}
	s.retMu.Lock()
	if len(m.Payload) > 0 && !isSys(m.Topic) && !s.retainRoomLocked(m) {
		s.retMu.Unlock()
		s.refuseRetained(m)
		return false
	}
	if !s.journalRetainedLocked(m, sc) {
		s.retMu.Unlock()
		return false
	}
	if len(m.Payload) == 0 {
		old, had = s.retained.Delete(m.Topic)
	} else {
		old, had = s.retained.Set(m.Topic, m.retain())
		s.retBytes += m.size()
	}
	if had {
		s.retBytes -= old.size()
	}
	s.retMu.Unlock()
	if had {
		old.release()
	}
	return true
}

// journalRetainedLocked writes the change m makes to the retained
// messages to the journal (not for $SYS/); false if the journal refused
// it (counted and logged). Callers hold retMu: the journal sees changes in
// the index's order.
func (s *Server) journalRetainedLocked(m *Message, sc *scratch) bool {
	if s.jr == nil || isSys(m.Topic) {
		return true
	}
	// Under retMu: the journal sees changes in the index's order.
	var enc journal.Encoder
	if len(m.Payload) > 0 {
		enc = m
	}
	seq, err := s.jr.Retain(m.Topic, enc)
	if err != nil {
		sc.diskFull++
		s.Stats.MessagesRefusedDisk.Add(1)
		if s.sec.Allow(seclog.LimitDisk) {
			s.sec.Log(seclog.LimitDisk, "broker: retained message refused: no room on disk", senderArgs(m, "err", err.Error())...)
		}
		return false
	}
	sc.jseq = max(sc.jseq, seq)
	return true
}

// route delivers m to the matching subscriptions. A session with several
// matching non-shared subscriptions gets one copy at the highest granted
// QoS carrying every matching subscription identifier.
func (s *Server) route(m *Message, origin *session, sc *scratch) int {
	sc.full = 0
	s.subMu.RLock()
	sc.matches = s.subs.Match(m.Topic, sc.matches[:0])
	s.subMu.RUnlock()
	now := s.now() // once per message, not per subscriber
	ms := sc.matches
	if len(ms) > 1 {
		slices.SortFunc(ms, func(a, b topic.Sub[*session, subOpts]) int {
			if c := cmp.Compare(a.Key.seq, b.Key.seq); c != 0 {
				return c
			}
			return cmp.Compare(b2i(a.Shared()), b2i(b.Shared()))
		})
	}
	n := 0
	for i := 0; i < len(ms); {
		ss := ms[i].Key
		d := delivery{msg: m}
		found := false
		j := i
		for ; j < len(ms) && ms[j].Key == ss; j++ {
			o := &ms[j].Value
			if ms[j].Shared() {
				// A shared subscription is its own delivery.
				one := delivery{msg: m, qos: min(o.qos, m.QoS), retain: o.retainAsPub && m.Retain}
				one.addID(o.id)
				ss.deliver(&one, sc, now)
				n++
				continue
			}
			if o.noLocal && ss == origin { // [MQTT-3.8.3-3]
				continue
			}
			if q := min(o.qos, m.QoS); !found || q > d.qos {
				d.qos = q
			}
			if o.retainAsPub && m.Retain { // [MQTT-3.3.1-12/13]
				d.retain = true
			}
			d.addID(o.id)
			found = true
		}
		if found {
			ss.deliver(&d, sc, now)
			n++
		}
		i = j
	}
	clear(ms) // do not keep sessions reachable from the scratch
	return n
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// deliver sends d to the session's connection, queues it, or drops it.
func (ss *session) deliver(d *delivery, sc *scratch, now time.Time) {
	if ss.handler != nil {
		ss.handler(d.msg)
		return
	}
	ss.mu.Lock()
	ss.deliverLocked(d, sc, now)
	ss.mu.Unlock()
}

// deliverLocked is deliver for a connection's session. Callers hold mu.
func (ss *session) deliverLocked(d *delivery, sc *scratch, now time.Time) {
	if ss.dead {
		return
	}
	c := ss.c
	lim := &ss.srv.lim
	if d.qos == 0 {
		switch {
		case c != nil:
			// A slow consumer loses QoS 0 messages, never blocks the publisher.
			if c.writePublish(d, 0, false, sc, now, lim.MaxPendingBytes) != written {
				ss.drop()
			}
		case lim.QueueQoS0:
			if !ss.enqueue(d) {
				sc.full++
			}
		default:
			ss.drop()
		}
		return
	}
	if ss.journaled {
		if ss.maxDisk > 0 {
			ss.makeDiskRoomLocked(d, now)
		}
		if !ss.journalDelivery(d, sc) {
			return
		}
		if ss.spilled > 0 { // behind older ones on disk: it waits there too
			ss.spillLocked(d)
			return
		}
	}
	if c != nil && ss.queue.len() == 0 && len(ss.inflight) < int(c.window) {
		if ss.sendInflight(c, *d, sc, now, lim.MaxPendingBytes) == bufferFull && !ss.enqueue(d) {
			sc.full++
			ss.retire(d)
		}
		return
	}
	if !ss.enqueue(d) {
		sc.full++
		ss.retire(d)
	}
}

// sendInflight assigns a packet identifier and sends a QoS 1/2 delivery.
// An unsendable one is dropped; on bufferFull the caller keeps it queued.
func (ss *session) sendInflight(c *conn, d delivery, sc *scratch, now time.Time, limit int) writeResult {
	pid := ss.allocPID()
	r := c.writePublish(&d, pid, false, sc, now, limit)
	switch r {
	case written:
		d.msg.retain()
		ss.inflight = append(ss.inflight, inflight{pid: pid, d: d})
		if d.jid != 0 && d.qos == 2 {
			ss.srv.jr.Sent(ss.id, d.jid, pid, false) // a restart resends it with pid
		}
	case unsendable:
		ss.drop() // too large for the client, or expired
		ss.retire(&d)
	}
	return r
}

// enqueue keeps a reference to d's message in the session queue. When the
// queue is full (MaxQueued, MaxQueuedBytes) the drop policy decides;
// a message that cannot fit at all (larger than MaxQueuedBytes, or the
// other sessions' queues fill MaxTotalQueuedBytes) is dropped. It
// returns false when d was dropped; every drop is counted and logged.
func (ss *session) enqueue(d *delivery) bool {
	lim := &ss.srv.lim
	size := d.msg.size()
	if d.jid != 0 && !ss.queueRoom(size) {
		// Journaled: the memory limits bound the window, the journal's
		// budget the queue.
		ss.spillLocked(d)
		return true
	}
	if size > lim.MaxQueuedBytes || ss.srv.queuedBytes.Load()-ss.queue.bytes+size > lim.MaxTotalQueuedBytes {
		ss.refuseQueued(d.msg)
		return false
	}
	for !ss.queueRoom(size) {
		if lim.DropPolicy == DropNewest || ss.queue.len() == 0 {
			ss.refuseQueued(d.msg)
			return false
		}
		old, _ := ss.popQueued()
		ss.refuseQueued(old.msg)
		ss.retire(&old)
		old.msg.release()
	}
	d.msg.retain()
	ss.pushQueued(*d)
	return true
}

func (ss *session) drop() {
	ss.dropped++
	ss.srv.Stats.MessagesDropped.Add(1)
}

// refill moves queued messages into the connection while the in-flight
// window and the socket buffer have room.
func (ss *session) refill(c *conn) {
	now := ss.srv.now()
	ss.mu.Lock()
	if ss.queue.len() > 0 || ss.spilled > 0 {
		sc := ss.srv.scratchPool.Get().(*scratch)
		ss.refillLocked(c, sc, now)
		ss.srv.scratchPool.Put(sc)
	}
	ss.mu.Unlock()
}

func (ss *session) refillLocked(c *conn, sc *scratch, now time.Time) {
	for {
		ss.sendQueuedLocked(c, sc, now)
		// The window drained: bring back what waits on disk.
		if ss.c != c || ss.queue.len() > 0 || !ss.unspillLocked(now) {
			return
		}
	}
}

// sendQueuedLocked sends the in-memory queue while the in-flight window
// and the socket buffer have room.
func (ss *session) sendQueuedLocked(c *conn, sc *scratch, now time.Time) {
	lim := &ss.srv.lim
	for ss.c == c && ss.queue.len() > 0 {
		d := ss.queue.buf[ss.queue.head] // popped only once it left the queue
		if d.qos > 0 && len(ss.inflight) >= int(c.window) {
			return
		}
		var r writeResult
		if d.qos == 0 {
			if r = c.writePublish(&d, 0, false, sc, now, lim.MaxPendingBytes); r == unsendable {
				ss.drop() // expired while queued [MQTT-3.3.2-5], or too large
			}
		} else {
			r = ss.sendInflight(c, d, sc, now, lim.MaxPendingBytes)
		}
		if r == bufferFull {
			return // the writer refills once the socket drained
		}
		ss.popQueued()
		d.msg.release()
	}
}

// writeResult is what writePublish did with a delivery.
type writeResult uint8

const (
	written    writeResult = iota
	unsendable             // expired, or larger than the client accepts: drop it
	bufferFull             // the socket buffer holds limit bytes already: queue or drop it
)

// writePublish encodes d for the connection unless it is expired, larger
// than the client accepts [MQTT-3.1.2-24], or limit > 0 bytes already
// wait for the socket. The buffer check and the append share one lock.
// Callers hold the session lock.
func (c *conn) writePublish(d *delivery, pid uint16, dup bool, sc *scratch, now time.Time, limit int) writeResult {
	m := d.msg
	rem, ok := m.remaining(now)
	if !ok {
		return unsendable
	}
	p := &sc.pub
	p.Dup, p.QoS, p.Retain, p.PacketID = dup, d.qos, d.retain, pid
	p.Topic, p.Payload = m.Topic, m.Payload
	if c.version == packet.V5 {
		sc.ids = d.appendIDs(sc.ids[:0])
		p.Props = m.Props
		p.Props.SubscriptionIDs = sc.ids
		if m.Expiry > 0 {
			p.Props.Set(packet.PropMessageExpiry) // [MQTT-3.3.2-6]
			p.Props.MessageExpiry = rem
		}
		if c.aliasMax > 0 {
			c.applyAlias(p)
		}
	}
	if c.maxOut > 0 && uint32(p.Size(c.version)) > c.maxOut {
		c.forgetAlias(p)
		return unsendable
	}
	if !c.out.putPublish(p, c.version, limit) {
		c.forgetAlias(p)
		return bufferFull
	}
	c.signalVia(sc)
	c.srv.Stats.MessagesSent.Add(1)
	return written
}

// forgetAlias undoes an alias applyAlias just assigned for a PUBLISH
// that is not sent: the client never learns it.
func (c *conn) forgetAlias(p *packet.Publish) {
	if len(p.Topic) > 0 && p.Props.Has(packet.PropTopicAlias) {
		delete(c.ext.aliasesOut, string(p.Topic)) // applyAlias set it: a 5.0 client, which has ext
	}
}

// applyAlias uses or assigns a server-to-client topic alias.
func (c *conn) applyAlias(p *packet.Publish) {
	x := c.ext // aliasMax > 0: a 5.0 client, which has ext
	if a, ok := x.aliasesOut[string(p.Topic)]; ok {
		p.Props.Set(packet.PropTopicAlias)
		p.Props.TopicAlias = a
		p.Topic = nil
		return
	}
	if len(x.aliasesOut) >= int(c.aliasMax) {
		return
	}
	if x.aliasesOut == nil {
		x.aliasesOut = make(map[string]uint16, c.aliasMax)
	}
	a := uint16(len(x.aliasesOut) + 1)
	x.aliasesOut[string(p.Topic)] = a
	p.Props.Set(packet.PropTopicAlias)
	p.Props.TopicAlias = a
}

// handleAck processes PUBACK, PUBREC, PUBREL and PUBCOMP from the client.
func (c *conn) handleAck(a *packet.Ack) error {
	ss := c.sess
	switch a.Type {
	case packet.PUBREL: // inbound QoS 2, step 2 [MQTT-4.3.3-11]
		var seq uint64
		ss.mu.Lock()
		ok := ss.removeInQoS2(a.PacketID)
		if ok && ss.journaled {
			// PUBCOMP waits until the identifier is free on disk too: a
			// new message reusing it must not pass for a resend.
			seq = c.srv.jr.InQoS2(ss.id, a.PacketID, false)
		}
		ss.mu.Unlock()
		code := packet.Success
		if !ok && c.version == packet.V5 {
			code = packet.PacketIdentifierNotFound
		}
		c.ackAfter(packet.PUBCOMP, a.PacketID, code, seq)
		return nil
	}
	now := c.srv.now()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	i := ss.findInflight(a.PacketID)
	if i < 0 {
		if a.Type == packet.PUBREC && c.version == packet.V5 {
			c.writeAck(packet.PUBREL, a.PacketID, packet.PacketIdentifierNotFound, replyBatched)
		}
		return nil // a late or duplicate acknowledgement
	}
	f := &ss.inflight[i]
	switch {
	case a.Type == packet.PUBACK && f.state == awaitAck && f.d.qos == 1,
		a.Type == packet.PUBCOMP && f.state == awaitComp,
		a.Type == packet.PUBREC && f.state == awaitAck && a.Code >= 0x80:
		ss.removeInflight(i)
	case a.Type == packet.PUBREC && f.state == awaitAck && f.d.qos == 2:
		f.d.msg.release()
		f.d.msg = nil
		f.state = awaitComp
		if f.d.jid != 0 {
			c.srv.jr.Sent(ss.id, f.d.jid, f.pid, true)
		}
		c.writeAck(packet.PUBREL, a.PacketID, packet.Success, replyBatched)
		return nil
	default:
		return packet.ProtocolError
	}
	ss.refillLocked(c, &c.handling().sc, now)
	return nil
}
