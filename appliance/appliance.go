// Package appliance wires edgebroker's subsystems together: it is the only
// package that knows all of them, owns their start and shutdown order, and
// runs them in one errgroup.
package appliance

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"edgebroker/board"
	"edgebroker/board/led"

	"edgebroker/appliance/config"
	"edgebroker/broker"
)

// DefaultLoopback is the embedded default's plain port for programs on
// the device itself (SPEC §2).
const DefaultLoopback = "127.0.0.1:1883"

// Config is what the command line gives the appliance.
type Config struct {
	DataDir string // state lives here (/perm/edgebroker on gokrazy)
	// ConfigPath names YAML resources (a file or a folder) that replace
	// the embedded default as a whole; "" serves the embedded default.
	ConfigPath string
	Listen     []string // extra plain, anonymous MQTT ports
	// Loopback is the address of the embedded default's device-local
	// plain port (listener "loopback", port 1883): "" means
	// DefaultLoopback, "off" disables it. It applies only to the embedded
	// default: a -config brings its own ClusterIp listener, or none.
	Loopback string
	// PortMap makes the appliance bind a configured port number to
	// another one (0: any free port) on the interfaces the listener's
	// service type gives it. Status reports the bound address. For tests,
	// and for running beside another broker on a development host.
	PortMap map[int]int
	Logger  *slog.Logger
	// Limits are the broker's limits; a Broker resource in the
	// configuration overrides the fields it sets.
	Limits broker.Limits
	// MemoryLimit sets the Go runtime's soft memory limit to 7/8 of the
	// memory budget (unless GOMEMLIMIT is set): the collector then works
	// harder instead of letting the heap reach twice what is live. For the
	// binary; tests that run appliances in-process leave it off.
	MemoryLimit bool
	// Ready, if set, is called with the bound listener addresses once the
	// appliance serves: configured ports in configuration order, then
	// Listen.
	Ready func(addrs []net.Addr)
	// Started, if set, is called with the running appliance once it
	// serves (after Ready).
	Started func(*Appliance)
	// ACMEHTTPAddr is where ACME http-01 challenges are answered, bound
	// the first time an ACME issuer with an http01 solver needs it: ""
	// means ":80" (where CAs validate), "off" none.
	ACMEHTTPAddr string
	// USB, if set, applies bundles from USB sticks as they are plugged in.
	USB *USBConfig
	// Trust are the public keys bundles must be signed by (baked into the
	// image); bundles may enrol more and retire some.
	Trust []ed25519.PublicKey
	// BoardRoot is where the board's /proc and /sys are ("" means "/"):
	// its identity (bundles' device selectors) and status LED.
	BoardRoot string
	StatusLED string // the status LED's name under /sys/class/leds; "": ACT or led0
	// ACMETLSAddr, if set (":443"), is an extra port answering only ACME
	// tls-alpn-01 challenges, for CAs that validate on 443 while the MQTT
	// TLS ports answer on their own.
	ACMETLSAddr string
	// SysInterval is how often the $SYS/broker statistics are published;
	// 0: DefaultSysInterval.
	SysInterval time.Duration
	// StatusAddr is where the status endpoint (HTML, JSON, ca.crt,
	// Prometheus metrics) listens; "" serves none.
	StatusAddr string
	// Reload, when it delivers, makes the appliance re-read and apply its
	// configuration (main sends SIGHUP here).
	Reload <-chan os.Signal
}

// ShutdownTimeout bounds a clean shutdown (gokrazy kills after 100 s).
const ShutdownTimeout = 10 * time.Second

// Run starts the appliance and blocks until ctx is cancelled or a
// subsystem fails. A configuration that does not load, validate or apply
// (a bad server chain, password file or policy) makes Run return every
// problem, each naming file:line, before anything is served.
//
// Start order: the data directory; the board's identity and the
// provisioning store (whose last bundle is the configuration unless
// -config names one); the configuration; certificates (issued or loaded);
// the state store; the broker state (retained messages and persistent
// sessions, restored into the broker); the broker and its ports; -listen
// ports; the status endpoint; the watchdog; the USB watcher. All run in one errgroup: the
// first to fail stops the others, and Run returns its error (a wedged
// subsystem, found by the watchdog, so gokrazy restarts the process).
//
// Shutdown order, when ctx ends: the USB watcher, status endpoint,
// watchdog and certificate renewal stop; the broker closes its listeners
// and disconnects every client (within ShutdownTimeout) and saves every
// session with its queued messages; then the broker state (retained
// messages, sessions) and the state store flush and close.
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if cfg.DataDir == "" {
		return errors.New("appliance: no data directory")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("appliance: %w", err)
	}
	boardRoot := cfg.BoardRoot
	if boardRoot == "" {
		boardRoot = "/"
	}
	id := board.Identify(boardRoot)
	var a *Appliance // the provisioning store's hooks reach it once it exists
	prov := newProvisioning(cfg.DataDir, cfg.Trust, id, func(dir string) error { return a.applyPath(dir) })
	if dir, ok := prov.Current(); ok && cfg.ConfigPath == "" {
		log.Info("running the configuration of the last bundle applied", "serial", prov.LastSerial(), "dir", dir)
		cfg.ConfigPath = dir
	}
	set, err := loadConfig(cfg.ConfigPath)
	if err != nil {
		return err
	}
	def := cfg.ConfigPath == ""
	if !def && cfg.Loopback != "" && cfg.Loopback != DefaultLoopback {
		log.Info("-loopback applies only to the embedded default; ignored with -config", "loopback", cfg.Loopback)
	}
	iss := newIssuers(cfg.DataDir, log)
	certMgr := iss.m
	if cfg.ACMEHTTPAddr != "off" {
		iss.http01 = acmeHTTP01(ctx, cfg.ACMEHTTPAddr, iss, log)
	}
	ports, err := buildPorts(set, &cfg, def, iss, log)
	if err != nil {
		return fmt.Errorf("appliance: configuration %s rejected:\n%w", configName(cfg.ConfigPath), err)
	}

	// The state store opens first and closes (flushes) last, after the
	// broker has stopped: the deferred close runs once g.Wait returned.
	// The budget's soft limit applies before the stores load: it keeps
	// their start-up garbage in check too.
	lim := withMemoryBudget(brokerLimits(set.Broker(), cfg.Limits), set.Broker(), cfg.BoardRoot, log)
	if cfg.MemoryLimit {
		setMemoryLimit(lim.MemoryBudget, log)
	}
	// Quotas apply at start, as broker limits do.
	ss, err := openStateStore(cfg.DataDir, set.StateStoreQuota(), log.With("subsystem", "statestore"))
	if err != nil {
		return err
	}
	defer func() {
		if err := ss.close(); err != nil {
			log.Error("state store close", "err", err)
		}
	}()
	// Retained messages and persistent sessions: loaded before the broker
	// serves, closed (flushed) after it stopped and before the state store.
	bs, err := openBrokerState(cfg.DataDir, log.With("subsystem", "brokerstate"))
	if err != nil {
		return err
	}
	defer bs.close()
	srv := broker.New(broker.Config{
		Limits:       lim,
		Logger:       log.With("subsystem", "broker"),
		OnDisconnect: ss.clientGone,
		Persister:    bs.store,
	})
	bs.restore(srv)
	g, gctx := errgroup.WithContext(ctx)
	a = &Appliance{cfg: &cfg, log: log, srv: srv, g: g, ss: ss, live: map[string]*livePort{}, iss: iss,
		set: set, refreshc: make(chan struct{}, 1), prov: prov, id: id}
	certMgr.Issued = func(string) { a.kickRefresh() }
	g.Go(func() error { // renews certificates until shutdown
		if err := certMgr.Run(gctx); err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("appliance: certificates: %w", err)
		}
		return nil
	})
	if err := ss.attach(srv, a.authorizeKey, log.With("subsystem", "statestore")); err != nil {
		return err
	}
	a.reloadMu.Lock()
	err = a.apply(ports)
	a.reloadMu.Unlock()
	if err != nil {
		return err
	}
	var addrs []net.Addr
	for _, st := range a.Status().Ports {
		if st.Serving {
			addrs = append(addrs, st.Addr)
		}
	}
	bound := map[string]bool{}
	for _, p := range ports {
		bound[p.addr] = true
	}
	for _, addr := range cfg.Listen {
		if bound[addr] && !strings.HasSuffix(addr, ":0") {
			continue
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			srv.Close()
			return fmt.Errorf("appliance: listen %s: %w", addr, err)
		}
		addrs = append(addrs, ln.Addr())
		log.Info("serving MQTT", "addr", ln.Addr().String(), "port", "-listen", "auth", "anonymous")
		// Named after the flag, not the bound address: sessions of its
		// clients belong to "anonymous:" and the name, across restarts.
		p := &broker.Port{Name: "-listen " + addr}
		g.Go(func() error {
			if err := srv.ServePort(ln, p); !errors.Is(err, broker.ErrServerClosed) {
				return fmt.Errorf("appliance: serve %s: %w", ln.Addr(), err)
			}
			return nil
		})
	}
	if cfg.StatusAddr != "" {
		if a.statusAddr, err = a.serveStatus(gctx, cfg.StatusAddr); err != nil {
			srv.Close()
			return err
		}
	}
	if cfg.ACMETLSAddr != "" {
		ln, err := tls.Listen("tcp", cfg.ACMETLSAddr, serverPolicy(iss.challenges.TLSConfig()))
		if err != nil {
			srv.Close()
			return fmt.Errorf("appliance: -acme-tls: %w", err)
		}
		log.Info("serving ACME tls-alpn-01 challenges", "addr", ln.Addr().String())
		g.Go(func() error { return serveALPN(gctx, ln) })
	}
	started := time.Now()
	g.Go(func() error { return publishSys(gctx, srv, cfg.SysInterval, started) })
	wd, err := newWatchdog(srv, ss, log)
	if err != nil {
		srv.Close()
		return err
	}
	g.Go(func() error { return wd.Run(gctx) }) // a wedged subsystem ends Run with an error: gokrazy restarts us
	if cfg.USB != nil {
		status := led.Open(boardRoot, cfg.StatusLED)
		defer status.Close()
		g.Go(func() error { return a.watchUSB(gctx, cfg.USB, id, status) })
	}
	if cfg.Ready != nil {
		cfg.Ready(addrs)
	}
	if cfg.Started != nil {
		cfg.Started(a)
	}
	g.Go(func() error {
		for {
			select {
			case <-gctx.Done():
				sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
				defer cancel()
				log.Info("shutting down")
				return srv.Shutdown(sctx)
			case <-cfg.Reload:
				if err := a.Reload(); err != nil {
					log.Error("reload rejected: the running configuration stays", "err", err)
				}
			case <-a.refreshc:
				a.refresh()
			}
		}
	})
	return g.Wait()
}

// Reload re-reads the configuration (-config, or the embedded default)
// and applies it without a restart. A configuration that does not load,
// validate or bind changes nothing and is returned as the error.
func (a *Appliance) Reload() error {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	set, err := loadConfig(a.cfg.ConfigPath)
	if err != nil {
		return err
	}
	ports, err := buildPorts(set, a.cfg, a.cfg.ConfigPath == "", a.iss, a.log)
	if err != nil {
		return fmt.Errorf("appliance: configuration %s rejected:\n%w", configName(a.cfg.ConfigPath), err)
	}
	if err := a.apply(ports); err != nil {
		return err
	}
	a.set = set
	a.iss.prune(set, ports)
	a.log.Info("configuration applied", "config", configName(a.cfg.ConfigPath))
	return nil
}

// kickRefresh asks for a refresh without blocking.
func (a *Appliance) kickRefresh() {
	select {
	case a.refreshc <- struct{}{}:
	default:
	}
}

// refresh re-applies the running configuration when a port waits for a
// certificate, after the Manager issued one: the port comes up without a
// reload.
func (a *Appliance) refresh() {
	a.mu.Lock()
	waiting := slices.ContainsFunc(a.status.Ports, func(p PortStatus) bool { return !p.Serving })
	a.mu.Unlock()
	if !waiting {
		return
	}
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	ports, err := buildPorts(a.set, a.cfg, a.cfg.ConfigPath == "", a.iss, a.log)
	if err == nil {
		err = a.apply(ports)
	}
	if err != nil {
		a.log.Error("bringing up waiting ports", "err", err)
	}
}

// loadConfig reads and validates the -config resources, or returns the
// embedded default.
func loadConfig(path string) (*config.Set, error) {
	if path == "" {
		return config.Default(), nil
	}
	set, err := config.LoadPath(path)
	if err == nil {
		err = set.Validate()
		var es config.Errors
		if errors.As(err, &es) { // name files as LoadPath does
			base := path
			if fi, serr := os.Stat(path); serr == nil && !fi.IsDir() {
				base = filepath.Dir(path)
			}
			for _, e := range es {
				if e.File != "" && !filepath.IsAbs(e.File) {
					e.File = filepath.Join(base, filepath.FromSlash(e.File))
				}
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("appliance: configuration %s rejected:\n%w", path, err)
	}
	return set, nil
}

func configName(path string) string {
	if path == "" {
		return "(embedded default)"
	}
	return path
}
