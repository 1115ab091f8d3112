package wsnet

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"
)

// A Conn is the MQTT byte stream of one upgraded WebSocket: Read returns
// the payloads of the client's binary frames, Write sends one binary
// frame per call. On a plain (ws://) socket it holds, like the broker's
// own TLS (broker/tlssock.go), no buffer while nothing waits: it reads
// the socket with a syscall.RawConn, taking a buffer from a pool only when
// data is there and giving it back when it is drained, and its frame
// state (the payload bytes left, the mask, a header read in part) is a
// few fields. So the broker can park an idle connection in its reactor:
// ParkSocket gives it the socket to watch, Idle says that nothing the
// client sent waits in user space. Over TLS (wss://) the socket under it
// is a *tls.Conn, read with blocking reads: that connection keeps its
// reader goroutine.
//
// Frames follow RFC 6455 as MQTT uses them [MQTT-6.0.0-1]: binary data
// frames, fragmented or not, any number per MQTT packet and any number of
// packets per frame [MQTT-6.0.0-2]. A ping is answered with a pong, a
// close with a close, after which Read returns io.EOF. A text frame
// (1003), an unmasked frame, a reserved opcode or bit, a control frame
// longer than 125 bytes or fragmented, or a continuation out of place
// (1002) is answered with a close and ends the connection (RFC 6455 5.1,
// 5.5, 7.4.1).
type Conn struct {
	nc  net.Conn        // the hijacked socket: *net.TCPConn (ws) or *tls.Conn (wss); read-only
	tcp *net.TCPConn    // nc on ws, for writev; nil on wss; read-only
	raw syscall.RawConn // tcp's; nil on wss; read-only
	ln  *Listener       // read-only; Close forgets the Conn there

	// The reader's (one Read at a time; the broker's reader owns it).
	buf   *[bufSize]byte        // nil while empty
	r, w  int                   // buf[r:w] is read from the socket, not yet handled
	hdr   [maxHeader]byte       // the next frame's header as far as read
	hn    int                   // bytes in hdr
	left  uint64                // the current data frame's payload bytes not yet returned
	mask  [4]byte               // the current data frame's masking key
	pos   int                   // payload bytes of the current frame returned so far (mask offset)
	frag  bool                  // a fragmented message is open: continuation frames follow
	rerr  error                 // sticky: the read side ended (io.EOF after a close)
	fn    func(fd uintptr) bool // c.rawRead, bound once
	fnErr error                 // rawRead's result

	wmu       sync.Mutex      // serializes frames: the writer's data and the reader's replies
	whdr      [maxHeader]byte // guarded by wmu
	wv        net.Buffers     // guarded by wmu; the writev of one frame
	wa        [2][]byte       // guarded by wmu; wv's backing array
	closeSent bool            // guarded by wmu: no frame follows a close

	dmu     sync.Mutex // guards the two below; never held across a write
	wdl     time.Time  // the write deadline the user set
	ponging bool       // a pong is written under pongWait: wdl is applied after it

	closeOnce sync.Once
	closeErr  error
}

// bufSize is the read buffer taken while the socket has data: a bulk
// stream is read 16 KiB per system call, as the broker's TLS reads one
// record.
const bufSize = 16 << 10

// maxHeader is the longest frame header: 2 bytes, 8 of extended length, 4
// of mask (RFC 6455 5.2).
const maxHeader = 14

// maxControl is a control frame's longest payload (RFC 6455 5.5).
const maxControl = 125

var bufs = sync.Pool{New: func() any { return new([bufSize]byte) }}

// Opcodes (RFC 6455 5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xa
)

// ErrProtocol ends a connection whose client broke RFC 6455 or sent a
// text frame [MQTT-6.0.0-1].
var ErrProtocol = errors.New("wsnet: websocket protocol error")

// newConn wraps a hijacked socket; pre is what net/http read past the
// upgrade request (copied).
func newConn(nc net.Conn, pre []byte, ln *Listener) *Conn {
	c := &Conn{nc: nc, ln: ln}
	if tc, ok := nc.(*net.TCPConn); ok {
		if raw, err := tc.SyscallConn(); err == nil {
			c.tcp, c.raw = tc, raw
			c.fn = c.rawRead
		}
	}
	if len(pre) > 0 {
		c.buf = bufs.Get().(*[bufSize]byte)
		c.w = copy(c.buf[:], pre) // net/http's buffer is 4 KiB, ours larger
	}
	return c
}

// ParkSocket returns the socket a reactor may watch for readability while
// the connection is idle, or nil over TLS (wss), whose reads block.
func (c *Conn) ParkSocket() syscall.RawConn { return c.raw }

// Idle reports whether nothing the client sent waits in user space. Only
// the reader asks, between reads.
func (c *Conn) Idle() bool { return c.buf == nil }

// Read returns the payload bytes of the client's data frames, handling
// the control frames between them.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n := 0
	for n < len(p) {
		if c.rerr != nil {
			break
		}
		if c.r == c.w {
			if n > 0 {
				break // return what we have rather than wait
			}
			if err := c.fill(); err != nil {
				return 0, err // a deadline or a closed socket: not sticky
			}
			continue
		}
		if c.left > 0 {
			k := min(len(p)-n, c.w-c.r)
			if uint64(k) > c.left {
				k = int(c.left)
			}
			copy(p[n:], c.buf[c.r:c.r+k])
			ws.Cipher(p[n:n+k], c.mask, c.pos)
			c.r += k
			n += k
			c.pos += k
			c.left -= uint64(k)
			continue
		}
		wait, err := c.frame()
		if err != nil {
			c.rerr = err
		} else if wait {
			if n > 0 {
				break
			}
			if err := c.fill(); err != nil {
				return 0, err
			}
		}
	}
	if c.r == c.w && c.buf != nil {
		bufs.Put(c.buf)
		c.buf, c.r, c.w = nil, 0, 0
	}
	if n == 0 && c.rerr != nil {
		return 0, c.rerr
	}
	return n, nil
}

// frame reads the next frame header from buf and, for a control frame
// wholly in buf, handles it. It returns with c.left set at a data frame;
// wait says that a control frame is not complete in buf (the caller reads
// more; its header stays in hdr).
func (c *Conn) frame() (wait bool, err error) {
	for {
		need := headerLen(c.hdr[:c.hn])
		if c.hn == need {
			break
		}
		k := copy(c.hdr[c.hn:need], c.buf[c.r:c.w])
		c.hn += k
		c.r += k
		if k == 0 {
			return false, nil // buf is drained; the rest of the header comes later
		}
	}
	h := c.hdr[:c.hn]
	fin, op := h[0]&0x80 != 0, h[0]&0x0f
	length := uint64(h[1] & 0x7f)
	switch length {
	case 126:
		length = uint64(binary.BigEndian.Uint16(h[2:]))
	case 127:
		length = binary.BigEndian.Uint64(h[2:])
	}
	switch {
	case h[0]&0x70 != 0: // no extension was negotiated
		return false, c.fail(ws.StatusProtocolError)
	case h[1]&0x80 == 0: // a client masks every frame (RFC 6455 5.1)
		return false, c.fail(ws.StatusProtocolError)
	case op == opText: // [MQTT-6.0.0-1]
		return false, c.fail(ws.StatusUnsupportedData)
	case op == opBinary && !c.frag, op == opContinuation && c.frag:
		c.frag = !fin
		c.left, c.pos, c.hn = length, 0, 0
		copy(c.mask[:], h[len(h)-4:])
		return false, nil
	case op != opClose && op != opPing && op != opPong:
		return false, c.fail(ws.StatusProtocolError) // reserved, or a continuation out of place
	case !fin || length > maxControl:
		return false, c.fail(ws.StatusProtocolError)
	}
	if c.w-c.r < int(length) {
		c.compact()
		return true, nil
	}
	var mask [4]byte
	copy(mask[:], h[len(h)-4:])
	body := c.buf[c.r : c.r+int(length)]
	c.r += int(length)
	c.hn = 0
	ws.Cipher(body, mask, 0)
	switch op {
	case opPing:
		return false, c.writePong(body)
	case opClose:
		code := body
		if len(code) >= 2 {
			code = code[:2] // echo the status code (RFC 6455 5.5.1)
		}
		c.writeClose(code, true)
		return false, io.EOF
	}
	return false, nil // a pong
}

// headerLen is the length of the frame header that starts with h.
func headerLen(h []byte) int {
	if len(h) < 2 {
		return 2
	}
	n := 2 + 4 // masked: the mask's absence is found once it is read
	switch h[1] & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if h[1]&0x80 == 0 {
		n -= 4
	}
	return n
}

// compact moves buf[r:w] to the buffer's start, so that a control frame
// read in part has room for its rest.
func (c *Conn) compact() {
	if c.r > 0 {
		c.w = copy(c.buf[:], c.buf[c.r:c.w])
		c.r = 0
	}
}

// fail answers a broken frame with a close frame carrying code.
func (c *Conn) fail(code ws.StatusCode) error {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], uint16(code))
	c.writeClose(b[:], true)
	return ErrProtocol
}

// fill reads more of the socket into buf[w:].
func (c *Conn) fill() error {
	if c.r == c.w {
		c.r, c.w = 0, 0
	}
	if c.raw == nil {
		if c.buf == nil {
			c.buf = bufs.Get().(*[bufSize]byte)
		}
		n, err := c.nc.Read(c.buf[c.w:])
		c.w += n
		if n > 0 {
			return nil
		}
		if c.r == c.w {
			bufs.Put(c.buf)
			c.buf, c.r, c.w = nil, 0, 0
		}
		return err
	}
	c.fnErr = nil
	if err := c.raw.Read(c.fn); err != nil {
		return err // a deadline, or the socket closed
	}
	return c.fnErr
}

// rawRead is fill's syscall.RawConn callback: it takes a buffer only
// once the socket has data, and returns false to wait for readability.
func (c *Conn) rawRead(fd uintptr) bool {
	if c.buf == nil {
		c.buf = bufs.Get().(*[bufSize]byte)
	}
	for {
		n, err := rawReadFD(int(fd), c.buf[c.w:])
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			if c.r == c.w {
				bufs.Put(c.buf)
				c.buf, c.r, c.w = nil, 0, 0
			}
			return false
		case err != nil:
			c.fnErr = &net.OpError{Op: "read", Net: "tcp", Err: err}
		case n == 0:
			c.fnErr = io.EOF
		default:
			c.w += n
		}
		return true
	}
}

// rawReadFD is read(2) on a non-blocking socket without telling the
// scheduler, as the broker reads plain TCP (broker/rawio.go explains why).
func rawReadFD(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// Write sends p as one binary frame.
func (c *Conn) Write(p []byte) (int, error) {
	if err := c.writeFrame(opBinary, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// writeFrame sends one unfragmented, unmasked frame (a server does not
// mask, RFC 6455 5.1).
func (c *Conn) writeFrame(op byte, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeFrameLocked(op, p)
}

// writeFrameLocked is writeFrame with wmu held.
func (c *Conn) writeFrameLocked(op byte, p []byte) error {
	if c.closeSent {
		return net.ErrClosed
	}
	if op == opClose {
		c.closeSent = true
	}
	h := c.whdr[:2]
	h[0] = 0x80 | op
	switch n := len(p); {
	case n < 126:
		h[1] = byte(n)
	case n <= 0xffff:
		h[1] = 126
		h = binary.BigEndian.AppendUint16(h, uint16(n))
	default:
		h[1] = 127
		h = binary.BigEndian.AppendUint64(h, uint64(n))
	}
	if c.tcp != nil {
		c.wa[0], c.wa[1] = h, p
		c.wv = c.wa[:]
		_, err := c.wv.WriteTo(c.tcp) // one writev
		c.wa[0], c.wa[1] = nil, nil
		return err
	}
	// Over TLS one write makes one record: copy small frames whole.
	if len(h)+len(p) <= bufSize {
		b := bufs.Get().(*[bufSize]byte)
		k := copy(b[:], h)
		k += copy(b[k:], p)
		_, err := c.nc.Write(b[:k])
		bufs.Put(b)
		return err
	}
	if _, err := c.nc.Write(h); err != nil {
		return err
	}
	_, err := c.nc.Write(p)
	return err
}

// writePong answers a ping. The reader writes it, so a client that sends
// pings and reads nothing must not block it for good: without a write
// deadline of the user's (the broker's writer sets one while it writes
// and clears it when it parks), the pong gets pongWait.
func (c *Conn) writePong(body []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.dmu.Lock()
	if c.wdl.IsZero() {
		c.ponging = true
		c.nc.SetWriteDeadline(time.Now().Add(pongWait))
	}
	c.dmu.Unlock()
	err := c.writeFrameLocked(opPong, body)
	c.dmu.Lock()
	if c.ponging {
		c.ponging = false
		c.nc.SetWriteDeadline(c.wdl) // set meanwhile, or none
	}
	c.dmu.Unlock()
	return err
}

// pongWait bounds the write of a pong when the user set no write
// deadline.
const pongWait = 10 * time.Second

// writeClose sends a close frame with body unless one was sent, without
// waiting long for a socket the client does not read. The reader waits
// for a frame being written (the broker's writer writes under its write
// deadline); Close does not: the close frame is a courtesy there, and
// closing the socket is what unblocks a stuck writer.
func (c *Conn) writeClose(body []byte, wait bool) {
	if wait {
		c.wmu.Lock()
	} else if !c.wmu.TryLock() {
		return
	}
	defer c.wmu.Unlock()
	if !c.closeSent {
		c.nc.SetWriteDeadline(time.Now().Add(closeWait))
		c.writeFrameLocked(opClose, body)
	}
}

// closeWait bounds the write of a close frame.
const closeWait = time.Second

// Close sends a close frame (1000, normal closure) if none was sent and
// closes the socket.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.writeClose([]byte{0x03, 0xe8}, false)
		c.closeErr = c.nc.Close()
		if c.ln != nil {
			c.ln.forget(c)
		}
	})
	return c.closeErr
}

// LocalAddr returns the socket's local address.
func (c *Conn) LocalAddr() net.Addr { return c.nc.LocalAddr() }

// RemoteAddr returns the client's address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// SetDeadline sets the socket's deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

// SetReadDeadline sets the socket's read deadline.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.nc.SetReadDeadline(t) }

// SetWriteDeadline sets the socket's write deadline (after the pong being
// written, if any).
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	c.wdl = t
	if c.ponging {
		return nil
	}
	return c.nc.SetWriteDeadline(t)
}

// tlsConn reports the TLS state of a WebSocket over TLS (wss), so client
// certificate authentication works as on MQTT over TLS.
type tlsConn struct {
	*Conn
	state tls.ConnectionState
}

func (c *tlsConn) ConnectionState() tls.ConnectionState { return c.state }
