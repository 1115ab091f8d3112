package broker

import (
	"crypto/tls"

	"edgebroker/broker/sockio"
	"edgebroker/broker/tlsnet"

	"golang.org/x/sys/unix"
)

// rbufSize is the read buffer a connection starts with; larger packets
// grow it for as long as they keep coming.
const rbufSize = 2048

// fill reads more bytes into rbuf[w:]. On a plain TCP socket the read is
// done on the raw file descriptor so that, with nothing buffered, the read
// buffer goes back to the pool while the reader waits: an idle connection
// holds none.
func (c *conn) fill(w int) (int, error) {
	if !c.plain {
		n, err := c.nc.Read(c.rbuf[w:])
		c.tlsMore = false
		if tc, ok := c.nc.(*tls.Conn); ok && n == len(c.rbuf)-w {
			// A read that filled the buffer may have left plaintext in
			// crypto/tls, or just ended with the record (a large packet
			// read whole): ask, so that the connection still parks.
			// (A wsnet.Conn's Idle asks for itself: for it, as for
			// any parkSocket but the tlsnet.Sock, Idle tells it all.)
			c.tlsMore = tlsnet.HoldsInput(tc)
		}
		return n, err
	}
	c.rw, c.rn, c.rerr = int32(w), 0, nil
	if err := c.sock.Read(c.rawFn); err != nil {
		return 0, err
	}
	return int(c.rn), c.rerr
}

// rawRead is the syscall.RawConn callback of fill: it returns false to wait
// for readability, giving back an empty read buffer first.
func (c *conn) rawRead(fd uintptr) bool {
	if c.rbuf == nil {
		c.rbuf = c.srv.rbufs.Get().(*[rbufSize]byte)[:]
	}
	n, err := sockio.Read(int(fd), c.rbuf[c.rw:])
	if err == unix.EAGAIN {
		if c.rw == 0 {
			c.releaseRbuf()
			c.releaseHandling()
		}
		return false
	}
	c.rn, c.rerr = int32(n), err
	return true
}

// releaseRbuf returns an empty read buffer of the standard size to the
// pool; a grown one is dropped.
func (c *conn) releaseRbuf() {
	if len(c.rbuf) == rbufSize {
		c.srv.rbufs.Put((*[rbufSize]byte)(c.rbuf))
	}
	c.rbuf = nil
	c.unreserveRbuf()
}

// shrinkRbuf runs when every buffered packet is handled. It drops a buffer
// grown for large packets unless the batch just handled needed it, and
// always one grown past 64 KiB.
func (c *conn) shrinkRbuf() {
	if len(c.rbuf) > rbufSize && (!c.bigSeen || len(c.rbuf) > 64<<10) {
		c.rbuf = nil
		c.unreserveRbuf()
		if !c.plain {
			c.rbuf = make([]byte, rbufSize)
		}
	}
	c.bigSeen = false
}
