package broker

import (
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"edgebroker/broker/packet"
)

// outbox is a connection's write side: the bytes waiting for the socket,
// who writes them (a writer goroutine, or the reader itself for its
// replies), and the close handshake. Everything that appends to a
// connection or writes to its socket goes through it; the connection's
// goroutines (writeLoop, flushReplies in reply.go) drive it.
//
// Its mutex also guards the conn fields others read while the reader may
// set them: conn.version, conn.connected and conn.sess. Lock order:
// Server.mu → session.mu → outbox.mu.
type outbox struct {
	mu      sync.Mutex
	buf     []byte                 // guarded by mu: waiting for the socket; nil while the writer is parked
	spare   []byte                 // guarded by mu: the buffer last written, reused next
	closing bool                   // guarded by mu: set once, by close or a failed write
	wdone   bool                   // guarded by mu: the writer has exited for good
	writing atomic.Bool            // stored under mu, loaded anywhere: a writer runs (goroutine or reader) or has finished
	wake    atomic.Pointer[wakeup] // the writer goroutine's while it runs (writeLoop); nil otherwise
	done    chan struct{}          // made under mu when closing is set; closed by the writer as it exits for good
	pool    *pendingPool           // set by newConn, then read-only: where bytes beyond freePending are charged
	charged int                    // guarded by mu: bytes of buf charged to pool
}

// freePending is how many bytes of publishes a connection may have
// waiting for its socket without charging the server's pending pool:
// most connections never reach it, so most deliveries touch no shared
// counter.
const freePending = 16 << 10

// pendingPool bounds the bytes waiting for sockets beyond each
// connection's freePending, all connections together
// (Limits.MaxTotalPendingBytes): slow readers cannot make the broker buffer
// MaxPendingBytes for every connection.
type pendingPool struct {
	n   atomic.Int64 // bytes charged
	max int64        // set by New, then read-only
}

// charge takes n bytes from the pool; false, and nothing taken, when they
// do not fit.
func (p *pendingPool) charge(n int) bool {
	if p.n.Add(int64(n)) > p.max {
		p.n.Add(-int64(n))
		return false
	}
	return true
}

// releaseLocked gives back what buf was charged. Callers hold mu.
func (o *outbox) releaseLocked() {
	if o.charged > 0 {
		o.pool.n.Add(-int64(o.charged))
		o.charged = 0
	}
}

// put appends an encoded packet. The caller wakes the writer (signal).
func (o *outbox) put(b []byte) {
	o.mu.Lock()
	o.buf = append(o.buf, b...)
	o.mu.Unlock()
}

// putPublish encodes p for a client of version v unless limit > 0 bytes
// are already waiting, the connection is closing, or the bytes beyond
// freePending find no room in the server's pending pool; false: the
// outbox is full.
func (o *outbox) putPublish(p *packet.Publish, v byte, limit int) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if limit > 0 && len(o.buf) >= limit || o.closing {
		return false
	}
	was := len(o.buf)
	o.buf = p.Append(o.buf, v)
	if o.pool != nil {
		if over := len(o.buf) - freePending - o.charged; over > 0 {
			if !o.pool.charge(over) {
				o.buf = o.buf[:was]
				return false
			}
			o.charged += over
		}
	}
	return true
}

// pending reports how many bytes wait for the socket.
func (o *outbox) pending() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.buf)
}

// isClosing reports whether the connection is closing.
func (o *outbox) isClosing() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.closing
}

// close marks the outbox closing and appends what last returns (the
// DISCONNECT, or nothing), called under the lock. It returns false, and
// does not call last, when the outbox was closing already.
func (o *outbox) close(last func(dst []byte) []byte) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closing {
		return false
	}
	o.setClosingLocked()
	o.buf = last(o.buf)
	return true
}

// setClosingLocked marks the outbox closing. Callers hold mu.
func (o *outbox) setClosingLocked() {
	if !o.closing {
		o.closing = true
		o.done = make(chan struct{}) // only now: an idle connection holds none
	}
}

// setReadDeadline moves nc's read deadline unless the connection is
// closing: the deadline in the past that the exiting writer sets to
// unblock the reader must not be overwritten.
func (o *outbox) setReadDeadline(nc net.Conn, d time.Time) {
	o.mu.Lock()
	if !o.closing {
		nc.SetReadDeadline(d)
	}
	o.mu.Unlock()
}

// wakeup is the channel that wakes a writer goroutine. Only a running
// writer needs one: writeLoop takes one from its pool (Server.wakeups)
// as it starts and gives it back as it stops, so an idle connection
// carries none (a channel is 96 bytes).
type wakeup struct{ c chan struct{} }

// startWake gives the writer goroutine its wake-up channel from pool; it
// calls it before its first flush, which writes whatever a notify that
// found no channel announced.
func (o *outbox) startWake(pool *sync.Pool) *wakeup {
	w := pool.Get().(*wakeup)
	o.wake.Store(w)
	return w
}

// stopWake gives the writer goroutine's channel back to pool. The next
// writer may have started already (the role passed on when this one
// parked) and installed its own channel, which stays. A notify that
// loaded w before may still send to it: the next writer that gets it
// wakes once for nothing.
func (o *outbox) stopWake(w *wakeup, pool *sync.Pool) {
	o.wake.CompareAndSwap(w, nil)
	select {
	case <-w.c:
	default:
	}
	pool.Put(w)
}

// notify wakes a running writer; it never blocks.
func (o *outbox) notify() {
	if w := o.wake.Load(); w != nil {
		select {
		case w.c <- struct{}{}:
		default:
		}
	}
}

// claim makes the caller the writer: true unless a writer runs or the
// writer has exited for good. The caller starts writeLoop.
func (o *outbox) claim() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.writing.Load() || o.wdone {
		return false
	}
	o.writing.Store(true)
	return true
}

// sink writes a batch the writer took from the outbox: all of it, or
// an error (the connection's writeOut).
type sink interface {
	writeOut(b []byte) (int, error)
}

// flushResult is what one flush did.
type flushResult struct {
	n       int      // bytes written
	closing bool     // the outbox was closing when the bytes were taken
	more    bool     // more was appended during the write
	failed  bool     // the write failed: the outbox is closing now
	sess    *session // *sess when the bytes were taken
}

// flush writes everything waiting to nc in one write, with the write
// deadline deadline() (called only when there is something to write). The
// written buffer becomes the spare one unless it grew past 64 KiB. sess
// (nil: none) is a conn field mu guards, read with the bytes: the writer
// takes both in one critical section.
func (o *outbox) flush(w sink, sess **session) flushResult {
	var r flushResult
	o.mu.Lock()
	buf := o.buf
	o.buf, o.spare = o.spare[:0], nil
	o.releaseLocked() // buf leaves the outbox: its bytes are written (or lost) now
	r.closing = o.closing
	if sess != nil {
		r.sess = *sess
	}
	o.mu.Unlock()
	if len(buf) > 0 {
		var err error
		r.n, err = w.writeOut(buf)
		if err != nil {
			o.mu.Lock()
			o.setClosingLocked()
			o.mu.Unlock()
			r.failed = true
			return r
		}
	}
	o.mu.Lock()
	if cap(buf) <= 64<<10 {
		o.spare = buf[:0]
	}
	r.more = len(o.buf) > 0
	o.mu.Unlock()
	return r
}

// fail marks the connection closing after a failed write.
func (o *outbox) fail() {
	o.mu.Lock()
	o.setClosingLocked()
	o.mu.Unlock()
}

// park stops an idle writer: it drops the buffers and clears nc's write
// deadline (the reader may write replies itself). It fails when something
// waits or the connection is closing.
func (o *outbox) park(nc net.Conn) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.buf) > 0 || o.closing {
		return false
	}
	o.buf, o.spare = nil, nil
	o.writing.Store(false)
	nc.SetWriteDeadline(noDeadline)
	return true
}

// exit records that the writer has exited for good; writing stays set,
// so nothing starts a writer again. The writer closes done (finish) once
// it has unblocked the reader.
func (o *outbox) exit() {
	o.mu.Lock()
	o.wdone = true
	o.releaseLocked() // what was not written never will be
	o.mu.Unlock()
}

// finish closes done: the writer has exited and everything is flushed.
func (o *outbox) finish() { close(o.done) }

// exited reports whether the writer has exited for good.
func (o *outbox) exited() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.wdone
}

// takeReplies hands what waits to a reader that writes its replies itself
// (flushReplies): the reader becomes the writer. It fails, and the caller
// wakes the writer instead, when a writer runs, the connection is closing
// or nothing waits.
func (o *outbox) takeReplies() ([]byte, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.writing.Load() || o.closing || len(o.buf) == 0 {
		return nil, false
	}
	o.writing.Store(true) // this reader is the writer until it is done
	buf := o.buf
	o.buf = nil
	o.releaseLocked()
	return buf, true
}

// takeClaimed hands what waits to a goroutine that made itself the writer
// (conn.signalVia). false: the connection is closing, and the caller
// starts a writer goroutine to finish it. An empty buffer (nothing waits)
// releases the writer role at once.
func (o *outbox) takeClaimed() ([]byte, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closing {
		return nil, false
	}
	buf := o.buf
	if len(buf) == 0 {
		o.writing.Store(false)
		return nil, true
	}
	o.buf = nil
	o.releaseLocked()
	return buf, true
}

// repliesWritten takes back buf, of which the reader wrote n bytes with
// err; held: the connection's TLS layer holds some of them, encrypted,
// for a writer goroutine (conn.holding). true: everything is written
// and nothing else waits; the reader is no longer the writer. false:
// what is left waits again (in order), and the caller must start a
// writer goroutine (writing stays set: it is the writer now).
func (o *outbox) repliesWritten(buf []byte, n int, err error, held bool) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err == nil && n == len(buf) && !held && len(o.buf) == 0 && !o.closing {
		if cap(buf) <= maxKeptOut {
			o.buf = buf[:0]
		}
		o.writing.Store(false)
		return true
	}
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		// A stale write deadline: the writer sets a fresh one.
		o.buf = append(buf[:len(buf):len(buf)], o.buf...)
	case err != nil:
		o.setClosingLocked() // the writer fails too and finishes
	case n < len(buf): // the socket buffer is full
		rest := make([]byte, 0, len(buf)-n+len(o.buf))
		o.buf = append(append(rest, buf[n:]...), o.buf...)
	}
	return false
}

// dropIdle drops an empty buffer when no writer runs: the reader calls it
// before it parks the connection.
func (o *outbox) dropIdle() {
	o.mu.Lock()
	if !o.writing.Load() && len(o.buf) == 0 {
		o.buf, o.spare = nil, nil
	}
	o.mu.Unlock()
}
