package remote

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"edgebroker/broker/packet"
)

// session is one connection to the upstream. Its serve goroutine sends
// what the queue holds, subscribes, pings, and writes what a
// non-blocking write left; its reader goroutine decodes what arrives,
// retires acknowledged messages itself (a batch at a time) and hands
// PUBLISHes over. Any goroutine may send queued messages (sendLocked,
// under Client.mu: the order on the wire is the queue's) and flush them
// (wire.tryFlush).
type session struct {
	c         *Client       // set by handshake, then read-only
	nc        net.Conn      // set by handshake, then read-only
	v         byte          // protocol version, set by handshake
	present   bool          // CONNACK Session Present, set by handshake
	gen       int           // the connection's number, set by handshake
	maxOut    int           // set by handshake: MaxInflight, or less if the upstream's Receive Maximum is
	maxPacket int           // set by handshake: the upstream's Maximum Packet Size
	keepAlive uint16        // set by handshake: seconds
	r         *bufio.Reader // the reader goroutine's (handshake's before it)
	w         *wire         // set by handshake, then read-only

	ctx   context.Context // set by serve: ends with the connection (the reader stops waiting)
	taken int64           // the reader's: bytes of Client.recv taken for the PUBLISH being read

	// Guarded by Client.mu.
	pids    map[uint16]*out // sent on this connection, awaiting PUBACK
	nextPID uint16
	subPID  uint16 // the SUBSCRIBE awaiting its SUBACK; 0: none
	buf     []byte // encoding scratch

	sbuf []byte // serve's encoding scratch
}

// event is what the reader hands to serve: an error that ends the
// connection, a SUBACK, or a PINGRESP.
type event struct {
	typ packet.Type
	pid uint16
	err error
	sub *packet.Suback
}

// refusedForGood are PUBACK reason codes that sending the message again
// cannot change: the message is dropped (counted, logged). Any other
// failure (quota exceeded, unspecified) ends the connection, and the
// message is sent again on the next.
var refusedForGood = map[packet.Code]bool{
	packet.NotAuthorized: true, packet.TopicNameInvalid: true, packet.PayloadFormatInvalid: true,
	packet.PacketTooLarge: true,
}

// readPacket reads one packet's fixed header and body.
func (s *session) readPacket() (packet.FixedHeader, []byte, error) {
	var hdr [5]byte
	b, err := s.r.ReadByte()
	if err != nil {
		return packet.FixedHeader{}, nil, err
	}
	hdr[0] = b
	n := 1
	for {
		if n == len(hdr) {
			return packet.FixedHeader{}, nil, errors.New("malformed remaining length")
		}
		b, err := s.r.ReadByte()
		if err != nil {
			return packet.FixedHeader{}, nil, err
		}
		hdr[n] = b
		n++
		if b&0x80 == 0 {
			break
		}
	}
	h, k, err := packet.ParseFixedHeader(hdr[:n])
	if err != nil {
		return h, nil, err
	}
	if k != n || h.Remaining+n > int(s.c.cfg.MaxPacketSize) {
		return h, nil, fmt.Errorf("a %v of %d bytes, above the maximum packet size %d", h.Type, h.Remaining+n, s.c.cfg.MaxPacketSize)
	}
	if h.Type == packet.PUBLISH {
		// Checked before the bytes are read: what the handler holds
		// stays within MaxReceivedBytes.
		if s.ctx == nil {
			return h, nil, errors.New("a PUBLISH before the CONNACK")
		}
		if err := s.c.recv.Acquire(s.ctx, int64(h.Remaining)); err != nil {
			return h, nil, net.ErrClosed
		}
		s.taken = int64(h.Remaining)
	}
	body := make([]byte, h.Remaining)
	if _, err := io.ReadFull(s.r, body); err != nil {
		return h, nil, err
	}
	return h, body, nil
}

// read decodes packets until the connection fails. It retires the
// messages the upstream acknowledged itself, a batch at a time (every
// PUBACK read so far, then their done callbacks); PUBLISHes go to
// TryMessage or, in order, to the client's deliver goroutine; the rest
// to serve.
func (s *session) read(events chan<- event, stop <-chan struct{}) {
	c := s.c
	send := func(e event) bool {
		select {
		case events <- e:
			return true
		case <-stop:
			return false
		}
	}
	acked := false
	for {
		if s.r.Buffered() == 0 {
			// The end of a batch: what it acknowledged, then the
			// handler's batch end, before waiting for more.
			if acked {
				acked = false
				c.release()
				c.sendMore(s)
			}
			if c.cfg.AfterRead != nil {
				c.cfg.AfterRead()
			}
		}
		h, body, err := s.readPacket()
		if err != nil {
			send(event{err: err})
			return
		}
		e := event{typ: h.Type}
		switch h.Type {
		case packet.PUBACK:
			var a packet.Ack
			if err := a.Decode(packet.PUBACK, s.v, h.Flags, body); err != nil {
				send(event{err: fmt.Errorf("PUBACK: %w", err)})
				return
			}
			if err := s.puback(a.PacketID, a.Code); err != nil {
				send(event{err: err})
				return
			}
			acked = true
			continue
		case packet.SUBACK:
			var sa packet.Suback
			if err := sa.Decode(s.v, h.Flags, body); err != nil {
				send(event{err: fmt.Errorf("SUBACK: %w", err)})
				return
			}
			e.pid, e.sub = sa.PacketID, &sa
		case packet.PUBLISH:
			if !s.publish(h, body, send, stop) {
				return
			}
			continue
		case packet.PINGRESP:
		case packet.DISCONNECT:
			var d packet.Disconnect
			d.Decode(s.v, h.Flags, body)
			send(event{err: fmt.Errorf("DISCONNECT %v", d.Code)})
			return
		default:
			send(event{err: fmt.Errorf("an unexpected %v", h.Type)})
			return
		}
		if !send(e) {
			return
		}
	}
}

// publish hands a PUBLISH from the upstream over: to TryMessage while
// nothing waits for the deliver goroutine, else (in order) to it.
func (s *session) publish(h packet.FixedHeader, body []byte, send func(event) bool, stop <-chan struct{}) bool {
	c := s.c
	size := s.taken
	s.taken = 0
	p := &packet.Publish{}
	if err := p.Decode(s.v, h.Flags, body); err != nil {
		c.recv.Release(size)
		send(event{err: fmt.Errorf("PUBLISH: %w", err)})
		return false
	}
	if p.QoS > 1 || c.cfg.OnMessage == nil {
		c.recv.Release(size)
		send(event{err: fmt.Errorf("an unexpected PUBLISH (QoS %d) on %q", p.QoS, p.Topic)})
		return false
	}
	m := downMsg{p: p, gen: s.gen, size: size}
	if c.cfg.TryMessage != nil && c.waiting.Load() == 0 && c.cfg.TryMessage(p, c.acker(m)) {
		return true
	}
	c.waiting.Add(1)
	c.handoffs.Add(1)
	select {
	case c.down <- m:
		return true
	case <-stop:
		c.waiting.Add(-1)
		c.recv.Release(size)
		return false
	}
}

// puback marks the message the upstream acknowledged; its done runs at
// the end of the reader's batch (release). A failure the upstream may
// not repeat ends the connection (the message is sent again on the
// next); one it will (refusedForGood) drops the message.
func (s *session) puback(pid uint16, code packet.Code) error {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	m := s.pids[pid]
	if m == nil {
		return nil // a duplicate, or from an earlier connection
	}
	if code.IsFailure() {
		if !refusedForGood[code] {
			return fmt.Errorf("PUBACK %v for %q", code, m.p.Topic)
		}
		c.st.Refused++
		c.log.Warn("dataflow: the upstream refused a message: not sent again", "topic", string(m.p.Topic), "code", code.Error())
	}
	delete(s.pids, pid)
	m.acked = true
	return nil
}

// sendMore sends what the window now allows on s, if it still serves,
// and writes it.
func (c *Client) sendMore(s *session) {
	c.mu.Lock()
	if c.cur != s {
		c.mu.Unlock()
		return
	}
	due, full := s.sendLocked()
	c.mu.Unlock()
	if due {
		c.release()
	}
	if s.w.tryFlush() || full {
		c.wake()
	}
}

// serve runs the connection: it sends what the queue holds (again, in
// order, after a reconnection), subscribes, pings, and writes what
// others left, until the connection fails or the client closes.
func (s *session) serve() error {
	c := s.c
	events := make(chan event, 64)
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	s.ctx = ctx
	stop := ctx.Done()

	c.mu.Lock()
	s.pids = map[uint16]*out{}
	for _, m := range c.queue {
		m.pid = 0 // a new connection: nothing is in flight on it yet
	}
	c.next = 0
	if len(c.cfg.Subscriptions) > 0 {
		s.subscribeLocked()
	}
	// From here on others send and write on this connection too: the
	// queue's messages after the SUBSCRIBE, the handler's PUBACKs.
	c.cur = s
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.cur = nil
		c.mu.Unlock()
	}()
	go s.read(events, stop)
	ka := time.Duration(s.keepAlive) * time.Second
	ping := time.NewTicker(ka / 2)
	defer ping.Stop()
	lastRead, pinged := time.Now(), false
	for {
		c.mu.Lock()
		due, full := s.sendLocked()
		c.mu.Unlock()
		if due {
			c.release()
		}
		if err := s.w.flush(); err != nil {
			return err
		}
		if full {
			continue // the wire is empty again: send the rest
		}
		select {
		case <-c.ctx.Done():
			d := packet.Disconnect{}
			s.add(d.Append(s.sbuf[:0], s.v))
			s.w.flush()
			return c.ctx.Err()
		case <-c.kick:
		case e := <-events:
			lastRead, pinged = time.Now(), false
			if err := s.handle(e); err != nil {
				return err
			}
		case <-ping.C:
			if pinged && time.Since(lastRead) > ka*3/2 {
				return fmt.Errorf("no answer within %v", ka*3/2)
			}
			if time.Since(lastRead) >= ka/2 {
				pinged = true
				s.add(packet.AppendPingreq(s.sbuf[:0]))
			}
		}
		c.serveWakes.Add(1)
	}
}

// add appends a packet serve encoded in sbuf (under Client.mu: the
// order on the wire).
func (s *session) add(b []byte) {
	s.sbuf = b[:0]
	s.c.mu.Lock()
	s.w.add(b)
	s.c.mu.Unlock()
}

// subscribeLocked appends the SUBSCRIBE (serve's first flush writes
// it); its SUBACK is checked in handle. Callers hold Client.mu.
func (s *session) subscribeLocked() {
	cfg := &s.c.cfg
	sub := packet.Subscribe{PacketID: s.newPIDLocked()}
	s.subPID = sub.PacketID
	for _, f := range cfg.Subscriptions {
		o := packet.Subscription{Filter: []byte(f), QoS: cfg.SubQoS}
		if s.v == packet.V5 {
			o.NoLocal, o.RetainAsPublished = cfg.SubNoLocal, cfg.SubRetainAsPublished
		}
		sub.Filters = append(sub.Filters, o)
	}
	s.buf = sub.Append(s.buf[:0], s.v)
	s.w.add(s.buf)
}

// handle applies an event from the reader.
func (s *session) handle(e event) error {
	if e.err != nil {
		return e.err
	}
	if e.typ != packet.SUBACK {
		return nil
	}
	s.c.mu.Lock()
	mine := e.pid == s.subPID
	if mine {
		s.subPID = 0
	}
	s.c.mu.Unlock()
	if !mine {
		return nil
	}
	for i, code := range e.sub.Codes {
		if code.IsFailure() {
			return fmt.Errorf("subscription to %q refused: %v", s.c.cfg.Subscriptions[i], code)
		}
	}
	s.c.subscribed()
	return nil
}

// sendLocked appends every queued message not yet sent on this
// connection to its wire, in order, while the upstream's window and the
// wire's byte limit allow, and reports whether some became due (QoS 0
// written, too large): the caller then calls release, after unlocking
// Client.mu, which it holds. full: it stopped at the wire's limit, and
// serve must flush and send on (a stalled upstream's QoS 0 messages wait
// in the queue, bounded by MaxInflight, not in the wire).
func (s *session) sendLocked() (due, full bool) {
	c := s.c
	for ; c.next < len(c.queue); c.next++ {
		m := c.queue[c.next]
		if m.acked {
			continue
		}
		if len(s.pids) >= s.maxOut {
			break
		}
		p := *m.p
		if s.v < packet.V5 && p.Props.Present|uint64(len(p.Props.User)) != 0 {
			c.st.PropsDropped++
		}
		size := p.Size(s.v)
		if size > s.maxPacket {
			c.st.TooLarge++
			c.log.Warn("dataflow: a message above the upstream's maximum packet size is not forwarded",
				"topic", string(m.p.Topic), "bytes", size, "max", s.maxPacket)
			m.acked, due = true, true
			continue
		}
		if !s.w.room(size) {
			return due, true
		}
		if p.QoS > 0 {
			m.pid = s.newPIDLocked()
			p.PacketID, p.Dup = m.pid, m.sent
			s.pids[m.pid] = m
		} else {
			m.pid = 0xFFFF // handled on this connection
			m.acked, due = true, true
		}
		m.sent = true
		s.buf = p.Append(s.buf[:0], s.v)
		s.w.add(s.buf)
	}
	return due, false
}

// newPIDLocked returns a packet identifier not in use on this connection.
// Callers hold c.mu (or own the session before it serves).
func (s *session) newPIDLocked() uint16 {
	for {
		s.nextPID++
		if s.nextPID == 0 || s.nextPID == 0xFFFF {
			continue
		}
		if _, used := s.pids[s.nextPID]; !used && s.nextPID != s.subPID {
			return s.nextPID
		}
	}
}

func (c *Client) subscribed() {
	c.mu.Lock()
	c.st.Subscribed = true
	c.mu.Unlock()
	c.subOnce.Do(func() { close(c.subDone) })
}
