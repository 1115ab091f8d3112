package brokertest

import (
	"fmt"
	"net"
	"net/url"
	"sync"
	"sync/atomic"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// memListener is a net.Listener whose connections are net.Pipe pairs, so
// a whole broker conversation runs inside a testing/synctest bubble (a
// bubble's fake clock cannot drive a real socket). Piped connections are
// not *net.TCPConn: the broker reads them with a goroutine, never through
// the reactor, whose tests keep real sockets.
type memListener struct {
	addr  memAddr       // set at construction, read-only
	conns chan net.Conn // server ends, handed to Accept
	done  chan struct{} // closed by Close
	once  sync.Once     // guards closing done
}

// memAddr names a memListener; memDial finds it in memNets.
type memAddr string

func (a memAddr) Network() string { return "mem" }
func (a memAddr) String() string  { return string(a) }

// memNets maps a memListener's address to it, for memDial.
var (
	memNets sync.Map // memAddr string → *memListener
	memSeq  atomic.Int64
)

func newMemListener() *memListener {
	l := &memListener{
		addr:  memAddr(fmt.Sprintf("mem:%d", memSeq.Add(1))),
		conns: make(chan net.Conn),
		done:  make(chan struct{}),
	}
	memNets.Store(l.addr.String(), l)
	return l
}

func (l *memListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *memListener) Close() error {
	l.once.Do(func() {
		close(l.done)
		memNets.Delete(l.addr.String())
	})
	return nil
}

func (l *memListener) Addr() net.Addr { return l.addr }

// dial connects a client end to the listener.
func (l *memListener) dial() (net.Conn, error) {
	c, s := net.Pipe()
	select {
	case l.conns <- s:
		return c, nil
	case <-l.done:
		c.Close()
		s.Close()
		return nil, net.ErrClosed
	}
}

// memDial is Dial's way to a memListener address; ok is false for other
// addresses.
func memDial(addr string) (nc net.Conn, ok bool, err error) {
	l, ok := memNets.Load(addr)
	if !ok {
		return nil, false, nil
	}
	nc, err = l.(*memListener).dial()
	return nc, true, err
}

// MemPahoConn is a paho.mqtt.golang OpenConnectionFn for an address
// returned by StartMem or ServeMem (mqtt.ClientOptions.SetCustomOpenConnectionFn).
func MemPahoConn(addr string) func(*url.URL, mqtt.ClientOptions) (net.Conn, error) {
	return func(*url.URL, mqtt.ClientOptions) (net.Conn, error) {
		nc, _, err := memDial(addr)
		return nc, err
	}
}
