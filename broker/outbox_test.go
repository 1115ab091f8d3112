package broker

import (
	"bytes"
	"errors"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"edgebroker/broker/packet"
)

// recConn is a net.Conn that records writes and deadlines; the outbox
// uses only these methods.
type recConn struct {
	net.Conn
	writes [][]byte
	accept int   // bytes a write takes; 0: all
	err    error // returned by Write
	wdl    []time.Time
	rdl    []time.Time
	quiet  bool // record nothing (allocation counts)
}

func (c *recConn) Write(b []byte) (int, error) {
	if !c.quiet {
		c.writes = append(c.writes, bytes.Clone(b))
	}
	if c.err != nil {
		return c.accept, c.err
	}
	return len(b), nil
}

// writeOut is the outbox's sink: a blocking write with a deadline, as
// conn.writeOut falls back to.
func (c *recConn) writeOut(b []byte) (int, error) {
	c.SetWriteDeadline(testDeadline)
	return c.Write(b)
}

func (c *recConn) SetWriteDeadline(t time.Time) error {
	if !c.quiet {
		c.wdl = append(c.wdl, t)
	}
	return nil
}
func (c *recConn) SetReadDeadline(t time.Time) error { c.rdl = append(c.rdl, t); return nil }

func newOutbox() *outbox { return &outbox{} }

var testDeadline = time.Unix(1000, 0)

func TestOutboxFlushBatches(t *testing.T) {
	o := newOutbox()
	nc := &recConn{}
	o.put([]byte("ab"))
	o.put([]byte("cd"))
	if got := o.pending(); got != 4 {
		t.Fatalf("pending = %d, want 4", got)
	}
	r := o.flush(nc, nil)
	if r != (flushResult{n: 4}) {
		t.Fatalf("flush = %+v, want 4 bytes written, nothing more", r)
	}
	if len(nc.writes) != 1 || string(nc.writes[0]) != "abcd" {
		t.Fatalf("writes = %q, want one write of everything in order", nc.writes)
	}
	if len(nc.wdl) != 1 || !nc.wdl[0].Equal(testDeadline) {
		t.Fatalf("write deadlines = %v, want one %v", nc.wdl, testDeadline)
	}
	// The written buffer is reused: the next put does not allocate.
	nc.quiet = true
	if a := testing.AllocsPerRun(10, func() { o.put([]byte("x")); o.flush(nc, nil) }); a != 0 {
		t.Errorf("put+flush allocates %v times, want 0 (spare buffer reused)", a)
	}
	// The session is read with the bytes.
	ss := new(session)
	o.put([]byte("x"))
	if r := o.flush(nc, &ss); r.sess != ss {
		t.Fatalf("flush read session %p, want %p", r.sess, ss)
	}
	// Nothing waiting: no write, no deadline.
	nc.quiet = false
	nc.writes, nc.wdl = nil, nil
	if r := o.flush(nc, nil); r != (flushResult{}) || len(nc.writes) != 0 || len(nc.wdl) != 0 {
		t.Fatalf("empty flush = %+v, writes %q, deadlines %v; want nothing", r, nc.writes, nc.wdl)
	}
}

func TestOutboxFlushDropsGrownBuffer(t *testing.T) {
	o := newOutbox()
	nc := &recConn{}
	o.put(make([]byte, 64<<10+1))
	o.flush(nc, nil)
	o.mu.Lock()
	spare := o.spare
	o.mu.Unlock()
	if spare != nil {
		t.Fatalf("kept a %d byte spare buffer, want none past 64 KiB", cap(spare))
	}
}

func TestOutboxWriteFailureCloses(t *testing.T) {
	o := newOutbox()
	nc := &recConn{err: errors.New("broken pipe"), accept: 1}
	o.put([]byte("abc"))
	r := o.flush(nc, nil)
	if !r.failed || r.n != 1 {
		t.Fatalf("flush = %+v, want failed after 1 byte", r)
	}
	if !o.isClosing() || o.done == nil {
		t.Fatal("a failed write leaves the outbox open")
	}
}

func TestOutboxCloseOnce(t *testing.T) {
	o := newOutbox()
	if o.done != nil {
		t.Fatal("an open outbox holds a done channel")
	}
	calls := 0
	last := func(b []byte) []byte { calls++; return append(b, "bye"...) }
	if !o.close(last) {
		t.Fatal("first close returned false")
	}
	if o.close(last) {
		t.Fatal("second close returned true")
	}
	if calls != 1 || o.pending() != 3 || o.done == nil {
		t.Fatalf("last called %d times, %d bytes pending, done %v; want 1, 3, made", calls, o.pending(), o.done)
	}
	// A closing outbox keeps the read deadline the exiting writer sets.
	nc := &recConn{}
	o.setReadDeadline(nc, time.Unix(5, 0))
	if len(nc.rdl) != 0 {
		t.Fatalf("read deadline set on a closing outbox: %v", nc.rdl)
	}
	// Flushing a closing outbox writes what is left and reports closing.
	if r := o.flush(nc, nil); !r.closing || r.more || string(nc.writes[0]) != "bye" {
		t.Fatalf("flush = %+v, writes %q; want the DISCONNECT written, closing", r, nc.writes)
	}
}

func TestOutboxPark(t *testing.T) {
	o := newOutbox()
	nc := &recConn{}
	if !o.claim() {
		t.Fatal("claim of an idle outbox failed")
	}
	if o.claim() {
		t.Fatal("a second writer claimed the outbox")
	}
	o.put([]byte("a"))
	if o.park(nc) {
		t.Fatal("parked with bytes waiting")
	}
	o.flush(nc, nil)
	if !o.park(nc) {
		t.Fatal("park of an empty outbox failed")
	}
	if o.writing.Load() || o.buf != nil || o.spare != nil {
		t.Fatalf("parked outbox: writing %v, buf %v, spare %v; want no writer and no buffers", o.writing.Load(), o.buf, o.spare)
	}
	if n := len(nc.wdl); n == 0 || !nc.wdl[n-1].IsZero() {
		t.Fatalf("write deadlines %v: park must clear it for the reader", nc.wdl)
	}
	if !o.claim() {
		t.Fatal("claim after park failed")
	}
	o.close(func(b []byte) []byte { return b })
	if o.park(nc) {
		t.Fatal("parked a closing outbox")
	}
	o.exit()
	if !o.exited() {
		t.Fatal("exited = false after exit")
	}
	o.writing.Store(false)
	if o.claim() {
		t.Fatal("claimed an outbox whose writer exited for good")
	}
	o.finish()
	select {
	case <-o.done:
	default:
		t.Fatal("done not closed by finish")
	}
}

func TestOutboxPutPublishLimit(t *testing.T) {
	o := newOutbox()
	p := &packet.Publish{Topic: []byte("a/b"), Payload: []byte("12345")}
	if !o.putPublish(p, packet.V311, 0) {
		t.Fatal("putPublish without a limit failed")
	}
	n := o.pending()
	if !o.putPublish(p, packet.V311, n+1) {
		t.Fatal("putPublish below the limit failed")
	}
	if o.putPublish(p, packet.V311, 2*n) {
		t.Fatal("putPublish at the limit succeeded")
	}
	if o.pending() != 2*n {
		t.Fatalf("pending = %d, want %d", o.pending(), 2*n)
	}
}

func TestOutboxReaderWritesReplies(t *testing.T) {
	o := newOutbox()
	if _, ok := o.takeReplies(); ok {
		t.Fatal("took replies from an empty outbox")
	}
	o.put([]byte("ack"))
	buf, ok := o.takeReplies()
	if !ok || string(buf) != "ack" || !o.writing.Load() {
		t.Fatalf("takeReplies = %q, %v, writing %v; want the replies, the reader the writer", buf, ok, o.writing.Load())
	}
	if _, ok := o.takeReplies(); ok {
		t.Fatal("took replies while a writer runs")
	}
	if !o.repliesWritten(buf, len(buf), nil, false) || o.writing.Load() {
		t.Fatal("a complete write did not end the reader's turn as writer")
	}

	// The socket took 1 byte; meanwhile a delivery was appended: the rest
	// of the replies go first.
	o.put([]byte("ack"))
	buf, _ = o.takeReplies()
	o.put([]byte("pub"))
	if o.repliesWritten(buf, 1, nil, false) {
		t.Fatal("a partial write ended the reader's turn")
	}
	if got := string(o.buf); got != "ckpub" || !o.writing.Load() {
		t.Fatalf("waiting %q, writing %v; want \"ckpub\" for a writer goroutine", got, o.writing.Load())
	}

	// A stale write deadline: everything is written again by the writer.
	o = newOutbox()
	o.put([]byte("ack"))
	buf, _ = o.takeReplies()
	if o.repliesWritten(buf, 0, os.ErrDeadlineExceeded, false) || string(o.buf) != "ack" {
		t.Fatalf("after a stale deadline waiting %q, want \"ack\"", o.buf)
	}

	// Written whole, but the TLS layer holds part of it: the writer
	// role stays, for a writer goroutine, with nothing written again.
	o = newOutbox()
	o.put([]byte("ack"))
	buf, _ = o.takeReplies()
	if o.repliesWritten(buf, len(buf), nil, true) || !o.writing.Load() || len(o.buf) != 0 {
		t.Fatalf("held bytes: writing %v, waiting %q; want the writer role kept, nothing waiting", o.writing.Load(), o.buf)
	}

	// A failed write closes.
	o = newOutbox()
	o.put([]byte("ack"))
	buf, _ = o.takeReplies()
	if o.repliesWritten(buf, 0, errors.New("reset"), false) || !o.isClosing() {
		t.Fatal("a failed reply write leaves the outbox open")
	}
}

func TestOutboxDropIdle(t *testing.T) {
	o := newOutbox()
	o.put([]byte("a"))
	o.dropIdle()
	if o.pending() != 1 {
		t.Fatal("dropIdle dropped waiting bytes")
	}
	o.flush(&recConn{}, nil)
	o.dropIdle()
	if o.buf != nil || o.spare != nil {
		t.Fatal("dropIdle kept the buffers of an idle outbox")
	}
}

// TestOutboxWakeHandOver checks that a writer that parked and is
// stopping does not take the wake-up channel of the writer that started
// after it: a notify must still wake the new one.
func TestOutboxWakeHandOver(t *testing.T) {
	pool := &sync.Pool{New: func() any { return &wakeup{c: make(chan struct{}, 1)} }}
	o := newOutbox()
	old := o.startWake(pool)
	cur := o.startWake(pool) // the next writer, started before the old one's deferred stopWake
	o.stopWake(old, pool)
	o.notify()
	select {
	case <-cur.c:
	default:
		t.Fatal("the running writer was not woken: its channel was taken away")
	}
	o.stopWake(cur, pool)
	if o.wake.Load() != nil {
		t.Fatal("a channel stays after the last writer stopped")
	}
}
