// Package bridge forwards messages between the local broker and an
// upstream MQTT broker: a Dataflow in AIO's language. One Bridge runs one
// flow, up (local sources → the remote) or down (remote sources → local).
//
// # Store and forward on the durable path
//
// The bridge's local side is an ordinary MQTT 5.0 client of the local
// broker, connected over a Unix socket pair, with a persistent session
// (clean start only the first time, session expiry never). For a flow up
// it subscribes to the sources with No Local, so what the broker routes
// to it is journaled before the local publisher gets its PUBACK, like any
// persistent session's messages: a power cut loses nothing acknowledged,
// and an outage of the remote fills the journal (within its disk budget;
// the broker's memory keeps only a window), not memory. The bridge
// acknowledges a message to the local broker only once the remote acknowledged it: the journal retires it then. While
// the remote is unreachable the bridge holds at most MaxInflight messages
// and the broker keeps the rest.
//
// For a flow down the remote side subscribes with a persistent session
// of its own (so commands queued upstream during an outage arrive), and a
// message is acknowledged to the remote only once the local broker
// acknowledged it (journaled, for persistent local subscribers).
//
// No loops: a message a flow down publishes locally carries the user
// property CameDown (the flow's name), and a flow up drops any message
// that carries it, so a message that came down is never sent back up by
// an overlapping flow; the bridge's local client also subscribes with No
// Local. Both sides are package remote's client (the local one over the
// pipe): up to MaxInflight messages in flight, sent and acknowledged to
// the source in the order they came, sent again in that order after a
// reconnection, so the order per topic is kept and a reconnection may
// deliver one twice (QoS 1). An upstream that refuses MQTT 5.0 (a NATS
// server) gets 3.1.1.
package bridge

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"edgebroker/broker"
	"edgebroker/broker/bridge/remote"
	"edgebroker/broker/packet"
)

// Remote is the upstream broker of a flow.
type Remote struct {
	Hosts         []string    // host:port, tried in turn
	TLS           *tls.Config // nil: plain TCP
	Username      string
	Password      []byte
	ClientID      string
	KeepAlive     uint16 // seconds; 0: 60
	SessionExpiry uint32 // seconds the remote keeps the bridge's session; 0: 3600
	QoS           byte   // 0 or 1
	RetainKeep    bool   // forward the retain flag (AIO retain: Keep); false: Never
	MaxInflight   uint16 // messages in flight at once; 0: 100
	// WebSocket carries MQTT over WebSockets (ws://, wss:// with TLS); a
	// host is then host:port or host:port/path (DefaultWebSocketPath).
	WebSocket bool
}

// Config is one flow.
type Config struct {
	Name    string         // the Dataflow's name: the local client id is "edgebroker-dataflow-" + Name
	Local   *broker.Server // the local broker
	Remote  Remote
	Up      bool     // local sources → remote; false: remote sources → local
	Sources []string // topic filters on the source side
	// Map gives the destination topic of a message on topic (the
	// Dataflow's dataDestination template); false drops the message
	// (acknowledged to the source, counted in Status.Dropped).
	Map func(topic string) (string, bool)
	// QueueDiskBytes bounds what a flow up keeps queued in the journal
	// while the upstream does not take it: beyond it the oldest queued
	// message is dropped (counted, logged: broker.Port.MaxQueuedDiskBytes);
	// 0: the journal's budget alone (new messages are refused when full).
	QueueDiskBytes int64
	Logger         *slog.Logger
	// Backoff bounds the wait between connection attempts (exponential
	// with jitter); defaults 250 ms and 30 s.
	MinBackoff, MaxBackoff time.Duration
}

// CameDown is the user property a flow down sets on what it publishes
// locally (its value: the flow's name); flows up do not forward such
// messages.
const CameDown = "edgebroker-dataflow"

// LocalClientID returns the local client identifier of a flow's bridge.
func LocalClientID(flow string) string { return LocalClientIDPrefix + flow }

// LocalClientIDPrefix starts every flow's local client identifier. The
// appliance reserves it (broker.Config.ReservedClientIDPrefix) so that no
// LAN client can take or squat on a flow's session; only the flows'
// in-process ports may use it.
const LocalClientIDPrefix = "edgebroker-dataflow-"

// Status is what a bridge reports.
type Status struct {
	Name      string `json:"name"`
	Up        bool   `json:"up"`        // the flow goes up (local → remote)
	Connected string `json:"connected"` // the remote host connected to; "" while not
	Forwarded uint64 `json:"forwarded"` // messages acknowledged by the destination
	Dropped   uint64 `json:"dropped"`   // messages Map had no destination for, or that came down (CameDown)
	// Subscribed: the source side's subscription to the sources holds
	// (the local one for a flow up, the upstream one for a flow down).
	Subscribed bool      `json:"subscribed"`
	LastError  string    `json:"lastError,omitempty"`
	ErrorAt    time.Time `json:"errorAt,omitzero"`
	// Protocol of the upstream connection: "5.0", or "3.1.1" when the
	// upstream refused 5.0 (then what 3.1.1 cannot carry is dropped:
	// PropertiesDropped counts such messages).
	Protocol          string `json:"protocol,omitempty"`
	PropertiesDropped uint64 `json:"propertiesDropped,omitempty"`
	// Refused: messages the upstream refused for good (not authorized,
	// invalid topic, too large): not sent again.
	Refused  uint64 `json:"refused,omitempty"`
	Inflight int    `json:"inflight"` // messages sent upstream, not yet acknowledged
}

// Bridge runs one flow until Close.
type Bridge struct {
	cfg Config // set by Start, then read-only
	log *slog.Logger

	ctx    context.Context // the bridge's life; cancelled by Close
	cancel context.CancelFunc
	ln     *pipeListener  // the in-memory port the local client dials
	local  *remote.Client // the bridge's client of the local broker (over ln)
	remote *remote.Client // of the upstream
	wg     sync.WaitGroup // the local port's ServePort

	forwarded atomic.Uint64
	dropped   atomic.Uint64
	// localFlush is local once it is set (Start): the remote client's
	// AfterDone flushes it, and a flow up starts the remote client first.
	localFlush atomic.Pointer[remote.Client]
}

// Start starts the bridge: its local and remote connections, retried
// until Close.
func Start(cfg Config) (*Bridge, error) {
	if cfg.Local == nil || len(cfg.Remote.Hosts) == 0 || len(cfg.Sources) == 0 || cfg.Map == nil {
		return nil, errors.New("bridge: a flow needs the local broker, remote hosts, sources and a destination")
	}
	// The zero values of the connection settings are remote.New's
	// defaults (keep-alive 60 s, session 1 h, 100 in flight, backoff
	// 250 ms to 30 s).
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &Bridge{cfg: cfg, log: log.With("dataflow", cfg.Name)}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.ln = newPipeListener()
	port := &broker.Port{Name: "dataflow/" + cfg.Name, MaxQueuedDiskBytes: cfg.QueueDiskBytes, ReservedClientIDs: true}
	b.wg.Go(func() { cfg.Local.ServePort(b.ln, port) })
	// The destination's client first: the source's hands it messages.
	if cfg.Up {
		b.remote = b.connectRemote()
		b.local = b.connectLocal()
		b.localFlush.Store(b.local)
		b.local.Flush() // what an AfterDone before the Store left
	} else {
		b.local = b.connectLocal()
		b.remote = b.connectRemote()
	}
	if cfg.Up {
		// The local subscription is made over a socket pair: wait for
		// it, so that what is published once Start returned (the ports
		// open after it) is kept for the flow.
		select {
		case <-b.local.Subscribed():
		case <-time.After(5 * time.Second):
			b.log.Warn("dataflow: the local subscription is not made yet")
		}
	}
	return b, nil
}

// Close stops the bridge. What is not yet acknowledged to the source stays
// there (in the journal for a flow up, upstream for a flow down) and is
// forwarded by the next start.
func (b *Bridge) Close() {
	b.cancel()
	b.remote.Close()
	b.local.Close()
	b.ln.Close()
	b.wg.Wait()
}

// Status reports the bridge's state.
func (b *Bridge) Status() Status {
	rs, ls := b.remote.Status(), b.local.Status()
	st := Status{Name: b.cfg.Name, Up: b.cfg.Up, Connected: rs.Connected, Forwarded: b.forwarded.Load(), Dropped: b.dropped.Load(),
		Subscribed: rs.Subscribed, LastError: rs.LastError, ErrorAt: rs.ErrorAt, PropertiesDropped: rs.PropsDropped,
		Refused: rs.Refused + rs.TooLarge, Inflight: rs.Inflight}
	if b.cfg.Up {
		st.Subscribed = ls.Subscribed
	}
	switch rs.Version {
	case packet.V5:
		st.Protocol = "5.0"
	case packet.V311:
		st.Protocol = "3.1.1"
	}
	if ls.ErrorAt.After(st.ErrorAt) {
		st.LastError, st.ErrorAt = "local: "+ls.LastError, ls.ErrorAt
	}
	return st
}

// connectLocal starts the bridge's client of the local broker: an MQTT
// 5.0 persistent session that never expires, over the in-memory port. For
// a flow up it subscribes to the sources (No Local, Retain As Published)
// with Receive Maximum MaxInflight: the broker keeps the rest queued, in
// the journal.
func (b *Bridge) connectLocal() *remote.Client {
	cfg := remote.Config{Hosts: []string{"local"}, ClientID: LocalClientID(b.cfg.Name), KeepAlive: 60,
		SessionExpiry: 0xFFFFFFFF, MaxInflight: b.cfg.Remote.MaxInflight,
		Dial:       func(ctx context.Context, _ string) (net.Conn, error) { return b.ln.dial(ctx) },
		MinBackoff: b.cfg.MinBackoff, MaxBackoff: b.cfg.MaxBackoff, Logger: b.log.With("side", "local")}
	if b.cfg.Up {
		cfg.Subscriptions, cfg.SubQoS, cfg.OnMessage = b.cfg.Sources, 1, b.upMsg
		cfg.SubNoLocal, cfg.SubRetainAsPublished = true, true
		// The local client's reader hands a batch straight to the
		// upstream client and writes it at the batch's end; the
		// PUBACKs to the local broker wait for the end of a batch of
		// upstream acknowledgements (connectRemote's AfterDone).
		cfg.TryMessage, cfg.AfterRead, cfg.DeferAcks = b.tryUp, b.remote.Flush, true
	}
	return remote.New(cfg)
}

// connectRemote starts the client of the upstream broker.
func (b *Bridge) connectRemote() *remote.Client {
	r := &b.cfg.Remote
	cfg := remote.Config{Hosts: r.Hosts, TLS: r.TLS, Username: r.Username, Password: r.Password, ClientID: r.ClientID,
		KeepAlive: r.KeepAlive, SessionExpiry: r.SessionExpiry, MaxInflight: r.MaxInflight,
		MinBackoff: b.cfg.MinBackoff, MaxBackoff: b.cfg.MaxBackoff, Logger: b.log}
	if r.WebSocket {
		cfg.Dial = wsDial(b.ctx, r.TLS)
	}
	if !b.cfg.Up {
		cfg.Subscriptions, cfg.SubQoS, cfg.OnMessage = b.cfg.Sources, r.QoS, b.downMsg
	} else {
		cfg.AfterDone = b.flushLocal
	}
	return remote.New(cfg)
}

// upMsg hands a local message of a flow up to the upstream client, in
// order; the client keeps up to MaxInflight in flight, and each is
// acknowledged to the local broker (retired from the journal) once the
// upstream acknowledged it, in order (a dropped one in its turn too).
// While the upstream's window is full it waits: the local broker keeps
// the rest.
func (b *Bridge) upMsg(in *packet.Publish, ack func()) {
	out, why := b.up(in)
	if out == nil {
		b.drop(string(in.Topic), why)
	}
	b.remote.Publish(b.ctx, out, b.upDone(out, ack)) // an error: closed, and the local broker keeps the message
}

// tryUp is upMsg on the local client's reader, without waiting: false
// (nothing done) when the upstream client's window is full.
func (b *Bridge) tryUp(in *packet.Publish, ack func()) bool {
	out, why := b.up(in)
	if !b.remote.TryPublish(out, b.upDone(out, ack)) {
		return false
	}
	if out == nil {
		b.drop(string(in.Topic), why)
	}
	return true
}

// upDone is the done of a message of a flow up: counted, and
// acknowledged to the local broker.
func (b *Bridge) upDone(out *packet.Publish, ack func()) func() {
	return func() {
		if out != nil {
			b.forwarded.Add(1)
		}
		ack()
	}
}

// flushLocal writes the acknowledgements a run of upstream ones made
// (the local client defers them: DeferAcks).
func (b *Bridge) flushLocal() {
	if l := b.localFlush.Load(); l != nil {
		l.Flush()
	}
}

// drop counts (and logs, for a reason) a message the flow does not send.
func (b *Bridge) drop(topic, why string) {
	b.dropped.Add(1)
	if why != "" {
		b.log.Warn("dataflow: a message is not forwarded", "topic", topic, "why", why)
	}
}

// badTopicBytes are what some upstreams cannot take in a topic: a NATS
// server closes the connection on a space, tab, newline or DEL. Such a
// local message is not forwarded (counted, logged) rather than allowed to
// break the link.
const badTopicBytes = " \t\n\r\x7f"

// up makes the upstream PUBLISH of a local message: the topic from the
// template, the QoS and retain flag of the flow, the properties that
// travel; nil (with why, when worth a log line) if it is not forwarded.
func (b *Bridge) up(in *packet.Publish) (*packet.Publish, string) {
	for _, u := range in.Props.User {
		if string(u.Key) == CameDown {
			return nil, "" // it came down: never back up
		}
	}
	topic, ok := b.cfg.Map(string(in.Topic))
	if !ok {
		return nil, ""
	}
	if strings.ContainsAny(topic, badTopicBytes) {
		return nil, "its topic has a space, tab, newline or DEL, which upstreams may refuse by closing the connection"
	}
	out := &packet.Publish{Topic: []byte(topic), Payload: in.Payload, QoS: min(in.QoS, b.cfg.Remote.QoS),
		Retain: in.Retain && b.cfg.Remote.RetainKeep}
	travel(&out.Props, &in.Props)
	return out, ""
}

// travelling are the properties a flow carries over.
var travelling = []byte{packet.PropPayloadFormat, packet.PropMessageExpiry, packet.PropContentType,
	packet.PropResponseTopic, packet.PropCorrelationData}

// travel copies the properties that travel with a message (payload
// format, expiry, content type, response topic, correlation data, user
// properties) from in to out; subscription identifiers and topic aliases
// belong to one connection and stay.
func travel(out, in *packet.Properties) {
	for _, id := range travelling {
		if in.Has(id) {
			out.Set(id)
		}
	}
	out.PayloadFormat, out.MessageExpiry = in.PayloadFormat, in.MessageExpiry
	out.ContentType, out.ResponseTopic, out.CorrelationData = in.ContentType, in.ResponseTopic, in.CorrelationData
	out.User = append(out.User, in.User...)
}

// downMsg publishes a message of a flow down locally and acknowledges it
// upstream once the local broker acknowledged it (journaled for
// persistent subscribers). The client calls it in order; the local
// client keeps the order and up to MaxInflight in flight.
func (b *Bridge) downMsg(in *packet.Publish, ack func()) {
	topic, ok := b.cfg.Map(string(in.Topic))
	if !ok {
		b.drop(string(in.Topic), "")
		ack()
		return
	}
	out := &packet.Publish{Topic: []byte(topic), Payload: in.Payload, QoS: 1, Retain: in.Retain}
	travel(&out.Props, &in.Props)
	out.Props.User = append(out.Props.User, packet.UserProperty{Key: []byte(CameDown), Value: []byte(b.cfg.Name)})
	b.local.Publish(b.ctx, out, func() {
		b.forwarded.Add(1)
		ack()
	}) // an error: closed, and the upstream sends it again
}

// pipeListener hands the bridge's local connections (socket pairs) to the
// broker.
type pipeListener struct {
	ch     chan net.Conn
	done   chan struct{}
	closed sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) dial(ctx context.Context) (net.Conn, error) {
	server, client, err := socketPair()
	if err != nil {
		return nil, err
	}
	select {
	case l.ch <- server:
		return client, nil
	case <-l.done:
		err = net.ErrClosed
	case <-ctx.Done():
		err = ctx.Err()
	}
	server.Close()
	client.Close()
	return nil, err
}

// socketPair returns the two ends of a connected Unix stream socket pair:
// unlike net.Pipe, each direction has a kernel buffer, so the broker
// writes a batch of messages in one system call without waiting for the
// bridge to read it, and parks the connection in its reactor when idle.
func socketPair() (net.Conn, net.Conn, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, os.NewSyscallError("socketpair", err)
	}
	var conns [2]net.Conn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "dataflow")
		conns[i], err = net.FileConn(f) // a duplicate of fd
		f.Close()
		if err != nil {
			if i == 0 {
				unix.Close(fds[1])
			} else {
				conns[0].Close()
			}
			return nil, nil, err
		}
	}
	return conns[0], conns[1], nil
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.closed.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "dataflow" }
