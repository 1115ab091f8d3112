package appliance

import (
	"embed"
	"encoding/json"
	"html/template"
	"net/http"
	"strconv"
	"time"
)

// The status page is one HTML template (statuspage/status.html) and two
// static files, embedded: no framework, nothing from another origin (the
// device may have no internet). The server renders the whole page; its
// script (statuspage/status.js) fetches the page and /history.json again
// every 2 s, swaps the new <main> in and draws the chart as inline SVG.
// Polling, not server-sent events: a page open on a phone holds no
// connection between updates, and each request is bounded by the LAN
// server's limits (lanHTTP).
//
//go:embed statuspage
var statusFiles embed.FS

var statusPage = template.Must(template.New("status.html").Funcs(template.FuncMap{
	"time": when,
	"date": func(t time.Time) string { return t.UTC().Format(time.DateOnly) },
	"days": daysLeft,
	"rate": func(v float64) string { // 0.4, 9.5, 12, 1520
		if v < 10 {
			return strconv.FormatFloat(v, 'f', 1, 64)
		}
		return strconv.FormatFloat(v, 'f', 0, 64)
	},
}).ParseFS(statusFiles, "statuspage/status.html"))

// statusPageData is what the status page renders: the Status and the
// figures its summary cards show.
type statusPageData struct {
	Status
	Serving int         // how many of Ports serve
	Soonest *CertStatus // of Ports and Certificates, the one expiring first; nil: none
	MaxLag  float64     // the longest OldestQueuedSeconds of the Dataflows
}

func pageData(st Status) statusPageData {
	d := statusPageData{Status: st}
	soonest := func(c *CertStatus) {
		if c != nil && !c.NotAfter.IsZero() && (d.Soonest == nil || c.NotAfter.Before(d.Soonest.NotAfter)) {
			d.Soonest = c
		}
	}
	for _, p := range st.Ports {
		if p.Serving {
			d.Serving++
		}
		soonest(p.TLS)
	}
	for i := range st.Certificates {
		soonest(&st.Certificates[i])
	}
	for _, f := range st.Dataflows {
		d.MaxLag = max(d.MaxLag, f.OldestQueuedSeconds)
	}
	return d
}

// daysLeft is how many whole days remain until t; negative once past.
func daysLeft(t time.Time) int {
	d := time.Until(t)
	if d < 0 {
		return -int((-d).Hours()/24) - 1
	}
	return int(d.Hours() / 24)
}

// handleStatusPage registers the page, its files and /history.json.
func (a *Appliance) handleStatusPage(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err := statusPage.Execute(w, pageData(a.Status())); err != nil {
			a.log.Warn("status page", "err", err)
		}
	})
	for _, name := range []string{"status.css", "status.js", "favicon.svg"} {
		mux.HandleFunc("GET /"+name, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "no-cache")
			http.ServeFileFS(w, r, statusFiles, "statuspage/"+name)
		})
	}
	mux.HandleFunc("GET /history.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(a.hist.snapshot())
	})
}

// statusHeaders adds to every response of h a Content-Security-Policy
// that lets a browser load and fetch from the device's own origin only,
// run no inline script and show the page in no other site's frame.
func statusHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		h.ServeHTTP(w, r)
	})
}
