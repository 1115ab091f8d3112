package wsnet

import (
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"syscall"
	"time"

	"edgebroker/broker/tlsnet"
)

// A Conn is the MQTT byte stream of one upgraded WebSocket: Read returns
// the payloads of the client's binary frames, Write sends one binary
// frame per call. On a plain (ws://) socket it holds, like the broker's
// own TLS (broker/tlsnet), no buffer while nothing waits: it reads
// the socket with a syscall.RawConn, taking a buffer from a pool only when
// data is there and giving it back when it is drained, and its frame
// state (the payload bytes left, the mask, a header read in part) is a
// few fields. So the broker can park an idle connection in its reactor:
// ParkSocket gives it the socket to watch, Idle says that nothing the
// client sent waits in user space.
//
// Over TLS (wss://) it reads a *tls.Conn. When that runs over a
// tlsnet.Sock (ListenTLS) the connection parks too: ParkSocket is the
// Sock's socket, Idle also asks the Sock's buffer and crypto/tls's input
// (tlsnet.HoldsInput), and ReleaseIdle, which the broker calls at park
// time, lets crypto/tls's emptied input buffers go (tlsnet.ReleaseInput).
// Its reader blocks in the Sock's read (the network poller) until the
// broker's read deadline parks it; crypto/tls treats a timeout as
// temporary, so the tls.Conn reads on after it. Over a tls.Conn on any
// other socket (a tls.NewListener under Listen) ParkSocket is nil and the
// connection keeps its reader goroutine.
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
	tc  *tls.Conn       // nc on wss over a tlsnet.Sock, else nil; read-only
	ts  *tlsnet.Sock    // the socket under tc; read-only
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
	switch nc := nc.(type) {
	case *net.TCPConn:
		if raw, err := nc.SyscallConn(); err == nil {
			c.tcp, c.raw = nc, raw
			c.fn = c.rawRead
		}
	case *tls.Conn:
		if ts, ok := nc.NetConn().(*tlsnet.Sock); ok {
			c.tc, c.ts = nc, ts
		}
	}
	if len(pre) > 0 {
		c.buf = bufs.Get().(*[bufSize]byte)
		c.w = copy(c.buf[:], pre) // net/http's buffer is 4 KiB, ours larger
	}
	return c
}

// ParkSocket returns the socket a reactor may watch for readability while
// the connection is idle: the TCP socket on ws://, the tlsnet.Sock's on
// wss:// (ListenTLS); nil over any other TLS, whose reads block.
func (c *Conn) ParkSocket() syscall.RawConn {
	if c.ts != nil {
		return c.ts.ParkSocket()
	}
	return c.raw
}

// Idle reports whether nothing the client sent waits in user space: no
// bytes in the Conn's buffer (frame state, such as a header read in part,
// is not waiting bytes) and, over a tlsnet.Sock, none in the Sock's
// buffer or in crypto/tls (a record decrypted and not wholly read). Only
// the reader asks, between reads.
func (c *Conn) Idle() bool {
	if c.buf != nil {
		return false
	}
	return c.ts == nil || c.ts.Idle() && !tlsnet.HoldsInput(c.tc)
}

// ReleaseIdle lets go of crypto/tls's input buffers when they are empty
// (tlsnet.ReleaseInput), on wss:// over a tlsnet.Sock; the broker's
// reader calls it when it parks the connection (it owns the reads).
func (c *Conn) ReleaseIdle() {
	if c.tc != nil {
		tlsnet.ReleaseInput(c.tc)
	}
}

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
