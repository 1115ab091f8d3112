package appliance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// The status endpoint (Config.StatusAddr) serves, over plain HTTP:
//
//	/             a small HTML page: ports, certificates, dataflows,
//	              provisioning, state store
//	/status.json  the same as JSON (Status)
//	/ca.crt       the CA certificate clients need for Automatic TLS ports
//	/metrics      Prometheus text format
//	/update/      signed firmware updates (Config.Firmware; provisioning/fwupdate)
//
// It shows no secrets: no keys, passwords or stored values.
func (a *Appliance) statusHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := statusPage.Execute(w, a.Status()); err != nil {
			a.log.Warn("status page", "err", err)
		}
	})
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
	if a.cfg.Firmware != nil {
		mux.Handle("/update/", http.StripPrefix("/update", a.cfg.Firmware.Handler()))
	}
	return mux
}

// serveStatus serves the status endpoint on ln until ctx ends.
func (a *Appliance) serveStatus(ctx context.Context, ln net.Listener) {
	hs, ln := lanHTTP(a.statusHandler(), ln)
	a.g.Go(func() error {
		if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
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
	a.log.Info("serving status", "addr", ln.Addr().String())
}

var statusPage = template.Must(template.New("status").Funcs(template.FuncMap{
	"time": when,
}).Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>edgebroker</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}.bad{color:#b00}</style>
</head><body>
<h1>edgebroker</h1>
<p>{{.Clients}} clients connected. <a href="/ca.crt">CA certificate (ca.crt)</a> · <a href="/status.json">JSON</a> · <a href="/metrics">metrics</a></p>
<h2>Listeners</h2>
<table><tr><th>listener</th><th>port</th><th>state</th><th>TLS</th><th>valid until</th><th>next renewal</th></tr>
{{range .Ports}}<tr><td>{{.Listener}}</td><td>{{.Port}}</td>
<td{{if not .Serving}} class="bad"{{end}}>{{if .Serving}}serving on {{.Addr}}{{else}}not served{{end}}{{with .Message}}: {{.}}{{end}}</td>
<td>{{with .TLS}}{{.Mode}}: {{.Issuer}}{{with .LastError}}<br><span class="bad">{{.}}</span>{{end}}{{else}}plain{{end}}</td>
<td>{{with .TLS}}{{time .NotAfter}}{{end}}</td><td>{{with .TLS}}{{time .NextRenewal}}{{end}}</td></tr>
{{end}}</table>
<h2>Certificates</h2>
<table><tr><th>secret</th><th>issuer</th><th>valid until</th><th>next renewal</th><th>last error</th></tr>
{{range .Certificates}}<tr><td>{{.Secret}}</td><td>{{.Issuer}}</td><td>{{time .NotAfter}}</td><td>{{time .NextRenewal}}</td><td class="bad">{{.LastError}}</td></tr>
{{end}}</table>
<h2>Dataflows</h2>
{{with .Dataflows}}<table><tr><th>dataflow</th><th>direction</th><th>upstream</th><th>queued</th><th>oldest queued</th><th>forwarded/s</th><th>forwarded</th><th>dropped</th><th>last error</th></tr>
{{range .}}<tr><td>{{.Name}}</td><td>{{if .Up}}up{{else}}down{{end}}</td>
<td{{if not .Connected}} class="bad"{{end}}>{{if .Connected}}{{.Connected}}{{with .Protocol}} (MQTT {{.}}){{end}}{{else}}not connected{{end}}</td>
<td>{{.QueuedMessages}} messages, {{.QueuedBytes}} bytes</td><td>{{printf "%.1f" .OldestQueuedSeconds}} s</td><td>{{printf "%.1f" .ForwardedPerSecond}}</td>
<td>{{.Forwarded}}</td><td>{{.Dropped}}</td><td class="bad">{{.LastError}}{{if .LastError}} ({{time .ErrorAt}}){{end}}</td></tr>
{{end}}</table>{{else}}<p>No dataflows.</p>{{end}}
<h2>Provisioning</h2>
<p>{{if .Provisioning.Serial}}Bundle serial {{.Provisioning.Serial}} is in force.{{else}}No bundle applied yet.{{end}}
{{with .Provisioning.USB}}Provisioning is {{.}}.{{else}}USB sticks are not watched (no -usb).{{end}}</p>
{{with .Provisioning.History}}<table><tr><th>time</th><th>serial</th><th>outcome</th><th>reasons</th></tr>
{{range .}}<tr><td>{{time .Time}}</td><td>{{.Serial}}</td><td{{if not .Applied}} class="bad"{{end}}>{{if .Applied}}applied{{else if .RolledBack}}rolled back{{else}}rejected{{end}}</td><td>{{range .Reasons}}{{.}}<br>{{end}}</td></tr>
{{end}}</table>{{end}}
{{with .Firmware}}<h2>Firmware</h2>
<p>Running version {{.Running}} (board {{.Board}}); the other root partition holds {{with .Other}}version {{.}}{{else}}no usable system{{end}}.</p>
{{with .Last}}<p{{if not .Installed}} class="bad"{{end}}>Last update {{time .Time}}: {{.}}</p>{{end}}
{{with .Trial}}<p{{if .RolledBack}} class="bad"{{end}}>Last trial boot (partition {{.Slot}}): {{if .Committed}}committed {{time .DecidedAt}}{{else}}rolled back {{time .DecidedAt}}: {{.Reason}}{{end}}</p>{{end}}{{end}}
<h2>State store</h2>
<p>{{.StateStore.Keys}} keys, {{.StateStore.Bytes}} bytes{{if .StateStore.MaxKeys}} (quota {{.StateStore.MaxKeys}} keys, {{.StateStore.MaxBytes}} bytes; per principal {{.StateStore.MaxKeysPerPrincipal}} keys, {{.StateStore.MaxBytesPerPrincipal}} bytes){{end}}.</p>
</body></html>
`))
