package broker

import (
	"os"
	"time"

	"edgebroker/broker/sockio"
	"edgebroker/broker/tlsnet"

	"golang.org/x/sys/unix"
)

// maxKeptOut is the largest write buffer a connection keeps after its
// reader wrote the replies itself.
const maxKeptOut = 4 << 10

// replyMode says when a reply is written.
type replyMode bool

const (
	// replyBatched: the reader's answers to the packets it handles
	// (CONNACK, SUBACK, UNSUBACK, PINGRESP, AUTH). On plain TCP the reader
	// sends the replies of a batch of packets once it has handled the
	// batch (flushReplies); elsewhere the writer is woken now.
	replyBatched replyMode = false
	// replyNow: acknowledgements (PUBACK, PUBREC, PUBREL, PUBCOMP) wake
	// the writer at once, like a delivery: under a stream of QoS 1/2
	// messages the writer batches the acknowledgements of several reads
	// into one write.
	replyNow replyMode = true
)

// ackBuf is the stack buffer an acknowledgement is encoded into: its
// fixed header, packet id, code and the longest Reason String fit.
const ackBuf = 128

// reply queues the encoded control packet b (copied) for the client.
func (c *conn) reply(b []byte, mode replyMode) {
	c.out.put(b)
	if mode == replyNow || !c.writesDirect() {
		c.signal()
		return
	}
	c.replyPending = true
}

// flushReplies sends what the reader's packets produced. With no writer
// running, the reader writes it itself with a non-blocking write instead
// of starting a writer goroutine for a few bytes: an idle client's
// CONNACK, SUBACK or PINGRESP costs no goroutine. What the socket does not
// take, or what others appended meanwhile, goes to a writer goroutine.
func (c *conn) flushReplies() {
	if !c.replyPending {
		return
	}
	c.replyPending = false
	buf, ok := c.out.takeReplies()
	if !ok {
		c.signal()
		return
	}
	c.writeTaken(buf)
}

// writeTaken writes buf, which the caller took from the outbox as its
// writer, without waiting. What the socket does not take, what others
// appended meanwhile, or a connection that is closing goes to a writer
// goroutine; else the caller is no longer the writer.
func (c *conn) writeTaken(buf []byte) {
	n, err := c.writeNow(buf)
	c.srv.Stats.BytesSent.Add(uint64(n))
	if !c.out.repliesWritten(buf, n, err, c.holding()) {
		go c.writeLoop() // writing stays set: it is the writer now
		return
	}
	if sess := c.attached(); sess != nil {
		sess.refill(c) // as the writer does after a write
	}
}

// writesDirect reports whether goroutines other than the writer may
// write to the connection without waiting (writeNow): plain TCP, and TLS
// over a tlsnet.Sock, which holds what the socket does not take.
func (c *conn) writesDirect() bool { return c.plain || c.tlsSocket() != nil }

// tlsSocket is the tlsnet.Sock under a TLS connection; nil for others.
func (c *conn) tlsSocket() *tlsnet.Sock {
	ts, _ := c.psock.(*tlsnet.Sock)
	return ts
}

// holding reports whether the connection's TLS layer holds encrypted
// bytes a writeNow could not write: a writer goroutine must write them.
func (c *conn) holding() bool {
	ts := c.tlsSocket()
	return ts != nil && ts.Holding()
}

// writeNow writes b to the socket without waiting: it returns what the
// socket took. Only the writer (outbox.writing) calls it. Over TLS it
// encrypts all of b, and the tlsnet.Sock holds what the socket did not take
// (holding): the caller then hands the writer role to a writer
// goroutine.
func (c *conn) writeNow(b []byte) (int, error) {
	if ts := c.tlsSocket(); ts != nil {
		ts.SetSpill(true)
		n, err := c.nc.Write(b)
		ts.SetSpill(false)
		return n, err
	}
	w := &c.wnow
	if w.fn == nil {
		w.fn = c.rawWrite // bound once: a closure per call would allocate
	}
	w.b, w.n, w.err = b, 0, nil
	err := c.sock.Write(w.fn)
	n, werr := w.n, w.err
	w.b, w.err = nil, nil
	if werr == nil {
		werr = err
	}
	return n, werr
}

// rawWrite is writeNow's syscall.RawConn callback.
func (c *conn) rawWrite(fd uintptr) bool {
	w := &c.wnow
	k, err := sockio.WriteAll(int(fd), w.b[w.n:])
	w.n += k
	if err != nil && err != unix.EAGAIN {
		w.err = os.NewSyscallError("write", err)
	}
	return true // never wait
}

// sendAcks sends the acknowledgements the journal's committer put in the
// outbox (conn.Durable). With the writer parked, on plain TCP, the
// committer writes them itself with one non-blocking write: after a
// group commit it would otherwise wake a writer goroutine for every
// connection the commit answers, for a few bytes each. Unlike
// writeTaken it does not refill the session's window: with the writer
// parked nothing waits for the socket, and the committer must not call
// into the journal (refill may read spilled messages back).
func (c *conn) sendAcks() {
	if !c.writesDirect() || c.out.writing.Load() || !c.out.claim() {
		c.signal()
		return
	}
	buf, ok := c.out.takeClaimed()
	if !ok {
		go c.writeLoop() // closing: the writer goroutine finishes the close
		return
	}
	if len(buf) == 0 {
		return // released (takeClaimed)
	}
	n, err := c.writeNow(buf)
	c.srv.Stats.BytesSent.Add(uint64(n))
	if !c.out.repliesWritten(buf, n, err, c.holding()) {
		go c.writeLoop() // writing stays set: it is the writer now
	}
}

// noDeadline clears a write deadline.
var noDeadline time.Time

// signalVia is signal for a delivery appended by the goroutine that owns
// sc. When that goroutine writes deliveries itself (sc.direct) and the
// connection is plain TCP with its writer parked, it becomes the writer
// and lists the connection for flushDirect: at a few thousand messages a
// second a delivery then costs one non-blocking write on the publisher's
// goroutine instead of waking another goroutine (a context switch) for
// each message. A busy connection keeps its writer goroutine, which
// batches what publishers append meanwhile.
func (c *conn) signalVia(sc *scratch) {
	if sc.direct != nil && len(*sc.direct) < maxDirect && c.writesDirect() && !c.out.writing.Load() && c.out.claim() {
		*sc.direct = append(*sc.direct, c)
		return
	}
	c.signal()
}

// flushDirect writes the deliveries to the connections the reader became
// the writer of (signalVia), each with one non-blocking write; what a
// socket does not take, or what others appended meanwhile, goes to a
// writer goroutine.
func (c *conn) flushDirect() {
	q := c.directq
	if len(q) == 0 {
		return
	}
	for i, d := range q {
		q[i] = nil
		d.writeDirect()
	}
	c.directq = q[:0]
}

// maxDirect is how many connections a reader writes to itself after a
// batch (signalVia lists no more); the others get their writer
// goroutines at once, which write in parallel and stay while traffic
// flows. One publisher fanning out to a hundred subscribers must not do
// every write on one goroutine (measured: a third less throughput), while
// a publisher with one or two subscribers at a low rate wakes no
// goroutine at all; and the reader's list stays two entries long.
const maxDirect = 2

// writeDirect writes what waits for c, whose writer the caller is
// (signalVia claimed it), without waiting for the socket.
func (c *conn) writeDirect() {
	buf, ok := c.out.takeClaimed()
	if !ok {
		go c.writeLoop() // closing: the writer goroutine finishes the close
		return
	}
	if len(buf) > 0 { // else released (takeClaimed)
		c.writeTaken(buf)
	}
}
