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
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"edgebroker/board"
	"edgebroker/board/led"
	"edgebroker/board/watchdog"

	"edgebroker/appliance/announce"
	"edgebroker/appliance/config"
	"edgebroker/broker"
	"edgebroker/broker/bridge"
	"edgebroker/provisioning/fwupdate"
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
	// Device, if set, applies the Device resource's settings (host name,
	// addressing, NTP, Wi-Fi); nil (a host) validates and shows them only.
	Device *DeviceConfig
	// Firmware, if set, takes signed firmware updates: PUT
	// /update/firmware on the status endpoint, and firmware.FileName on
	// USB sticks (with USB). Status and /metrics show its versions and
	// last attempt.
	Firmware *fwupdate.Receiver
	// Trial, if set, decides a trial boot once the appliance serves
	// (fwupdate.Trial with Boot, Deadline and Reboot): it commits the
	// running system when every health probe has passed (the broker
	// routes, the state store reads) within Deadline, and otherwise calls
	// Reboot. Its Healthy is the appliance's own and need not be set.
	Trial *fwupdate.Trial
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
	// Prometheus metrics, POST /bundle) listens; "" serves none.
	StatusAddr string
	// StatusTLS serves the status endpoint over TLS (only), with a
	// certificate for the device's names (Secret StatusCertSecret) from
	// the on-device CA of the configuration's Automatic TLS ports, which
	// clients trust through DATA/ca.crt. Bundle uploads (POST /bundle)
	// are accepted only over TLS.
	StatusTLS bool
	// Reload, when it delivers, makes the appliance re-read and apply its
	// configuration (main sends SIGHUP here).
	Reload <-chan os.Signal
	// MDNS announces the broker on every LAN interface by mDNS/DNS-SD
	// (package announce): its MQTT ports, TLS ports and status page,
	// following reloads and bundles.
	MDNS bool
}

// ShutdownTimeout bounds a clean shutdown (gokrazy kills after 100 s).
const ShutdownTimeout = 10 * time.Second

// Run starts the appliance and blocks until ctx is cancelled or a
// subsystem fails. A configuration that does not load, validate or apply
// (a bad server chain, password file or policy) makes Run return every
// problem, each naming file:line, before anything is served.
//
// Start comes in two phases. First every step that can fail, each undone
// when a later one fails: the data directory and its PID file, locked
// (a second appliance on the same directory is refused); the board's identity, the
// Appliance and its provisioning store (whose last bundle is the
// configuration unless -config names one); the configuration;
// certificates (issued or loaded); the state store; the broker state
// (retained messages and persistent sessions, restored into the broker);
// the state store service subscribed (its workers stop when the store
// closes); the configured ports, -listen ports, the status endpoint and
// the -acme-tls port bound; the watchdog's probe subscription. Then, with
// nothing left to fail, the goroutines start in one errgroup: the ports'
// accept loops, certificate renewal, the status endpoint, $SYS, the
// watchdog, the USB watcher, the mDNS responder (Config.MDNS) and the
// reload loop. The first to fail stops
// the others, and Run returns its error (a wedged subsystem, found by the
// watchdog, so gokrazy restarts the process).
//
// Shutdown, when ctx ends or a goroutine fails, is the sequence in
// shutdown (the mDNS responder says goodbye as it begins): stop the
// listeners; drain the sessions (every client
// disconnected within ShutdownTimeout, well inside gokrazy's window, and
// every session saved with its queued messages); wait for every
// goroutine; flush and close the broker state; close the state store;
// the status LED off; the PID file removed. Run leaves no goroutine
// behind, whether it returns after a shutdown or with an error from the
// first phase.
func Run(ctx context.Context, cfg Config) error {
	ctx, cancel := context.WithCancel(ctx) // the one cancel: whatever Run starts ends with it
	a, err := newAppliance(ctx, &cfg)
	if err != nil {
		cancel()
		return err
	}
	defer func() {
		cancel()
		a.iss.wg.Wait() // the http-01 port's server (bound on demand), which ends with ctx
		a.pid.release()
	}()
	if cfg.MDNS { // only Run serves, so only Run announces (not ApplyBundleFile)
		a.mdns = &announce.Responder{Log: a.log.With("subsystem", "mdns")}
		a.bundleSerial = a.prov.LastSerial()
	}
	set, err := loadConfig(a.path, a.log)
	if err != nil {
		return err
	}
	if a.path != "" && cfg.Loopback != "" && cfg.Loopback != DefaultLoopback {
		a.log.Info("-loopback applies only to the embedded default; ignored with -config", "loopback", cfg.Loopback)
	}
	ports, err := a.portsFor(a.path, set)
	if err != nil {
		return err
	}
	a.reloadMu.Lock()
	a.startDevice(ctx, set)
	a.reloadMu.Unlock()
	// The budget's soft limit applies before the stores load: it keeps
	// their start-up garbage in check too. Quotas apply at start, as
	// broker limits do.
	lim := withMemoryBudget(brokerLimits(set.Broker(), cfg.Limits), set.Broker(), cfg.BoardRoot, a.log)
	if cfg.MemoryLimit {
		setMemoryLimit(lim.MemoryBudget, a.log)
	}
	if err := a.openStores(set, lim); err != nil {
		return err
	}
	b, err := a.bind(set, ports)
	if err != nil {
		b.close()
		a.srv.Close()
		a.closeStores()
		return err
	}
	return a.run(ctx, b)
}

// newAppliance makes the data directory and the Appliance with its
// provisioning store and certificate issuers; nothing runs yet.
func newAppliance(ctx context.Context, cfg *Config) (*Appliance, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if cfg.DataDir == "" {
		return nil, errors.New("appliance: no data directory")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("appliance: %w", err)
	}
	pid, err := lockPID(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	boardRoot := cfg.BoardRoot
	if boardRoot == "" {
		boardRoot = "/"
	}
	a := &Appliance{cfg: cfg, log: log, id: board.Identify(boardRoot), boardRoot: boardRoot,
		live: map[string]*livePort{}, refreshc: make(chan struct{}, 1), path: cfg.ConfigPath, pid: pid}
	a.prov = newProvisioning(cfg.DataDir, cfg.Trust, a.id, a.checkDevice, a.applyBundle)
	if dir, ok := a.prov.Current(); ok && a.path == "" {
		log.Info("running the configuration of the last bundle applied", "serial", a.prov.LastSerial(), "dir", dir)
		a.path = dir
	}
	a.iss = newIssuers(cfg.DataDir, log)
	if cfg.StatusTLS {
		a.iss.keep = []string{StatusCertSecret}
	}
	a.iss.m.Issued = func(string) { a.kickRefresh() }
	if cfg.ACMEHTTPAddr != "off" {
		a.iss.http01 = acmeHTTP01(ctx, cfg.ACMEHTTPAddr, a.iss, log)
	}
	return a, nil
}

// openStores opens the state store and the broker state, makes the
// broker and restores the broker state into it.
func (a *Appliance) openStores(set *config.Set, lim broker.Limits) error {
	ss, err := openStateStore(a.cfg.DataDir, set.StateStoreQuota(), a.log.With("subsystem", "statestore"))
	if err != nil {
		return err
	}
	bs, err := openBrokerState(a.cfg.DataDir, set.DiskBufferBytes(), lim.MemoryBudget, a.log.With("subsystem", "journal"))
	if err != nil {
		a.ss = ss
		a.closeStores()
		return err
	}
	a.ss, a.bs = ss, bs
	a.srv = broker.New(broker.Config{
		Limits:       lim,
		Logger:       a.log.With("subsystem", "broker"),
		OnDisconnect: ss.clientGone,
		Journal:      bs.j,
		// a dataflow's local session is the appliance's alone
		ReservedClientIDPrefix: bridge.LocalClientIDPrefix,
	})
	bs.restore(a.srv)
	a.flows = newDataflows(a.srv, a.log.With("subsystem", "dataflow"))
	return nil
}

// closeStores flushes and closes the broker state, then the state store,
// once the broker has stopped.
func (a *Appliance) closeStores() {
	if a.bs != nil {
		a.bs.close()
	}
	if err := a.ss.close(); err != nil {
		a.log.Error("state store close", "err", err)
	}
}

// bound is what Run binds besides the configured ports (which apply
// keeps in Appliance.live): owned by Run.
type bound struct {
	listen []listenPort // -listen ports, in flag order
	status net.Listener // the status endpoint; nil without one
	alpn   net.Listener // -acme-tls; nil without one
	wd     *watchdog.Watchdog
	live   []*livePort // the configured ports bound at start
}

// bind runs every fallible start step that binds or subscribes: the
// state store service, the configured ports (whose accept loops wait for
// run), -listen ports, the status endpoint, the -acme-tls port and the
// watchdog. On error, what it bound so far is in the returned bound.
func (a *Appliance) bind(set *config.Set, ports []*port) (*bound, error) {
	b := &bound{}
	if err := a.ss.attach(a.srv, a.authorizeKey, a.log.With("subsystem", "statestore")); err != nil {
		return b, err
	}
	a.reloadMu.Lock()
	err := a.applyPorts(a.path, set, ports, "start")
	b.live = slices.Collect(maps.Values(a.live))
	a.reloadMu.Unlock()
	if err != nil {
		return b, err
	}
	taken := map[string]bool{}
	for _, p := range ports {
		taken[p.addr] = true
	}
	for _, addr := range a.cfg.Listen {
		if taken[addr] && !strings.HasSuffix(addr, ":0") {
			continue
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return b, fmt.Errorf("appliance: listen %s: %w", addr, err)
		}
		b.listen = append(b.listen, listenPort{ln, addr})
	}
	if a.cfg.StatusAddr != "" {
		ln, err := net.Listen("tcp", a.cfg.StatusAddr)
		if err != nil {
			return b, fmt.Errorf("appliance: status endpoint: %w", err)
		}
		b.status, a.statusAddr = ln, ln.Addr()
	}
	if a.cfg.ACMETLSAddr != "" {
		ln, err := tls.Listen("tcp", a.cfg.ACMETLSAddr, serverPolicy(a.iss.challenges.TLSConfig()))
		if err != nil {
			return b, fmt.Errorf("appliance: -acme-tls: %w", err)
		}
		b.alpn = ln
	}
	wd, err := newWatchdog(a.srv, a.ss, a.log)
	if err != nil {
		return b, err
	}
	b.wd = wd
	return b, nil
}

// listenPort is a bound -listen port.
type listenPort struct {
	ln   net.Listener
	flag string // the address as -listen gave it
}

// close closes every listener in b.
func (b *bound) close() {
	b.closeMQTT()
	for _, ln := range []net.Listener{b.status, b.alpn} {
		if ln != nil {
			ln.Close()
		}
	}
}

// closeMQTT closes the MQTT listeners in b. The broker closes the ones
// it serves, but one whose accept loop had not reached ServePort yet when
// the broker shut down is not the broker's: shutdown closes them all
// (a second Close does nothing).
func (b *bound) closeMQTT() {
	for _, lp := range b.live {
		lp.ln.Close()
	}
	for _, l := range b.listen {
		l.ln.Close()
	}
}

// run starts every goroutine in one errgroup, then waits for ctx to end
// or one of them to fail, and shuts down.
func (a *Appliance) run(ctx context.Context, b *bound) error {
	g, gctx := errgroup.WithContext(ctx)
	a.reloadMu.Lock()
	a.g = g
	// Flows up subscribe before the ports open: nothing published at the
	// start escapes them.
	if err := a.flows.apply(a.set); err != nil {
		a.log.Error("dataflows", "err", err)
	}
	for _, lp := range a.pending {
		a.serve(lp)
	}
	a.pending = nil
	a.reloadMu.Unlock()
	addrs := a.servedAddrs()
	for _, l := range b.listen {
		ln := l.ln
		addrs = append(addrs, ln.Addr())
		a.mu.Lock()
		a.listen = append(a.listen, listenStatus(l.flag, ln.Addr()))
		a.mu.Unlock()
		a.log.Info("serving MQTT", "addr", ln.Addr().String(), "port", "-listen", "auth", "anonymous")
		// Named after the flag, not the bound address: sessions of its
		// clients belong to "anonymous:" and the name, across restarts.
		p := &broker.Port{Name: "-listen " + l.flag}
		g.Go(func() error {
			if err := a.srv.ServePort(ln, p); !errors.Is(err, broker.ErrServerClosed) {
				return fmt.Errorf("appliance: serve %s: %w", ln.Addr(), err)
			}
			return nil
		})
	}
	if b.status != nil {
		a.serveStatus(gctx, b.status)
	}
	if a.mdns != nil {
		a.reloadMu.Lock()
		a.announce()
		a.reloadMu.Unlock()
		g.Go(func() error { return a.mdns.Run(gctx) }) // says goodbye when gctx ends
	}
	if b.alpn != nil {
		a.log.Info("serving ACME tls-alpn-01 challenges", "addr", b.alpn.Addr().String())
		g.Go(func() error { return serveALPN(gctx, b.alpn) })
	}
	g.Go(func() error { // renews certificates until shutdown
		if err := a.iss.m.Run(gctx); err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("appliance: certificates: %w", err)
		}
		return nil
	})
	started := time.Now()
	g.Go(func() error { return publishSys(gctx, a.srv, a.cfg.SysInterval, started) })
	g.Go(func() error { a.flows.sampleRates(gctx); return nil })
	g.Go(func() error { a.sampleHistory(gctx); return nil })
	g.Go(func() error { return b.wd.Run(gctx) }) // a wedged subsystem ends Run with an error: gokrazy restarts us
	var status *led.LED
	if a.cfg.USB != nil {
		status = led.Open(a.boardRoot, a.cfg.StatusLED)
		g.Go(func() error { return a.watchUSB(gctx, a.cfg.USB, status) })
	}
	g.Go(func() error { a.loop(gctx); return nil })
	if a.cfg.Trial != nil {
		g.Go(func() error { a.decideTrial(gctx, b.wd); return nil })
	}
	if a.cfg.Ready != nil {
		a.cfg.Ready(addrs)
	}
	if a.cfg.Started != nil {
		a.cfg.Started(a)
	}
	<-gctx.Done()
	return a.shutdown(g, b, status)
}

// servedAddrs are the bound addresses of the configured ports served, in
// configuration order.
func (a *Appliance) servedAddrs() []net.Addr {
	var addrs []net.Addr
	for _, st := range a.Status().Ports {
		if st.Serving {
			addrs = append(addrs, st.Addr)
		}
	}
	return addrs
}

// loop applies reloads (SIGHUP) and brings up ports a certificate
// arrived for, until ctx ends.
func (a *Appliance) loop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.cfg.Reload:
			if err := a.Reload(); err != nil {
				a.log.Error("reload rejected: the running configuration stays", "err", err)
			}
		case <-a.refreshc:
			a.refresh()
		}
	}
}

// shutdown stops the appliance, in this order: the listeners close and
// the sessions drain (broker Shutdown: every client is disconnected
// within ShutdownTimeout and every session saved); every goroutine of g
// ends (the accept loops once their listener closed, the others with
// the errgroup's context); the broker state is flushed and closed, then
// the state store; the status LED goes off. It returns the first error
// of g, else the broker's.
func (a *Appliance) shutdown(g *errgroup.Group, b *bound, status *led.LED) error {
	a.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	a.flows.close() // before the broker: a bridge's local client is one of its clients
	serr := a.srv.Shutdown(sctx)
	a.reloadMu.Lock() // no apply binds anything from here on
	a.closed = true
	for _, lp := range a.live {
		lp.stopped.Store(true)
		lp.ln.Close() // a port whose accept loop had not started yet
	}
	a.reloadMu.Unlock()
	b.closeMQTT()
	err := g.Wait()
	a.closeStores()
	if status != nil {
		status.Close()
	}
	if err == nil {
		err = serr
	}
	return err
}

// Reload re-reads the running configuration (the configuration path, or
// the embedded default) and applies it without a restart. A
// configuration that does not load, validate or bind changes nothing and
// is returned as the error.
func (a *Appliance) Reload() error {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	set, err := loadConfig(a.path, a.log)
	if err != nil {
		return err
	}
	return a.applyWithDevice(context.Background(), a.path, set, "reload")
}

// applyConfig makes set, read from path ("" for the embedded default),
// the running configuration: every reload, bundle and certificate
// arrival goes through it. A set whose ports cannot be built or bound
// changes nothing and is returned as the error. The caller holds
// reloadMu.
func (a *Appliance) applyConfig(path string, set *config.Set, why string) error {
	ports, err := a.portsFor(path, set)
	if err != nil {
		return err
	}
	return a.applyPorts(path, set, ports, why)
}

// portsFor builds set's ports (certificates issued or loaded), read from
// path.
func (a *Appliance) portsFor(path string, set *config.Set) ([]*port, error) {
	ports, err := buildPorts(set, a.cfg, path == "", a.iss, a.log)
	if err != nil {
		return nil, fmt.Errorf("appliance: configuration %s rejected:\n%w", configName(path), err)
	}
	return ports, nil
}

// applyPorts serves ports, built from set, and makes set and path the
// running configuration; certificates it no longer uses stop being
// renewed. The caller holds reloadMu.
func (a *Appliance) applyPorts(path string, set *config.Set, ports []*port, why string) error {
	if a.closed {
		return errors.New("appliance: shut down: configuration not applied")
	}
	if err := a.apply(ports); err != nil {
		return err
	}
	a.set, a.path = set, path
	a.iss.prune(set, ports)
	a.ensureStatusCert(ports)
	if a.g != nil { // running: at the start, run starts the flows
		if err := a.flows.apply(set); err != nil {
			a.log.Error("dataflows", "err", err)
		}
	}
	a.log.Info("configuration applied", "config", configName(path), "by", why)
	// Running, announce the change: at the start, run announces once
	// everything is bound; a bundle is announced by Install, with its
	// serial, once the provisioning store has recorded it.
	if a.g != nil && why != whyBundle {
		a.announce()
	}
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
	if err := a.applyConfig(a.path, a.set, "certificate"); err != nil {
		a.log.Error("bringing up waiting ports", "err", err)
	}
}

// loadConfig reads and validates the -config resources, or returns the
// embedded default.
func loadConfig(path string, log *slog.Logger) (*config.Set, error) {
	if path == "" {
		return config.Default(), nil
	}
	set, err := config.LoadPath(path)
	if err == nil {
		err = set.Validate()
		var es config.Errors
		if errors.As(err, &es) {
			nameFiles(path, es)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("appliance: configuration %s rejected:\n%w", path, err)
	}
	ws := set.Warnings()
	nameFiles(path, ws)
	for _, w := range ws {
		log.Warn("configuration warning", "config", path, "warning", w.Error())
	}
	for _, r := range set.BuiltIns() {
		log.Info("configuration refers to an AIO built-in it does not define: the appliance's is used", "config", path, "resource", r.Ref())
	}
	return set, nil
}

// nameFiles names the files of es under path, as LoadPath does.
func nameFiles(path string, es config.Errors) {
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

func configName(path string) string {
	if path == "" {
		return "(embedded default)"
	}
	return path
}
