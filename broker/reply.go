package broker

import (
	"os"
	"time"

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
	if mode == replyNow || c.raw == nil {
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
	n, err := c.writeNow(buf)
	c.srv.Stats.BytesSent.Add(uint64(n))
	if !c.out.repliesWritten(buf, n, err) {
		// Others appended meanwhile, the socket is full, or the
		// connection is closing: a writer goroutine takes over.
		go c.writeLoop() // writing stays set: it is the writer now
		return
	}
	if sess := c.attached(); sess != nil {
		sess.refill(c) // as the writer does after a write
	}
}

// writeNow writes b to the socket without waiting: it returns what the
// socket took.
func (c *conn) writeNow(b []byte) (int, error) {
	n := 0
	var werr error
	err := c.raw.Write(func(fd uintptr) bool {
		for n < len(b) {
			k, err := unix.Write(int(fd), b[n:])
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				if err != unix.EAGAIN {
					werr = os.NewSyscallError("write", err)
				}
				break
			}
			n += k
		}
		return true // never wait
	})
	if werr == nil {
		werr = err
	}
	return n, werr
}

// noDeadline clears a write deadline.
var noDeadline time.Time
