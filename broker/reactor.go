package broker

import (
	"crypto/tls"
	"errors"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"edgebroker/broker/packet"
	"edgebroker/broker/tlsnet"
)

// The reactor keeps idle connections without a goroutine: plain TCP, the
// broker's own TLS (Port.TLS over a tlsnet.Sock), WebSockets (wsnet.Conn,
// ws:// and wss://) and Unix stream sockets. A
// reader that has waited readerIdle without input, or that just handled a
// control packet (CONNECT, SUBSCRIBE, ...), parks its connection: the
// socket is armed in an epoll instance (EPOLLONESHOT) and the goroutine
// exits. When the socket becomes readable, a fresh reader goroutine
// continues exactly where the old one stopped, so the busy path is the
// goroutine-per-connection reader it always was. The keep-alive of parked
// connections is watched by one timer per shard instead of a read
// deadline.
//
// Ownership: a parked connection belongs to nobody; whoever wins
// conn.claim (a readiness event, the keep-alive timer, the writer's exit,
// Server.Close) owns it and starts its reader. The epoll instances sit in
// the Go network poller, so a shard's event loop is an ordinary parked
// goroutine and no thread blocks in epoll_wait.

// errPark and errParkIdle end a reader that parks its connection: right
// after handling a control packet, or after readerIdle without input.
var (
	errPark     = errors.New("broker: park the connection")
	errParkIdle = errors.New("broker: park the idle connection")
)

// parkGrain is the coarsest interval of a shard's keep-alive scan: an
// expired parked connection is closed at most this late.
const parkGrain = 250 * time.Millisecond

type reactor struct {
	shards []*shard
	next   int // round robin; guarded by Server.mu
}

// shard is one epoll instance with its event loop and keep-alive timer.
type shard struct {
	srv  *Server
	epfd int
	file *os.File        // epfd in the Go network poller
	raw  syscall.RawConn // file's

	mu    sync.Mutex
	conns map[int32]*conn // registered connections by file descriptor
	timer *time.Timer     // the keep-alive scan
	wake  int64           // when timer fires (Unix ns); 0: not armed

	// ctl's arguments and results, guarded by ctlMu; ctlFn is
	// sh.ctlCallback, bound once by newShard.
	ctlMu  sync.Mutex
	ctlFn  func(fd uintptr)
	ctlOp  int
	ctlFD  int32
	ctlErr error
}

// newReactor starts one shard per CPU, at most four.
func newReactor(s *Server) (*reactor, error) {
	r := &reactor{}
	for range max(1, min(runtime.GOMAXPROCS(0), 4)) {
		sh, err := newShard(s)
		if err != nil {
			r.close()
			return nil, err
		}
		r.shards = append(r.shards, sh)
	}
	return r, nil
}

func newShard(s *Server) (*shard, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	sh := &shard{srv: s, epfd: fd, conns: make(map[int32]*conn)}
	sh.ctlFn = sh.ctlCallback
	sh.file = os.NewFile(uintptr(fd), "epoll")
	if sh.raw, err = sh.file.SyscallConn(); err != nil {
		sh.file.Close()
		return nil, err
	}
	sh.timer = time.AfterFunc(time.Hour, sh.scan)
	sh.timer.Stop()
	go sh.run()
	return sh, nil
}

// ctl runs epoll_ctl op (0: none) on the socket raw inside raw.Control,
// which keeps its descriptor from being closed meanwhile, and returns
// the descriptor, epoll_ctl's error and Control's. Its callback is bound
// once per shard, so parking allocates nothing; ctlMu serializes the
// arguments (the kernel serializes epoll_ctl on one instance anyway).
func (sh *shard) ctl(raw syscall.RawConn, op int) (fd int32, cerr, err error) {
	sh.ctlMu.Lock()
	defer sh.ctlMu.Unlock()
	sh.ctlOp, sh.ctlFD, sh.ctlErr = op, -1, nil
	err = raw.Control(sh.ctlFn)
	return sh.ctlFD, sh.ctlErr, err
}

func (sh *shard) ctlCallback(fd uintptr) {
	sh.ctlFD = int32(fd)
	switch sh.ctlOp {
	case 0:
	case unix.EPOLL_CTL_DEL:
		sh.ctlErr = unix.EpollCtl(sh.epfd, sh.ctlOp, int(fd), nil)
	default:
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: int32(fd)}
		sh.ctlErr = unix.EpollCtl(sh.epfd, sh.ctlOp, int(fd), &ev)
	}
}

// close stops the event loops. Connections still parked stay parked;
// Server.Close claims them.
func (r *reactor) close() {
	for _, sh := range r.shards {
		sh.timer.Stop()
		sh.file.Close()
	}
}

// run is a shard's event loop: it resumes the connections whose sockets
// became readable (or were hung up).
func (sh *shard) run() {
	evs := make([]unix.EpollEvent, 128)
	for {
		n := 0
		err := sh.raw.Read(func(fd uintptr) bool {
			for {
				k, err := unix.EpollWait(int(fd), evs, 0)
				if err == unix.EINTR {
					continue
				}
				n = max(k, 0)
				return n > 0 // false: wait until the epoll instance is readable
			}
		})
		if err != nil {
			return // closed
		}
		for i := range evs[:n] {
			sh.mu.Lock()
			c := sh.conns[evs[i].Fd]
			sh.mu.Unlock()
			if c != nil && c.claim() { // a stale event finds the conn busy: ignored
				go c.readLoop()
			}
		}
	}
}

// scan closes parked connections whose keep-alive expired and arms the
// timer for the next expiry.
func (sh *shard) scan() {
	now := time.Now().UnixNano()
	var expired []*conn
	var next int64
	sh.mu.Lock()
	for _, c := range sh.conns {
		if !c.parked.Load() {
			continue // its reader watches the keep-alive
		}
		exp := c.kaExpire.Load() // stored before parked
		if exp == 0 {
			continue
		}
		if exp <= now {
			expired = append(expired, c)
		} else if next == 0 || exp < next {
			next = exp
		}
	}
	sh.wake = 0
	if next != 0 {
		sh.armLocked(next, now)
	}
	sh.mu.Unlock()
	for _, c := range expired {
		if c.claim() {
			go c.end(packet.KeepAliveTimeout) // [MQTT-3.1.2-24]
		}
	}
}

// watch makes sure the keep-alive scan runs by exp (Unix ns).
func (sh *shard) watch(exp int64) {
	sh.mu.Lock()
	if sh.wake == 0 || exp < sh.wake {
		sh.armLocked(exp, time.Now().UnixNano())
	}
	sh.mu.Unlock()
}

func (sh *shard) armLocked(exp, now int64) {
	at := max(exp, now+int64(parkGrain))
	if sh.wake != 0 && sh.wake <= at {
		return
	}
	sh.wake = at
	sh.timer.Reset(time.Duration(at - now))
}

// canPark reports whether the reader may park the connection: a connected
// TCP client outside an authentication exchange, with the reactor on and,
// on TLS or a WebSocket, nothing the client sent waiting in user space
// (tlsnet.Sock, wsnet.Conn).
func (c *conn) canPark() bool {
	return c.sock != nil && !c.noPark && !c.srv.noReactor && c.connected && c.pending == nil &&
		(c.psock == nil || !c.tlsMore && c.psock.Idle())
}

// releaseTLS lets a parking TLS connection's crypto/tls input buffers
// go: the broker's own (over a tlsnet.Sock), or those of a connection
// that releases its own (idleReleaser: wsnet.Conn over TLS).
func (c *conn) releaseTLS() {
	if c.tlsSocket() != nil {
		if tc, ok := c.nc.(*tls.Conn); ok {
			tlsnet.ReleaseInput(tc)
		}
		return
	}
	if r, ok := c.nc.(idleReleaser); ok {
		r.ReleaseIdle()
	}
}

// claim takes a parked connection; only one caller wins.
func (c *conn) claim() bool { return c.parked.CompareAndSwap(true, false) }

// kick resumes a parked connection so that its reader notices that the
// connection is closing (the writer exited, or the socket was closed).
func (c *conn) kick() {
	if c.claim() {
		go c.readLoop()
	}
}

// park hands the connection to the reactor. The caller owns c; after
// true it must not touch c again. false: the caller keeps the connection
// (the reactor is off or closed, or the socket is closing) and reads on.
// idle says the reader waited readerIdle without input already.
func (s *Server) park(c *conn, idle bool) bool {
	c.releaseRbuf()
	c.releaseTLS()
	c.releaseHandling()
	c.out.dropIdle()
	sh := c.shard
	if sh == nil {
		s.mu.Lock()
		if s.closed || s.reactorErr != nil {
			s.mu.Unlock()
			return false
		}
		if s.reactor == nil {
			s.reactor, s.reactorErr = newReactor(s)
			if s.reactorErr != nil {
				s.log.Warn("epoll reactor unavailable: idle connections keep a goroutine", "err", s.reactorErr)
				s.mu.Unlock()
				return false
			}
		}
		r := s.reactor
		sh = r.shards[r.next%len(r.shards)]
		r.next++
		s.mu.Unlock()
		fd, _, err := sh.ctl(c.sock, 0)
		if err != nil {
			return false
		}
		c.shard, c.pfd = sh, fd
		sh.mu.Lock()
		sh.conns[fd] = c
		sh.mu.Unlock()
	}
	var exp int64
	if c.keepAlive > 0 {
		d := time.Duration(c.keepAlive) * time.Second * 3 / 2
		if idle {
			d -= s.readerIdle
		}
		exp = time.Now().Add(d).UnixNano()
	}
	c.kaExpire.Store(exp)
	add := !c.added
	op := unix.EPOLL_CTL_MOD
	if add {
		op = unix.EPOLL_CTL_ADD
	}
	c.added = true
	// From here on another goroutine may own c: only locals and the
	// read-only sock and the outbox (locked) are used.
	raw := c.sock
	c.parked.Store(true)
	_, cerr, err := sh.ctl(raw, op)
	if err != nil || cerr != nil {
		if c.claim() {
			c.added = c.added && !add
			if cerr != nil {
				c.noPark = true
				s.log.Warn("epoll_ctl", "err", cerr)
			}
			return false
		}
		return true
	}
	if exp != 0 {
		sh.watch(exp)
	}
	if c.out.exited() && c.claim() {
		return false // closing: the reader finishes it
	}
	return true
}

// unpark removes a connection that is closing from its shard; the caller
// owns c and closes the socket after.
func (c *conn) unpark() {
	sh := c.shard
	if sh == nil {
		return
	}
	sh.mu.Lock()
	if sh.conns[c.pfd] == c {
		delete(sh.conns, c.pfd)
	}
	sh.mu.Unlock()
	if c.added {
		sh.ctl(c.sock, unix.EPOLL_CTL_DEL)
	}
}
