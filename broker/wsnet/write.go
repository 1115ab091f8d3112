package wsnet

import (
	"encoding/binary"
	"net"
	"time"
)

// The write side of a Conn: a frame per Write, and the replies the reader
// sends (pong, close), serialized by wmu.

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
var pongWait = 10 * time.Second // a variable for the tests

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
