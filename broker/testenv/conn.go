package testenv

import (
	"net"
	"sync"
)

// LockedConn wraps a connection handed to paho.golang (paho.ClientConfig
// Conn) so that each packet is written whole. paho.golang writes a packet
// as several buffers; on a TLS connection those are separate Writes, and
// its pinger (whose first PINGREQ goes out at once) can slip between a
// packet's header and body: the broker then rightly sees a malformed
// packet. paho locks a writer that is a sync.Locker around each packet.
func LockedConn(c net.Conn) net.Conn { return &lockedConn{Conn: c} }

type lockedConn struct {
	net.Conn
	sync.Mutex // held by paho.golang while it writes one packet
}
