package fwupdate

import (
	"encoding/json"
	"net/http"
	"time"

	"edgebroker/provisioning/firmware"
)

// Path is where Handler takes updates, below the prefix it is mounted at
// (appliance mounts it at /update/): PUT /update/firmware.
const Path = "firmware"

// UploadTimeout bounds one update's upload and answer.
const UploadTimeout = 15 * time.Minute

// Handler serves the receiver over HTTP, to be mounted with its prefix
// stripped:
//
//	PUT  firmware   body: an update file (firmware.FileName's format);
//	                answer: the Attempt as JSON, 200 when installed, 409
//	                while another update runs or the running system is
//	                an uncommitted trial, 500 when the device could not
//	                write, 422 for every other refusal
//	GET  last       the last Attempt as JSON (404 before the first)
//
// It asks for no credential: see the package documentation. The body is
// read up to the header's bound plus maxRoot and maxBoot.
func (rc *Receiver) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /"+Path, func(w http.ResponseWriter, r *http.Request) {
		// An update is tens of MiB over what may be a slow link: the
		// server's short read and write deadlines give way to UploadTimeout.
		ctl := http.NewResponseController(w)
		ctl.SetReadDeadline(time.Now().Add(UploadTimeout))
		ctl.SetWriteDeadline(time.Now().Add(UploadTimeout))
		p := rc.Policy()
		limit := int64(firmware.MaxManifest+1024) + max(p.MaxRoot, 0) + max(p.MaxBoot, 0)
		if p.MaxRoot <= 0 || p.MaxBoot <= 0 {
			limit = 1 << 40
		}
		a := rc.Install(http.MaxBytesReader(w, r.Body, limit), r.RemoteAddr)
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
		writeJSON(w, code, a)
	})
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

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
