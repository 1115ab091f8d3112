package broker

import (
	"errors"
	"fmt"
	"time"

	"edgebroker/broker/packet"
)

// ErrNotAuthorized is returned by PublishAs (and CheckPublishAs) for a
// topic the client may not publish on.
var ErrNotAuthorized = errors.New("broker: not authorized")

// Publish routes a message from inside the appliance through the same
// routing as client messages (retained included). No authorization
// applies. p is copied; the caller keeps it.
func (s *Server) Publish(p *packet.Publish) error {
	if err := s.tlim.ValidName(p.Topic); err != nil {
		return fmt.Errorf("broker: publish %q: %w", p.Topic, err)
	}
	return s.publishFrom(p, nil)
}

// PublishAs routes a message the broker publishes on client c's behalf
// (a state store response to the request's Response Topic, ...). It is
// authorized as c's own PUBLISH: see CheckPublishAs. The message is routed
// as the broker's, not as coming from c's session: c's No Local
// subscriptions still receive it. p is copied; the caller keeps it.
func (s *Server) PublishAs(c *Client, p *packet.Publish) error {
	if err := s.CheckPublishAs(c, p.Topic); err != nil {
		return err
	}
	return s.publishFrom(p, c)
}

// CheckPublishAs reports whether PublishAs(c, ...) may publish on topic:
// nil if c's Permissions allow it (nil Permissions allow everything),
// an error wrapping ErrNotAuthorized if they do not or topic starts with
// '$' (topics of the broker, never published on a client's behalf), or
// the topic's validation error.
func (s *Server) CheckPublishAs(c *Client, topic []byte) error {
	if err := s.tlim.ValidName(topic); err != nil {
		return fmt.Errorf("broker: publish as %q on %q: %w", c.ID, topic, err)
	}
	if topic[0] == '$' || c.Permissions != nil && !c.Permissions.AllowPublish(topic) {
		return fmt.Errorf("broker: publish as %q on %q: %w", c.ID, topic, ErrNotAuthorized)
	}
	return nil
}

// publishFrom routes p; sender is the Message's Sender. The topic is
// valid.
func (s *Server) publishFrom(p *packet.Publish, sender *Client) error {
	if p.QoS > 2 {
		return fmt.Errorf("broker: publish %q: QoS %d", p.Topic, p.QoS)
	}
	sc := s.scratchPool.Get().(*scratch)
	m := s.newMessage(p, s.now(), sender)
	n := s.publish(m, nil, sc)
	m.release()
	s.scratchPool.Put(sc)
	if n < 0 {
		return fmt.Errorf("broker: publish %q: retained: %w", p.Topic, ErrOverBudget)
	}
	return nil
}

// Subscribe calls fn for every message matching filter (shared filters
// included) until unsubscribe is called. fn runs on the publisher's
// goroutine, inside routing: while it runs, that client's PUBACK and its
// next packets wait, and so do the subscribers routed after fn. So fn
// must not block: no disk (fsync), network or lock another publisher may
// hold, and no waiting for a message. Work that may wait goes to the
// subscriber's own goroutines through a bounded queue (the state store's
// workers, statestore/mqttapi, are the example), which also answer from
// there instead of calling Publish from inside routing. fn may use the
// Message only during the call (copy what it keeps).
func (s *Server) Subscribe(filter string, qos byte, fn func(*Message)) (unsubscribe func(), err error) {
	f := []byte(filter)
	if err := s.tlim.ValidFilter(f); err != nil {
		return nil, fmt.Errorf("broker: subscribe %q: %w", filter, err)
	}
	if qos > 2 {
		return nil, fmt.Errorf("broker: subscribe %q: QoS %d", filter, qos)
	}
	s.mu.Lock()
	s.seq++
	s.inprocSeq++
	ss := &session{srv: s, id: fmt.Sprintf("$inproc/%d", s.inprocSeq), seq: s.seq, handler: fn}
	s.mu.Unlock()
	ss.online.Store(true)
	s.subMu.Lock()
	s.subs.Subscribe(f, ss, subOpts{qos: qos})
	s.subMu.Unlock()
	return func() {
		s.subMu.Lock()
		s.subs.Unsubscribe(f, ss)
		s.subMu.Unlock()
	}, nil
}

// SessionRef names one connection's attachment to one session instance
// (Client.Session). It is not a client identifier: a later connection
// with the same client ID — a new clean session, or the same session
// resumed — is another SessionRef. The zero SessionRef names nothing.
type SessionRef struct {
	ss *session
	c  *conn
}

// SendTo delivers a message straight to the session ref names, whether
// or not it subscribed (the state store's KEYNOTIFY notifications). It
// delivers only while ref's connection is still attached to that session
// and the session still holds its client ID: never to a later connection
// or session with the same ID, and it queues nothing for an offline
// session. It reports whether it delivered (or queued behind messages
// already queued for that connection).
func (s *Server) SendTo(ref SessionRef, p *packet.Publish) bool {
	ss := ref.ss
	if ss == nil || ref.c == nil {
		return false
	}
	sc := s.scratchPool.Get().(*scratch)
	now := s.now()
	m := s.newMessage(p, now, nil)
	d := delivery{msg: m, qos: p.QoS}
	ss.mu.Lock()
	// Attach and takeover clear ss.c, ending a session marks it dead:
	// both under ss.mu.
	ok := !ss.dead && ss.c == ref.c
	if ok {
		ss.deliverLocked(&d, sc, now)
	}
	ss.mu.Unlock()
	m.release()
	s.scratchPool.Put(sc)
	return ok
}

// HasSession reports whether the server holds a session, online or
// offline, for clientID.
func (s *Server) HasSession(clientID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[clientID] != nil
}

// QueueInfo is what a session holds for its client: messages sent and
// not yet acknowledged, and messages waiting to be sent.
type QueueInfo struct {
	Inflight int   // sent, not yet acknowledged (QoS 1 and 2)
	Queued   int   // waiting in memory
	Spilled  int   // waiting in the journal only, behind those in memory
	Bytes    int64 // of the messages waiting in memory (as the queue limits count them)
	// Oldest is when the broker took in the oldest message in flight or
	// waiting in memory (Message.Received, on Config.Now's clock); zero
	// when there is none. Those spilled to the journal came later, so it
	// is the oldest of all, with one exception: the time a message arrived
	// is not on disk, so a message read back from the journal (after a
	// restart, or into the window from behind it) counts from that reading,
	// or, when it has an expiry, from its arrival to within a second.
	Oldest time.Time
}

// SessionQueue reports what the session of clientID holds for it, online
// or offline; false if the server holds no such session.
func (s *Server) SessionQueue(clientID string) (QueueInfo, bool) {
	s.mu.Lock()
	ss := s.sessions[clientID]
	s.mu.Unlock()
	if ss == nil {
		return QueueInfo{}, false
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.dead {
		return QueueInfo{}, false
	}
	q := QueueInfo{Inflight: len(ss.inflight), Queued: ss.queue.len(), Spilled: ss.spilled, Bytes: ss.queue.bytes}
	var oldest int64
	older := func(m *Message) {
		if m != nil && (oldest == 0 || m.Received < oldest) {
			oldest = m.Received
		}
	}
	// In flight: the window is small, so every entry is looked at (one
	// whose PUBREC released its message is delivered, not waiting).
	// Queued: in the order routed, so the head came first.
	for i := range ss.inflight {
		older(ss.inflight[i].d.msg)
	}
	if ss.queue.len() > 0 {
		older(ss.queue.buf[ss.queue.head].msg)
	}
	if oldest != 0 {
		q.Oldest = time.Unix(0, oldest)
	}
	return q, true
}

// Disconnect closes the named client's connection; a 5.0 client is told
// code. It reports whether the client was connected.
func (s *Server) Disconnect(clientID string, code packet.Code) bool {
	s.mu.Lock()
	ss := s.sessions[clientID]
	s.mu.Unlock()
	if ss == nil {
		return false
	}
	ss.mu.Lock()
	c := ss.c
	ss.mu.Unlock()
	if c == nil {
		return false
	}
	c.closeWith(code, "")
	return true
}

// DisconnectSession closes the connection ref names; a 5.0 client is told
// code. Unlike Disconnect it never reaches a later connection with the
// same client ID. It reports whether the connection was still attached.
func (s *Server) DisconnectSession(ref SessionRef, code packet.Code) bool {
	if ref.ss == nil || ref.c == nil {
		return false
	}
	ref.ss.mu.Lock()
	attached := ref.ss.c == ref.c
	ref.ss.mu.Unlock()
	ref.c.closeWith(code, "")
	return attached
}

// DisconnectPort closes every connection accepted through port p (5.0
// clients are told code), for example when its authorization policy
// changed: clients reconnect under the new one. It returns how many
// connections it closed.
func (s *Server) DisconnectPort(p *Port, code packet.Code) int {
	s.mu.Lock()
	var hit []*conn
	for c := range s.conns {
		if c.port == p {
			hit = append(hit, c)
		}
	}
	s.mu.Unlock()
	for _, c := range hit {
		c.closeWith(code, "")
	}
	return len(hit)
}

// Retained reports the number of retained messages.
func (s *Server) Retained() int {
	s.retMu.RLock()
	defer s.retMu.RUnlock()
	return s.retained.Len()
}
