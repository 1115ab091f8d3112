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
// Local. Each flow is processed in order by one goroutine, so the
// order per topic is kept; a message is retried until acknowledged, so a
// reconnection may deliver one twice (QoS 1).
package bridge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"edgebroker/broker"
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
}

// Bridge runs one flow until Close.
type Bridge struct {
	cfg Config
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	ln     *pipeListener
	local  *autopaho.ConnectionManager
	remote *autopaho.ConnectionManager
	msgs   chan paho.PublishReceived // received on the source side, in order; bounded by the receive window
	wg     sync.WaitGroup

	forwarded  atomic.Uint64
	dropped    atomic.Uint64
	subscribed atomic.Bool
	subOnce    sync.Once
	subDone    chan struct{} // closed once the source side first subscribed
	mu         sync.Mutex    // guards connected, dialed, lastErr, errAt
	connected  string
	dialed     string // the host of the last connection made
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
	if b.local, err = b.connectLocal(); err == nil {
		b.remote, err = b.connectRemote()
	}
	if err != nil {
		b.Close()
		return nil, err
	}
	b.wg.Go(b.forward)
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
	for _, cm := range []*autopaho.ConnectionManager{b.remote, b.local} {
		if cm != nil {
			cm.Disconnect(ctx)
			<-cm.Done()
		}
	}
	b.wg.Wait()
}

// Status reports the bridge's state.
func (b *Bridge) Status() Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	return Status{Name: b.cfg.Name, Up: b.cfg.Up, Connected: b.connected, Forwarded: b.forwarded.Load(), Dropped: b.dropped.Load(), Subscribed: b.subscribed.Load(),
		LastError: b.lastErr, ErrorAt: b.errAt}
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
			return b.ln.dial(ctx)
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
				go b.subscribe(cm, true)
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

// connectRemote connects to the upstream broker.
func (b *Bridge) connectRemote() (*autopaho.ConnectionManager, error) {
	r := &b.cfg.Remote
	scheme := "mqtt"
	if r.TLS != nil {
		scheme = "tls"
	}
	var urls []*url.URL
	for _, h := range r.Hosts {
		u, err := url.Parse(scheme + "://" + h)
		if err != nil {
			return nil, fmt.Errorf("bridge: host %q: %w", h, err)
		}
		urls = append(urls, u)
	}
	cfg := autopaho.ClientConfig{
		ServerUrls:                    urls,
		TlsCfg:                        r.TLS,
		KeepAlive:                     r.KeepAlive,
		CleanStartOnInitialConnection: false,
		SessionExpiryInterval:         r.SessionExpiry,
		ReconnectBackoff:              b.backoff,
		ConnectTimeout:                10 * time.Second,
		ConnectUsername:               r.Username,
		ConnectPassword:               r.Password,
		AttemptConnection: func(ctx context.Context, _ autopaho.ClientConfig, u *url.URL) (net.Conn, error) {
			nc, err := b.dialRemote(ctx, u.Host)
			if err == nil {
				b.mu.Lock()
				b.dialed = u.Host
				b.mu.Unlock()
			}
			return nc, err
		},
		OnConnectionUp: func(cm *autopaho.ConnectionManager, ack *paho.Connack) {
			b.mu.Lock()
			b.connected = b.dialed
			b.mu.Unlock()
			b.log.Info("dataflow: connected upstream", "host", b.Status().Connected)
			if !b.cfg.Up {
				go b.subscribe(cm, false)
			}
		},
		OnConnectionDown: func() bool {
			b.mu.Lock()
			b.connected = ""
			b.mu.Unlock()
			return true
		},
		OnConnectError: func(err error) { b.fail("upstream connection", err) },
		ClientConfig: paho.ClientConfig{
			ClientID:                   r.ClientID,
			EnableManualAcknowledgment: true,
		},
	}
	if r.Username != "" {
		cfg.ConnectUsername = r.Username
	}
	if !b.cfg.Up {
		cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){b.received}
	}
	return autopaho.NewConnection(b.ctx, cfg)
}

// dialRemote opens a connection to host (TLS when configured).
func (b *Bridge) dialRemote(ctx context.Context, host string) (net.Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	if c := b.cfg.Remote.TLS; c != nil {
		c = c.Clone()
		if c.ServerName == "" {
			c.ServerName, _, _ = net.SplitHostPort(host)
		}
		tc := tls.Client(nc, c)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, err
		}
		nc = tc
	}
	return packets.NewThreadSafeConn(nc), nil
}

// subscribe subscribes the source side to the flow's sources.
func (b *Bridge) subscribe(cm *autopaho.ConnectionManager, local bool) {
	qos := byte(1)
	if !local {
		qos = b.cfg.Remote.QoS
	}
	s := &paho.Subscribe{}
	for _, f := range b.cfg.Sources {
		s.Subscriptions = append(s.Subscriptions, paho.SubscribeOptions{Topic: f, QoS: qos, NoLocal: local,
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

// forward sends each source message to the destination, in order, until
// the destination acknowledged it, then acknowledges it to the source.
func (b *Bridge) forward() {
	dst := b.remote
	if !b.cfg.Up {
		dst = b.local
	}
	for {
		var pr paho.PublishReceived
		select {
		case pr = <-b.msgs:
		case <-b.ctx.Done():
			return
		}
		in := pr.Packet
		out := b.translate(in)
		for attempt := 0; out != nil; attempt++ {
			if err := dst.AwaitConnection(b.ctx); err != nil {
				return
			}
			ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
			_, err := dst.Publish(ctx, out)
			cancel()
			if err == nil {
				break
			}
			if b.ctx.Err() != nil {
				return
			}
			b.fail("forward", err)
			select {
			case <-time.After(b.backoff(attempt)):
			case <-b.ctx.Done():
				return
			}
		}
		if out != nil {
			b.forwarded.Add(1)
		} else {
			b.dropped.Add(1)
		}
		if in.QoS > 0 {
			// On the connection it came from; if that one is gone, the
			// source sends it again on the next (a duplicate downstream).
			if err := pr.Client.Ack(in); err != nil && b.ctx.Err() == nil {
				b.log.Debug("dataflow: acknowledgement to the source not sent", "err", err)
			}
		}
	}
}

// translate makes the destination's PUBLISH: the topic from the template,
// the QoS and retain flag of the flow, the properties that travel; nil
// if Map has no destination for it.
func (b *Bridge) translate(in *paho.Publish) *paho.Publish {
	if b.cfg.Up && in.Properties != nil && in.Properties.User.Get(CameDown) != "" {
		return nil // it came down: never back up
	}
	topic, ok := b.cfg.Map(in.Topic)
	if !ok {
		return nil
	}
	out := &paho.Publish{Topic: topic, Payload: in.Payload, QoS: min(in.QoS, b.qos())}
	if b.cfg.Remote.RetainKeep || !b.cfg.Up {
		out.Retain = in.Retain
	}
	if p := in.Properties; p != nil {
		out.Properties = &paho.PublishProperties{
			ContentType:     p.ContentType,
			CorrelationData: p.CorrelationData,
			ResponseTopic:   p.ResponseTopic,
			PayloadFormat:   p.PayloadFormat,
			MessageExpiry:   p.MessageExpiry,
			User:            p.User,
		}
	}
	if !b.cfg.Up {
		if out.Properties == nil {
			out.Properties = &paho.PublishProperties{}
		}
		out.Properties.User = append(slices.Clone(out.Properties.User), paho.UserProperty{Key: CameDown, Value: b.cfg.Name})
	}
	return out
}

func (b *Bridge) qos() byte {
	if b.cfg.Up {
		return b.cfg.Remote.QoS
	}
	return 1
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
