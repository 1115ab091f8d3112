package broker

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"edgebroker/broker/sockio"

	"golang.org/x/sys/unix"
)

// A TLS connection parks in the reactor like a plain one (reactor.go):
// no goroutine and no read buffer while idle. crypto/tls reads from the
// socket through a tlsSock, which hands it at most one TLS record per
// Read. crypto/tls reads exactly what it asks for through it, so once a
// tls.Conn.Read has returned, nothing it read from the socket is left
// unprocessed: whatever the client sent that the broker has not seen is
// in the tlsSock's buffer (idle says whether there is any) or in the
// kernel, where epoll sees it. The one other place plaintext can wait is
// the record crypto/tls decrypted but did not fully return because the
// reader's buffer was full (conn.tlsMore).
//
// The tlsSock reads the socket with syscall.RawConn.Read, taking a buffer
// from a pool only when data is there and giving it back as soon as it is
// drained, so a waiting reader holds no buffer either.

// tlsRecordHeader is the length of a TLS record header: type, version,
// length (RFC 8446 §5.1).
const tlsRecordHeader = 5

// tlsBufSize is the tlsSock's read buffer: one maximal TLS record with
// its header and expansion, so that a bulk stream is read a record per
// system call.
const tlsBufSize = 16<<10 + 256 + tlsRecordHeader

var tlsBufs = sync.Pool{New: func() any { return new([tlsBufSize]byte) }}

// tlsSock is the TCP socket under a parked TLS connection. It is owned
// by the tls.Conn above it (crypto/tls serializes its reads); the
// connection's reader asks idle only while it owns the connection, when
// no read is in progress.
type tlsSock struct {
	*net.TCPConn // writes, deadlines, addresses and Close go straight to the socket
	raw          syscall.RawConn

	buf  *[tlsBufSize]byte // nil while empty
	r, w int               // buf[r:w] is read from the socket, not yet handed on

	hdr  [tlsRecordHeader]byte // the current record's header, as far as handed on
	hn   int                   // header bytes handed on (0: at a record boundary)
	left int                   // the current record's body bytes not yet handed on

	// rawFn's arguments and results.
	fn   func(fd uintptr) bool
	rerr error

	// Write's, owned by the tls.Conn's writer (crypto/tls serializes
	// writes).
	wfn  func(fd uintptr) bool
	wb   []byte
	wn   int
	werr error
	// held is what a non-blocking Write (spill) encrypted but the socket
	// did not take; the connection's writer goroutine writes it
	// (flushHeld) before anything else. spill is set by conn.writeNow
	// around its tls.Conn.Write; atomic because other goroutines write
	// through the tls.Conn too (its reader answers a KeyUpdate, Close
	// sends an alert). wmu serializes the socket writes and guards held:
	// crypto/tls serializes its own writes, but flushHeld writes beside
	// it.
	wmu   sync.Mutex
	held  []byte
	spill atomic.Bool
	// holds is len(held) > 0, set under wmu: the check after every
	// direct write (conn.holding) takes no lock.
	holds atomic.Bool
}

func newTLSSock(tc *net.TCPConn) (*tlsSock, error) {
	raw, err := tc.SyscallConn()
	if err != nil {
		return nil, err
	}
	s := &tlsSock{TCPConn: tc, raw: raw}
	s.fn, s.wfn = s.rawRead, s.rawWrite
	return s, nil
}

// Write writes p whole, waiting for the socket (and its write deadline)
// as net.TCPConn.Write does, with RawSyscall writes (rawio.go); what a
// non-blocking Write held goes first. With spill set it does not wait:
// what the socket does not take is held, and p counts as written (a
// tls.Conn whose write fails is broken for good, so it must not see
// EAGAIN).
func (s *tlsSock) Write(p []byte) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.spill.Load() {
		n := 0
		if len(s.held) == 0 {
			k, err := s.write(p)
			if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) { // a stale deadline: hold it all
				return k, err
			}
			n = k
		}
		if n < len(p) {
			s.held = append(s.held, p[n:]...)
			s.holds.Store(true)
		}
		return len(p), nil
	}
	if err := s.flushHeldLocked(); err != nil {
		return 0, err
	}
	return s.write(p)
}

// write writes p with rawWrite: all of it, or (spill set) what the
// socket takes now.
func (s *tlsSock) write(p []byte) (int, error) {
	s.wb, s.wn, s.werr = p, 0, nil
	err := s.raw.Write(s.wfn)
	n, werr := s.wn, s.werr
	s.wb, s.werr = nil, nil
	if werr == nil {
		werr = err
	}
	return n, werr
}

// holding reports whether a non-blocking Write left bytes for the
// writer goroutine.
func (s *tlsSock) holding() bool { return s.holds.Load() }

// flushHeld writes what non-blocking Writes held, waiting for the socket
// and its write deadline; the buffer is let go after.
func (s *tlsSock) flushHeld() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.flushHeldLocked()
}

func (s *tlsSock) flushHeldLocked() error {
	if len(s.held) == 0 {
		return nil
	}
	n, err := s.write(s.held)
	if err != nil {
		s.held = s.held[n:]
		return err
	}
	s.held = nil
	s.holds.Store(false)
	return nil
}

// rawWrite is Write's syscall.RawConn callback: false waits until the
// socket is writable.
func (s *tlsSock) rawWrite(fd uintptr) bool {
	k, err := sockio.WriteAll(int(fd), s.wb[s.wn:])
	s.wn += k
	switch {
	case err == unix.EAGAIN:
		return s.spill.Load() // spill: no waiting, the rest is held
	case err != nil:
		s.werr = &net.OpError{Op: "write", Net: "tcp", Err: err}
	}
	return true
}

// idle reports whether nothing the client sent waits in user space: the
// tlsSock's buffer is empty.
func (s *tlsSock) idle() bool { return s.buf == nil }

// ParkSocket is the socket the reactor watches (parkSocket).
func (s *tlsSock) ParkSocket() syscall.RawConn { return s.raw }

// Idle reports whether nothing read from the socket waits in the
// buffer (parkSocket).
func (s *tlsSock) Idle() bool { return s.idle() }

// Read hands crypto/tls the next bytes of the current record, at most up
// to its end, reading the socket when the buffer is empty.
func (s *tlsSock) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if s.buf == nil {
		s.rerr = nil
		if err := s.raw.Read(s.fn); err != nil {
			return 0, err // a deadline, or the socket closed
		}
		if s.rerr != nil {
			return 0, s.rerr
		}
	}
	n := 0
	for n < len(p) && s.r < s.w {
		var k int
		if s.hn < tlsRecordHeader {
			k = min(len(p)-n, s.w-s.r, tlsRecordHeader-s.hn)
			copy(s.hdr[s.hn:], s.buf[s.r:s.r+k])
			s.hn += k
			if s.hn == tlsRecordHeader {
				s.left = int(s.hdr[3])<<8 | int(s.hdr[4])
			}
		} else {
			k = min(len(p)-n, s.w-s.r, s.left)
			s.left -= k
		}
		copy(p[n:], s.buf[s.r:s.r+k])
		n += k
		s.r += k
		if s.hn == tlsRecordHeader && s.left == 0 {
			s.hn = 0 // the record is handed on whole: stop at its end
			break
		}
	}
	if s.r == s.w {
		tlsBufs.Put(s.buf)
		s.buf, s.r, s.w = nil, 0, 0
	}
	return n, nil
}

// rawRead is the syscall.RawConn callback of Read: it takes a buffer only
// once the socket has data, and returns false to wait for readability.
func (s *tlsSock) rawRead(fd uintptr) bool {
	buf := tlsBufs.Get().(*[tlsBufSize]byte)
	for {
		n, err := sockio.ReadFD(int(fd), buf[:])
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			tlsBufs.Put(buf)
			return false
		case err != nil:
			tlsBufs.Put(buf)
			s.rerr = &net.OpError{Op: "read", Net: "tcp", Err: err}
		case n == 0:
			tlsBufs.Put(buf)
			s.rerr = io.EOF
		default:
			s.buf, s.r, s.w = buf, 0, n
		}
		return true
	}
}
