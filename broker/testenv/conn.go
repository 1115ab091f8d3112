package testenv

import (
	"bytes"
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

// SyncBuffer is a bytes.Buffer safe for concurrent use: a logger writes
// it while a test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what was written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
