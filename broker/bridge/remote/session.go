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

// session is one connection to the upstream. Its serve loop is the only
// writer; its reader goroutine decodes what arrives.
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
	w         *bufio.Writer // serve's

	ctx   context.Context // set by serve: ends with the connection (the reader stops waiting)
	taken int64           // the reader's: bytes of Client.recv taken for the PUBLISH being read

	// Owned by serve.
	pids    map[uint16]*out // sent on this connection, awaiting PUBACK
	nextPID uint16
	subPID  uint16 // the SUBSCRIBE awaiting its SUBACK; 0: none
	todo    []*out // sendQueued's batch, kept for its capacity
	buf     []byte
}

// event is what the reader hands to serve.
type event struct {
	typ  packet.Type
	pid  uint16
	err  error
	code packet.Code // of a PUBACK
	sub  *packet.Suback
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

// read decodes packets until the connection fails; PUBLISHes go to the
// client's deliver goroutine (in order), the rest to serve.
func (s *session) read(events chan<- event, stop <-chan struct{}) {
	send := func(e event) bool {
		select {
		case events <- e:
			return true
		case <-stop:
			return false
		}
	}
	for {
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
			e.pid, e.code = a.PacketID, a.Code
		case packet.SUBACK:
			var sa packet.Suback
			if err := sa.Decode(s.v, h.Flags, body); err != nil {
				send(event{err: fmt.Errorf("SUBACK: %w", err)})
				return
			}
			e.pid, e.sub = sa.PacketID, &sa
		case packet.PUBLISH:
			size := s.taken
			s.taken = 0
			p := &packet.Publish{}
			if err := p.Decode(s.v, h.Flags, body); err != nil {
				s.c.recv.Release(size)
				send(event{err: fmt.Errorf("PUBLISH: %w", err)})
				return
			}
			if p.QoS > 1 || s.c.cfg.OnMessage == nil {
				s.c.recv.Release(size)
				send(event{err: fmt.Errorf("an unexpected PUBLISH (QoS %d) on %q", p.QoS, p.Topic)})
				return
			}
			select {
			case s.c.down <- downMsg{p: p, gen: s.gen, size: size}:
			case <-stop:
				s.c.recv.Release(size)
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

// serve runs the connection: it sends what the queue holds (again, in
// order, after a reconnection), subscribes, and handles acknowledgements
// until the connection fails or the client closes.
func (s *session) serve() error {
	c := s.c
	s.pids = map[uint16]*out{}
	events := make(chan event, 64)
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	s.ctx = ctx
	stop := ctx.Done()
	go s.read(events, stop)

	c.mu.Lock()
	for _, m := range c.queue {
		m.pid = 0 // a new connection: nothing is in flight on it yet
	}
	c.mu.Unlock()
	if len(c.cfg.Subscriptions) > 0 {
		if err := s.subscribe(); err != nil {
			return err
		}
	}
	ka := time.Duration(s.keepAlive) * time.Second
	ping := time.NewTicker(ka / 2)
	defer ping.Stop()
	lastRead, pinged := time.Now(), false
	for {
		if err := s.sendQueued(); err != nil {
			return err
		}
		if err := s.flush(); err != nil {
			return err
		}
		select {
		case <-c.ctx.Done():
			d := packet.Disconnect{}
			s.write(d.Append(s.buf[:0], s.v))
			s.w.Flush()
			return c.ctx.Err()
		case <-c.kick:
		case a := <-c.acks:
			if err := s.ack(a); err != nil {
				return err
			}
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
				if err := s.write(packet.AppendPingreq(s.buf[:0])); err != nil {
					return err
				}
			}
		}
		// Take what else is ready before writing: one write for a batch.
		for more := true; more; {
			select {
			case a := <-c.acks:
				if err := s.ack(a); err != nil {
					return err
				}
			case e := <-events:
				if err := s.handle(e); err != nil {
					return err
				}
			default:
				more = false
			}
		}
	}
}

// ack writes the PUBACK of a message from the upstream that the handler
// acknowledged, unless it came on an earlier connection.
func (s *session) ack(a downAck) error {
	if a.gen != s.gen {
		return nil
	}
	ack := packet.Ack{Type: packet.PUBACK, PacketID: a.pid}
	return s.write(ack.Append(s.buf[:0], s.v))
}

// subscribe sends the SUBSCRIBE; its SUBACK is checked in handle.
func (s *session) subscribe() error {
	cfg := &s.c.cfg
	sub := packet.Subscribe{PacketID: s.newPID()}
	for _, f := range cfg.Subscriptions {
		o := packet.Subscription{Filter: []byte(f), QoS: cfg.SubQoS}
		if s.v == packet.V5 {
			o.NoLocal, o.RetainAsPublished = cfg.SubNoLocal, cfg.SubRetainAsPublished
		}
		sub.Filters = append(sub.Filters, o)
	}
	s.subPID = sub.PacketID
	if err := s.write(sub.Append(s.buf[:0], s.v)); err != nil {
		return err
	}
	return s.flush()
}

// handle applies an event from the reader.
func (s *session) handle(e event) error {
	if e.err != nil {
		return e.err
	}
	switch e.typ {
	case packet.PUBACK:
		m := s.pids[e.pid]
		if m == nil {
			return nil // a duplicate, or from an earlier connection
		}
		if e.code.IsFailure() {
			if !refusedForGood[e.code] {
				return fmt.Errorf("PUBACK %v for %q", e.code, m.p.Topic)
			}
			s.c.refused(m, e.code)
		}
		delete(s.pids, e.pid)
		s.c.complete(m)
	case packet.SUBACK:
		if e.pid != s.subPID {
			return nil
		}
		s.subPID = 0
		for i, code := range e.sub.Codes {
			if code.IsFailure() {
				return fmt.Errorf("subscription to %q refused: %v", s.c.cfg.Subscriptions[i], code)
			}
		}
		s.c.subscribed()
	}
	return nil
}

// sendQueued writes every queued message not yet sent on this connection,
// in order, while the upstream's window allows.
func (s *session) sendQueued() error {
	c := s.c
	c.mu.Lock()
	todo := s.todo[:0]
	for _, m := range c.queue {
		if len(s.pids)+len(todo) >= s.maxOut {
			break
		}
		if m.pid == 0 && !m.acked {
			todo = append(todo, m)
			if m.p != nil && m.p.QoS > 0 {
				m.pid = s.newPIDLocked()
			} else {
				m.pid = 0xFFFF // marked: handled on this connection
			}
		}
	}
	c.mu.Unlock()
	defer func() {
		clear(todo)
		s.todo = todo[:0] // reused: no allocation per batch
	}()
	for _, m := range todo {
		if m.p == nil {
			c.complete(m)
			continue
		}
		p := *m.p
		if s.v < packet.V5 && p.Props.Present|uint64(len(p.Props.User)) != 0 {
			c.countPropsDropped()
		}
		if p.QoS > 0 {
			p.PacketID, p.Dup = m.pid, m.sent
			s.pids[m.pid] = m
		}
		if size := p.Size(s.v); size > s.maxPacket {
			delete(s.pids, m.pid)
			c.tooLarge(m, size, s.maxPacket)
			continue
		}
		m.sent = true
		if err := s.write(p.Append(s.buf[:0], s.v)); err != nil {
			return err
		}
		if p.QoS == 0 {
			c.complete(m)
		}
	}
	return nil
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

func (s *session) newPID() uint16 { return s.newPIDLocked() }

// writeTimeout bounds a write to the upstream.
const writeTimeout = 30 * time.Second

func (s *session) write(b []byte) error {
	s.buf = b[:0]
	if len(b) > s.w.Available() { // the buffer is written out: a fresh deadline
		s.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	}
	_, err := s.w.Write(b)
	return err
}

func (s *session) flush() error {
	if s.w.Buffered() == 0 {
		return nil
	}
	s.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	return s.w.Flush()
}

// complete marks m acknowledged and calls the done of every acknowledged
// message at the head of the queue, in order.
func (c *Client) complete(m *out) {
	c.mu.Lock()
	m.acked = true
	var ready []*out
	k := 0
	for k < len(c.queue) && c.queue[k].acked {
		ready = append(ready, c.queue[k])
		k++
	}
	if k > 0 {
		c.queue = append(c.queue[:0], c.queue[k:]...)
		c.room.Broadcast()
	}
	c.mu.Unlock()
	for _, r := range ready {
		if r.done != nil {
			r.done()
		}
	}
}

func (c *Client) countPropsDropped() {
	c.mu.Lock()
	c.st.PropsDropped++
	c.mu.Unlock()
}

func (c *Client) tooLarge(m *out, size, limit int) {
	c.mu.Lock()
	c.st.TooLarge++
	c.mu.Unlock()
	c.log.Warn("dataflow: a message above the upstream's maximum packet size is not forwarded",
		"topic", string(m.p.Topic), "bytes", size, "max", limit)
	c.complete(m)
}

func (c *Client) refused(m *out, code packet.Code) {
	c.mu.Lock()
	c.st.Refused++
	c.mu.Unlock()
	c.log.Warn("dataflow: the upstream refused a message: not sent again", "topic", string(m.p.Topic), "code", code.Error())
}

func (c *Client) subscribed() {
	c.mu.Lock()
	c.st.Subscribed = true
	c.mu.Unlock()
	c.subOnce.Do(func() { close(c.subDone) })
}
