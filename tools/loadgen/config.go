package loadgen

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"edgebroker/broker/packet"
)

// Mode is what a run measures.
type Mode string

// Modes.
const (
	FanIn   Mode = "fan-in"  // Publishers → one wildcard subscriber (by default)
	FanOut  Mode = "fan-out" // one publisher → Subscribers on the same topic
	Latency Mode = "latency" // one publisher → one subscriber at a fixed Rate
	Conns   Mode = "conns"   // Conns idle clients with one subscription each
	// Connects: clients connect (over TLS: a full handshake), CONNECT,
	// CONNACK, DISCONNECT, again and again; Count bounds the connections.
	Connects Mode = "connects"
)

// Config describes one run. Zero fields take the defaults of the mode (see
// withDefaults); Count and Duration always bound a run.
type Config struct {
	Mode Mode
	Addr string // host:port of the broker
	// SubAddr, when set, is where the subscribers connect instead (with
	// the same TLS settings): the upstream of a bridge from Addr, so that
	// what they receive went through the bridge.
	SubAddr string
	Version byte // packet.V311 or packet.V5
	QoS     byte
	Payload int // bytes per message; at least 16 (timestamp and sequence)

	Publishers  int
	Subscribers int
	Rate        float64       // messages per second over all publishers; 0: as fast as the window allows
	Count       int64         // messages to publish (Conns: clients to connect)
	Duration    time.Duration // publishing stops after this long (Conns: connecting must finish)
	Drain       time.Duration // after publishing: wait this long without progress for stragglers
	Inflight    int           // QoS 1/2 window per publisher (capped by a 5.0 broker's Receive Maximum)
	Window      int           // end-to-end window: messages published but not yet received per subscriber; <0: none
	KeepAlive   uint16        // seconds; clients send PINGREQ at half of it
	Hold        time.Duration // Conns: how long the idle clients stay connected
	Sources     int           // Conns: spread over this many 127.0.0.x source addresses
	Dialers     int           // Conns: concurrent connection attempts
	TopicPrefix string        // topics are TopicPrefix/<run id>/...
	// Persistent gives the subscribers a session that outlives the
	// connection (3.1.1: clean session false; 5.0: Session Expiry Interval
	// of an hour): a broker with a durable path puts their QoS 1/2
	// messages on disk before it acknowledges them.
	Persistent bool

	TLS    bool
	CAFile string
	// TLSVersion, when set (tls.VersionTLS12, tls.VersionTLS13), is the
	// only TLS version the clients offer; it implies TLS.
	TLSVersion uint16
	// Curves, when set, are the only key exchanges the clients offer
	// (tls.Config.CurvePreferences); empty: Go's defaults, which offer
	// the X25519MLKEM768 hybrid first.
	Curves      []tls.CurveID
	Insecure    bool
	ServerName  string
	AllowRemote bool // permit a target outside 127.0.0.0/8 and ::1
	// WebSocket: MQTT over a WebSocket (subprotocol mqtt) at
	// WebSocketPath (default /mqtt); with TLS, wss.
	WebSocket     bool
	WebSocketPath string

	// BrokerPID, when set, is the broker process whose CPU time (over the
	// measured phase) and resident memory (Conns: before and after the
	// clients connect) are read from ProcRoot.
	BrokerPID int
	ProcRoot  string // nil-like: "" means "/proc"

	// AtStart and AtEnd, when set, are called where the broker's CPU time
	// is read: after connecting, before the first publish, and after the
	// drain (fan-in, fan-out and latency modes). benchcompare reads the
	// broker's own counters there.
	AtStart, AtEnd func()
}

// withDefaults returns cfg with the zero fields filled for its mode.
func (cfg Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	if cfg.Mode == "" {
		cfg.Mode = FanIn
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:1883"
	}
	if cfg.Version == 0 {
		cfg.Version = packet.V311
	}
	switch cfg.Mode {
	case FanIn:
		def(&cfg.Publishers, 8)
		def(&cfg.Subscribers, 1)
	case FanOut:
		def(&cfg.Publishers, 1)
		def(&cfg.Subscribers, 100)
	case Latency:
		def(&cfg.Publishers, 1)
		def(&cfg.Subscribers, 1)
		if cfg.Rate == 0 {
			cfg.Rate = 1000
		}
	}
	def(&cfg.Payload, 64)
	cfg.Payload = max(cfg.Payload, stampSize)
	def(&cfg.Inflight, 32)
	def(&cfg.Window, 500)
	def(&cfg.Sources, 16)
	def(&cfg.Dialers, 32)
	if cfg.Count == 0 {
		cfg.Count = 100000
	}
	if cfg.Duration == 0 {
		cfg.Duration = 10 * time.Second
	}
	if cfg.Drain == 0 {
		cfg.Drain = time.Second
	}
	if cfg.Hold == 0 {
		cfg.Hold = time.Second
	}
	if cfg.KeepAlive == 0 {
		cfg.KeepAlive = 60
	}
	if cfg.TopicPrefix == "" {
		cfg.TopicPrefix = "mqttload"
	}
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	return cfg
}

// validate checks a Config after withDefaults.
func (cfg *Config) validate() error {
	switch cfg.Mode {
	case FanIn, FanOut, Latency, Conns, Connects:
	default:
		return fmt.Errorf("loadgen: unknown mode %q (want fan-in, fan-out, latency, conns or connects)", cfg.Mode)
	}
	if cfg.Version != packet.V311 && cfg.Version != packet.V5 {
		return fmt.Errorf("loadgen: MQTT version %d: want 4 (3.1.1) or 5", cfg.Version)
	}
	switch {
	case cfg.QoS > 2:
		return fmt.Errorf("loadgen: QoS %d", cfg.QoS)
	case cfg.Count < 0 || cfg.Duration < 0:
		return errors.New("loadgen: a run is bounded by both a positive count and a positive duration")
	case cfg.Mode != Conns && cfg.Mode != Connects && (cfg.Publishers < 1 || cfg.Subscribers < 1):
		return errors.New("loadgen: need at least one publisher and one subscriber")
	case cfg.Payload > 1<<20:
		return fmt.Errorf("loadgen: payload of %d bytes is over 1 MiB", cfg.Payload)
	case cfg.Inflight > 65535/2:
		return fmt.Errorf("loadgen: inflight window %d is too large", cfg.Inflight)
	case cfg.Rate < 0:
		return errors.New("loadgen: negative rate")
	}
	if cfg.AllowRemote {
		return nil
	}
	if cfg.SubAddr != "" {
		if err := checkLoopback(cfg.SubAddr); err != nil {
			return err
		}
	}
	return checkLoopback(cfg.Addr)
}

// checkLoopback refuses a host:port that is not on 127.0.0.0/8 or ::1.
// Names are resolved, and every address they resolve to must be loopback.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("loadgen: address %q: %w", addr, err)
	}
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		ips = append(ips, ip)
	} else {
		names, err := net.LookupHost(host)
		if err != nil {
			return fmt.Errorf("loadgen: resolve %q: %w", host, err)
		}
		for _, n := range names {
			if ip, err := netip.ParseAddr(n); err == nil {
				ips = append(ips, ip)
			}
		}
	}
	if len(ips) == 0 {
		return fmt.Errorf("loadgen: %q has no address", host)
	}
	for _, ip := range ips {
		if !ip.Unmap().IsLoopback() {
			return fmt.Errorf("loadgen: refusing non-loopback target %s (%s); pass -allow-remote to load a remote broker", addr, ip)
		}
	}
	return nil
}

// ParseVersion maps "3.1.1", "311", "4", "5" and "5.0" to a protocol level.
func ParseVersion(s string) (byte, error) {
	switch s {
	case "3.1.1", "311", "4":
		return packet.V311, nil
	case "5", "5.0":
		return packet.V5, nil
	}
	return 0, fmt.Errorf("loadgen: MQTT version %q: want 3.1.1 or 5", s)
}
