package broker

import (
	"crypto/tls"
	"errors"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"edgebroker/broker/packet"
	"edgebroker/broker/tlsnet"
	"edgebroker/broker/topic"
)

// scratch holds the values one goroutine reuses to route and encode.
type scratch struct {
	pub     packet.Publish // encoding
	ids     []uint32
	matches []topic.Sub[*session, subOpts]
	ret     []*Message
	full    int // route: sessions whose queue limits dropped the message
	// route: sessions whose journal refused the message, and the journal
	// sequence number the acknowledgement waits for (0: none).
	diskFull int
	jseq     uint64
	// direct, when set, is where writePublish lists the plain TCP
	// connections it made the scratch's goroutine the writer of (their
	// writer was parked): that goroutine writes them once it holds no
	// lock (conn.flushDirect) instead of a writer goroutine being woken
	// for each delivery. Set by a reader for its handling values.
	direct *[]*conn
	// commitDue, when set, makes journalDelivery append without waking
	// the journal's committer and set *commitDue: the reader commits once
	// it has handled the batch (conn.commitJournal). Set by a reader for
	// its handling values, like direct.
	commitDue *bool
}

// handling is what a reader needs only while it handles packets: the
// decoded PUBLISH and acknowledgement and the routing scratch. It is
// pooled, so an idle connection does not carry it.
type handling struct {
	in  packet.Publish
	ack packet.Ack
	sc  scratch
}

// handling returns the reader's handling values, taking them from the
// pool when the reader has none.
func (c *conn) handling() *handling {
	if c.hs == nil {
		c.hs = c.srv.handlings.Get().(*handling)
		c.hs.sc.direct = &c.directq
		c.hs.sc.commitDue = &c.commitDue
	}
	return c.hs
}

// releaseHandling gives the handling values back to the pool; the reader
// calls it when everything buffered is handled and it waits.
func (c *conn) releaseHandling() {
	if h := c.hs; h != nil {
		h.in.Topic, h.in.Payload = nil, nil // do not keep a read buffer reachable
		h.sc.direct, h.sc.commitDue = nil, nil
		c.hs = nil
		c.srv.handlings.Put(h)
	}
}

// conn is one network connection. Its fields have four owners: the
// values set during CONNECT and read-only after it; the reader, which owns
// the connection while it handles packets (reader); the outbox and its
// mutex (the write side, outbox.go); and session.mu (ext.aliasesOut).
//
// An idle connection is mostly this struct (idle_mem_test.go): keep it
// within its 480-byte size class. Small fields are packed together, and
// what few connections use lives in ext.
type conn struct {
	srv  *Server  // set by newConn, then read-only
	nc   net.Conn // set by newConn, then read-only
	port *Port    // set by newConn, then read-only

	// Set by the reader during CONNECT, then read-only. version, connected
	// and sess are set under out.mu: the writer and closeWith read them.
	client    *Client
	perms     Permissions // nil: everything allowed (no authorization on the port)
	sess      *session
	ext       *connExt // 5.0 and credential state; nil for most 3.1.1 clients (see connExt)
	maxOut    uint32   // client's Maximum Packet Size (0 = protocol limit)
	aliasMax  uint16   // client's Topic Alias Maximum (server → client)
	keepAlive uint16   // seconds; 0: none
	window    uint16   // outbound in-flight window
	version   byte
	problem   bool // 5.0 Request Problem Information (default true)
	connected bool // CONNECT finished (attach); set by the reader under out.mu
	commitDue bool // the reader's: its batch appended to the journal without waking the committer (scratch.commitDue)
	// bridge: the client is a broker that said so in its CONNECT (a
	// mosquitto bridge: packet.Connect.Bridge). Its subscriptions are No
	// Local and Retain As Published, as mosquitto treats a bridge: what
	// it sent is not sent back to it (no loops), and a retained message
	// reaches it retained. Set by the reader at CONNECT.
	bridge bool

	reader // owned by the goroutine reading the connection

	// Parking in the reactor (reactor.go); the reader's fields are in
	// reader. Written when a connection parks or resumes only: they sit
	// between the reader's fields and the outbox (whose mutex every
	// delivery takes) so that the two do not share a cache line.
	parked   atomic.Bool  // parked: no reader owns the connection
	kaExpire atomic.Int64 // a parked connection's keep-alive expiry (Unix ns); 0: none

	out outbox // the write side; its mutex guards itself and the fields above that say so

	// writeNow's arguments and results (reply.go); owned by the writer
	// (outbox.writing), whichever goroutine that is.
	wnow struct {
		fn  func(fd uintptr) bool // c.rawWrite, bound on first use
		b   []byte
		n   int
		err error
	}

	acks ackQueue // acknowledgements waiting for the journal; its mutex guards it (durable.go)
}

// connExt is the part of a connection that most never use: 5.0 topic
// aliases and enhanced authentication, and the timer of a credential
// that expires. authDone makes it, before attach publishes the
// connection, for 5.0 clients and for credentials with an expiry; c.ext
// is read-only after. An idle 3.1.1 connection does without it.
type connExt struct {
	authMethod string      // set by authDone, then read-only: the CONNECT's 5.0 Authentication Method, for re-authentication
	aliasesIn  [][]byte    // owned by the reader: client → server topic aliases; made on first use
	credTimer  *time.Timer // owned by the reader; its function only calls closeWith

	aliasesOut map[string]uint16 // guarded by sess.mu: server → client topic aliases
}

// reader is the state of the goroutine that reads the connection: the
// read loop, CONNECT and authentication, and parking. Only the reader that
// owns the connection (reactor.go: whoever won claim) touches it. The
// rarely sent control packets (SUBSCRIBE, UNSUBSCRIBE, DISCONNECT, AUTH)
// are decoded into values on the stack, so that an idle connection does
// not carry them.
type reader struct {
	// Used for every packet.
	rbuf  []byte                // nil while a raw reader waits with nothing buffered
	rawFn func(fd uintptr) bool // c.rawRead, bound once by newConn
	rerr  error                 // rawRead's error
	rw    int32                 // rawRead's offset into rbuf
	rn    int32                 // rawRead's result

	bigSeen      bool        // the current batch held a packet larger than rbufSize
	started      bool        // the CONNECT deadline is set
	kaSet        bool        // the read deadline follows the keep-alive
	restack      bool        // continue on a fresh goroutine before waiting (see readLoop)
	replyPending bool        // the reader appended replies to send (reply.go)
	tlsMore      bool        // the last read of a *tls.Conn filled the buffer and crypto/tls holds more
	idleSet      bool        // the read deadline is readerIdle: it parks the reader
	counted      bool        // counted in Server.connecting (CONNECT not finished)
	normalExit   bool        // DISCONNECT 0x00 received: discard the will
	added        bool        // pfd is in the shard's epoll instance
	noPark       bool        // parking failed: keep the reader
	plain        bool        // set by newConn, then read-only: plain TCP or a Unix socket, read and written raw through sock
	authCode     packet.Code // the authenticator's verdict on the CONNECT
	rbufRes      int32       // bytes of a grown rbuf counted in Server.bigReads (at most 2 MaxPacketSize)

	hs      *handling // while packets are handled; pooled
	directq []*conn   // connections whose deliveries this reader writes (scratch.direct)

	// CONNECT and authentication.
	pending  *pendingConnect // between CONNECT and the end of enhanced auth
	authStep int32           // AUTH exchanges so far (AuthRequest.Step)

	pfd int32 // file descriptor registered in shard
	// A connection that reads its socket through a layer of its own and
	// parks only when that layer holds nothing: the tlsnet.Sock under
	// the broker's TLS, a wsnet.Conn. Set by newConn, then read-only.
	psock parkSocket

	// Parking in the reactor (reactor.go).
	sock  syscall.RawConn // the TCP socket the reactor watches; set by newConn, then read-only
	shard *shard          // the shard the connection parks in, chosen once
}

func newConn(s *Server, nc net.Conn, p *Port) *conn {
	c := &conn{
		srv:     s,
		nc:      nc,
		port:    p,
		problem: true,
	}
	c.out.pool = &s.pending
	tc, tcp := nc.(*net.TCPConn)
	switch {
	case p.TLS != nil:
		tc, ts := tlsnet.Server(nc, p.TLS)
		c.nc = tc
		if ts != nil {
			c.psock, c.sock = ts, ts.ParkSocket()
		}
	case tcp:
		if raw, err := tc.SyscallConn(); err == nil {
			c.plain, c.rawFn, c.sock = true, c.rawRead, raw
		}
	default:
		// A Unix stream socket (a dataflow's local connection) is read
		// and parked as a TCP one is.
		if uc, ok := nc.(*net.UnixConn); ok {
			if raw, err := uc.SyscallConn(); err == nil {
				c.plain, c.rawFn, c.sock = true, c.rawRead, raw
			}
		} else if ps, ok := nc.(parkSocket); ok && ps.ParkSocket() != nil {
			c.psock, c.sock = ps, ps.ParkSocket()
		}
	}
	return c
}

// parkSocket is a layer that reads the socket itself (tlsnet.Sock,
// wsnet.Conn) and may still park: ParkSocket is the socket the reactor
// watches (nil: it may not park), Idle says that nothing the client sent
// waits in the layer's buffers. The reader reads it with nc.Read.
//
// A connection (nc) may also be an idleReleaser: the reader calls
// ReleaseIdle when it parks the connection (wsnet.Conn over TLS lets
// crypto/tls's empty input buffers go, as releaseTLS does for the
// broker's own TLS).
type parkSocket interface {
	ParkSocket() syscall.RawConn
	Idle() bool
}

// idleReleaser is a connection that has buffers to let go when it parks
// (see parkSocket). ReleaseIdle is called by the reader that parks it,
// which owns its reads, after Idle said true; it must not block.
type idleReleaser interface {
	ReleaseIdle()
}

// errClosed ends the read loop without telling the client anything more.
var errClosed = errors.New("broker: connection closed")

// errRestack ends a read loop that continues on a fresh goroutine.
var errRestack = errors.New("broker: continue on a fresh stack")

// readLoop runs the reader. A goroutine blocked in the network poller
// cannot shrink its stack below 4 KiB (the runtime keeps a reserve), so
// after the rare packets whose handling grows the stack (CONNECT,
// SUBSCRIBE, ...) the reader continues on a new goroutine with a
// minimal stack before it waits again.
//
// A plain TCP reader parks its connection in the reactor instead (see
// reactor.go): after those packets, and after readerIdle without input.
func (c *conn) readLoop() {
	for {
		err := c.read()
		c.flushDirect()   // deliveries of a batch an error cut short
		c.commitJournal() // and its journal records
		switch err {
		case errRestack:
			go c.readLoop()
			return
		case errPark, errParkIdle:
			if c.srv.park(c, err == errParkIdle) {
				return
			}
			c.noPark = true // the reactor is closed or failed, or c is closing: read on
			continue
		}
		c.end(err)
		return
	}
}

// end finishes the connection for its reader.
func (c *conn) end(err error) {
	c.finish(err)
	c.srv.connWG.Done()
}

// read frames packets from the socket into rbuf and handles them. A
// packet's remaining length is checked against the limit before the
// buffer grows for it.
func (c *conn) read() error {
	s := c.srv
	if !c.plain && c.rbuf == nil {
		c.rbuf = c.srv.rbufs.Get().(*[rbufSize]byte)[:]
	}
	if !c.started {
		c.started = true
		c.nc.SetReadDeadline(time.Now().Add(s.lim.ConnectTimeout)) // a kernel deadline: never Config.Now
	}
	r, w := 0, 0
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
			if !c.connected && total > s.lim.MaxConnectSize {
				return c.connectTooLarge(c.rbuf[r+n:w], total)
			}
			if total > rbufSize {
				c.bigSeen = true
			}
			if w-r < total {
				if total > len(c.rbuf) {
					size := max(total, 2*len(c.rbuf))
					if !c.reserveRbuf(size) {
						return c.readBudgetFull(total)
					}
					nb := make([]byte, size)
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
			c.shrinkRbuf()
			if !c.plain {
				c.releaseHandling() // rawRead does when nothing arrived
			}
		} else if w == len(c.rbuf) {
			w = copy(c.rbuf, c.rbuf[r:w])
			r = 0
		}
		c.flushReplies()
		c.flushDirect()
		c.commitJournal()
		if r == w && c.restack {
			c.restack = false
			if c.canPark() {
				return errPark
			}
			return errRestack
		}
		if c.connected {
			c.armDeadline(r == w)
		}
		nr, err := c.fill(w)
		w += nr
		if err != nil {
			if nr > 0 {
				continue
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && c.connected {
				if c.idleSet && !c.isClosing() {
					return errParkIdle
				}
				return packet.KeepAliveTimeout
			}
			return errClosed
		}
	}
}

// armDeadline sets a connected client's read deadline: its keep-alive, or
// readerIdle when nothing is buffered and the reader may park (it parks
// when the deadline expires). Keep-alive 0 turns the keep-alive mechanism
// off: the deadline that guarded the CONNECT is cleared once. Keep-alive
// is a socket deadline, so it counts on time.Now (as the reactor's parked
// connections do), not on Config.Now.
func (c *conn) armDeadline(empty bool) {
	s := c.srv
	ka := time.Duration(c.keepAlive) * time.Second * 3 / 2 // [MQTT-3.1.2-22]
	if empty && c.canPark() && (ka == 0 || s.readerIdle < ka) {
		c.idleSet, c.kaSet = true, false
		c.setReadDeadline(time.Now().Add(s.readerIdle))
		return
	}
	if ka > 0 || !c.kaSet {
		var d time.Time
		if ka > 0 {
			d = time.Now().Add(ka)
		}
		c.idleSet, c.kaSet = false, true
		c.setReadDeadline(d)
	}
}

// isClosing reports whether closeWith ran or a write failed.
func (c *conn) isClosing() bool { return c.out.isClosing() }

// handle dispatches one packet. body aliases the read buffer.
func (c *conn) handle(h packet.FixedHeader, body []byte) error {
	if h.Type != packet.PUBLISH && h.Type != packet.PINGREQ && (h.Type < packet.PUBACK || h.Type > packet.PUBCOMP) {
		c.restack = true
	}
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
		a := &c.handling().ack
		if err := a.Decode(h.Type, v, h.Flags, body); err != nil {
			return err
		}
		return c.handleAck(a)
	case packet.SUBSCRIBE:
		return c.decodeSubscribe(h.Flags, body)
	case packet.UNSUBSCRIBE:
		return c.decodeUnsubscribe(h.Flags, body)
	case packet.PINGREQ:
		if len(body) != 0 {
			return packet.MalformedPacket
		}
		var b [2]byte
		c.reply(packet.AppendPingresp(b[:0]), replyBatched)
		return nil
	case packet.DISCONNECT:
		return c.decodeDisconnect(h.Flags, body)
	case packet.AUTH:
		if v != packet.V5 {
			return packet.ProtocolError
		}
		return c.decodeAuth(h.Flags, body)
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
	if c.ext != nil && c.ext.credTimer != nil {
		c.ext.credTimer.Stop()
	}
	<-c.out.done
	c.unpark()
	c.nc.Close()
	c.connectDone()
	c.unreserveRbuf()
	if c.sess != nil {
		c.srv.detach(c)
	}
	if c.connected {
		c.srv.Stats.Connections.Add(-1)
		if f := c.srv.onDisconnect; f != nil {
			f(c.client)
		}
	}
	c.srv.removeConn(c)
	c.srv.log.Debug("connection closed", "remote", c.nc.RemoteAddr(), "err", err)
}

// closeWith stops the connection: a connected 5.0 client first gets a
// DISCONNECT with code when code is an error (>= 0x80). The writer flushes
// what is buffered, then exits; finish closes the socket.
func (c *conn) closeWith(code packet.Code, reason string) {
	closed := c.out.close(func(b []byte) []byte {
		if code < 0x80 || c.version != packet.V5 || !c.connected {
			return b
		}
		d := packet.Disconnect{Code: code}
		if reason != "" {
			d.Props.Set(packet.PropReasonString)
			d.Props.ReasonString = []byte(reason)
		}
		return d.Append(b, c.version)
	})
	if closed {
		c.signal() // the writer flushes, then wakes the reader as it exits
	}
}

// setReadDeadline moves the read deadline unless the connection is closing
// (outbox.setReadDeadline).
func (c *conn) setReadDeadline(d time.Time) { c.out.setReadDeadline(c.nc, d) }

// signal wakes the writer, starting it if it is parked. A goroutine
// starts only when a parked (idle) connection gets something to send;
// while traffic flows the writer stays.
func (c *conn) signal() {
	c.out.notify()
	if !c.out.writing.Load() && c.out.claim() {
		go c.writeLoop()
	}
}

// writeLoop flushes the outbox in batches: everything buffered while the
// previous write was in progress goes in one syscall. After writerIdle
// without a wake-up it parks (exits, dropping its buffers); signal starts
// it again.
func (c *conn) writeLoop() {
	idle := time.NewTimer(c.srv.writerIdle)
	defer idle.Stop()
	wake := c.out.startWake(&c.srv.wakeups)
	defer c.out.stopWake(wake, &c.srv.wakeups)
	busy := true
	for ok := c.flush(); ok; {
		select {
		case <-wake.c:
			busy = true
			ok = c.flush()
		case <-idle.C:
			if !busy && c.out.park(c.nc) {
				return
			}
			busy = false
			idle.Reset(c.srv.writerIdle)
		}
	}
	c.out.exit()
	// Once everything is flushed, unblock a reader waiting for data. (A
	// WebSocket conn closes on an expired deadline, so not earlier.)
	c.nc.SetReadDeadline(time.Unix(1, 0))
	c.out.finish()
	c.kick() // a parked reader has no deadline to notice it
}

// flush writes what is buffered and refills the session's window. It
// returns false when the writer is done: the connection is closing and
// everything is flushed, or the socket failed.
func (c *conn) flush() bool {
	if ts := c.tlsSocket(); ts != nil && ts.Holding() {
		// What a writeNow encrypted and the socket did not take goes
		// before anything newer.
		c.nc.SetWriteDeadline(c.writeDeadline())
		if err := ts.FlushHeld(); err != nil {
			c.out.fail()
			return false
		}
	}
	r := c.out.flush(c, &c.sess)
	if r.n > 0 {
		c.srv.Stats.BytesSent.Add(uint64(r.n)) // a shared counter: only when something was written
	}
	if r.failed || r.closing && !r.more {
		return false
	}
	if r.sess != nil && !r.closing {
		r.sess.refill(c)
	}
	if r.more {
		c.signal()
	}
	return true
}

// writeOut writes b for the writer goroutine (the outbox's sink). On
// plain TCP it first tries one non-blocking write without telling the
// scheduler (writeNow): a write that the socket takes whole, the usual
// case, then costs no deadline timer and does not hand the writer's P
// over; only what the socket does not take waits, with the write
// deadline, in a blocking write (which clears the deadline after).
func (c *conn) writeOut(b []byte) (int, error) {
	n := 0
	if c.plain {
		k, err := c.writeNow(b)
		if err != nil || k == len(b) {
			return k, err
		}
		n = k
	}
	c.nc.SetWriteDeadline(c.writeDeadline())
	k, err := c.nc.Write(b[n:])
	if c.plain && err == nil {
		// An expired deadline would fail the next writeNow (the poller
		// checks it before the callback).
		c.nc.SetWriteDeadline(noDeadline)
	}
	return n + k, err
}

// writeDeadline is the deadline of a write starting now. Like every
// socket deadline it comes from time.Now, never Config.Now: the kernel
// knows only the real clock.
func (c *conn) writeDeadline() time.Time { return time.Now().Add(c.srv.lim.WriteTimeout) }

// attached returns the session, which attach sets under out.mu, maybe
// while the writer runs (5.0 AUTH).
func (c *conn) attached() *session {
	c.out.mu.Lock()
	defer c.out.mu.Unlock()
	return c.sess
}

// writeAck sends an acknowledgement: mode replyBatched from the reader
// (with its writer parked, it writes the acknowledgements of a batch of
// packets itself, after the batch: no goroutine wakes for them), replyNow
// from any other goroutine.
func (c *conn) writeAck(t packet.Type, pid uint16, code packet.Code, mode replyMode) {
	var b [ackBuf]byte
	c.reply(c.appendAck(b[:0], t, pid, code), mode)
}

// appendAck appends the encoding of an acknowledgement to b.
func (c *conn) appendAck(b []byte, t packet.Type, pid uint16, code packet.Code) []byte {
	a := packet.Ack{Type: t, PacketID: pid, Code: code}
	c.addReason(&a.Props, code)
	return a.Append(b, c.version)
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
