// Package appliance wires edgebroker's subsystems together: it is the only
// package that knows all of them, owns their start and shutdown order, and
// runs them in one errgroup.
package appliance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

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
	// Ready, if set, is called with the bound listener addresses once the
	// appliance serves: configured ports in configuration order, then
	// Listen.
	Ready func(addrs []net.Addr)
	// Started, if set, is called with the running appliance once it
	// serves (after Ready).
	Started func(*Appliance)
}

// ShutdownTimeout bounds a clean shutdown (gokrazy kills after 100 s).
const ShutdownTimeout = 10 * time.Second

// Run starts the appliance and blocks until ctx is cancelled or a
// subsystem fails. A configuration that does not load, validate or apply
// (a bad server chain, password file or policy) makes Run return every
// problem, each naming file:line, before anything is served. Shutdown
// order: stop listeners, disconnect clients, drain sessions.
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
	set, err := loadConfig(cfg.ConfigPath)
	if err != nil {
		return err
	}
	def := cfg.ConfigPath == ""
	if !def && cfg.Loopback != "" && cfg.Loopback != DefaultLoopback {
		log.Info("-loopback applies only to the embedded default; ignored with -config", "loopback", cfg.Loopback)
	}
	ports, err := buildPorts(set, &cfg, def, log)
	if err != nil {
		return fmt.Errorf("appliance: configuration %s rejected:\n%w", configName(cfg.ConfigPath), err)
	}

	srv := broker.New(broker.Config{
		Limits: brokerLimits(set.Broker(), cfg.Limits),
		Logger: log.With("subsystem", "broker"),
	})
	a := new(Appliance)
	type serving struct {
		ln net.Listener
		p  *broker.Port
	}
	var lns []serving
	fail := func(err error) error {
		for _, s := range lns {
			s.ln.Close()
		}
		return err
	}
	bound := map[string]bool{}
	for _, p := range ports {
		st := PortStatus{Listener: p.listener, Port: p.number, Message: p.waiting}
		if p.waiting == "" {
			ln, err := p.listen(log)
			if err != nil {
				return fail(err)
			}
			lns = append(lns, serving{ln, &p.bport})
			bound[p.addr] = true
			st.Serving, st.Addr = true, ln.Addr()
		}
		a.status.Ports = append(a.status.Ports, st)
	}
	for _, addr := range cfg.Listen {
		if bound[addr] && !strings.HasSuffix(addr, ":0") {
			continue
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fail(fmt.Errorf("appliance: listen %s: %w", addr, err))
		}
		lns = append(lns, serving{ln, &broker.Port{Name: ln.Addr().String()}})
	}

	g, gctx := errgroup.WithContext(ctx)
	var addrs []net.Addr
	for _, s := range lns {
		addrs = append(addrs, s.ln.Addr())
		log.Info("serving MQTT", "addr", s.ln.Addr().String(), "port", s.p.Name,
			"auth", authName(s.p))
		g.Go(func() error {
			if err := srv.ServePort(s.ln, s.p); !errors.Is(err, broker.ErrServerClosed) {
				return fmt.Errorf("appliance: serve %s: %w", s.ln.Addr(), err)
			}
			return nil
		})
	}
	for _, st := range a.status.Ports {
		if !st.Serving {
			log.Warn("port not served", "port", portKey(st.Listener, st.Port), "status", st.Message)
		}
	}
	if cfg.Ready != nil {
		cfg.Ready(addrs)
	}
	if cfg.Started != nil {
		cfg.Started(a)
	}
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
		defer cancel()
		log.Info("shutting down")
		return srv.Shutdown(sctx)
	})
	return g.Wait()
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

func authName(p *broker.Port) string {
	switch {
	case p.Authenticator == nil:
		return "anonymous"
	case p.Authorizer == nil:
		return "authenticated"
	default:
		return "authenticated+authorized"
	}
}
