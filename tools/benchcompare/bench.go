// Package benchcompare runs the same loads against edgebroker and
// Debian's mosquitto on loopback and reports them side by side, as a
// Markdown table and an SVG bar chart. Loads run over plain TCP, TLS (one
// ECDSA P-256 certificate per run, both brokers configured alike) or
// WebSockets; a broker that cannot serve a transport is left out of its
// scenarios, and the report says why.
//
// Each run starts a fresh broker process, so that RSS and CPU readings
// (from /proc, taken by loadgen) belong to that run alone. Runs alternate
// between the brokers — A then B in odd rounds, B then A in even ones — so
// that slow drift on a shared machine hits both, and every figure is the
// median over the rounds.
package benchcompare

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"edgebroker/broker/packet"
	"edgebroker/tools/loadgen"
)

// Config sizes a comparison.
type Config struct {
	Edgebroker string // path of the edgebroker binary
	Mosquitto  string // path of the mosquitto binary
	// MosquittoWS is the mosquitto binary of the WebSocket rows ("":
	// Mosquitto): Debian's serves no WebSockets, so `make bench-compare`
	// builds the same sources with them (build-mosquitto-ws).
	MosquittoWS string
	Dir         string // scratch directory for broker state, configs and logs

	Rounds     int
	Duration   time.Duration // per throughput and latency run
	Payload    int
	Version    byte
	FanInPubs  int
	FanOutSubs int
	// LatencyRates are the paced scenarios' rates (messages per second,
	// one publisher → one subscriber), plain and over TLS: a scenario
	// each. The broker's CPU per message is the figure to read there.
	LatencyRates []float64
	IdleConns    int // the idle-connections scenario's clients (plain TCP)
	// TLSIdleConns is the TLS idle-connections scenario's clients
	// (issue 17 measures plain at 10,000 and TLS at 5,000); 0: IdleConns.
	TLSIdleConns int
	// HandshakeDialers is how many clients connect and disconnect at once
	// in the TLS handshake scenarios (default 8).
	HandshakeDialers int
	// The durable fan-in scenarios: DurablePubs QoS 1 publishers with
	// DurableInflight messages each awaiting PUBACK → one persistent
	// subscriber, once per payload size in DurablePayloads.
	DurablePubs     int
	DurableInflight int
	DurablePayloads []int
	// DurableWindow, when not 0, adds the durable fan-in scenarios again
	// with this many PUBLISHes in flight per publisher: a client with a
	// window, as mosquitto_pub's default (20) and paho's are, where
	// DurableInflight 1 is a client that waits for each PUBACK.
	DurableWindow int
	// The durable latency scenario: one QoS 1 publisher at DurableRate
	// messages per second (default 2,000) → one persistent subscriber:
	// publish to PUBACK below saturation, against one fsync.
	DurableRate  float64
	FsyncSamples int      // 4 KiB writes + fdatasync timed once per run (default 200)
	Only         []string // scenario name prefixes to run; empty: all
	// The dataflow scenario: DataflowPubs QoS 1 publishers (default 8)
	// on the broker, which forwards to an upstream with the subscriber.
	DataflowPubs int

	Log io.Writer // progress; nil: discard

	certs certFiles // the TLS scenarios' server certificate; written by Run
}

// scenario is one load, run against every broker. A load with
// persistent subscribers is durable: the brokers keep their sessions on
// disk (as far as they do), and edgebroker's journal counters are read.
type scenario struct {
	name      string
	load      loadgen.Config
	transport transport // the port the broker serves the load on
}

func (s *scenario) durable() bool { return s.load.Persistent }

// dataflow: the load's topics are those the broker forwards to an
// upstream broker (started for the run), where the subscribers are.
func (s *scenario) dataflow() bool { return s.load.TopicPrefix == dataflowTopic }

func (cfg *Config) scenarios() []scenario {
	base := loadgen.Config{Version: cfg.Version, Payload: cfg.Payload, Duration: cfg.Duration}
	with := func(f func(*loadgen.Config)) loadgen.Config {
		c := base
		f(&c)
		return c
	}
	fanIn0 := func(c *loadgen.Config) {
		c.Mode, c.Publishers, c.Count = loadgen.FanIn, cfg.FanInPubs, 50_000_000
	}
	paced := func(rate float64) func(c *loadgen.Config) {
		return func(c *loadgen.Config) {
			c.Mode, c.Rate, c.Count = loadgen.Latency, rate, int64(rate*cfg.Duration.Seconds())
		}
	}
	idleN := func(n int) func(c *loadgen.Config) {
		return func(c *loadgen.Config) {
			c.Mode, c.Count, c.Duration, c.Hold = loadgen.Conns, int64(n), 60*time.Second, time.Second
		}
	}
	idle := idleN(cfg.IdleConns)
	all := []scenario{
		{name: fmt.Sprintf("fan-in QoS 0 (%d→1)", cfg.FanInPubs), load: with(fanIn0)},
		{name: fmt.Sprintf("fan-in QoS 1 (%d→1)", cfg.FanInPubs), load: with(func(c *loadgen.Config) {
			c.Mode, c.Publishers, c.QoS, c.Count = loadgen.FanIn, cfg.FanInPubs, 1, 20_000_000
		})},
		{name: fmt.Sprintf("fan-out QoS 0 (1→%d)", cfg.FanOutSubs), load: with(func(c *loadgen.Config) {
			c.Mode, c.Subscribers, c.Count = loadgen.FanOut, cfg.FanOutSubs, 1_000_000
		})},
	}
	for _, rate := range cfg.LatencyRates {
		all = append(all, scenario{name: fmt.Sprintf("latency QoS 0 at %.0f msg/s", rate), load: with(paced(rate))})
	}
	all = append(all, scenario{name: fmt.Sprintf("idle connections (%d)", cfg.IdleConns), load: with(idle)})
	// Over TLS: the same loads on a port with an ECDSA P-256 certificate
	// (TLS 1.2 and 1.3 allowed; Go's client picks 1.3), and handshakes.
	tlsScenario := func(name string, f func(*loadgen.Config)) scenario {
		l := with(f)
		l.TLS = true
		return scenario{name: "TLS " + name, load: l, transport: overTLS}
	}
	all = append(all, tlsScenario(fmt.Sprintf("fan-in QoS 0 (%d→1)", cfg.FanInPubs), fanIn0))
	for _, rate := range cfg.LatencyRates {
		all = append(all, tlsScenario(fmt.Sprintf("latency QoS 0 at %.0f msg/s", rate), paced(rate)))
	}
	tlsIdle := cfg.TLSIdleConns
	if tlsIdle == 0 {
		tlsIdle = cfg.IdleConns
	}
	all = append(all, tlsScenario(fmt.Sprintf("idle connections (%d)", tlsIdle), idleN(tlsIdle)))
	// The handshake clients offer X25519 and P-256, as OpenSSL 3.0's
	// (mosquitto_pub's) do; one more row with Go's default client, which
	// offers the X25519MLKEM768 hybrid that edgebroker accepts and
	// mosquitto cannot (a larger key share and an ML-KEM encapsulation).
	handshake := func(v uint16, curves []tls.CurveID, suffix string) {
		all = append(all, tlsScenario(fmt.Sprintf("handshakes (%s, ECDSA P-256%s)", strings.TrimPrefix(tls.VersionName(v), "TLS "), suffix), func(c *loadgen.Config) {
			c.Mode, c.TLSVersion, c.Count, c.Dialers, c.Curves = loadgen.Connects, v, 10_000_000, cfg.HandshakeDialers, curves
		}))
	}
	classic := []tls.CurveID{tls.X25519, tls.CurveP256}
	handshake(tls.VersionTLS13, classic, "")
	handshake(tls.VersionTLS12, classic, "")
	handshake(tls.VersionTLS13, nil, ", ML-KEM offered")
	ws := with(fanIn0)
	ws.WebSocket = true
	all = append(all, scenario{name: fmt.Sprintf("WebSocket fan-in QoS 0 (%d→1)", cfg.FanInPubs), load: ws, transport: overWS})
	all = append(all, scenario{name: fmt.Sprintf("durable latency QoS 1 (1→1 persistent, %s) at %.0f msg/s", sizeName(cfg.Payload), cfg.DurableRate), load: with(func(c *loadgen.Config) {
		c.Mode, c.Publishers, c.QoS, c.Rate = loadgen.FanIn, 1, 1, cfg.DurableRate
		c.Count = int64(cfg.DurableRate * cfg.Duration.Seconds())
		c.Inflight, c.Persistent = 1, true
	})})
	for _, size := range cfg.DurablePayloads {
		all = append(all, scenario{name: fmt.Sprintf("durable fan-in QoS 1 (%d→1 persistent, %s)", cfg.DurablePubs, sizeName(size)), load: with(func(c *loadgen.Config) {
			c.Mode, c.Publishers, c.QoS, c.Count, c.Payload = loadgen.FanIn, cfg.DurablePubs, 1, 20_000_000, size
			c.Inflight, c.Persistent = cfg.DurableInflight, true
		})})
	}
	if cfg.DurableWindow > 0 {
		for _, size := range cfg.DurablePayloads {
			all = append(all, scenario{name: fmt.Sprintf("durable fan-in QoS 1 (%d→1 persistent, %s, %d in flight)", cfg.DurablePubs, sizeName(size), cfg.DurableWindow), load: with(func(c *loadgen.Config) {
				c.Mode, c.Publishers, c.QoS, c.Count, c.Payload = loadgen.FanIn, cfg.DurablePubs, 1, 20_000_000, size
				c.Inflight, c.Persistent = cfg.DurableWindow, true
			})})
		}
	}
	all = append(all, dataflowScenario(base, cfg.DataflowPubs))
	if len(cfg.Only) == 0 {
		return all
	}
	var out []scenario
	for _, s := range all {
		for _, o := range cfg.Only {
			if strings.HasPrefix(s.name, o) {
				out = append(out, s)
				break
			}
		}
	}
	return out
}

// ParseSizes parses comma-separated byte counts ("" for none), as
// -durable-payloads takes them.
func ParseSizes(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("benchcompare: payload size %q is not a positive number of bytes", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// ParseRates parses comma-separated messages per second ("" for none), as
// -rate takes them.
func ParseRates(s string) ([]float64, error) {
	var out []float64
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		r, err := strconv.ParseFloat(f, 64)
		if err != nil || r <= 0 || math.IsInf(r, 0) {
			return nil, fmt.Errorf("benchcompare: rate %q is not a positive number of messages per second", f)
		}
		out = append(out, r)
	}
	return out, nil
}

// sizeName is a payload size for a scenario name: "64 B", "1 KiB".
func sizeName(n int) string {
	if n >= 1024 && n%1024 == 0 {
		return fmt.Sprintf("%d KiB", n/1024)
	}
	return fmt.Sprintf("%d B", n)
}

// sample is one run of one scenario against one broker.
type sample struct {
	res     *loadgen.Result
	journal *JournalUsage // durable scenarios on a broker with metrics
	err     error
}

// Report holds every run, by scenario and broker.
type Report struct {
	cfg       Config
	brokers   []string
	scenarios []string
	samples   map[[2]string][]sample // {scenario, broker}
	durable   map[string]bool        // scenarios with a persistent subscriber
	dataflow  map[string]bool        // scenarios forwarding to an upstream
	// notRun says why a broker was not run in a scenario (it cannot
	// serve the scenario's transport), by {scenario, broker}.
	notRun   map[[2]string]string
	fsync    *FsyncTiming // one fsync on the scratch directory's disk; nil: not measured
	fsyncErr error
	started  time.Time
	elapsed  time.Duration
}

// Run runs every scenario cfg.Rounds times against both brokers.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if cfg.Rounds < 1 {
		return nil, fmt.Errorf("benchcompare: %d rounds", cfg.Rounds)
	}
	if cfg.Version == 0 {
		cfg.Version = packet.V311
	}
	if cfg.DurablePubs == 0 {
		cfg.DurablePubs = 64
	}
	if cfg.DurableInflight == 0 {
		cfg.DurableInflight = 1
	}
	if cfg.DurableRate == 0 {
		cfg.DurableRate = 2000
	}
	if cfg.FsyncSamples == 0 {
		cfg.FsyncSamples = 200
	}
	if cfg.DataflowPubs == 0 {
		cfg.DataflowPubs = 8
	}
	if cfg.HandshakeDialers == 0 {
		cfg.HandshakeDialers = 8
	}
	if cfg.TLSIdleConns == 0 {
		cfg.TLSIdleConns = cfg.IdleConns
	}
	brokers := []broker{edgebroker(cfg.Edgebroker), mosquitto(cfg.Mosquitto, cfg.MosquittoWS)}
	// The limit is per process: loadgen (in this one) needs a descriptor
	// per idle client, each broker (a child, which inherits the limit) one
	// per server side.
	if err := loadgen.RaiseFileLimit(uint64(max(cfg.IdleConns, cfg.TLSIdleConns) + 1024)); err != nil {
		return nil, err
	}
	rep := &Report{cfg: cfg, samples: make(map[[2]string][]sample), durable: make(map[string]bool), dataflow: make(map[string]bool),
		notRun: make(map[[2]string]string), started: time.Now()}
	for _, b := range brokers {
		rep.brokers = append(rep.brokers, b.name)
	}
	scs := cfg.scenarios()
	for _, s := range scs {
		rep.scenarios = append(rep.scenarios, s.name)
		rep.dataflow[s.name] = s.dataflow()
		if s.durable() && !rep.durable[s.name] {
			rep.durable[s.name] = true
			if rep.fsync == nil && rep.fsyncErr == nil {
				// The brokers' state lives under cfg.Dir: time the disk there.
				rep.fsync, rep.fsyncErr = MeasureFsync(cfg.Dir, cfg.FsyncSamples)
				if rep.fsyncErr != nil {
					fmt.Fprintf(cfg.Log, "benchcompare: fsync timing: %v\n", rep.fsyncErr)
				} else {
					fmt.Fprintf(cfg.Log, "benchcompare: one fsync (4 KiB + fdatasync) in %s (%s): median %v\n", cfg.Dir, rep.fsync.FS, rep.fsync.Median())
				}
			}
		}
	}
	if err := rep.prepareTransports(ctx, &cfg, scs, brokers); err != nil {
		return nil, err
	}
	for round := range cfg.Rounds {
		for _, s := range scs {
			for i := range brokers {
				b := brokers[i]
				if round%2 == 1 {
					b = brokers[len(brokers)-1-i]
				}
				if err := ctx.Err(); err != nil {
					return rep, err
				}
				if _, ok := rep.notRun[[2]string{s.name, b.name}]; ok {
					continue
				}
				smp := runOne(ctx, b, s, &cfg)
				key := [2]string{s.name, b.name}
				rep.samples[key] = append(rep.samples[key], smp)
				if smp.err != nil {
					fmt.Fprintf(cfg.Log, "benchcompare: round %d %s %s: %v\n", round+1, s.name, b.name, smp.err)
				} else {
					fmt.Fprintf(cfg.Log, "benchcompare: round %d %-10s %s\n", round+1, b.name, smp.res.Summary())
				}
			}
		}
	}
	rep.elapsed = time.Since(rep.started)
	return rep, nil
}

// prepareTransports writes the server certificate when a scenario runs
// over TLS, and tries each broker once on a WebSocket port when a
// scenario runs over WebSockets: a broker built without them (Debian's
// mosquitto 2.0.11, when no MosquittoWS is given) is not run there, and
// the report says why.
func (rep *Report) prepareTransports(ctx context.Context, cfg *Config, scs []scenario, brokers []broker) error {
	used := map[transport]bool{}
	for _, s := range scs {
		used[s.transport] = true
	}
	if used[overTLS] {
		var err error
		if cfg.certs, err = writeCert(cfg.Dir); err != nil {
			return fmt.Errorf("benchcompare: server certificate: %w", err)
		}
	}
	if !used[overWS] {
		return nil
	}
	for _, b := range brokers {
		err := tryTransport(ctx, b, cfg.Dir, overWS)
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		why := fmt.Sprintf("%s did not serve a WebSocket port (%s)", b.name, lastLogLine(err))
		fmt.Fprintf(cfg.Log, "benchcompare: %s\n", why)
		for _, s := range scs {
			if s.transport == overWS {
				rep.notRun[[2]string{s.name, b.name}] = why
			}
		}
	}
	return nil
}

// lastLogLine is the last line of the broker's log that ends a failed
// start's error (see logTail), without mosquitto's time stamp: "Error:
// Unable to start any listening sockets, exiting."; the whole error when
// it has no log.
func lastLogLine(err error) string {
	s := err.Error()
	_, tail, ok := strings.Cut(s, "; log ends: ")
	if !ok {
		return s
	}
	lines := strings.Split(strings.TrimSpace(tail), "\n")
	last := strings.TrimSpace(lines[len(lines)-1])
	if stamp, rest, ok := strings.Cut(last, ": "); ok && strings.Trim(stamp, "0123456789") == "" {
		last = rest
	}
	return last
}

// tryTransport starts b with a port over t and stops it.
func tryTransport(ctx context.Context, b broker, scratch string, t transport) error {
	dir, err := os.MkdirTemp(scratch, b.name+"-probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := start(ctx, b, launch{dir: dir, transport: t})
	if err != nil {
		return err
	}
	return p.stop()
}

// runOne starts a fresh broker, runs the scenario against it and stops it.
func runOne(ctx context.Context, b broker, s scenario, cfg *Config) sample {
	dir, err := os.MkdirTemp(cfg.Dir, b.name+"-")
	if err != nil {
		return sample{err: err}
	}
	defer os.RemoveAll(dir)
	// A dataflow run keeps the bridge's queue on disk as far as the
	// broker does (mosquitto: persistence true).
	l := launch{dir: dir, durable: s.durable() || s.dataflow(), transport: s.transport, certs: cfg.certs}
	if s.dataflow() {
		up, err := startUpstream(ctx, cfg.Mosquitto, dir)
		if err != nil {
			return sample{err: err}
		}
		defer up.stop()
		l.upstream = up.addr
	}
	if l.durable && b.metrics {
		port, err := freePort()
		if err != nil {
			return sample{err: err}
		}
		l.status = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	}
	p, err := start(ctx, b, l)
	if err != nil {
		return sample{err: err}
	}
	load := s.load
	load.Addr, load.BrokerPID, load.SubAddr = p.addr, p.pid(), l.upstream
	if s.transport == overTLS {
		load.CAFile = cfg.certs.cert
	}
	if s.dataflow() {
		if err := awaitForwarding(ctx, p.addr, l.upstream); err != nil {
			p.stop()
			return sample{err: fmt.Errorf("%s: %w%s", b.name, err, logTail(filepath.Join(dir, b.name+".log")))}
		}
	}
	// The journal's counters, read where loadgen reads the broker's CPU
	// time: after connecting, and after the drain.
	var before, after journalReading
	var jerr error
	if l.status != "" {
		url := "http://" + l.status + "/metrics"
		load.AtStart = func() { before, jerr = readJournal(ctx, url) }
		load.AtEnd = func() {
			if jerr == nil {
				after, jerr = readJournal(ctx, url)
			}
		}
	}
	// Let the broker finish starting up before the "before" readings.
	time.Sleep(200 * time.Millisecond)
	res, err := loadgen.Run(ctx, load, nil)
	smp := sample{res: res, err: err}
	if l.status != "" && err == nil {
		if jerr != nil {
			smp.err = fmt.Errorf("%s: journal metrics: %w", b.name, jerr)
		} else {
			smp.journal = after.since(before, res)
		}
	}
	serr := p.stop()
	if serr == nil && l.durable && b.saved != nil {
		serr = b.saved(l)
	}
	if smp.err == nil && serr != nil {
		smp.err = fmt.Errorf("%s: %w%s", b.name, serr, logTail(filepath.Join(dir, b.name+".log")))
	}
	return smp
}
