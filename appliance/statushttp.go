package appliance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// The status endpoint (Config.StatusAddr) serves, over plain HTTP or
// over TLS (Config.StatusTLS):
//
//	/              the status page (statuspage.go): clients, messages
//	               per second over the last hour, ports, certificates,
//	               dataflows, provisioning, state store; live
//	/status.css    its style, /status.js its script, /favicon.svg
//	/status.json   the same as JSON (Status)
//	/history.json  messages per second over the last hour (RateHistory)
//	/ca.crt        the CA certificate clients need for Automatic TLS ports
//	/metrics       Prometheus text format
//	POST /bundle   apply a bundle as a USB stick does (postBundle; over TLS only)
//	/update/       signed firmware updates (Config.Firmware; provisioning/fwupdate)
//
// It shows no secrets: no keys, passwords or stored values. Every
// response allows the browser nothing from another origin
// (statusHeaders).
func (a *Appliance) statusHandler() http.Handler {
	mux := http.NewServeMux()
	a.handleStatusPage(mux)
	mux.HandleFunc("GET /status.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(a.Status())
	})
	mux.HandleFunc("GET /ca.crt", func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile(filepath.Join(a.cfg.DataDir, CAFile))
		if err != nil {
			http.Error(w, "no CA certificate exported yet: no port uses Automatic TLS", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.Write(b)
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		a.writeMetrics(w)
	})
	if fw := a.cfg.Firmware; fw != nil {
		if fw.Refused == nil { // set once, before the handler serves
			fw.Refused = a.firmwareRefused
		}
		mux.Handle("/update/", http.StripPrefix("/update", fw.Handler()))
	}
	mux.HandleFunc("POST /bundle", a.postBundle)
	return statusHeaders(mux)
}

// serveStatus serves the status endpoint on ln until ctx ends: over TLS
// with Config.StatusTLS, else plain.
func (a *Appliance) serveStatus(ctx context.Context, ln net.Listener) {
	hs, ln := lanHTTP(a.statusHandler(), ln)
	// The server's own complaints (a LAN scanner's failed TLS handshake)
	// are for debugging, not the operator's log.
	hs.ErrorLog = slog.NewLogLogger(a.log.With("subsystem", "status").Handler(), slog.LevelDebug)
	serve := hs.Serve
	if a.cfg.StatusTLS {
		hs.TLSConfig = a.statusTLS()
		serve = func(ln net.Listener) error { return hs.ServeTLS(ln, "", "") }
	}
	a.g.Go(func() error {
		if err := serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("appliance: status endpoint: %w", err)
		}
		return nil
	})
	a.g.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		hs.Shutdown(sctx)
		return nil
	})
	a.log.Info("serving status", "addr", ln.Addr().String(), "tls", a.cfg.StatusTLS)
}
