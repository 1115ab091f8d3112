package broker

import (
	"errors"
	"net"

	"edgebroker/broker/packet"
	"edgebroker/broker/seclog"
)

// The memory budget's limits (Limits.MemoryBudget) are checked here,
// before the bytes are taken: connections at accept, the CONNECT's size
// on its fixed header, retained messages before they are stored, queued
// bytes before a message is queued and persistent sessions before one is
// created.

// ErrOverBudget is returned by Restore (wrapped, with what was skipped)
// when the limits left stored retained messages, sessions or queued
// messages unloaded. They stay stored.
var ErrOverBudget = errors.New("broker: over the memory budget")

// size is what the message counts against the byte limits: its topic,
// payload and properties.
func (m *Message) size() int64 { return int64(len(m.buf)) }

// admit counts a socket that has not finished CONNECT, or refuses it when
// the unauthenticated or the total connection limit is reached. Callers
// hold s.mu (startConn).
func (s *Server) admit(nc net.Conn) bool {
	n, conns := s.connecting.Load(), s.Stats.Connections.Load()
	if n < int64(s.lim.MaxConnecting) && n+conns < int64(s.lim.MaxConnections) {
		s.connecting.Add(1)
		return true
	}
	if s.sec.Allow(seclog.LimitConnections) {
		s.sec.Log(seclog.LimitConnections, "broker: connection refused: limit reached",
			"remote", nc.RemoteAddr().String(), "connecting", n, "connected", conns,
			"max_connecting", s.lim.MaxConnecting, "max_connections", s.lim.MaxConnections)
	}
	return false
}

// connectDone stops counting c as unauthenticated: it finished CONNECT, or
// it ends without. Only the reader calls it.
func (c *conn) connectDone() {
	if c.counted {
		c.counted = false
		c.srv.connecting.Add(-1)
	}
}

// connectTooLarge refuses a CONNECT (or pre-CONNACK AUTH) of size bytes
// whose fixed header is all that was checked: a 5.0 client gets CONNACK
// 0x95 Packet too large, a 3.1.1 one is closed. head is what is buffered
// of the body, enough to see the protocol level.
func (c *conn) connectTooLarge(head []byte, size int) error {
	s := c.srv
	if s.sec.Allow(seclog.LimitConnectSize) {
		s.sec.Log(seclog.LimitConnectSize, "broker: CONNECT too large before authentication",
			"remote", c.nc.RemoteAddr().String(), "port", c.port.Name, "size", size, "limit", s.lim.MaxConnectSize)
	}
	v := c.version
	if c.pending == nil {
		v = peekConnectVersion(head)
	}
	if v == packet.V5 {
		c.setVersion(packet.V5)
		return c.refuse(packet.PacketTooLarge)
	}
	if c.pending != nil && c.pending.will != nil {
		c.pending.will.msg.release()
		c.pending.will = nil
	}
	return errClosed
}

// peekConnectVersion returns the protocol level of a CONNECT body's
// start, or 0 if it is not there yet or not MQTT.
func peekConnectVersion(b []byte) byte {
	if len(b) < 7 || string(b[:6]) != "\x00\x04MQTT" {
		return 0
	}
	return b[6]
}

// retainRoomLocked reports whether m fits the retained limits, counting
// the message it replaces. Callers hold retMu.
func (s *Server) retainRoomLocked(m *Message) bool {
	n, bytes := s.retained.Len()+1, s.retBytes+m.size()
	if old, ok := s.retained.Get(m.Topic); ok {
		n, bytes = n-1, bytes-old.size()
	}
	return n <= s.lim.MaxRetained && bytes <= s.lim.MaxRetainedBytes
}

// refuseRetained counts and logs a retained message beyond the limits.
func (s *Server) refuseRetained(m *Message) {
	s.Stats.MessagesDropped.Add(1)
	if s.sec.Allow(seclog.LimitRetained) {
		s.sec.Log(seclog.LimitRetained, "broker: retained message refused: limit reached",
			senderArgs(m, "size", m.size(), "max_retained", s.lim.MaxRetained, "max_retained_bytes", s.lim.MaxRetainedBytes)...)
	}
}

// senderArgs are the log arguments naming m's topic and sender, then
// more.
func senderArgs(m *Message, more ...any) []any {
	args := []any{"topic", string(m.Topic)}
	if c := m.Sender; c != nil {
		args = append(args, "client_id", c.ID, "username", c.Username, "port", c.Port)
		if c.Remote != nil {
			args = append(args, "remote", c.Remote.String())
		}
	}
	return append(args, more...)
}

// queueRoom reports whether one more message of size bytes fits the
// session's queue limits and the total. Callers hold ss.mu.
func (ss *session) queueRoom(size int64) bool {
	lim := &ss.srv.lim
	return ss.queue.len() < lim.MaxQueued && ss.queue.bytes+size <= lim.MaxQueuedBytes &&
		ss.srv.queuedBytes.Load()+size <= lim.MaxTotalQueuedBytes
}

// pushQueued appends d, whose room queueRoom confirmed, and counts its
// bytes. Callers hold ss.mu.
func (ss *session) pushQueued(d delivery) {
	size := d.msg.size()
	ss.queue.push(d, ss.srv.lim.MaxQueued)
	ss.queue.bytes += size
	ss.srv.queuedBytes.Add(size)
}

// popQueued removes the oldest queued delivery. Callers hold ss.mu.
func (ss *session) popQueued() (delivery, bool) {
	d, ok := ss.queue.pop()
	if ok {
		size := d.msg.size()
		ss.queue.bytes -= size
		ss.srv.queuedBytes.Add(-size)
	}
	return d, ok
}

// drainQueue releases every queued message. Callers hold ss.mu.
func (ss *session) drainQueue() {
	for {
		d, ok := ss.popQueued()
		if !ok {
			break
		}
		d.msg.release()
	}
	ss.queue.buf, ss.queue.head = nil, 0
}

// refuseQueued counts and logs a message a queue limit dropped.
func (ss *session) refuseQueued(m *Message) {
	ss.drop()
	s := ss.srv
	if s.sec.Allow(seclog.LimitQueue) {
		s.sec.Log(seclog.LimitQueue, "broker: queued message dropped: limit reached",
			"session", ss.id, "topic", string(m.Topic), "size", m.size(), "queued", ss.queue.len(),
			"queued_bytes", ss.queue.bytes, "total_queued_bytes", s.queuedBytes.Load())
	}
}

// setExpiry changes the session expiry, counting sessions with one.
// Callers hold ss.mu.
func (ss *session) setExpiry(e uint32) {
	if !ss.dead && (ss.expiry != 0) != (e != 0) {
		if e != 0 {
			ss.srv.nPersist.Add(1)
		} else {
			ss.srv.nPersist.Add(-1)
		}
	}
	ss.expiry = e
}

// sessionRoom reports whether a CONNECT for client id with clean start
// clean may have a session with an expiry: it resumes or replaces one
// that has an expiry, or the count is below MaxSessions.
func (s *Server) sessionRoom(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.sessions[id]; old != nil {
		old.mu.Lock()
		has := old.expiry != 0 && !old.dead
		old.mu.Unlock()
		if has {
			return true
		}
	}
	return s.nPersist.Load() < int64(s.lim.MaxSessions)
}

// refuseSession logs a CONNECT refused by MaxSessions.
func (c *conn) refuseSession() error {
	s := c.srv
	if s.sec.Allow(seclog.LimitSessions) {
		s.sec.Log(seclog.LimitSessions, "broker: session refused: limit reached",
			"client_id", c.client.ID, "username", c.client.Username, "port", c.port.Name,
			"remote", c.nc.RemoteAddr().String(), "max_sessions", s.lim.MaxSessions)
	}
	return c.refuse(packet.QuotaExceeded)
}

// reserveRbuf counts a read buffer of size bytes, replacing what the
// current one counted; false when MaxReadBuffers leaves no room.
func (c *conn) reserveRbuf(size int) bool {
	s := c.srv
	delta := int64(size) - int64(c.rbufRes)
	if s.bigReads.Add(delta) > s.lim.MaxReadBuffers {
		s.bigReads.Add(-delta)
		return false
	}
	c.rbufRes = int32(size)
	return true
}

// unreserveRbuf stops counting a grown read buffer that was dropped.
func (c *conn) unreserveRbuf() {
	if c.rbufRes != 0 {
		c.srv.bigReads.Add(-int64(c.rbufRes))
		c.rbufRes = 0
	}
}

// readBudgetFull ends a connection whose packet of size bytes finds no
// room in MaxReadBuffers.
func (c *conn) readBudgetFull(size int) error {
	s := c.srv
	if s.sec.Allow(seclog.LimitConnections) {
		id := ""
		if c.client != nil {
			id = c.client.ID
		}
		s.sec.Log(seclog.LimitConnections, "broker: connection closed: no room to buffer its packet",
			"client_id", id, "remote", c.nc.RemoteAddr().String(), "size", size,
			"buffered", s.bigReads.Load(), "max_read_buffers", s.lim.MaxReadBuffers)
	}
	return packet.QuotaExceeded
}

// chargeSubLocked charges a new subscription to filter against the
// session's and the server's subscription memory limits; false, and
// nothing charged, when either would be exceeded. Callers hold ss.mu.
func (ss *session) chargeSubLocked(filter string) bool {
	s := ss.srv
	n := int64(len(filter)) + SubscriptionOverhead
	if ss.subBytes+n > s.lim.MaxSubscriptionBytes {
		return false
	}
	if s.subBytes.Add(n) > s.lim.MaxTotalSubscriptionBytes {
		s.subBytes.Add(-n)
		return false
	}
	ss.subBytes += n
	return true
}

// uncharge returns what a removed subscription to filter was charged.
// Callers hold ss.mu.
func (ss *session) uncharge(filter string) {
	n := int64(len(filter)) + SubscriptionOverhead
	ss.subBytes -= n
	ss.srv.subBytes.Add(-n)
}
