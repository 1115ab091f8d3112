package appliance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"edgebroker/broker/seclog"
	"edgebroker/provisioning/apply"
	"edgebroker/provisioning/bundle"
)

// uploadReadTimeout bounds reading an uploaded bundle (at most
// maxBundleFile bytes): a slow client cannot hold the one upload slot
// longer.
const uploadReadTimeout = 2 * time.Minute

// uploadWriteTimeout bounds writing an upload's report, from the moment
// the outcome is known: applying takes what it takes, within its own
// bounds (Device settings that change the network wait up to the guard's
// window, 60 s, for their gateway and may be applied again after it;
// certificates issued on the device take up to issueTimeout each), and
// the client gets the outcome however long that was. A variable so that
// tests can make it shorter than the guard's window (export_test.go).
var uploadWriteTimeout = 30 * time.Second

// errUploadRead is an upload whose body could not be read whole (the
// client went away or was too slow), as a pulled stick is for USB.
var errUploadRead = errors.New("reading the upload")

// Reasons of the refusals that are not about the bundle itself.
const (
	reasonBusy     = "another bundle upload is being read or applied; try again when it is done"
	reasonNeedsTLS = "bundle uploads are accepted only over TLS (edgebroker -status-tls): a bundle carries the configuration's secrets"
)

// Uploads refused after being read are limited to uploadRefusals per
// uploadRefusalWindow; more are answered 429, unread and unrecorded. Each
// one costs a write of the provisioning history with an fsync (and up to
// maxBundleFile bytes of memory): a LAN client looping bad uploads would
// otherwise wear the flash and push the real attempts out of the
// history.
const (
	uploadRefusals      = 10
	uploadRefusalWindow = time.Minute
)

// refusals counts the uploads refused in the current window.
type refusals struct {
	mu    sync.Mutex
	start time.Time // the window's start; guarded by mu
	n     int       // refusals since start; guarded by mu
}

// wait says how long until another refusal may be recorded: 0 now.
func (r *refusals) wait(now time.Time) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.Sub(r.start) >= uploadRefusalWindow {
		r.start, r.n = now, 0
	}
	if r.n < uploadRefusals {
		return 0
	}
	return r.start.Add(uploadRefusalWindow).Sub(now)
}

// add counts a refusal.
func (r *refusals) add(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.Sub(r.start) >= uploadRefusalWindow {
		r.start, r.n = now, 0
	}
	r.n++
}

// postBundle is POST /bundle: a bundle uploaded over the LAN gets exactly
// what a stick's gets. Its length is checked against maxBundleFile before
// anything is read (Content-Length, then http.MaxBytesReader as it
// arrives); then Install (the signature is the authority: signed by a
// trusted key, a serial above the last one applied, valid now, for this
// device, a configuration that validates and comes up). The answer is
// the stick's report, as JSON when the request accepts
// application/json and as text otherwise: 200 when the bundle was
// applied, 4xx when it was refused (reasons as a stick's report words
// them) and nothing changed but the history. One upload at a time:
// another one meanwhile gets 409 without being read; after
// uploadRefusals refusals in uploadRefusalWindow, 429.
func (a *Appliance) postBundle(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil {
		a.refuseUpload(w, r, http.StatusForbidden, reasonNeedsTLS)
		return
	}
	if !a.uploading.CompareAndSwap(false, true) {
		a.refuseUpload(w, r, http.StatusConflict, reasonBusy)
		return
	}
	defer a.uploading.Store(false)
	if d := a.refused.wait(time.Now()); d > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(d.Seconds())+1))
		a.refuseUpload(w, r, http.StatusTooManyRequests, fmt.Sprintf("%d bundle uploads were refused in the last %v; try again in %v",
			uploadRefusals, uploadRefusalWindow, d.Round(time.Second)))
		return
	}
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Now().Add(uploadReadTimeout))
	var res apply.Result
	if data, err := readUpload(w, r); err != nil {
		res = a.notRead(err)
	} else {
		// Once read, the bundle is applied to the end even if the client
		// goes away: a half-applied configuration helps nobody.
		res = a.Install(context.WithoutCancel(r.Context()), data)
	}
	code := uploadCode(res)
	if code != http.StatusOK {
		a.refused.add(time.Now())
		if a.srv.Security().Allow(seclog.BundleRefused) {
			a.srv.Security().Log(seclog.BundleRefused, "appliance: bundle upload refused", "remote", r.RemoteAddr,
				"serial", res.Serial, "key", res.KeyID, "status", code, "reasons", strings.Join(res.Reasons, "; "))
		}
	}
	rep := Report{Device: a.identity(), Result: res, Status: a.Status(), Running: a.running()}
	_, err := os.Stat(filepath.Join(a.cfg.DataDir, CAFile))
	rep.CA = err == nil
	// Nothing was written while applying: the server's WriteTimeout may
	// have passed, and the report gets its own time now.
	rc.SetWriteDeadline(time.Now().Add(uploadWriteTimeout))
	writeReport(w, r, code, rep)
}

// readUpload reads the request's body, at most maxBundleFile bytes; a
// longer one (by its Content-Length, or as it arrives) is refused with
// errBundleTooLarge without reading further.
func readUpload(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	max := maxBundleFile()
	if r.ContentLength > max {
		return nil, errBundleTooLarge(r.ContentLength)
	}
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength))
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, max))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return nil, errBundleTooLarge(-1)
	case err != nil:
		return nil, fmt.Errorf("%w: %v", errUploadRead, err)
	}
	return buf.Bytes(), nil
}

// uploadCode is the HTTP status of an upload's result: 200 applied; 413
// too large; 403 not signed by a trusted key; 422 any other refusal (a
// replayed serial, expired, for another device, a configuration that
// does not validate or was rolled back); 400 a body that could not be
// read whole.
func uploadCode(res apply.Result) int {
	switch {
	case res.Applied:
		return http.StatusOK
	case errors.Is(res.Err, bundle.ErrOversize):
		return http.StatusRequestEntityTooLarge
	case errors.Is(res.Err, bundle.ErrUntrusted), errors.Is(res.Err, bundle.ErrSignature):
		return http.StatusForbidden
	case errors.Is(res.Err, errUploadRead):
		return http.StatusBadRequest
	}
	return http.StatusUnprocessableEntity
}

// refuseUpload answers an upload that is not attempted (nothing read,
// nothing recorded) with a report whose one reason is why.
func (a *Appliance) refuseUpload(w http.ResponseWriter, r *http.Request, code int, why string) {
	if a.srv.Security().Allow(seclog.BundleRefused) {
		a.srv.Security().Log(seclog.BundleRefused, "appliance: bundle upload refused", "remote", r.RemoteAddr, "status", code, "reasons", why)
	}
	res := apply.Result{Time: time.Now(), Reasons: []string{why}}
	writeReport(w, r, code, Report{Device: a.identity(), Result: res, Status: a.Status(), Running: a.running()})
}

// writeReport answers with rep: JSON when the request accepts
// application/json, else text.
func writeReport(w http.ResponseWriter, r *http.Request, code int, rep Report) {
	body, ctype := []byte(rep.String()), "text/plain; charset=utf-8"
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		body, ctype = rep.JSON(), "application/json"
	}
	w.Header().Set("Content-Type", ctype)
	w.WriteHeader(code)
	w.Write(body)
}
