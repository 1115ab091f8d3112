// Package remote is a dataflow's client of an upstream MQTT broker (a
// site or cloud cluster: mosquitto, EMQX, HiveMQ, AIO, a NATS server's
// MQTT gateway). It speaks MQTT 5.0 and falls back to 3.1.1 when an
// upstream refuses 5.0 (NATS speaks 3.1.1 only), keeps a persistent
// session, tries its hosts in turn with exponential backoff and jitter,
// and keeps up to MaxInflight QoS 1 messages in flight at once.
//
// Order is the contract: messages are sent in the order Publish took
// them; after a reconnection every unacknowledged one is sent again, in
// that order, before any new one (a NATS node that cannot store a publish
// closes the connection without a PUBACK); done callbacks run in that
// order too, so the bridge acknowledges its source in order. A message
// received from the upstream (a flow down) is handed over in order, and
// its PUBACK leaves only once the handler acknowledged it.
//
// # Who writes
//
// A connection has a serve goroutine (it subscribes, pings, and sends
// again after a reconnection) and a reader goroutine, but a message
// normally passes neither: the goroutine that hands it over writes it
// (Publish: one non-blocking write; TryPublish: appended, and one write
// for a run at the next Flush), the reader retires what the upstream
// acknowledged itself, a batch at a time, and a handler's ack writes the
// PUBACK the same way (or leaves it for a Flush: DeferAcks). Only what a
// full socket leaves, and everything on a TLS or WebSocket connection
// (no raw socket to write to), wakes serve for a blocking write. A flow
// up so moves a batch with the local reader's and the upstream reader's
// wake-ups only (TryMessage, AfterRead, AfterDone); the readers read with
// raw read(2) calls, as the broker does (broker/sockio).
//
// It is written on the broker's own codec (broker/packet) rather than a
// client library because it needs exactly these guarantees across
// reconnections and both protocol versions, which paho.golang (5.0 only)
// and paho.mqtt.golang (3.1.1, resending from an unordered store) do not
// give together.
package remote

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"

	"edgebroker/broker/packet"
)

// Config configures a Client.
type Config struct {
	Hosts    []string    // host:port, tried in turn
	TLS      *tls.Config // nil: plain TCP
	Username string
	Password []byte
	ClientID string
	// KeepAlive in seconds (0: 60); SessionExpiry: seconds a 5.0
	// upstream keeps the session (0: 3600).
	KeepAlive     uint16
	SessionExpiry uint32
	MaxInflight   uint16 // QoS 1 messages unacknowledged at once (0: 100)
	// Subscriptions are made on every connection, at SubQoS; what they
	// bring goes to OnMessage, one message at a time, in order.
	Subscriptions []string
	SubQoS        byte
	// SubNoLocal and SubRetainAsPublished are the 5.0 subscription
	// options (ignored by a 3.1.1 upstream).
	SubNoLocal, SubRetainAsPublished bool
	OnMessage                        func(p *packet.Publish, ack func())
	// TryMessage, if set, is offered each message first, on the
	// goroutine that read it, while no earlier one waits for OnMessage:
	// it handles the message without waiting and reports true, or does
	// nothing and reports false (the message then goes to OnMessage, on
	// the delivering goroutine). It saves a goroutine hand-off per batch
	// where the handler seldom waits (a flow up: the upstream's window).
	TryMessage func(p *packet.Publish, ack func()) bool
	// AfterRead, if set, is called by the reading goroutine once it
	// handled everything read so far, before it waits for more: the
	// end of a batch (a flow up flushes its upstream client there).
	AfterRead func()
	// DeferAcks: the ack of OnMessage or TryMessage only appends the
	// PUBACK; it is written by the next Flush (or by the connection's
	// next write), so that a batch of acknowledgements costs one write.
	// Whoever acknowledges must then call Flush.
	DeferAcks bool
	// AfterDone, if set, is called after a run of done callbacks (of
	// Publish and TryPublish), on the goroutine that ran them.
	AfterDone func()
	// MaxPacketSize bounds a packet from the upstream (announced in the
	// 5.0 CONNECT; a larger one ends the connection); 0: 1 MiB, the
	// broker's default. MaxReceivedBytes bounds what received messages
	// not yet acknowledged by OnMessage's ack hold in memory: beyond it
	// the client stops reading (the upstream waits); 0: 8 MiB.
	MaxPacketSize    uint32
	MaxReceivedBytes int64
	// Dial opens a connection to host; nil: TCP, with TLS if set.
	Dial                   func(ctx context.Context, host string) (net.Conn, error)
	MinBackoff, MaxBackoff time.Duration // defaults 250 ms, 30 s
	Logger                 *slog.Logger
}

// Status is what a Client reports.
type Status struct {
	Connected  string    // the host connected to; "" while not
	Version    byte      // of the current or last connection (packet.V5 or V311)
	Fallback   bool      // the upstream refused 5.0: 3.1.1 is used
	Inflight   int       // messages taken by Publish, not yet acknowledged
	LastError  string    // the last connection failure
	ErrorAt    time.Time // when
	Subscribed bool      // the Subscriptions hold (SUBACK) on the current connection
	Refused    uint64    // messages the upstream refused for good (PUBACK not authorized, topic name invalid...): not sent again
	// PropsDropped counts messages whose 5.0 properties (user properties,
	// content type, correlation data...) a 3.1.1 upstream could not carry.
	PropsDropped uint64
	// TooLarge counts messages above the upstream's Maximum Packet Size:
	// not sent (done is called).
	TooLarge uint64
	// Handoffs counts messages and writes handed to another of the
	// client's goroutines: to the deliver goroutine (OnMessage), or to
	// serve for a blocking write (a full socket, TLS, WebSockets). A flow
	// up on plain sockets keeps it near zero.
	Handoffs uint64
}

// ErrClosed is returned by Publish once the Client is closed.
var ErrClosed = errors.New("remote: closed")

// out is a message taken by Publish; its fields are guarded by
// Client.mu.
type out struct {
	p     *packet.Publish // nil: a marker, only its done counts
	done  func()
	sent  bool   // sent on some connection (then resent with DUP)
	pid   uint16 // on the current connection; 0: not sent on it
	acked bool   // acknowledged (or written, QoS 0; or a marker): its done may run
}

// Client is a connection to an upstream that reconnects until Close.
type Client struct {
	cfg Config
	log *slog.Logger

	ctx    context.Context // set by New, then read-only
	cancel context.CancelFunc
	done   chan struct{} // closed when run exits

	mu        sync.Mutex // guards the fields below
	queue     []*out     // taken by Publish, not acknowledged, in order
	room      *sync.Cond // on mu: queue shrank or the client closed
	closed    bool
	st        Status
	v3        map[string]bool // hosts that refused 5.0
	cur       *session        // the connection serving; nil between connections
	next      int             // queue[:next] were handled on cur: sendLocked goes on from there
	releasing bool            // a goroutine runs done callbacks (release): others leave theirs to it
	ready     []*out          // release's batch, kept for its capacity; owned by the releasing goroutine

	subOnce sync.Once
	subDone chan struct{} // closed at the first SUBACK (Subscribed)

	recv    *semaphore.Weighted // bytes of received messages not yet acknowledged by the handler
	kick    chan struct{}       // wakes the connection loop: something waits to be sent or written
	down    chan downMsg        // reader → deliver: messages from the upstream, in order
	waiting atomic.Int64        // messages sent to down whose OnMessage has not returned
	// serveWakes counts how often a connection's serve goroutine woke
	// (a kick, an event, a tick): the hand-offs the tests count.
	serveWakes atomic.Uint64
	handoffs   atomic.Uint64 // Status.Handoffs
	conns      int           // owned by run: connections made, the generation of downMsg
}

type downMsg struct {
	p    *packet.Publish
	gen  int
	size int64 // taken from Client.recv
}

// New starts a Client; it connects in the background.
func New(cfg Config) *Client {
	if cfg.KeepAlive == 0 {
		cfg.KeepAlive = 60
	}
	if cfg.SessionExpiry == 0 {
		cfg.SessionExpiry = 3600
	}
	if cfg.MaxInflight == 0 {
		cfg.MaxInflight = 100
	}
	if cfg.MaxPacketSize == 0 {
		cfg.MaxPacketSize = 1 << 20
	}
	if cfg.MaxReceivedBytes <= 0 {
		cfg.MaxReceivedBytes = 8 << 20
	}
	// One packet always fits.
	cfg.MaxReceivedBytes = max(cfg.MaxReceivedBytes, int64(cfg.MaxPacketSize))
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 250 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Client{cfg: cfg, log: log, done: make(chan struct{}), v3: map[string]bool{}, subDone: make(chan struct{}),
		kick: make(chan struct{}, 1), down: make(chan downMsg, int(cfg.MaxInflight))}
	c.room = sync.NewCond(&c.mu)
	c.recv = semaphore.NewWeighted(cfg.MaxReceivedBytes)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	go c.run()
	if cfg.OnMessage != nil {
		go c.deliver()
	}
	return c
}

// Close disconnects and stops. Messages not acknowledged are dropped
// without their done being called: their source keeps them.
func (c *Client) Close() {
	c.cancel()
	c.mu.Lock()
	c.closed = true
	c.room.Broadcast()
	c.mu.Unlock()
	<-c.done
}

// Publish takes p for the upstream, waiting while MaxInflight messages
// are unacknowledged. done is called once the upstream acknowledged it
// (QoS 1) or it was written (QoS 0), after the done of every message
// taken before it. p nil sends nothing: done is called in that order.
// p belongs to the Client until done. When the connection's window
// allows, the PUBLISH is written at once on the caller's goroutine (one
// non-blocking write); else the connection's goroutine sends it.
func (c *Client) Publish(ctx context.Context, p *packet.Publish, done func()) error {
	c.mu.Lock()
	for len(c.queue) >= int(c.cfg.MaxInflight) && !c.closed && ctx.Err() == nil {
		stop := context.AfterFunc(ctx, func() {
			c.mu.Lock()
			c.room.Broadcast()
			c.mu.Unlock()
		})
		c.room.Wait()
		stop()
	}
	switch {
	case c.closed:
		c.mu.Unlock()
		return ErrClosed
	case ctx.Err() != nil:
		c.mu.Unlock()
		return ctx.Err()
	}
	c.take(p, done)
	c.Flush()
	return nil
}

// TryPublish is Publish without the wait and without the write: it takes
// p only if fewer than MaxInflight messages are unacknowledged (else it
// does nothing and reports false), and what it sends waits in the
// connection's buffer for the next Flush, so that a run of them costs
// one write. The caller calls Flush after its run.
func (c *Client) TryPublish(p *packet.Publish, done func()) bool {
	c.mu.Lock()
	if c.closed || len(c.queue) >= int(c.cfg.MaxInflight) {
		c.mu.Unlock()
		return false
	}
	c.take(p, done)
	return true
}

// take queues p and sends what the window allows on the current
// connection; it unlocks c.mu (held by the caller) and runs the done
// callbacks that became due (markers, QoS 0).
func (c *Client) take(p *packet.Publish, done func()) {
	c.queue = append(c.queue, &out{p: p, done: done, acked: p == nil})
	due, full := p == nil, false
	if s := c.cur; s != nil {
		var d bool
		d, full = s.sendLocked()
		due = d || due
	}
	c.mu.Unlock()
	if due {
		c.release()
	}
	if full {
		c.wake() // serve flushes the wire and sends the rest
	}
}

// Flush writes what waits for the current connection (PUBLISHes of
// TryPublish, deferred acknowledgements): one non-blocking write, and
// the connection's goroutine writes what the socket did not take.
func (c *Client) Flush() {
	c.mu.Lock()
	s := c.cur
	c.mu.Unlock()
	if s != nil && s.w.tryFlush() {
		c.wake()
	}
}

// wake hands a write to the connection loop.
func (c *Client) wake() {
	c.handoffs.Add(1)
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// release runs the done callbacks of the acknowledged messages at the
// head of the queue, in order, and removes them. One goroutine at a time
// runs them (the order): one that finds another at it leaves its
// messages to that one, which looks again before it stops.
func (c *Client) release() {
	c.mu.Lock()
	if c.releasing {
		c.mu.Unlock()
		return
	}
	c.releasing = true
	for {
		k := 0
		for k < len(c.queue) && c.queue[k].acked {
			k++
		}
		if k == 0 {
			break
		}
		ready := append(c.ready[:0], c.queue[:k]...)
		n := copy(c.queue, c.queue[k:])
		clear(c.queue[n:])
		c.queue = c.queue[:n]
		c.next = max(0, c.next-k)
		c.room.Broadcast()
		c.mu.Unlock()
		for _, r := range ready {
			if r.done != nil {
				r.done()
			}
		}
		if c.cfg.AfterDone != nil {
			c.cfg.AfterDone()
		}
		clear(ready)
		c.mu.Lock()
		c.ready = ready[:0]
	}
	c.releasing = false
	c.mu.Unlock()
}

// Subscribed is closed once the Subscriptions were first acknowledged.
func (c *Client) Subscribed() <-chan struct{} { return c.subDone }

// Status reports the client's state.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.st
	st.Inflight = len(c.queue)
	st.Handoffs = c.handoffs.Load()
	return st
}

func (c *Client) fail(host string, err error) {
	c.mu.Lock()
	c.st.LastError, c.st.ErrorAt = host+": "+err.Error(), time.Now()
	c.mu.Unlock()
	c.log.Warn("dataflow: upstream", "host", host, "err", err)
}

// backoff is exponential from MinBackoff to MaxBackoff with ±25 % jitter.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.cfg.MinBackoff << min(attempt, 20)
	if d <= 0 || d > c.cfg.MaxBackoff {
		d = c.cfg.MaxBackoff
	}
	j := time.Duration(time.Now().UnixNano() % int64(d/2+1))
	return d*3/4 + j
}

// run connects to the hosts in turn until Close.
func (c *Client) run() {
	defer close(c.done)
	failures := 0
	for i := 0; c.ctx.Err() == nil; i++ {
		host := c.cfg.Hosts[i%len(c.cfg.Hosts)]
		s, err := c.connect(host)
		if err != nil {
			if c.ctx.Err() != nil {
				return
			}
			c.fail(host, err)
			if (i+1)%len(c.cfg.Hosts) == 0 { // every host failed: wait
				if !c.sleep(c.backoff(failures)) {
					return
				}
				failures++
			}
			continue
		}
		failures = 0
		err = s.serve()
		s.nc.Close()
		c.mu.Lock()
		c.st.Connected, c.st.Subscribed = "", false
		c.mu.Unlock()
		if c.ctx.Err() != nil {
			return
		}
		c.fail(host, fmt.Errorf("connection lost: %w", err))
		if !c.sleep(c.backoff(0)) {
			return
		}
	}
}

func (c *Client) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.ctx.Done():
		return false
	}
}

// deliver hands the messages from the upstream to OnMessage, in order.
func (c *Client) deliver() {
	for {
		select {
		case m := <-c.down:
			c.cfg.OnMessage(m.p, c.acker(m))
			c.waiting.Add(-1)
		case <-c.ctx.Done():
			return
		}
	}
}

// acker returns the ack of a message from the upstream: it gives back
// the message's receive budget and sends its PUBACK, if the connection
// it came on still serves.
func (c *Client) acker(m downMsg) func() {
	var once sync.Once
	return func() {
		once.Do(func() { c.recv.Release(m.size) })
		if m.p.QoS == 0 {
			return
		}
		ack := packet.Ack{Type: packet.PUBACK, PacketID: m.p.PacketID}
		c.mu.Lock()
		s := c.cur
		if s == nil || s.gen != m.gen {
			c.mu.Unlock()
			return
		}
		s.buf = ack.Append(s.buf[:0], s.v)
		s.w.add(s.buf)
		c.mu.Unlock()
		if !c.cfg.DeferAcks && s.w.tryFlush() {
			c.wake()
		}
	}
}

func (c *Client) dial(ctx context.Context, host string) (net.Conn, error) {
	if c.cfg.Dial != nil {
		return c.cfg.Dial(ctx, host)
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	if tc := c.cfg.TLS; tc != nil {
		tc = tc.Clone()
		if tc.ServerName == "" {
			tc.ServerName, _, _ = net.SplitHostPort(host)
		}
		t := tls.Client(nc, tc)
		if err := t.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, err
		}
		nc = t
	}
	return nc, nil
}

// errRefused5 is a CONNACK (or a close) that refuses the 5.0 protocol.
var errRefused5 = errors.New("the upstream does not speak MQTT 5.0")

// connect opens a session on host: 5.0 first, 3.1.1 if host refused 5.0.
func (c *Client) connect(host string) (*session, error) {
	c.mu.Lock()
	v := packet.V5
	if c.v3[host] {
		v = packet.V311
	}
	c.mu.Unlock()
	s, err := c.handshake(host, v)
	if errors.Is(err, errRefused5) {
		c.log.Info("dataflow: the upstream refused MQTT 5.0: using 3.1.1", "host", host)
		c.mu.Lock()
		c.v3[host] = true
		c.st.Fallback = true
		c.mu.Unlock()
		s, err = c.handshake(host, packet.V311)
	}
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.st.Connected, c.st.Version = host, s.v
	c.mu.Unlock()
	c.log.Info("dataflow: connected upstream", "host", host, "mqtt", versionName(s.v), "sessionPresent", s.present)
	return s, nil
}

func versionName(v byte) string {
	if v == packet.V5 {
		return "5.0"
	}
	return "3.1.1"
}

// handshake dials host and exchanges CONNECT and CONNACK.
func (c *Client) handshake(host string, v byte) (*session, error) {
	ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	defer cancel()
	nc, err := c.dial(ctx, host)
	if err != nil {
		return nil, err
	}
	cfg := &c.cfg
	cp := packet.Connect{ProtocolName: []byte("MQTT"), Version: v, KeepAlive: cfg.KeepAlive, ClientID: []byte(cfg.ClientID)}
	if v == packet.V5 {
		cp.Props.Set(packet.PropMaximumPacketSize)
		cp.Props.MaximumPacketSize = cfg.MaxPacketSize
		cp.Props.Set(packet.PropSessionExpiry)
		cp.Props.SessionExpiry = cfg.SessionExpiry
		cp.Props.Set(packet.PropReceiveMaximum)
		cp.Props.ReceiveMaximum = cfg.MaxInflight
	}
	if cfg.Username != "" {
		cp.UsernameFlag, cp.Username = true, []byte(cfg.Username)
	}
	if cfg.Password != nil {
		cp.PasswordFlag, cp.Password = true, cfg.Password
	}
	s := &session{c: c, nc: nc, v: v, r: bufio.NewReaderSize(newReader(nc), 16<<10), w: newWire(nc),
		maxOut: int(cfg.MaxInflight), maxPacket: 1<<28 - 1}
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err = nc.Write(cp.Append(nil)); err != nil {
		nc.Close()
		return nil, err
	}
	h, body, err := s.readPacket()
	if err != nil {
		nc.Close()
		if v == packet.V5 && (errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed)) {
			return nil, fmt.Errorf("%w: it closed the connection after CONNECT", errRefused5)
		}
		return nil, fmt.Errorf("CONNACK: %w", err)
	}
	if h.Type != packet.CONNACK {
		nc.Close()
		return nil, fmt.Errorf("a %v instead of CONNACK", h.Type)
	}
	var ack packet.Connack
	if v == packet.V5 && len(body) == 2 && body[1] == packet.ConnackBadProtocolVersion {
		nc.Close()
		return nil, fmt.Errorf("%w: CONNACK return code 1", errRefused5) // a 3.1.1 server's answer
	}
	if err := ack.Decode(v, h.Flags, body); err != nil {
		nc.Close()
		return nil, fmt.Errorf("CONNACK: %w", err)
	}
	if ack.Code != 0 {
		nc.Close()
		if v == packet.V5 && ack.Code == packet.UnsupportedProtocolVersion {
			return nil, fmt.Errorf("%w: CONNACK %v", errRefused5, ack.Code)
		}
		if v == packet.V311 {
			return nil, fmt.Errorf("CONNACK return code %d", byte(ack.Code))
		}
		return nil, fmt.Errorf("CONNACK %v", ack.Code)
	}
	if v == packet.V5 {
		if ack.Props.Has(packet.PropReceiveMaximum) && int(ack.Props.ReceiveMaximum) < s.maxOut {
			s.maxOut = int(ack.Props.ReceiveMaximum)
		}
		if ack.Props.Has(packet.PropMaximumPacketSize) {
			s.maxPacket = int(ack.Props.MaximumPacketSize)
		}
		if ack.Props.Has(packet.PropServerKeepAlive) {
			s.keepAlive = ack.Props.ServerKeepAlive
		}
	}
	if s.keepAlive == 0 {
		s.keepAlive = cfg.KeepAlive
	}
	s.present = ack.SessionPresent
	nc.SetDeadline(time.Time{})
	c.conns++
	s.gen = c.conns
	return s, nil
}
