package broker

import (
	"time"

	"edgebroker/broker/packet"
	"edgebroker/broker/seclog"
	"edgebroker/broker/topic"
)

const neverExpires = 0xFFFFFFFF

// awaitEnding waits at most d while client id has a session that is
// connected and ends when its connection does (clean session, or session
// expiry 0): the CONNECT of another principal may have overtaken that
// client's own DISCONNECT (see handleConnect). detach wakes it.
func (s *Server) awaitEnding(id string, d time.Duration) {
	deadline := time.Now().Add(d)
	t := time.AfterFunc(d, func() {
		s.mu.Lock()
		s.detached.Broadcast()
		s.mu.Unlock()
	})
	defer t.Stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for time.Now().Before(deadline) {
		old := s.sessions[id]
		if old == nil {
			return
		}
		old.mu.Lock()
		ending := old.c != nil && old.expiry == 0 && !old.dead
		old.mu.Unlock()
		if !ending {
			return
		}
		s.detached.Wait()
	}
}

// attach binds a connection that passed CONNECT to its session: it takes
// over a connected session [MQTT-3.1.4-3], resumes or discards stored
// state, writes the CONNACK and resends what was in flight.
//
// A session (online or offline) belongs to the principal that created
// it: for another principal attach changes nothing and returns the
// owner and false. A session restored from a record without an owner is
// claimed by the first principal that connects with its identifier.
func (s *Server) attach(c *conn, p *pendingConnect) (owner string, ok bool) {
	var wills []*will
	var dropped []string
	s.mu.Lock()
	old := s.sessions[c.client.ID]
	if old != nil {
		old.mu.Lock()
		if old.owner != "" && old.owner != c.client.Principal {
			owner = old.owner
			old.mu.Unlock()
			s.mu.Unlock()
			return owner, false
		}
		if old.owner == "" {
			s.log.Info("session saved without an owner claimed", "client", c.client.ID, "principal", c.client.Principal)
			old.owner = c.client.Principal
		}
		if oc := old.c; oc != nil {
			old.c = nil
			old.online.Store(false)
			oc.closeWith(packet.SessionTakenOver, "")
		}
		old.stopTimersLocked()
		if w := old.will; w != nil {
			old.will = nil
			// The will of the replaced connection is published unless its
			// delay has not passed and the session goes on [MQTT-3.1.3-9].
			if w.delay == 0 || p.clean {
				wills = append(wills, w)
			} else {
				w.msg.release()
			}
		}
		if p.clean {
			s.endSessionLocked(old)
			old.mu.Unlock()
			old = nil
		}
	}
	ss := old
	present := ss != nil
	if ss == nil {
		s.seq++
		ss = &session{srv: s, id: c.client.ID, owner: c.client.Principal, seq: s.seq}
		s.sessions[ss.id] = ss
		ss.mu.Lock()
	}
	s.mu.Unlock()

	if present && c.perms != nil {
		dropped = s.dropDeniedSubsLocked(ss, c.perms)
	}
	ss.setExpiry(p.expiry)
	ss.disconnected = time.Time{}
	ss.will = p.will
	ss.journalLocked()
	ss.c = c
	ss.maxDisk = c.port.MaxQueuedDiskBytes
	ss.online.Store(true)
	c.out.mu.Lock()
	c.sess = ss
	c.connected = true
	c.out.mu.Unlock()
	c.client.Permissions, c.client.Session = c.perms, SessionRef{ss: ss, c: c}
	if c.ext != nil {
		c.ext.aliasesOut = nil
	}
	c.writeConnack(present, packet.Success, p)
	now := s.now()
	for i := 0; i < len(ss.inflight); i++ { // [MQTT-4.4.0-1]: resend in order, DUP set
		f := &ss.inflight[i]
		if f.state == awaitComp {
			c.writeAck(packet.PUBREL, f.pid, packet.Success, replyBatched)
		} else if c.writePublish(&f.d, f.pid, true, &c.handling().sc, now, 0) != written {
			ss.removeInflight(i) // shifts the rest down: look at i again
			i--
			ss.drop()
		}
	}
	ss.refillLocked(c, &c.handling().sc, now)
	ss.mu.Unlock()
	for _, w := range wills {
		s.publishWill(w, ss)
	}
	for _, f := range dropped {
		s.sec.Event(seclog.SubscribeDenied, "inherited subscription no longer allowed: removed",
			"principal", c.client.Principal, "client", c.client.ID, "filter", f, "remote", remoteString(c.nc))
	}
	return "", true
}

// dropDeniedSubsLocked removes the subscriptions of a resumed session
// that perms no longer allow (the policy changed while it was offline)
// and returns their filters. Callers hold ss.mu.
func (s *Server) dropDeniedSubsLocked(ss *session, perms Permissions) []string {
	var dropped []string
	for i := ss.subs.len() - 1; i >= 0; i-- { // remove moves the last entry to i
		f := ss.subs.all()[i].filter
		_, inner, _ := topic.ParseShared([]byte(f))
		if perms.AllowSubscribe(inner) {
			continue
		}
		ss.uncharge(f)
		ss.subs.remove(f)
		s.subMu.Lock()
		s.subs.Unsubscribe([]byte(f), ss)
		s.subMu.Unlock()
		dropped = append(dropped, f)
	}
	return dropped
}

// detach unbinds a closed connection from its session. The will is
// published now, or after its delay; a session with expiry 0 ends now.
func (s *Server) detach(c *conn) {
	ss := c.sess
	s.mu.Lock()
	ss.mu.Lock()
	if ss.c != c { // taken over: attach dealt with it
		ss.mu.Unlock()
		s.mu.Unlock()
		return
	}
	ss.c = nil
	ss.online.Store(false)
	s.detached.Broadcast()
	if ss.expiry != 0 {
		ss.disconnected = s.now() // the will delay and expiry count from here
	}
	var now *will
	if w := ss.will; w != nil {
		switch {
		case c.normalExit:
			ss.will = nil
			w.msg.release()
		case w.delay == 0 || ss.expiry == 0:
			ss.will = nil
			now = w
		default:
			ss.willTimer = time.AfterFunc(ss.willDelay(), func() { s.fireWill(ss) })
		}
	}
	switch ss.expiry {
	case 0:
		s.endSessionLocked(ss)
	case neverExpires:
	default:
		ss.expTimer = time.AfterFunc(ss.expiryInterval(), func() { s.expire(ss) })
	}
	if ss.expiry != 0 {
		ss.journalLocked()
	}
	ss.mu.Unlock()
	s.mu.Unlock()
	if now != nil {
		s.publishWill(now, ss)
	}
}

// fireWill publishes a delayed will.
func (s *Server) fireWill(ss *session) {
	ss.mu.Lock()
	w := ss.will
	if ss.c != nil || w == nil {
		ss.mu.Unlock()
		return
	}
	if rest := ss.disconnected.Add(ss.willDelay()).Sub(s.now()); rest > 0 {
		// Config.Now has not reached the delay's end yet (or this is a
		// stale timer of an earlier disconnection): it decides.
		if ss.willTimer != nil {
			ss.willTimer.Stop()
		}
		ss.willTimer = time.AfterFunc(rest, func() { s.fireWill(ss) })
		ss.mu.Unlock()
		return
	}
	ss.will = nil
	ss.willTimer = nil
	ss.journalLocked()
	ss.mu.Unlock()
	s.publishWill(w, ss)
}

// expire ends an offline session whose expiry interval has passed, first
// publishing a will still waiting for its delay [MQTT-3.1.3-9].
func (s *Server) expire(ss *session) {
	s.mu.Lock()
	ss.mu.Lock()
	if ss.c != nil || ss.dead || s.sessions[ss.id] != ss {
		ss.mu.Unlock()
		s.mu.Unlock()
		return
	}
	if rest := ss.disconnected.Add(ss.expiryInterval()).Sub(s.now()); rest > 0 {
		// Config.Now has not reached the expiry yet (or this is a stale
		// timer of an earlier disconnection): it decides.
		if ss.expTimer != nil {
			ss.expTimer.Stop()
		}
		ss.expTimer = time.AfterFunc(rest, func() { s.expire(ss) })
		ss.mu.Unlock()
		s.mu.Unlock()
		return
	}
	w := ss.will
	ss.will = nil
	s.endSessionLocked(ss)
	ss.mu.Unlock()
	s.mu.Unlock()
	if w != nil {
		s.publishWill(w, ss)
	}
}

// endSessionLocked removes a session: its subscriptions, queue and
// in-flight messages go. Callers hold s.mu and ss.mu.
func (s *Server) endSessionLocked(ss *session) {
	ss.setExpiry(0)
	ss.dead = true
	ss.journalLocked()
	if s.sessions[ss.id] == ss {
		delete(s.sessions, ss.id)
	}
	s.subMu.Lock()
	for _, e := range ss.subs.all() {
		s.subs.Unsubscribe([]byte(e.filter), ss)
	}
	s.subMu.Unlock()
	s.subBytes.Add(-ss.subBytes)
	ss.subs, ss.subBytes = subSet{}, 0
	ss.clearLocked()
}

// publishWill routes a will message as if its client had published it.
func (s *Server) publishWill(w *will, from *session) {
	// The will's Message Expiry Interval runs from its publication, not
	// from the CONNECT that carried it (§3.1.3.2.4). Nothing else holds
	// the message yet.
	w.msg.Received = s.now().UnixNano()
	s.capExpiry(w.msg)
	sc := s.scratchPool.Get().(*scratch)
	s.publish(w.msg, from, sc)
	s.scratchPool.Put(sc)
	w.msg.release()
}
