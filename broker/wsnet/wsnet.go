// Package wsnet carries MQTT over WebSockets: a net.Listener whose
// connections are WebSocket upgrades (subprotocol "mqtt", binary frames)
// arriving at an HTTP server, so the broker serves them like TCP. The
// upgrade is gobwas/ws's; the frames are read and written by Conn
// (conn.go), which lets the broker park an idle connection: ws://, and
// wss:// when the listener speaks TLS itself (ListenTLS: crypto/tls over a
// tlsnet.Sock).
package wsnet

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"edgebroker/broker/seclog"
	"edgebroker/broker/tlsnet"
)

// Subprotocol is the WebSocket subprotocol MQTT requires [MQTT-6.0.0-3].
const Subprotocol = "mqtt"

// Listener accepts MQTT connections carried over WebSockets. Close it to
// stop the HTTP server and end its connections.
type Listener struct {
	ln     net.Listener // read-only
	srv    *http.Server // read-only
	conns  chan net.Conn
	ctx    context.Context    // done when Close was called
	cancel context.CancelFunc // read-only
	once   sync.Once
	log    *slog.Logger // read-only

	mu     sync.Mutex
	live   map[*Conn]struct{} // guarded by mu: upgraded and not closed, closed by Close
	closed bool               // guarded by mu: Close ran; upgrades are closed at once
}

// MaxHeaderBytes bounds the headers of an upgrade request (net/http
// allows 4 KiB more for its reading); larger ones get 431 Request Header
// Fields Too Large.
const MaxHeaderBytes = 8 << 10

// DefaultMaxUpgrading bounds the sockets of one listener that have not
// finished their upgrade (TLS handshake, HTTP request): each may hold
// MaxHeaderBytes and net/http's read buffer for ReadHeaderTimeout. A
// socket accepted beyond it is closed at once, as the broker does with
// sockets that have not finished CONNECT.
const DefaultMaxUpgrading = 256

// Listen serves WebSocket upgrades on ln with at most DefaultMaxUpgrading
// sockets upgrading at once. Any path is accepted, like mosquitto. ln may
// be a TLS listener (tls.NewListener), but then an idle connection keeps
// a goroutine blocked in crypto/tls: for wss:// use ListenTLS.
func Listen(ln net.Listener, log *slog.Logger) *Listener {
	return ListenLimit(ln, log, DefaultMaxUpgrading, nil)
}

// ListenLimit is Listen with at most maxUpgrading sockets that have not
// finished their upgrade; a socket refused for it is a LimitConnections
// event of sec (counted, logged rate-limited; nil: neither).
func ListenLimit(ln net.Listener, log *slog.Logger, maxUpgrading int, sec *seclog.Log) *Listener {
	return ListenTLS(ln, nil, log, maxUpgrading, sec)
}

// ListenTLS is ListenLimit serving wss:// with cfg on ln's TCP sockets
// (nil cfg: ws://). The listener speaks TLS itself: each accepted socket
// becomes tls.Server over a tlsnet.Sock, so that its idle connection
// parks in the broker's reactor as a ws:// one does (Conn.ParkSocket).
// net/http does the handshake (within ReadHeaderTimeout) and hands its
// state on, which the broker reads for client-certificate authentication
// (broker.Client.TLS). The sockets count against maxUpgrading from Accept,
// their handshake included.
func ListenTLS(ln net.Listener, cfg *tls.Config, log *slog.Logger, maxUpgrading int, sec *seclog.Log) *Listener {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &Listener{ln: ln, conns: make(chan net.Conn), ctx: ctx, cancel: cancel, log: log,
		live: make(map[*Conn]struct{})}
	lim := &limitListener{Listener: ln, max: int64(maxUpgrading), sec: sec}
	var hl net.Listener = lim
	if cfg != nil {
		hl = &tlsListener{Listener: lim, cfg: cfg}
	}
	l.srv = &http.Server{
		Handler:           http.HandlerFunc(l.upgrade),
		ConnState:         lim.connState,
		ReadHeaderTimeout: 10 * time.Second,
		// An upgrade request's headers are small; net/http's default
		// (1 MiB) would let a socket that has not even reached CONNECT
		// hold a megabyte.
		MaxHeaderBytes: MaxHeaderBytes,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	go l.srv.Serve(hl)
	return l
}

// tlsListener makes each accepted socket a TLS server connection over a
// tlsnet.Sock (see ListenTLS).
type tlsListener struct {
	net.Listener             // the limitListener
	cfg          *tls.Config // read-only
}

func (l *tlsListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc, _ := tlsnet.Server(c, l.cfg)
	return tc, nil
}

// limitListener closes the sockets accepted beyond max that have not
// finished their upgrade: a socket counts from Accept until net/http
// hands it over (hijacked by the upgrade) or closes it.
type limitListener struct {
	net.Listener
	max int64        // read-only
	sec *seclog.Log  // read-only
	n   atomic.Int64 // sockets accepted and not yet hijacked or closed
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.n.Add(1) <= l.max {
			return c, nil
		}
		l.n.Add(-1)
		if l.sec.Allow(seclog.LimitConnections) {
			l.sec.Log(seclog.LimitConnections, "websocket: socket refused: too many sockets upgrading",
				"remote", c.RemoteAddr().String(), "max", l.max)
		}
		c.Close()
	}
}

func (l *limitListener) connState(_ net.Conn, st http.ConnState) {
	if st == http.StateHijacked || st == http.StateClosed {
		l.n.Add(-1)
	}
}

// upgrader accepts the subprotocol "mqtt" only and any origin: MQTT
// authenticates each connection itself (no cookies), so browsers on any
// origin may connect, as with mosquitto.
var upgrader = ws.HTTPUpgrader{
	Protocol: func(p string) bool { return p == Subprotocol },
}

// upgrade turns one HTTP request into an MQTT connection.
func (l *Listener) upgrade(w http.ResponseWriter, r *http.Request) {
	nc, rw, hs, err := upgrader.Upgrade(r, w)
	if err != nil {
		l.log.Debug("websocket upgrade", "remote", r.RemoteAddr, "err", err)
		if nc != nil {
			nc.Close()
		}
		return
	}
	// What net/http read past the request is the client's first frames.
	var pre []byte
	if n := rw.Reader.Buffered(); n > 0 {
		pre, _ = rw.Reader.Peek(n)
	}
	c := newConn(nc, pre, l)
	if hs.Protocol != Subprotocol { // [MQTT-6.0.0-3]
		var b [2]byte
		binary.BigEndian.PutUint16(b[:], uint16(ws.StatusPolicyViolation))
		c.writeClose(append(b[:], `subprotocol "mqtt" required`...), true)
		c.Close()
		return
	}
	if !l.track(c) {
		c.Close()
		return
	}
	var mc net.Conn = c
	if r.TLS != nil {
		mc = &tlsConn{Conn: c, state: *r.TLS}
	}
	select {
	case l.conns <- mc:
	case <-l.ctx.Done():
		c.Close()
	}
}

// track records c as one of the listener's, unless it is closed.
func (l *Listener) track(c *Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.live[c] = struct{}{}
	return true
}

// forget drops a closed connection.
func (l *Listener) forget(c *Conn) {
	l.mu.Lock()
	delete(l.live, c)
	l.mu.Unlock()
}

// Accept returns the next MQTT-over-WebSocket connection.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.ctx.Done():
		return nil, net.ErrClosed
	}
}

// Close stops the HTTP server and every connection it upgraded.
func (l *Listener) Close() error {
	var err error
	l.once.Do(func() {
		l.cancel()
		err = l.srv.Close()
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		l.mu.Lock()
		l.closed = true
		live := l.live
		l.live = nil
		l.mu.Unlock()
		for c := range live {
			c.Close()
		}
	})
	return err
}

// Addr returns the listening address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }
