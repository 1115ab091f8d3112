// Package bridge forwards messages between the local broker and an
// upstream MQTT broker: a Dataflow in AIO's language. One Bridge runs one
// flow, up (local sources → the remote) or down (remote sources → local).
//
// # Store and forward on the durable path
//
// The bridge's local side is an ordinary MQTT 5.0 client of the local
// broker, connected over an in-memory pipe, with a persistent session
// (clean start only the first time, session expiry never). For a flow up
// it subscribes to the sources with No Local, so what the broker routes
// to it is journaled before the local publisher gets its PUBACK, like any
// persistent session's messages: a power cut loses nothing acknowledged,
// and an outage of the remote fills the journal (within its disk budget;
// the broker's memory keeps only a window), not memory. The bridge
// acknowledges a message to the local broker (manual acknowledgement)
// only once the remote acknowledged it: the journal retires it then. While
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
// Local. The upstream side is package remote: up to MaxInflight messages
// in flight, sent and acknowledged to the source in the order they came,
// sent again in that order after a reconnection, so the order per topic is
// kept and a reconnection may deliver one twice (QoS 1). An upstream that
// refuses MQTT 5.0 (a NATS server) gets 3.1.1.
package bridge

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

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
	Map    func(topic string) (string, bool)
	Logger *slog.Logger
	// Backoff bounds the wait between connection attempts (exponential
	// with jitter); defaults 250 ms and 30 s.
	MinBackoff, MaxBackoff time.Duration
}

// CameDown is the user property a flow down sets on what it publishes
// locally (its value: the flow's name); flows up do not forward such
// messages.
const CameDown = "edgebroker-dataflow"

// LocalClientID returns the local client identifier of a flow's bridge.
func LocalClientID(flow string) string { return "edgebroker-dataflow-" + flow }

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
	cfg Config
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	ln     *pipeListener
	local  *autopaho.ConnectionManager // the bridge's client of the local broker
	remote *remote.Client              // of the upstream
	msgs   chan paho.PublishReceived   // a flow up's local messages, in order; bounded by the receive window
	wg     sync.WaitGroup

	forwarded  atomic.Uint64
	dropped    atomic.Uint64
	subscribed atomic.Bool // the local subscription of a flow up holds
	subOnce    sync.Once
	subDone    chan struct{} // closed once the local subscription was first made
	mu         sync.Mutex    // guards lastErr, errAt: the local side's last failure
	lastErr    string
	errAt      time.Time
}

// Start starts the bridge: its local and remote connections, retried
// until Close.
func Start(cfg Config) (*Bridge, error) {
	if cfg.Local == nil || len(cfg.Remote.Hosts) == 0 || len(cfg.Sources) == 0 || cfg.Map == nil {
		return nil, errors.New("bridge: a flow needs the local broker, remote hosts, sources and a destination")
	}
	r := &cfg.Remote
	if r.KeepAlive == 0 {
		r.KeepAlive = 60
	}
	if r.SessionExpiry == 0 {
		r.SessionExpiry = 3600
	}
	if r.MaxInflight == 0 {
		r.MaxInflight = 100
	}
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
	b := &Bridge{cfg: cfg, log: log.With("dataflow", cfg.Name), msgs: make(chan paho.PublishReceived, int(r.MaxInflight)+1),
		subDone: make(chan struct{})}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.ln = newPipeListener()
	port := &broker.Port{Name: "dataflow/" + cfg.Name}
	b.wg.Go(func() { cfg.Local.ServePort(b.ln, port) })

	var err error
	if b.local, err = b.connectLocal(); err != nil {
		b.Close()
		return nil, err
	}
	b.remote = b.connectRemote()
	if cfg.Up {
		b.wg.Go(b.forward)
	}
	if cfg.Up {
		// The local subscription is made over an in-memory pipe: wait for
		// it, so that what is published once Start returned (the ports
		// open after it) is kept for the flow.
		select {
		case <-b.subDone:
		case <-time.After(5 * time.Second):
			b.log.Warn("dataflow: the local subscription is not made yet")
		}
	}
	return b, nil
}

// Close stops the bridge. What is not yet acknowledged to the source stays
// there (in the journal for a flow up) and is forwarded by the next start.
func (b *Bridge) Close() {
	b.cancel()
	b.ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if b.remote != nil {
		b.remote.Close()
	}
	if b.local != nil {
		b.local.Disconnect(ctx)
		<-b.local.Done()
	}
	b.wg.Wait()
}

// Status reports the bridge's state.
func (b *Bridge) Status() Status {
	rs := b.remote.Status()
	st := Status{Name: b.cfg.Name, Up: b.cfg.Up, Connected: rs.Connected, Forwarded: b.forwarded.Load(), Dropped: b.dropped.Load(),
		Subscribed: b.subscribed.Load(), LastError: rs.LastError, ErrorAt: rs.ErrorAt, PropertiesDropped: rs.PropsDropped,
		Refused: rs.Refused + rs.TooLarge, Inflight: rs.Inflight}
	if !b.cfg.Up {
		st.Subscribed = rs.Subscribed
	}
	switch rs.Version {
	case packet.V5:
		st.Protocol = "5.0"
	case packet.V311:
		st.Protocol = "3.1.1"
	}
	b.mu.Lock()
	if b.errAt.After(st.ErrorAt) {
		st.LastError, st.ErrorAt = b.lastErr, b.errAt
	}
	b.mu.Unlock()
	return st
}

func (b *Bridge) fail(what string, err error) {
	b.mu.Lock()
	b.lastErr, b.errAt = what+": "+err.Error(), time.Now()
	b.mu.Unlock()
	b.log.Warn("dataflow: "+what, "err", err)
}

// backoff is exponential from MinBackoff to MaxBackoff with ±25 % jitter.
func (b *Bridge) backoff(attempt int) time.Duration {
	d := b.cfg.MinBackoff << min(attempt, 20)
	if d <= 0 || d > b.cfg.MaxBackoff {
		d = b.cfg.MaxBackoff
	}
	j := time.Duration(time.Now().UnixNano() % int64(d/2+1))
	return d*3/4 + j
}

// connectLocal connects the bridge's client of the local broker.
func (b *Bridge) connectLocal() (*autopaho.ConnectionManager, error) {
	u, _ := url.Parse("mqtt://local")
	cfg := autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u},
		KeepAlive:                     60,
		CleanStartOnInitialConnection: false,
		SessionExpiryInterval:         0xFFFFFFFF,
		ReconnectBackoff:              b.backoff,
		AttemptConnection: func(ctx context.Context, _ autopaho.ClientConfig, _ *url.URL) (net.Conn, error) {
			nc, err := b.ln.dial(ctx)
			if err != nil {
				return nil, err
			}
			// paho.golang writes a packet as several Writes, from several
			// goroutines (the acknowledgements' flusher, the pinger,
			// publishes); it holds the lock of a conn that is a
			// sync.Locker around each packet. A bare pipe would let a
			// PINGREQ slip into a PUBACK: a malformed packet, the local
			// connection closed, its messages delivered again.
			return packets.NewThreadSafeConn(nc), nil
		},
		ConnectPacketBuilder: func(c *paho.Connect, _ *url.URL) (*paho.Connect, error) {
			if c.Properties == nil {
				c.Properties = &paho.ConnectProperties{}
			}
			rm := b.cfg.Remote.MaxInflight
			c.Properties.ReceiveMaximum = &rm
			return c, nil
		},
		OnConnectionUp: func(cm *autopaho.ConnectionManager, ack *paho.Connack) {
			if b.cfg.Up {
				go b.subscribe(cm)
			}
		},
		OnConnectError: func(err error) { b.fail("local connection", err) },
		ClientConfig: paho.ClientConfig{
			ClientID:                   LocalClientID(b.cfg.Name),
			EnableManualAcknowledgment: true,
		},
	}
	if b.cfg.Up {
		cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){b.received}
	}
	return autopaho.NewConnection(b.ctx, cfg)
}

// connectRemote starts the client of the upstream broker.
func (b *Bridge) connectRemote() *remote.Client {
	r := &b.cfg.Remote
	cfg := remote.Config{Hosts: r.Hosts, TLS: r.TLS, Username: r.Username, Password: r.Password, ClientID: r.ClientID,
		KeepAlive: r.KeepAlive, SessionExpiry: r.SessionExpiry, MaxInflight: r.MaxInflight,
		MinBackoff: b.cfg.MinBackoff, MaxBackoff: b.cfg.MaxBackoff, Logger: b.log}
	if !b.cfg.Up {
		cfg.Subscriptions, cfg.SubQoS, cfg.OnMessage = b.cfg.Sources, r.QoS, b.down
	}
	return remote.New(cfg)
}

// subscribe subscribes the bridge's local client to the sources of a
// flow up.
func (b *Bridge) subscribe(cm *autopaho.ConnectionManager) {
	s := &paho.Subscribe{}
	for _, f := range b.cfg.Sources {
		s.Subscriptions = append(s.Subscriptions, paho.SubscribeOptions{Topic: f, QoS: 1, NoLocal: true,
			RetainAsPublished: true})
	}
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	if _, err := cm.Subscribe(ctx, s); err != nil {
		if b.ctx.Err() == nil {
			b.fail("subscribe", err)
		}
		return
	}
	b.subscribed.Store(true)
	b.subOnce.Do(func() { close(b.subDone) })
}

// received queues a message from the source side for forward.
func (b *Bridge) received(pr paho.PublishReceived) (bool, error) {
	select {
	case b.msgs <- pr:
	case <-b.ctx.Done():
	}
	return true, nil
}

// forward hands each local message of a flow up to the upstream client,
// in order; the client keeps up to MaxInflight in flight, and each is
// acknowledged to the local broker (retired from the journal) once the
// upstream acknowledged it, in order (a dropped one in its turn too).
func (b *Bridge) forward() {
	for {
		var pr paho.PublishReceived
		select {
		case pr = <-b.msgs:
		case <-b.ctx.Done():
			return
		}
		in := pr.Packet
		out, why := b.up(in)
		done := func() {
			if out != nil {
				b.forwarded.Add(1)
			}
			if in.QoS > 0 {
				// On the connection it came from; if that one is gone, the
				// local broker sends it again on the next (a duplicate
				// upstream).
				if err := pr.Client.Ack(in); err != nil && b.ctx.Err() == nil {
					b.log.Debug("dataflow: acknowledgement to the local broker not sent", "err", err)
				}
			}
		}
		if out == nil {
			b.drop(in.Topic, why)
		}
		if err := b.remote.Publish(b.ctx, out, done); err != nil {
			return // closed
		}
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
func (b *Bridge) up(in *paho.Publish) (*packet.Publish, string) {
	if in.Properties != nil && in.Properties.User.Get(CameDown) != "" {
		return nil, "" // it came down: never back up
	}
	topic, ok := b.cfg.Map(in.Topic)
	if !ok {
		return nil, ""
	}
	if strings.ContainsAny(topic, badTopicBytes) {
		return nil, "its topic has a space, tab, newline or DEL, which upstreams may refuse by closing the connection"
	}
	out := &packet.Publish{Topic: []byte(topic), Payload: in.Payload, QoS: min(in.QoS, b.cfg.Remote.QoS),
		Retain: in.Retain && b.cfg.Remote.RetainKeep}
	if p := in.Properties; p != nil {
		pp := &out.Props
		if p.ContentType != "" {
			pp.Set(packet.PropContentType)
			pp.ContentType = []byte(p.ContentType)
		}
		if p.CorrelationData != nil {
			pp.Set(packet.PropCorrelationData)
			pp.CorrelationData = p.CorrelationData
		}
		if p.ResponseTopic != "" {
			pp.Set(packet.PropResponseTopic)
			pp.ResponseTopic = []byte(p.ResponseTopic)
		}
		if p.PayloadFormat != nil {
			pp.Set(packet.PropPayloadFormat)
			pp.PayloadFormat = *p.PayloadFormat
		}
		if p.MessageExpiry != nil {
			pp.Set(packet.PropMessageExpiry)
			pp.MessageExpiry = *p.MessageExpiry
		}
		for _, u := range p.User {
			pp.User = append(pp.User, packet.UserProperty{Key: []byte(u.Key), Value: []byte(u.Value)})
		}
	}
	return out, ""
}

// down publishes a message of a flow down locally (retried until the
// local broker acknowledged it: journaled for persistent subscribers),
// then acknowledges it upstream. The client calls it in order.
func (b *Bridge) down(in *packet.Publish, ack func()) {
	topic, ok := b.cfg.Map(string(in.Topic))
	if !ok {
		b.drop(string(in.Topic), "")
		ack()
		return
	}
	out := &paho.Publish{Topic: topic, Payload: in.Payload, QoS: 1, Retain: in.Retain,
		Properties: &paho.PublishProperties{User: paho.UserProperties{{Key: CameDown, Value: b.cfg.Name}}}}
	p := &in.Props
	if p.Has(packet.PropContentType) {
		out.Properties.ContentType = string(p.ContentType)
	}
	if p.Has(packet.PropCorrelationData) {
		out.Properties.CorrelationData = p.CorrelationData
	}
	if p.Has(packet.PropResponseTopic) {
		out.Properties.ResponseTopic = string(p.ResponseTopic)
	}
	if p.Has(packet.PropPayloadFormat) {
		v := p.PayloadFormat
		out.Properties.PayloadFormat = &v
	}
	if p.Has(packet.PropMessageExpiry) {
		v := p.MessageExpiry
		out.Properties.MessageExpiry = &v
	}
	for _, u := range p.User {
		out.Properties.User = append(out.Properties.User, paho.UserProperty{Key: string(u.Key), Value: string(u.Value)})
	}
	for attempt := 0; ; attempt++ {
		if err := b.local.AwaitConnection(b.ctx); err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
		_, err := b.local.Publish(ctx, out)
		cancel()
		if err == nil {
			break
		}
		if b.ctx.Err() != nil {
			return
		}
		b.fail("local publish", err)
		select {
		case <-time.After(b.backoff(attempt)):
		case <-b.ctx.Done():
			return
		}
	}
	b.forwarded.Add(1)
	ack()
}

// pipeListener hands the bridge's in-memory connections to the broker.
type pipeListener struct {
	ch     chan net.Conn
	done   chan struct{}
	closed sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) dial(ctx context.Context) (net.Conn, error) {
	server, client := net.Pipe()
	select {
	case l.ch <- server:
		return client, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
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
