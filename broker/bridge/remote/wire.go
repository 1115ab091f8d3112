package remote

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"edgebroker/broker/sockio"
)

// A wire is the write side of one connection. Any goroutine appends
// encoded packets to it (under Client.mu, which orders them: see
// session); whoever then flushes writes them. tryFlush is one
// non-blocking write on the caller's goroutine, so that a batch goes out
// without waking the connection's serve goroutine; only what a full
// socket (or a connection without a raw socket: TLS, WebSockets) leaves
// is written by serve's blocking flush, as the broker does for its own
// subscribers (broker/reply.go).
type wire struct {
	nc net.Conn        // set by newWire, then read-only
	rc syscall.RawConn // set by newWire, then read-only; nil: only flush writes

	mu      sync.Mutex // guards the fields below
	buf     []byte     // appended packets, in order, not yet written
	spare   []byte     // flush's other buffer, kept for its capacity
	blocked bool       // flush is writing outside mu: tryFlush leaves buf to it
	err     error      // the first write error: the connection is done

	// rawWrite's RawConn callback and its arguments, bound once (a
	// closure per call would allocate); owned by the goroutine writing
	// (tryFlush under mu, or flush while blocked).
	rawFn func(fd uintptr) bool
	rawB  []byte
	rawN  int
	rawE  error
}

func newWire(nc net.Conn) *wire {
	w := &wire{nc: nc}
	// Only the kernel's own sockets: a TLS or WebSocket conn frames
	// what it writes, and its socket is not ours to write to.
	switch c := nc.(type) {
	case *net.TCPConn:
		w.rc, _ = c.SyscallConn()
	case *net.UnixConn:
		w.rc, _ = c.SyscallConn()
	}
	w.rawFn = w.raw
	return w
}

// maxWireBytes bounds what waits in a wire: sendLocked appends a packet
// only while the wire has room (one larger packet fits an empty wire).
// Without it a stalled upstream would let QoS 0 forwards, which leave the
// queue once appended, grow the wire without limit.
const maxWireBytes = 256 << 10

// room reports whether a packet of n bytes may be appended now.
func (w *wire) room(n int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.buf) == 0 || len(w.buf)+n <= maxWireBytes
}

// add appends an encoded packet to what waits to be written. Callers
// hold Client.mu (the order of packets on the wire).
func (w *wire) add(b []byte) {
	w.mu.Lock()
	w.buf = append(w.buf, b...)
	w.mu.Unlock()
}

// tryFlush writes what waits with one non-blocking write. It reports
// whether serve must write the rest (a full socket, no raw socket, or an
// error for serve to see); false when all is written or serve is
// writing already (it writes what was appended meanwhile).
func (w *wire) tryFlush() (handOff bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) == 0 || w.blocked {
		return false
	}
	if w.rc == nil || w.err != nil {
		return true
	}
	n, err := w.rawWrite(w.buf)
	w.buf = w.buf[:copy(w.buf, w.buf[n:])]
	if err != nil {
		w.err = err
		return true
	}
	return len(w.buf) > 0
}

// rawWrite is one non-blocking write of b: n < len(b) and no error when
// the socket is full.
func (w *wire) rawWrite(b []byte) (int, error) {
	w.rawB, w.rawN, w.rawE = b, 0, nil
	if err := w.rc.Write(w.rawFn); err != nil && w.rawE == nil {
		w.rawE = err
	}
	n, err := w.rawN, w.rawE
	w.rawB, w.rawE = nil, nil
	return n, err
}

// raw is rawWrite's RawConn callback: write until done or EAGAIN.
func (w *wire) raw(fd uintptr) bool {
	k, err := sockio.WriteAll(int(fd), w.rawB[w.rawN:])
	w.rawN += k
	if err != nil && err != unix.EAGAIN {
		w.rawE = os.NewSyscallError("write", err)
	}
	return true // never wait
}

// write writes b, blocking within writeTimeout when the socket is full.
func (w *wire) write(b []byte) error {
	n := 0
	if w.rc != nil {
		k, err := w.rawWrite(b)
		if err != nil || k == len(b) {
			return err
		}
		n = k
	}
	w.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := w.nc.Write(b[n:])
	// A stale deadline would fail the next raw write (the poller checks
	// it before the callback).
	w.nc.SetWriteDeadline(time.Time{})
	return err
}

// writeTimeout bounds a blocking write to the upstream.
const writeTimeout = 30 * time.Second

// flush writes everything that waits, blocking (within writeTimeout) on
// a full socket; only serve calls it. Packets appended while it writes
// are written by it too.
func (w *wire) flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(w.buf) > 0 && w.err == nil {
		b := w.buf
		w.buf, w.spare = w.spare[:0], nil
		w.blocked = true
		w.mu.Unlock()
		err := w.write(b)
		w.mu.Lock()
		w.blocked = false
		w.spare = b[:0]
		if err != nil {
			w.err = err
		}
	}
	return w.err
}

// rawReader reads a kernel socket with raw read(2) calls (sockio.ReadFD)
// inside syscall.RawConn callbacks, waiting in the netpoller when the
// socket is empty: an ordinary read enters and leaves the scheduler's
// syscall state, which wakes the runtime's sysmon thread whenever every
// P was idle (a flow's readers wake after every batch), and a woken
// sysmon polls every 20 µs while any P is busy. Deadlines hold as for
// nc.Read.
type rawReader struct {
	rc  syscall.RawConn // set by newReader, then read-only
	fn  func(fd uintptr) bool
	p   []byte // Read's arguments and results, for fn
	n   int
	err error
}

// newReader returns what reads nc: a rawReader for the kernel's own
// sockets, nc itself for others (TLS, WebSockets).
func newReader(nc net.Conn) io.Reader {
	var rc syscall.RawConn
	switch c := nc.(type) {
	case *net.TCPConn:
		rc, _ = c.SyscallConn()
	case *net.UnixConn:
		rc, _ = c.SyscallConn()
	}
	if rc == nil {
		return nc
	}
	r := &rawReader{rc: rc}
	r.fn = r.raw
	return r
}

func (r *rawReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.p, r.n, r.err = p, 0, nil
	err := r.rc.Read(r.fn)
	n, rerr := r.n, r.err
	r.p, r.err = nil, nil
	if rerr == nil {
		rerr = err
	}
	return n, rerr
}

// raw is Read's RawConn callback: false (wait for the socket) on EAGAIN.
func (r *rawReader) raw(fd uintptr) bool {
	n, err := sockio.Read(int(fd), r.p)
	if err == unix.EAGAIN {
		return false
	}
	r.n, r.err = n, err
	return true
}
