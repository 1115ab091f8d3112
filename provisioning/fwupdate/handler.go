package fwupdate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"edgebroker/provisioning/firmware"
)

// Path is where Handler takes updates, below the prefix it is mounted at
// (appliance mounts it at /update/): PUT /update/firmware.
const Path = "firmware"

// UploadTimeout bounds one update's upload and answer.
const UploadTimeout = 15 * time.Minute

// Pace bounds how slowly an upload may arrive: a client that trickles
// bytes (or sends a valid header, then nothing) must not hold the one
// install slot for long.
type Pace struct {
	// Idle is the longest wait for the next bytes of the body.
	Idle time.Duration
	// MinRate is the slowest average the body may arrive at, in bytes
	// per second, once Grace has passed since the request was read.
	MinRate int64
	Grace   time.Duration
}

// DefaultPace is Receiver.Pace's default: an update of 64 MiB arrives in
// about half an hour at the slowest rate taken, though UploadTimeout ends
// it first; a LAN or a modest uplink is far faster.
var DefaultPace = Pace{Idle: 20 * time.Second, MinRate: 32 << 10, Grace: 20 * time.Second}

// Refusals over HTTP are limited per source address: after MaxRefusals
// in RefusalWindow, an address is answered 429 (Retry-After) without a
// byte of its upload read, so a LAN client cannot make the device verify
// signatures (or hash file systems) in a loop.
const (
	MaxRefusals   = 5
	RefusalWindow = time.Minute
)

// Handler serves the receiver over HTTP, to be mounted with its prefix
// stripped:
//
//	PUT  firmware   body: an update file (firmware.FileName's format);
//	                answer: the Attempt as JSON, 200 when installed, 409
//	                while another update runs or the running system is
//	                an uncommitted trial, 500 when the device could not
//	                write, 429 (with Retry-After) when the client's address
//	                had MaxRefusals refusals in RefusalWindow, 422 for
//	                every other refusal
//	GET  last       the last Attempt as JSON (404 before the first)
//
// It asks for no credential: see the package documentation. The body is
// read up to the header's bound plus maxRoot and maxBoot, at Pace.
func (rc *Receiver) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /"+Path, rc.put)
	mux.HandleFunc("GET /last", func(w http.ResponseWriter, r *http.Request) {
		a, ok := rc.Last()
		if !ok {
			http.Error(w, "no update attempted since the device started", http.StatusNotFound)
			return
		}
		writeJSON(w, http.StatusOK, a)
	})
	return mux
}

// put is PUT firmware.
func (rc *Receiver) put(w http.ResponseWriter, r *http.Request) {
	from := sourceAddr(r.RemoteAddr)
	if d := rc.limits.wait(from, time.Now()); d > 0 {
		a := Attempt{Time: time.Now(), From: r.RemoteAddr, Reason: firmware.ReasonLimited,
			Detail: fmt.Sprintf("%d updates from %s were refused in the last %v; try again in %v", MaxRefusals, from, RefusalWindow, d.Round(time.Second))}
		rc.refused(a)
		w.Header().Set("Retry-After", strconv.Itoa(int(d.Seconds())+1))
		writeJSON(w, http.StatusTooManyRequests, a)
		return
	}
	// An update is tens of MiB over what may be a slow link: the
	// server's short read and write deadlines give way to UploadTimeout,
	// and the body's reads to Pace.
	ctl := http.NewResponseController(w)
	ctl.SetWriteDeadline(time.Now().Add(UploadTimeout))
	p := rc.Policy()
	limit := int64(firmware.MaxManifest+1024) + max(p.MaxRoot, 0) + max(p.MaxBoot, 0)
	if p.MaxRoot <= 0 || p.MaxBoot <= 0 {
		limit = 1 << 40
	}
	pace := DefaultPace
	if rc.Pace != nil {
		pace = *rc.Pace
	}
	body := &pacedReader{r: http.MaxBytesReader(w, r.Body, limit), ctl: ctl, pace: pace, start: time.Now(), end: time.Now().Add(UploadTimeout)}
	a := rc.Install(body, r.RemoteAddr)
	code := http.StatusOK
	switch {
	case a.Installed:
	case a.Reason == firmware.ReasonBusy, a.Reason == firmware.ReasonTrial:
		code = http.StatusConflict
	case a.Reason == firmware.ReasonWrite:
		code = http.StatusInternalServerError
	default:
		code = http.StatusUnprocessableEntity
	}
	if !a.Installed {
		rc.limits.add(from, time.Now())
		rc.refused(a)
	}
	writeJSON(w, code, a)
}

// refused tells Refused about a refusal over HTTP.
func (rc *Receiver) refused(a Attempt) {
	if rc.Refused != nil {
		rc.Refused(a)
	}
}

// sourceAddr is the address a request came from, without its port.
func sourceAddr(remote string) netip.Addr {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, _ := netip.ParseAddr(host)
	return a.Unmap()
}

// pacedReader reads an upload's body at Pace: each read waits at most
// Idle, and once Grace has passed the body must have come at MinRate.
type pacedReader struct {
	// All fields are owned by the one goroutine reading the body.
	r     io.Reader
	ctl   *http.ResponseController
	pace  Pace
	start time.Time // when the body started
	end   time.Time // UploadTimeout after start
	n     int64     // bytes read so far
}

var errTooSlow = errors.New("the upload is too slow")

func (p *pacedReader) Read(b []byte) (int, error) {
	now := time.Now()
	if el := now.Sub(p.start) - p.pace.Grace; el > 0 && p.n < int64(float64(p.pace.MinRate)*el.Seconds()) {
		return 0, fmt.Errorf("%w: %d bytes in %v, under %d bytes/s", errTooSlow, p.n, now.Sub(p.start).Round(time.Second), p.pace.MinRate)
	}
	deadline := now.Add(p.pace.Idle)
	if deadline.After(p.end) {
		deadline = p.end
	}
	p.ctl.SetReadDeadline(deadline)
	n, err := p.r.Read(b)
	p.n += int64(n)
	return n, err
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
