package broker

import (
	"fmt"

	"edgebroker/broker/packet"
)

// Publish routes a message from inside the appliance through the same
// routing as client messages (retained included). No authorization
// applies. p is copied; the caller keeps it.
func (s *Server) Publish(p *packet.Publish) error {
	if err := s.tlim.ValidName(p.Topic); err != nil {
		return fmt.Errorf("broker: publish %q: %w", p.Topic, err)
	}
	if p.QoS > 2 {
		return fmt.Errorf("broker: publish %q: QoS %d", p.Topic, p.QoS)
	}
	sc := s.scratchPool.Get().(*scratch)
	m := newMessage(p, s.now(), nil)
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
// goroutine: it must return quickly, must not call back into the Server
// synchronously with locks held, and may use the Message only during the
// call (copy what it keeps).
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

// SendTo delivers a message straight to one client's session, whether or
// not it subscribed (the state store's KEYNOTIFY notifications). It
// reports whether the session exists.
func (s *Server) SendTo(clientID string, p *packet.Publish) bool {
	s.mu.Lock()
	ss := s.sessions[clientID]
	s.mu.Unlock()
	if ss == nil {
		return false
	}
	sc := s.scratchPool.Get().(*scratch)
	m := newMessage(p, s.now(), nil)
	d := delivery{msg: m, qos: p.QoS}
	ss.deliver(&d, sc, s.now())
	m.release()
	s.scratchPool.Put(sc)
	return true
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
