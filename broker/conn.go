package broker

import (
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"time"

	"edgebroker/broker/packet"
	"edgebroker/broker/topic"
)

// scratch holds the values one goroutine reuses to route and encode.
type scratch struct {
	pub     packet.Publish // encoding
	ids     []uint32
	matches []topic.Sub[*session, subOpts]
	ret     []*Message
}

// conn is one network connection. The reader goroutine owns the fields in
// the first group; the writer goroutine flushes out.
type conn struct {
	srv  *Server
	nc   net.Conn
	port *Port

	// Set during CONNECT, then read-only.
	version   byte
	client    *Client
	perms     Permissions // nil: everything allowed (no authorization on the port)
	sess      *session
	keepAlive time.Duration
	maxOut    uint32 // client's Maximum Packet Size (0 = protocol limit)
	window    int    // outbound in-flight window
	problem   bool   // 5.0 Request Problem Information (default true)
	aliasMax  uint16 // client's Topic Alias Maximum (server → client)

	// Reader-owned.
	rbuf       []byte
	connected  bool
	authStep   int
	authCode   packet.Code
	pending    *pendingConnect // between CONNECT and the end of enhanced auth
	in         packet.Publish
	ack        packet.Ack
	sub        packet.Subscribe
	unsub      packet.Unsubscribe
	disc       packet.Disconnect
	auth       packet.Auth
	rsc        scratch // routing from the reader
	aliasesIn  [][]byte
	credTimer  *time.Timer
	willSent   bool
	normalExit bool // DISCONNECT 0x00 received: discard the will

	// Guarded by sess.mu.
	aliasesOut map[string]uint16

	// Guarded by wmu.
	wmu     sync.Mutex
	out     []byte
	spare   []byte
	closing bool
	wake    chan struct{}
	wsc     scratch // routing from the writer (refilling the window)
	ackOut  packet.Ack
	done    chan struct{} // closed when the writer has exited
}

func newConn(s *Server, nc net.Conn, p *Port) *conn {
	c := &conn{
		srv:     s,
		nc:      nc,
		port:    p,
		problem: true,
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	return c
}

// errClosed ends the read loop without telling the client anything more.
var errClosed = errors.New("broker: connection closed")

func (c *conn) readLoop() {
	defer c.srv.connWG.Done()
	err := c.read()
	c.finish(err)
}

// read frames packets from the socket into rbuf and handles them. A
// packet's remaining length is checked against the limit before the
// buffer grows for it.
func (c *conn) read() error {
	s := c.srv
	c.rbuf = make([]byte, 2048)
	r, w := 0, 0
	deadline := s.now().Add(s.lim.ConnectTimeout)
	c.nc.SetReadDeadline(deadline)
	kaSet := false // the read deadline follows the keep-alive
	for {
		// Handle every complete packet in rbuf[r:w].
		for r < w {
			h, n, err := packet.ParseFixedHeader(c.rbuf[r:w])
			if err == packet.ErrIncomplete {
				break
			}
			if err != nil {
				return err
			}
			total := n + h.Remaining
			if uint32(total) > s.lim.MaxPacketSize { // [MQTT-3.2.2-15]
				return packet.PacketTooLarge
			}
			if w-r < total {
				if total > len(c.rbuf) {
					nb := make([]byte, max(total, 2*len(c.rbuf)))
					w = copy(nb, c.rbuf[r:w])
					c.rbuf, r = nb, 0
				}
				break
			}
			if err := c.handle(h, c.rbuf[r+n:r+total]); err != nil {
				return err
			}
			r += total
			s.Stats.BytesReceived.Add(uint64(total))
		}
		if r == w {
			r, w = 0, 0
			if len(c.rbuf) > 64<<10 { // give back a buffer grown for one large packet
				c.rbuf = make([]byte, 2048)
			}
		} else if w == len(c.rbuf) {
			w = copy(c.rbuf, c.rbuf[r:w])
			r = 0
		}
		if c.connected && (c.keepAlive > 0 || !kaSet) {
			// Keep-alive 0 turns the keep-alive mechanism off: the deadline
			// that guarded the CONNECT is cleared once.
			var d time.Time
			if c.keepAlive > 0 {
				d = s.now().Add(c.keepAlive * 3 / 2) // [MQTT-3.1.2-22]
			}
			kaSet = true
			c.setReadDeadline(d)
		}
		nr, err := c.nc.Read(c.rbuf[w:])
		w += nr
		if err != nil {
			if nr > 0 {
				continue
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && c.connected {
				return packet.KeepAliveTimeout
			}
			return errClosed
		}
	}
}

// handle dispatches one packet. body aliases the read buffer.
func (c *conn) handle(h packet.FixedHeader, body []byte) error {
	if !c.connected && c.pending == nil {
		if h.Type != packet.CONNECT {
			return errClosed // [MQTT-3.1.0-1]
		}
		return c.handleConnect(h.Flags, body)
	}
	if c.pending != nil && h.Type != packet.AUTH && h.Type != packet.DISCONNECT {
		return packet.ProtocolError // [MQTT-4.12.0-?]: only AUTH until authenticated
	}
	v := c.version
	switch h.Type {
	case packet.PUBLISH:
		return c.handlePublish(h.Flags, body)
	case packet.PUBACK, packet.PUBREC, packet.PUBREL, packet.PUBCOMP:
		if err := c.ack.Decode(h.Type, v, h.Flags, body); err != nil {
			return err
		}
		return c.handleAck(&c.ack)
	case packet.SUBSCRIBE:
		if err := c.sub.Decode(v, h.Flags, body); err != nil {
			return err
		}
		return c.handleSubscribe(&c.sub)
	case packet.UNSUBSCRIBE:
		if err := c.unsub.Decode(v, h.Flags, body); err != nil {
			return err
		}
		return c.handleUnsubscribe(&c.unsub)
	case packet.PINGREQ:
		if len(body) != 0 {
			return packet.MalformedPacket
		}
		c.wmu.Lock()
		c.out = packet.AppendPingresp(c.out)
		c.wmu.Unlock()
		c.signal()
		return nil
	case packet.DISCONNECT:
		if err := c.disc.Decode(v, h.Flags, body); err != nil {
			return err
		}
		return c.handleDisconnect(&c.disc)
	case packet.AUTH:
		if v != packet.V5 {
			return packet.ProtocolError
		}
		if err := c.auth.Decode(v, h.Flags, body); err != nil {
			return err
		}
		return c.handleAuth(&c.auth)
	case packet.CONNECT:
		return packet.ProtocolError // [MQTT-3.1.0-2]
	default:
		return packet.ProtocolError // server-to-client packet types
	}
}

// finish runs when the read loop ends: it tells a 5.0 client why, closes
// the socket after the writer flushed, and detaches the session.
func (c *conn) finish(err error) {
	code := packet.CodeOf(err)
	if err == errClosed {
		code = 0
	}
	c.closeWith(code, "")
	if c.credTimer != nil {
		c.credTimer.Stop()
	}
	<-c.done
	c.nc.Close()
	if c.sess != nil {
		c.srv.detach(c)
	}
	if c.connected {
		c.srv.Stats.Connections.Add(-1)
	}
	c.srv.removeConn(c)
	c.srv.log.Debug("connection closed", "remote", c.nc.RemoteAddr(), "err", err)
}

// closeWith stops the connection: a connected 5.0 client first gets a
// DISCONNECT with code when code is an error (>= 0x80). The writer flushes
// what is buffered, then exits; finish closes the socket.
func (c *conn) closeWith(code packet.Code, reason string) {
	c.wmu.Lock()
	if c.closing {
		c.wmu.Unlock()
		return
	}
	c.closing = true
	if code >= 0x80 && c.version == packet.V5 && c.connected {
		d := packet.Disconnect{Code: code}
		if reason != "" {
			d.Props.Set(packet.PropReasonString)
			d.Props.ReasonString = []byte(reason)
		}
		c.out = d.Append(c.out, c.version)
	}
	c.wmu.Unlock()
	c.signal() // the writer flushes, then wakes the reader as it exits
}

// setReadDeadline moves the read deadline unless the connection is closing:
// the deadline in the past that the exiting writer sets to unblock the
// reader must not be overwritten.
func (c *conn) setReadDeadline(d time.Time) {
	c.wmu.Lock()
	if !c.closing {
		c.nc.SetReadDeadline(d)
	}
	c.wmu.Unlock()
}

// signal wakes the writer.
func (c *conn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// writeLoop flushes out in batches: everything buffered while the previous
// write was in progress goes in one syscall.
func (c *conn) writeLoop() {
	defer c.srv.connWG.Done()
	defer close(c.done)
	// Once everything is flushed, unblock a reader waiting for data. (A
	// WebSocket conn closes on an expired deadline, so not earlier.)
	defer c.nc.SetReadDeadline(time.Unix(1, 0))
	for range c.wake {
		c.wmu.Lock()
		buf := c.out
		c.out, c.spare = c.spare[:0], nil
		closing := c.closing
		sess := c.sess // set by attach under wmu, maybe while we run (5.0 AUTH)
		c.wmu.Unlock()
		if len(buf) > 0 {
			c.nc.SetWriteDeadline(c.srv.now().Add(c.srv.lim.WriteTimeout))
			n, err := c.nc.Write(buf)
			c.srv.Stats.BytesSent.Add(uint64(n))
			if err != nil {
				c.wmu.Lock()
				c.closing = true
				c.wmu.Unlock()
				return
			}
		}
		c.wmu.Lock()
		if cap(buf) <= 64<<10 {
			c.spare = buf[:0]
		}
		more := len(c.out) > 0
		c.wmu.Unlock()
		if closing && !more {
			return
		}
		if sess != nil && !closing {
			sess.refill(c)
		}
		if more {
			c.signal()
		}
	}
}

// pendingBytes reports how much is buffered for the socket.
func (c *conn) pendingBytes() int {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return len(c.out)
}

// writePacket appends an encoded packet built by enc.
func (c *conn) writeAck(t packet.Type, pid uint16, code packet.Code) {
	c.wmu.Lock()
	a := &c.ackOut
	a.Type, a.PacketID, a.Code = t, pid, code
	a.Props.Reset()
	c.addReason(&a.Props, code)
	c.out = a.Append(c.out, c.version)
	c.wmu.Unlock()
	c.signal()
}

// tlsState returns the TLS connection state of a *tls.Conn, or of any
// conn that reports one (WebSockets over TLS), or nil.
func tlsState(nc net.Conn) *tls.ConnectionState {
	if tc, ok := nc.(interface{ ConnectionState() tls.ConnectionState }); ok {
		st := tc.ConnectionState()
		return &st
	}
	return nil
}

// reasonStrings holds a human-readable Reason String for every failure
// code, built once so acknowledgements carry one without allocating.
var reasonStrings = func() map[packet.Code][]byte {
	m := make(map[packet.Code][]byte)
	for c := packet.Code(0x80); c != 0; c++ {
		if msg := c.Error(); msg != "" {
			m[c] = []byte(msg)
		}
	}
	return m
}()

// addReason sets a 5.0 Reason String for a failure code unless the client
// asked for no problem information [MQTT-3.1.2-29].
func (c *conn) addReason(p *packet.Properties, code packet.Code) {
	if code < 0x80 || c.version != packet.V5 || !c.problem {
		return
	}
	if r, ok := reasonStrings[code]; ok {
		p.Set(packet.PropReasonString)
		p.ReasonString = r
	}
}
