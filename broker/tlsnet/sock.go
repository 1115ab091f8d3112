// Package tlsnet is the socket layer under a TLS connection that parks:
// a Sock is the TCP socket crypto/tls reads and writes through, handing it
// at most one TLS record per Read from a pool buffer taken only while
// bytes wait, so that a connection whose reader has returned holds
// nothing the client sent in user space but what crypto/tls itself
// kept. ReleaseInput lets crypto/tls's emptied input buffers go when the
// connection parks, and HoldsInput says whether crypto/tls still holds
// input (release.go).
//
// The broker's own TLS (broker.Port.TLS) and wsnet's WebSockets over TLS
// (wss://) both use it: with a Sock under the tls.Conn, an idle TLS or wss
// connection parks in the broker's reactor (ParkSocket, Idle) with no
// goroutine, like a plain one.
package tlsnet

import (
	"crypto/tls"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"edgebroker/broker/sockio"

	"golang.org/x/sys/unix"
)

// crypto/tls reads exactly what it asks for through a Sock, so once a
// tls.Conn.Read has returned, nothing it read from the socket is left
// unprocessed: whatever the client sent that the reader has not seen is
// in the Sock's buffer (Idle says whether there is any), in crypto/tls's
// input (HoldsInput: a decrypted record not wholly returned because the
// reader's buffer was full), or in the kernel, where epoll sees it.
//
// The Sock reads the socket with syscall.RawConn.Read, taking a buffer
// from a pool only when data is there and giving it back as soon as it is
// drained, so a waiting reader holds no buffer either.

// recordHeader is the length of a TLS record header: type, version,
// length (RFC 8446 §5.1).
const recordHeader = 5

// bufSize is the Sock's read buffer: one maximal TLS record with its
// header and expansion, so that a bulk stream is read a record per system
// call.
const bufSize = 16<<10 + 256 + recordHeader

var bufs = sync.Pool{New: func() any { return new([bufSize]byte) }}

// Sock is the TCP socket under a tls.Conn that may park. It is owned by
// the tls.Conn above it (crypto/tls serializes its reads); the
// connection's reader asks Idle only while it owns the connection, when
// no read is in progress.
type Sock struct {
	*net.TCPConn // writes, deadlines, addresses and Close go straight to the socket
	raw          syscall.RawConn

	// The reader's (crypto/tls's input side).
	buf  *[bufSize]byte // nil while empty
	r, w int            // buf[r:w] is read from the socket, not yet handed on

	hdr  [recordHeader]byte // the current record's header, as far as handed on
	hn   int                // header bytes handed on (0: at a record boundary)
	left int                // the current record's body bytes not yet handed on

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
	// (FlushHeld) before anything else. spill is set by SetSpill around
	// a tls.Conn.Write (the broker's conn.writeNow); atomic because
	// other goroutines write through the tls.Conn too (its reader
	// answers a KeyUpdate, Close sends an alert). wmu serializes the
	// socket writes and guards held: crypto/tls serializes its own
	// writes, but FlushHeld writes beside it.
	wmu   sync.Mutex
	held  []byte
	spill atomic.Bool
	// holds is len(held) > 0, set under wmu: the check after every
	// direct write (Holding) takes no lock.
	holds atomic.Bool
}

// NewSock wraps tc.
func NewSock(tc *net.TCPConn) (*Sock, error) {
	raw, err := tc.SyscallConn()
	if err != nil {
		return nil, err
	}
	s := &Sock{TCPConn: tc, raw: raw}
	s.fn, s.wfn = s.rawRead, s.rawWrite
	return s, nil
}

// Server is tls.Server over a Sock wrapping nc, and that Sock; when nc is
// not a TCP socket (or its descriptor is out of reach) it is tls.Server
// over nc itself, and the Sock is nil: that connection cannot park.
func Server(nc net.Conn, cfg *tls.Config) (*tls.Conn, *Sock) {
	if tc, ok := nc.(*net.TCPConn); ok {
		if s, err := NewSock(tc); err == nil {
			return tls.Server(s, cfg), s
		}
	}
	return tls.Server(nc, cfg), nil
}

// Write writes p whole, waiting for the socket (and its write deadline)
// as net.TCPConn.Write does, with RawSyscall writes (sockio); what a
// non-blocking Write held goes first. With spill set (SetSpill) it does
// not wait: what the socket does not take is held, and p counts as
// written (a tls.Conn whose write fails is broken for good, so it must
// not see EAGAIN).
func (s *Sock) Write(p []byte) (int, error) {
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

// SetSpill turns non-blocking writes on or off: the broker's direct
// writer sets it around its tls.Conn.Write, then checks Holding.
func (s *Sock) SetSpill(on bool) { s.spill.Store(on) }

// write writes p with rawWrite: all of it, or (spill set) what the
// socket takes now.
func (s *Sock) write(p []byte) (int, error) {
	s.wb, s.wn, s.werr = p, 0, nil
	err := s.raw.Write(s.wfn)
	n, werr := s.wn, s.werr
	s.wb, s.werr = nil, nil
	if werr == nil {
		werr = err
	}
	return n, werr
}

// Holding reports whether a non-blocking Write left bytes for the
// writer goroutine.
func (s *Sock) Holding() bool { return s.holds.Load() }

// FlushHeld writes what non-blocking Writes held, waiting for the socket
// and its write deadline; the buffer is let go after.
func (s *Sock) FlushHeld() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.flushHeldLocked()
}

func (s *Sock) flushHeldLocked() error {
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
func (s *Sock) rawWrite(fd uintptr) bool {
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

// ParkSocket is the socket a reactor watches for readability while the
// connection is idle.
func (s *Sock) ParkSocket() syscall.RawConn { return s.raw }

// Idle reports whether nothing read from the socket waits in the Sock's
// buffer. (crypto/tls's own input is HoldsInput's.)
func (s *Sock) Idle() bool { return s.buf == nil }

// Read hands crypto/tls the next bytes of the current record, at most up
// to its end, reading the socket when the buffer is empty.
func (s *Sock) Read(p []byte) (int, error) {
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
		if s.hn < recordHeader {
			k = min(len(p)-n, s.w-s.r, recordHeader-s.hn)
			copy(s.hdr[s.hn:], s.buf[s.r:s.r+k])
			s.hn += k
			if s.hn == recordHeader {
				s.left = int(s.hdr[3])<<8 | int(s.hdr[4])
			}
		} else {
			k = min(len(p)-n, s.w-s.r, s.left)
			s.left -= k
		}
		copy(p[n:], s.buf[s.r:s.r+k])
		n += k
		s.r += k
		if s.hn == recordHeader && s.left == 0 {
			s.hn = 0 // the record is handed on whole: stop at its end
			break
		}
	}
	if s.r == s.w {
		bufs.Put(s.buf)
		s.buf, s.r, s.w = nil, 0, 0
	}
	return n, nil
}

// rawRead is the syscall.RawConn callback of Read: it takes a buffer only
// once the socket has data, and returns false to wait for readability.
func (s *Sock) rawRead(fd uintptr) bool {
	buf := bufs.Get().(*[bufSize]byte)
	n, err := sockio.Read(int(fd), buf[:])
	switch {
	case err == unix.EAGAIN:
		bufs.Put(buf)
		return false
	case err != nil:
		bufs.Put(buf)
		s.rerr = err
	default:
		s.buf, s.r, s.w = buf, 0, n
	}
	return true
}
