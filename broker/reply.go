package broker

import (
	"errors"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// maxKeptOut is the largest write buffer a connection keeps after its
// reader wrote the replies itself.
const maxKeptOut = 4 << 10

// replied notes that the reader appended a reply (CONNACK, SUBACK,
// PUBACK, PINGRESP, ...) to out. On plain TCP the reader sends the replies
// of a batch of packets once it has handled the batch (flushReplies);
// elsewhere the writer is woken now.
func (c *conn) replied() {
	if c.raw == nil {
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
	c.wmu.Lock()
	if c.writing.Load() || c.closing || len(c.out) == 0 {
		c.wmu.Unlock()
		c.signal()
		return
	}
	c.writing.Store(true) // this reader is the writer until it is done
	buf := c.out
	c.out = nil
	c.wmu.Unlock()

	n, err := c.writeNow(buf)
	c.srv.Stats.BytesSent.Add(uint64(n))

	c.wmu.Lock()
	if err == nil && n == len(buf) && len(c.out) == 0 && !c.closing {
		if cap(buf) <= maxKeptOut {
			c.out = buf[:0]
		}
		c.writing.Store(false)
		sess := c.sess
		c.wmu.Unlock()
		if sess != nil {
			sess.refill(c) // as the writer does after a write
		}
		return
	}
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		// A stale write deadline: the writer sets a fresh one.
		c.out = append(buf[:len(buf):len(buf)], c.out...)
	case err != nil:
		c.setClosingLocked() // the writer fails too and finishes
	case n < len(buf): // the socket buffer is full
		rest := make([]byte, 0, len(buf)-n+len(c.out))
		c.out = append(append(rest, buf[n:]...), c.out...)
	}
	// Others appended meanwhile, the socket is full, or the connection
	// is closing: a writer goroutine takes over.
	c.wmu.Unlock()
	go c.writeLoop() // writing stays set: it is the writer now
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

// dropIdleOut drops an empty write buffer when no writer runs: the reader
// calls it before it parks the connection.
func (c *conn) dropIdleOut() {
	c.wmu.Lock()
	if !c.writing.Load() && len(c.out) == 0 {
		c.out, c.spare = nil, nil
	}
	c.wmu.Unlock()
}

// noDeadline clears a write deadline.
var noDeadline time.Time
