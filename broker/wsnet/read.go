package wsnet

import (
	"encoding/binary"
	"io"

	"edgebroker/broker/sockio"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"
)

// The read side of a Conn: frames parsed off the socket a buffer at a
// time, the buffer taken only while bytes wait in it.

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
		if len(body) == 1 { // a body starts with a 2-byte status code
			return false, c.fail(ws.StatusProtocolError)
		}
		c.writeClose(body[:min(len(body), 2)], true) // echo the code (RFC 6455 5.5.1)
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
		if c.buf == nil && c.left == 0 && c.hn < 2 {
			// Over TLS, at a frame boundary: wait for the next frame's
			// first bytes without a buffer (an idle wss connection
			// waits here until the broker's read deadline parks it);
			// the rest of its record, left in crypto/tls, follows at
			// once (Idle asks tlsnet.HoldsInput).
			n, err := c.nc.Read(c.hdr[c.hn:2])
			c.hn += n
			if n > 0 {
				err = nil
			}
			return err
		}
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
	n, err := sockio.Read(int(fd), c.buf[c.w:])
	if err == unix.EAGAIN {
		if c.r == c.w {
			bufs.Put(c.buf)
			c.buf, c.r, c.w = nil, 0, 0
		}
		return false
	}
	c.w += n
	c.fnErr = err
	return true
}
