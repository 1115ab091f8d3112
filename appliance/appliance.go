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
	"time"

	"golang.org/x/sync/errgroup"

	"edgebroker/broker"
)

// DefaultLoopback is the embedded default's plain port for programs on
// the device itself (SPEC §2).
const DefaultLoopback = "127.0.0.1:1883"

// Config is what the command line gives the appliance.
type Config struct {
	DataDir    string   // state lives here (/perm/edgebroker on gokrazy)
	ConfigPath string   // YAML resources (file or folder); "" = embedded default
	Listen     []string // extra plain, anonymous MQTT ports
	// Loopback is the embedded default's device-local plain port: ""
	// means DefaultLoopback, "off" disables it.
	Loopback string
	Logger   *slog.Logger
	Limits   broker.Limits
	// Ready, if set, is called with the bound listener addresses once the
	// appliance serves.
	Ready func(addrs []net.Addr)
}

// ShutdownTimeout bounds a clean shutdown (gokrazy kills after 100 s).
const ShutdownTimeout = 10 * time.Second

// Run starts the appliance and blocks until ctx is cancelled or a
// subsystem fails. Shutdown order: stop listeners, disconnect clients,
// drain sessions.
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
	if cfg.ConfigPath != "" {
		return fmt.Errorf("appliance: -config %s: configuration resources are not supported yet", cfg.ConfigPath)
	}

	srv := broker.New(broker.Config{Limits: cfg.Limits, Logger: log.With("subsystem", "broker")})
	var addrs []string
	switch cfg.Loopback {
	case "":
		addrs = append(addrs, DefaultLoopback)
	case "off":
	default:
		addrs = append(addrs, cfg.Loopback)
	}
	for _, a := range cfg.Listen {
		if len(addrs) == 0 || a != addrs[0] || a == "127.0.0.1:0" {
			addrs = append(addrs, a)
		}
	}
	var lns []net.Listener
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return fmt.Errorf("appliance: listen %s: %w", a, err)
		}
		lns = append(lns, ln)
	}

	g, gctx := errgroup.WithContext(ctx)
	var bound []net.Addr
	for _, ln := range lns {
		bound = append(bound, ln.Addr())
		log.Info("serving MQTT", "addr", ln.Addr().String(), "auth", "anonymous")
		g.Go(func() error {
			if err := srv.Serve(ln); !errors.Is(err, broker.ErrServerClosed) {
				return fmt.Errorf("appliance: serve %s: %w", ln.Addr(), err)
			}
			return nil
		})
	}
	if cfg.Ready != nil {
		cfg.Ready(bound)
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
