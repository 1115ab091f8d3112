// Package broker implements edgebroker's MQTT 3.1.1 and 5.0 server.
//
// A Server is shaped like net/http.Server: Serve(ln) blocks accepting
// connections until Shutdown or Close, and returns ErrServerClosed. Each
// listening port can carry its own authentication and authorization
// (ServePort). Other parts of the appliance publish and subscribe through
// the in-process API (Publish, Subscribe, SendTo) without a socket.
//
// The hot path — reading a PUBLISH, matching subscribers and encoding it for
// each of them — allocates nothing in steady state: packets are decoded into
// per-connection values, messages are pooled and reference counted, and
// each connection writes from a reused buffer.
package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"edgebroker/broker/journal"
	"edgebroker/broker/packet"
	"edgebroker/broker/seclog"
	"edgebroker/broker/topic"
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("broker: server closed")

// Config configures a Server.
type Config struct {
	Limits Limits
	Logger *slog.Logger // nil: discard
	// Now is the protocol clock (nil: time.Now): message expiry, when a
	// session went offline, session expiry and will delay (a runtime
	// timer wakes the broker, Now decides whether the interval has
	// passed), the time left of a credential, security-log windows.
	// Socket deadlines (connect timeout, keep-alive, write timeout)
	// always come from time.Now: the kernel knows only the real clock.
	// A Now ahead of time.Now makes no timer fire earlier; tests that
	// move time use testing/synctest, which fakes both.
	Now func() time.Time
	// Journal, if set, makes retained messages, persistent sessions and
	// the QoS 1/2 messages on their way to them durable before they are
	// acknowledged (see durable.go), so that they survive a power cut.
	// RestoreJournal loads it. The broker does not close it.
	Journal *journal.Journal
	// OnDisconnect, if set, is called once after a connection that
	// completed CONNECT has ended (any reason, takeover included), on that
	// connection's goroutine. The state store drops the client's KEYNOTIFY
	// registrations here.
	OnDisconnect func(c *Client)
	// DisableReactor keeps one reader goroutine per plain TCP connection.
	// By default a connection idle for a second (or just after a control
	// packet) waits in an epoll reactor without a goroutine.
	DisableReactor bool
	// Security counts and logs security events (failed authentication,
	// denied publishes and subscribes, refusals by a limit). nil: a Log
	// on Logger.
	Security *seclog.Log
	// ReservedClientIDPrefix, if set, is refused as the start of a
	// client identifier on every port but those with ReservedClientIDs
	// (3.1.1 CONNACK 2, 5.0 0x85), so that nobody on the LAN can take,
	// or squat on, an identifier the appliance's own clients use (a
	// dataflow's local session) before they connect.
	ReservedClientIDPrefix string
}

// Client is what hooks learn about a client. The broker fills it at
// CONNECT; an Authenticator may set Username (when it verified one) and
// Attributes. It must not be changed after the CONNACK.
type Client struct {
	ID       string
	Username string
	// Principal is who the client proved to be: AuthResult.Principal, or
	// on a port without an Authenticator "anonymous:" and the port name.
	// Set by the broker once authentication succeeded; the session of ID
	// belongs to it.
	Principal  string
	Attributes map[string]string
	Version    byte   // packet.V31, V311 or V5
	Port       string // Port.Name
	Remote     net.Addr
	TLS        *tls.ConnectionState // nil on plain TCP
	// Permissions are what the client may do (nil: everything), and
	// Session names the session instance its connection is attached to.
	// The broker sets both before the CONNACK (PublishAs, SendTo).
	Permissions Permissions
	Session     SessionRef
}

// AuthResult is an Authenticator's verdict.
type AuthResult struct {
	// Code is packet.Success to accept, packet.ContinueAuthentication to
	// continue a 5.0 enhanced authentication exchange with AuthData, or a
	// CONNACK reason code (0x86 bad credentials, 0x87 not authorized,
	// 0x8C bad authentication method, ...).
	Code     packet.Code
	AuthData []byte
	// Expiry, when set, ends the connection when the credential expires.
	Expiry time.Time
	// Principal names the identity the method verified (for example
	// "x509:" and the certificate's subject, "user:" and a password-file
	// user). Sessions belong to it: a CONNECT by another principal for a
	// client identifier whose session it owns is refused. Empty on
	// success: the port's anonymous principal, "anonymous:" and the
	// port's name (every such client of the port is one principal; the
	// CONNECT's username is not proof of anything).
	Principal string
}

// AuthRequest is one authentication step: the CONNECT's credentials, or
// the data of an AUTH packet during 5.0 enhanced authentication.
type AuthRequest struct {
	Username    []byte
	Password    []byte
	HasPassword bool
	Method      string // 5.0 Authentication Method; "" without enhanced authentication
	Data        []byte // 5.0 Authentication Data
	Step        int    // 0 for the CONNECT, then 1, 2, ... for AUTH packets
}

// Authenticator decides who may connect on a port. Steps after the
// CONNECT (Step > 0) may be a connected 5.0 client's re-authentication
// (AUTH 0x19); the Client is then a copy, so the connected client's
// identity and attributes do not change.
type Authenticator interface {
	Authenticate(c *Client, r *AuthRequest) AuthResult
}

// Permissions are what one connected client may do. They are consulted
// for every PUBLISH and SUBSCRIBE, so they must not allocate.
type Permissions interface {
	AllowPublish(topic []byte) bool
	AllowSubscribe(filter []byte) bool
}

// Authorizer decides, once per CONNECT, what an authenticated client may
// do: it returns the client's Permissions, or nil to refuse the connection
// (CONNACK 0x87, 3.1.1: 5).
type Authorizer interface {
	Authorize(c *Client) Permissions
}

// Port is what one listening port applies to its clients. A nil
// Authenticator accepts everyone (anonymous); a nil Authorizer allows
// everything.
type Port struct {
	Name          string
	Authenticator Authenticator
	Authorizer    Authorizer
	// MaxQueuedDiskBytes, when set, bounds what each persistent session
	// attached through the port keeps in the journal (Config.Journal):
	// beyond it the session's oldest queued message is dropped to make
	// room for a new one (counted, logged) instead of refusing the new
	// one. A dataflow's store-and-forward buffer works this way.
	MaxQueuedDiskBytes int64
	// ReservedClientIDs lets the port's clients use identifiers that
	// start with Config.ReservedClientIDPrefix (the appliance's own
	// in-process ports).
	ReservedClientIDs bool
	// TLS, if set, makes the broker speak TLS on the port's TCP
	// connections itself (instead of a tls.NewListener around the
	// listener), so that an idle TLS connection parks in the reactor
	// without a goroutine or read buffer, as a plain one does.
	TLS *tls.Config
}

// Stats are the server's running counters.
type Stats struct {
	Connections      atomic.Int64 // currently connected clients
	MessagesReceived atomic.Uint64
	MessagesSent     atomic.Uint64
	MessagesDropped  atomic.Uint64
	BytesReceived    atomic.Uint64
	BytesSent        atomic.Uint64
	// MessagesRefusedDisk counts deliveries to persistent sessions the
	// journal refused (its disk budget, a full disk).
	MessagesRefusedDisk atomic.Uint64
	// MessagesDroppedOldest counts queued messages dropped to make room
	// under a port's MaxQueuedDiskBytes.
	MessagesDroppedOldest atomic.Uint64
}

// Server is an MQTT broker.
type Server struct {
	lim          Limits
	reservedID   string // Config.ReservedClientIDPrefix; read-only
	log          *slog.Logger
	onDisconnect func(*Client)
	now          func() time.Time
	tlim         topic.Limits
	jr           *journal.Journal // Config.Journal; nil: nothing survives a restart
	sec          *seclog.Log      // security events; set by New, read-only
	subBytes     atomic.Int64     // charged for every session's subscriptions (see session.chargeSubLocked)
	scavenges    atomic.Int64     // bursts of connections after which free memory went back to the OS (burst.go)
	anonymous    sync.Map         // *Port → its anonymous principal (principalOf)
	pending      pendingPool      // bytes waiting for sockets beyond each connection's freePending (outbox.putPublish)

	Stats Stats

	mu        sync.Mutex
	sessions  map[string]*session
	detached  *sync.Cond // on mu: a connection left its session (detach); see awaitEnding
	conns     map[*conn]struct{}
	listeners map[net.Listener]struct{}
	closed    bool
	connWG    sync.WaitGroup
	seq       uint64      // session sequence numbers
	burstN    int         // connections accepted since the last scavenge (burst.go)
	burstT    *time.Timer // runs burstSettled once a burst is over; nil until the first
	burstLast time.Time   // when the last scavenge began (time.Now); zero before the first
	// noScavenge turns burst.go off; set before Serve (tests that
	// measure memory, and must not release the test process's).
	noScavenge bool
	// freeOSMemory is how a burst returns memory (nil: debug.FreeOSMemory);
	// set before Serve by tests that count scavenges in a synctest bubble;
	// read-only after.
	freeOSMemory func()
	inprocSeq    uint64

	subMu sync.RWMutex
	subs  *topic.Tree[*session, subOpts]

	retMu    sync.RWMutex
	retained *topic.Retained[*Message]
	retBytes int64 // bytes of the retained messages (Message.size); guarded by retMu

	// Budget counters (limits.go).
	connecting  atomic.Int64 // accepted sockets that have not finished CONNECT; owned by startConn/connectDone
	queuedBytes atomic.Int64 // bytes queued for every session; owned by session.pushQueued/popQueued
	nPersist    atomic.Int64 // sessions with an expiry; owned by session.setExpiry/endSessionLocked
	bigReads    atomic.Int64 // bytes of read buffers grown for large packets; owned by conn.reserveRbuf/unreserveRbuf

	scratchPool sync.Pool // *scratch for in-process publishers and writers refilling
	rbufs       sync.Pool // *[rbufSize]byte read buffers of waiting readers
	handlings   sync.Pool // *handling of readers handling packets
	pendings    sync.Pool // *pendingConnect of CONNECTs in progress (handleConnect, authDone)
	wakeups     sync.Pool // *wakeup of running writer goroutines (outbox.startWake)
	messages    sync.Pool // *Message, recycled by Message.release

	// readerIdle is how long a plain TCP reader waits without input
	// before it parks the connection in the reactor.
	readerIdle time.Duration
	noReactor  bool
	reactor    *reactor // started by the first park; guarded by mu
	reactorErr error    // the reactor could not start

	// writerIdle is how long a connection's writer goroutine waits
	// without work before it parks (1–2 intervals).
	writerIdle time.Duration
}

// New returns a Server configured by cfg.
func New(cfg Config) *Server {
	s := &Server{
		lim:          cfg.Limits.withDefaults(),
		onDisconnect: cfg.OnDisconnect,
		reservedID:   cfg.ReservedClientIDPrefix,
		jr:           cfg.Journal,
		log:          cfg.Logger,
		now:          cfg.Now,
		sessions:     make(map[string]*session),
		conns:        make(map[*conn]struct{}),
		listeners:    make(map[net.Listener]struct{}),
		subs:         topic.NewTree[*session, subOpts](),
		retained:     new(topic.Retained[*Message]),
	}
	s.detached = sync.NewCond(&s.mu)
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.sec = cfg.Security; s.sec == nil {
		s.sec = seclog.New(s.log, s.now)
	}
	s.tlim = topic.Limits{MaxLength: s.lim.MaxTopicLength, MaxLevels: s.lim.MaxTopicLevels}
	s.pending.max = s.lim.MaxTotalPendingBytes
	s.subs.Prefer = func(ss *session) bool { return ss.online.Load() }
	s.scratchPool.New = func() any { return new(scratch) }
	s.rbufs.New = func() any { return new([rbufSize]byte) }
	s.handlings.New = func() any { return new(handling) }
	s.pendings.New = func() any { return new(pendingConnect) }
	// Per server, not global: a channel made in another synctest bubble
	// would not count as durably blocking in this one.
	s.wakeups.New = func() any { return &wakeup{c: make(chan struct{}, 1)} }
	s.messages.New = func() any { return new(Message) }
	s.writerIdle = time.Second
	s.readerIdle = time.Second
	s.noReactor = cfg.DisableReactor
	return s
}

// Serve accepts connections on ln with anonymous access until the server
// is shut down. It always returns a non-nil error; after Shutdown or Close
// that is ErrServerClosed. Its port is named "default" whatever ln's
// address, so that its clients stay one principal ("anonymous:default")
// across restarts on another address.
func (s *Server) Serve(ln net.Listener) error {
	return s.ServePort(ln, &Port{Name: "default"})
}

// ServePort is Serve with the port's authentication and authorization.
func (s *Server) ServePort(ln net.Listener, p *Port) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscallEMFILE) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("accept", "err", err, "retry_in", delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		if !s.startConn(nc, p) {
			nc.Close()
		}
	}
}

// Security returns the server's security event log (its counters feed
// /metrics).
func (s *Server) Security() *seclog.Log { return s.sec }

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// startConn registers and starts a connection; false after shutdown.
func (s *Server) startConn(nc net.Conn, p *Port) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	if !s.admit(nc) {
		s.mu.Unlock()
		return false
	}
	c := newConn(s, nc, p)
	s.burstAcceptedLocked()
	c.counted = true
	s.conns[c] = struct{}{}
	s.connWG.Add(1) // the reader; it waits for the writer in finish
	s.mu.Unlock()
	go c.readLoop()
	return true
}

func (s *Server) removeConn(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// Shutdown stops accepting, tells every client the server is going away
// (5.0: DISCONNECT 0x8B), and waits until every connection has closed or
// ctx is done. Nothing needs saving: the journal holds what must
// survive.
func (s *Server) Shutdown(ctx context.Context) error {
	conns, _ := s.stop() // Shutdown reports ctx's error only; Close reports the listeners'
	for _, c := range conns {
		c.closeWith(packet.ServerShuttingDown, "")
	}
	done := make(chan struct{})
	go func() { s.connWG.Wait(); close(done) }()
	select {
	case <-done:
		s.closeReactor()
		return nil
	case <-ctx.Done():
		for _, c := range conns {
			c.nc.Close()
			c.kick()
		}
		return ctx.Err()
	}
}

// Close closes every listener and connection at once. It returns the errors closing the listeners
// gave (joined); a listener closed already by someone else is no error.
func (s *Server) Close() error {
	conns, err := s.stop()
	for _, c := range conns {
		c.nc.Close()
		c.kick() // a parked connection has no reader to notice
	}
	s.connWG.Wait()
	s.closeReactor()
	return err
}

// closeReactor stops the reactor once every connection has ended.
func (s *Server) closeReactor() {
	s.mu.Lock()
	r := s.reactor
	s.reactor, s.reactorErr = nil, ErrServerClosed
	s.mu.Unlock()
	if r != nil {
		r.close()
	}
}

// stop marks the server closed, closes the listeners and returns the
// connections and the listeners' errors.
func (s *Server) stop() ([]*conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.burstT != nil {
		s.burstT.Stop()
	}
	var errs []error
	for ln := range s.listeners {
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("broker: close listener %v: %w", ln.Addr(), err))
		}
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	return conns, errors.Join(errs...)
}
