// Package wsnet carries MQTT over WebSockets: a net.Listener whose
// connections are WebSocket upgrades (subprotocol "mqtt", binary frames)
// arriving at an HTTP server, so the broker serves them like TCP.
package wsnet

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"edgebroker/broker/seclog"
)

// Subprotocol is the WebSocket subprotocol MQTT requires [MQTT-6.0.0-3].
const Subprotocol = "mqtt"

// Listener accepts MQTT connections carried over WebSockets. Close it to
// stop the HTTP server and end its connections.
type Listener struct {
	ln     net.Listener
	srv    *http.Server
	conns  chan net.Conn
	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once
	log    *slog.Logger
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

// Listen serves WebSocket upgrades on ln, which may already be a TLS
// listener, with at most DefaultMaxUpgrading sockets upgrading at once.
// Any path is accepted, like mosquitto.
func Listen(ln net.Listener, log *slog.Logger) *Listener {
	return ListenLimit(ln, log, DefaultMaxUpgrading, nil)
}

// ListenLimit is Listen with at most maxUpgrading sockets that have not
// finished their upgrade; a socket refused for it is a LimitConnections
// event of sec (counted, logged rate-limited; nil: neither).
func ListenLimit(ln net.Listener, log *slog.Logger, maxUpgrading int, sec *seclog.Log) *Listener {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &Listener{ln: ln, conns: make(chan net.Conn), ctx: ctx, cancel: cancel, log: log}
	lim := &limitListener{Listener: ln, max: int64(maxUpgrading), sec: sec}
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
	go l.srv.Serve(lim)
	return l
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

// upgrade turns one HTTP request into an MQTT connection.
func (l *Listener) upgrade(w http.ResponseWriter, r *http.Request) {
	wc, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols: []string{Subprotocol},
		// MQTT authenticates each connection itself (no cookies), so
		// browsers on any origin may connect, as with mosquitto.
		InsecureSkipVerify: true,
	})
	if err != nil {
		l.log.Debug("websocket upgrade", "remote", r.RemoteAddr, "err", err)
		return
	}
	if wc.Subprotocol() != Subprotocol {
		wc.Close(websocket.StatusPolicyViolation, `subprotocol "mqtt" required`)
		return
	}
	var nc net.Conn = websocket.NetConn(l.ctx, wc, websocket.MessageBinary)
	if r.TLS != nil {
		nc = &tlsConn{Conn: nc, state: *r.TLS}
	}
	select {
	case l.conns <- nc:
	case <-l.ctx.Done():
		nc.Close()
	}
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
	})
	return err
}

// Addr returns the listening address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// tlsConn reports the TLS state of a WebSocket over TLS (wss), so client
// certificate authentication works as on MQTT over TLS.
type tlsConn struct {
	net.Conn
	state tls.ConnectionState
}

func (c *tlsConn) ConnectionState() tls.ConnectionState { return c.state }
