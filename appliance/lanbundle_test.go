package appliance_test

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"edgebroker/appliance"
	"edgebroker/broker/testenv"
	"edgebroker/provisioning/bundle"
	"edgebroker/provisioning/usb"
	"edgebroker/provisioning/usb/usbtest"
)

// uploader posts bundles to an appliance's status endpoint over TLS,
// trusting DATA/ca.crt.
type uploader struct {
	t      *testing.T
	base   string // https://127.0.0.1:PORT
	client *http.Client
	tls    *tls.Config
	caPEM  []byte // DATA/ca.crt when the uploader was made
}

func newUploader(t *testing.T, a *appliance.Appliance, data string) *uploader {
	t.Helper()
	ca, err := os.ReadFile(filepath.Join(data, appliance.CAFile))
	if err != nil {
		t.Fatalf("DATA/ca.crt: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		t.Fatal("DATA/ca.crt: no certificate")
	}
	tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &uploader{t: t, base: "https://" + a.StatusAddr().String(), tls: tc, caPEM: ca,
		client: &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: tc, ExpectContinueTimeout: 10 * time.Second}}}
}

// post uploads body (with a Content-Length, or chunked when chunked) and
// returns the status and the JSON report.
func (u *uploader) post(body []byte, chunked bool) (int, appliance.Report) {
	u.t.Helper()
	var r io.Reader = bytes.NewReader(body)
	if chunked {
		r = io.MultiReader(r) // hides the length: sent chunked
	}
	req, err := http.NewRequest(http.MethodPost, u.base+"/bundle", r)
	if err != nil {
		u.t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Expect", "100-continue")
	resp, err := u.client.Do(req)
	if err != nil {
		u.t.Fatalf("POST /bundle: %v", err)
	}
	defer resp.Body.Close()
	var rep appliance.Report
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		u.t.Fatalf("POST /bundle: %s: report: %v", resp.Status, err)
	}
	return resp.StatusCode, rep
}

// TestBundleUpload: over the status endpoint served with TLS (the
// device's certificate, trusted through DATA/ca.crt), a good bundle is
// applied (200, the stick's report); a bad signature, an untrusted key, a
// replayed serial and an oversize bundle (by Content-Length, refused
// unread, and chunked, cut at the limit) are refused with 4xx and the
// reasons a stick with the same bytes gets, and nothing changes
// (state.json, the serial, the running port); a second upload while one
// is being read gets 409 unread; after 10 refusals in a minute, 429
// unread and unrecorded; refusals are counted as security events; the
// endpoint speaks HTTP/1 only, and keeps its certificate after a bundle
// without Automatic TLS replaced the default, and DATA/ca.crt its CA,
// across a restart.
func TestBundleUpload(t *testing.T) {
	key, err := bundle.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	sysRoot, data := t.TempDir(), t.TempDir()
	mounter := &usbtest.Mounter{Images: map[string]string{}}
	cfg := appliance.Config{
		DataDir: data, Loopback: "off", PortMap: map[int]int{18883: 0},
		Trust: []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}, BoardRoot: t.TempDir(),
		StatusAddr: "127.0.0.1:0", StatusTLS: true,
		USB: &appliance.USBConfig{Root: sysRoot, Mounter: mounter, Uevents: make(chan usb.Uevent), Interval: 20 * time.Millisecond},
	}
	a, _, stop := launch(t, cfg)
	defer func() { stop() }()
	up := newUploader(t, a, data)

	// Plain HTTP on the TLS endpoint is not served.
	if resp, err := http.Get("http://" + a.StatusAddr().String() + "/status.json"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("plain HTTP on the TLS status endpoint: %s", resp.Status)
		}
	}

	// HTTP/1 only: HTTP/2 would multiply the requests served at once past
	// the endpoint's connection limit.
	h2 := up.tls.Clone()
	h2.NextProtos = []string{"h2", "http/1.1"}
	if c, err := tls.Dial("tcp", a.StatusAddr().String(), h2); err != nil {
		t.Fatalf("TLS to the status endpoint, trusting DATA/ca.crt: %v", err)
	} else {
		if p := c.ConnectionState().NegotiatedProtocol; p == "h2" {
			t.Errorf("the status endpoint speaks HTTP/2")
		}
		c.Close()
	}

	// A good bundle applies.
	p1 := testenv.FreePort(t)
	code, rep := up.post(packBundle(t, key, 1, map[string]string{"site.yaml": siteListener(p1)}, nil), false)
	if code != http.StatusOK || !rep.Result.Applied || rep.Result.Serial != 1 || rep.Running != "bundle serial 1" {
		t.Fatalf("good bundle: %d, %+v, running %q", code, rep.Result, rep.Running)
	}
	if !answers(p1) {
		t.Fatalf("the bundle's port %d does not answer; status:\n%s", p1, a.Status())
	}
	// Bundle 1 has no Automatic TLS port: DATA/ca.crt still carries the
	// CA of the status endpoint's certificate.
	if ca, err := os.ReadFile(filepath.Join(data, appliance.CAFile)); err != nil || !bytes.Equal(ca, up.caPEM) || !rep.CA {
		t.Errorf("DATA/ca.crt after bundle 1 (report says %v): %v\n%s\nwant\n%s", rep.CA, err, ca, up.caPEM)
	}
	// The text report is the stick's.
	req, _ := http.NewRequest(http.MethodPost, up.base+"/bundle", bytes.NewReader(packBundle(t, key, 1, map[string]string{"site.yaml": siteListener(p1)}, nil)))
	resp, err := up.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(text), "REJECTED: nothing was changed") ||
		!strings.Contains(string(text), "replayed serial: serial 1 is not above 1") || !strings.Contains(resp.Header.Get("Content-Type"), "text/plain") {
		t.Errorf("text report of a replay: %s\n%s", resp.Status, text)
	}

	state := func() []byte {
		b, err := os.ReadFile(filepath.Join(data, appliance.ProvisioningDir, "state.json"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	before := state()
	// The same bytes on a stick: the reasons it gets.
	sticks := 0
	fromStick := func(b []byte) []string {
		t.Helper()
		sticks++
		name := fmt.Sprintf("sd%c", 'a'+sticks)
		img := usbtest.NewFAT32Image(t, map[string][]byte{bundle.FileName: b})
		mounter.Images[name] = img
		n := len(a.Status().Provisioning.History)
		usbtest.AddStick(t, sysRoot, name, img)
		testenv.Eventually(t, 20*time.Second, "the stick handled", func() bool { return len(a.Status().Provisioning.History) > n })
		usbtest.RemoveDisk(t, sysRoot, name)
		return a.Status().Provisioning.History[0].Reasons
	}
	other, _ := bundle.GenerateKey()
	oversize := make([]byte, 21<<20)
	for _, tt := range []struct {
		name    string
		data    []byte
		chunked bool
		code    int
		want    string
		noStick bool // no stick gives these bytes this way
	}{
		{name: "bad signature", code: http.StatusForbidden, want: "bad signature", data: rewriteTar(t, packBundle(t, key, 2, map[string]string{"site.yaml": siteListener(testenv.FreePort(t))}, nil), func(name string, body []byte) (string, []byte) {
			if name == "manifest.sig" {
				body = bytes.Clone(body)
				body[0] ^= 1
			}
			return name, body
		})},
		{name: "untrusted key", code: http.StatusForbidden, want: "untrusted key", data: packBundle(t, other, 2, map[string]string{"site.yaml": siteListener(testenv.FreePort(t))}, nil)},
		{name: "replayed serial", code: http.StatusUnprocessableEntity, want: "replayed serial", data: packBundle(t, key, 1, map[string]string{"site.yaml": siteListener(testenv.FreePort(t))}, nil)},
		{name: "oversize", code: http.StatusRequestEntityTooLarge, want: fmt.Sprintf("bundle: too large: the bundle file is %d bytes, more than", len(oversize)), data: oversize},
		{name: "oversize chunked", code: http.StatusRequestEntityTooLarge, want: "bundle: too large: the bundle file is more than", data: oversize, chunked: true, noStick: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, rep := up.post(tt.data, tt.chunked)
			reasons := strings.Join(rep.Result.Reasons, "\n")
			if code != tt.code || rep.Result.Applied || !strings.Contains(reasons, tt.want) {
				t.Errorf("upload: %d, applied %v, reasons:\n%s\nwant %d and %q", code, rep.Result.Applied, reasons, tt.code, tt.want)
			}
			if got := state(); !bytes.Equal(got, before) {
				t.Errorf("state.json changed:\n%s\nwas\n%s", got, before)
			}
			if s := a.Status().Provisioning.Serial; s != 1 {
				t.Errorf("serial %d, want 1", s)
			}
			if !answers(p1) {
				t.Errorf("bundle 1's port stopped answering")
			}
			if tt.noStick {
				return
			}
			if usb := fromStick(tt.data); !slices.Equal(usb, rep.Result.Reasons) {
				t.Errorf("reasons differ:\nupload: %q\nstick:  %q", rep.Result.Reasons, usb)
			}
		})
	}

	// A second upload while one is being read: 409, unread.
	raw, err := tls.Dial("tcp", a.StatusAddr().String(), up.tls)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(time.Minute))
	p2 := testenv.FreePort(t)
	second := packBundle(t, key, 2, map[string]string{"site.yaml": siteListener(p2)}, nil)
	fmt.Fprintf(raw, "POST /bundle HTTP/1.1\r\nHost: device\r\nAccept: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", len(second))
	br := bufio.NewReader(raw)
	if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "HTTP/1.1 100 ") {
		t.Fatalf("first upload: %q, %v; want 100 Continue (the handler reads the body)", line, err)
	}
	br.ReadString('\n') // the empty line after 100 Continue
	code, rep = up.post(second, false)
	if code != http.StatusConflict || len(rep.Result.Reasons) != 1 || !strings.Contains(rep.Result.Reasons[0], "another bundle upload") {
		t.Errorf("concurrent upload: %d, %+v", code, rep.Result)
	}
	raw.Write(second)
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil || resp.StatusCode != http.StatusOK || !rep.Result.Applied || rep.Result.Serial != 2 {
		t.Errorf("the first upload, finished: %s, %+v, %v", resp.Status, rep.Result, err)
	}
	resp.Body.Close()
	if !answers(p2) {
		t.Errorf("bundle 2's port %d does not answer", p2)
	}

	// Refusals are limited: 10 a minute (6 above), then 429 unread and
	// unrecorded.
	attempts := func() int { // history.json keeps 20; Status shows 10
		b, err := os.ReadFile(filepath.Join(data, appliance.ProvisioningDir, "history.json"))
		var h []json.RawMessage
		if err == nil {
			err = json.Unmarshal(b, &h)
		}
		if err != nil {
			t.Fatalf("history.json: %v", err)
		}
		return len(h)
	}
	history := attempts()
	for i := 0; ; i++ {
		req, _ := http.NewRequest(http.MethodPost, up.base+"/bundle", strings.NewReader("not a bundle"))
		resp, err := up.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusUnprocessableEntity {
			if i >= 4 {
				t.Fatalf("upload %d after 6 refusals: %s, want 429:\n%s", i+1, resp.Status, body)
			}
			continue
		}
		if resp.StatusCode != http.StatusTooManyRequests || i != 4 || resp.Header.Get("Retry-After") == "" ||
			!strings.Contains(string(body), "10 bundle uploads were refused in the last 1m0s; try again in") {
			t.Fatalf("upload %d after 6 refusals: %s, Retry-After %q:\n%s", i+1, resp.Status, resp.Header.Get("Retry-After"), body)
		}
		break
	}
	if h := attempts(); h != history+4 {
		t.Errorf("history: %d attempts, want %d (the 429 is not recorded)", h, history+4)
	}

	// Every refusal is a security event.
	resp, err = up.client.Get(up.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := `edgebroker_security_events_total{event="bundle_refused"} 12`; !strings.Contains(string(metrics), want) {
		t.Errorf("metrics: no %s:\n%s", want, metrics)
	}

	// After a restart on bundle 2 (no Automatic TLS port), the endpoint
	// serves the certificate it had, from the same CA, and uploads go on.
	firstCA := up.caPEM
	stop()
	a, _, stop = launch(t, cfg)
	up = newUploader(t, a, data) // trusting DATA/ca.crt
	if !bytes.Equal(up.caPEM, firstCA) {
		t.Errorf("DATA/ca.crt after a restart:\n%s\nwant\n%s", up.caPEM, firstCA)
	}
	p3 := testenv.FreePort(t)
	if code, rep := up.post(packBundle(t, key, 3, map[string]string{"site.yaml": siteListener(p3)}, nil), false); code != http.StatusOK || rep.Result.Serial != 3 {
		t.Errorf("bundle 3 after a restart: %d, %+v", code, rep.Result)
	}
}

// TestBundleUploadNeedsTLS: the status endpoint over plain HTTP refuses
// uploads (403) without reading them; nothing is applied or recorded.
func TestBundleUploadNeedsTLS(t *testing.T) {
	key, err := bundle.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	a, _, stop := launch(t, appliance.Config{
		DataDir: t.TempDir(), Loopback: "off", PortMap: map[int]int{18883: 0}, BoardRoot: t.TempDir(),
		Trust: []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}, StatusAddr: "127.0.0.1:0",
	})
	defer stop()
	p := testenv.FreePort(t)
	resp, err := http.Post("http://"+a.StatusAddr().String()+"/bundle", "application/octet-stream",
		bytes.NewReader(packBundle(t, key, 1, map[string]string{"site.yaml": siteListener(p)}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "accepted only over TLS") {
		t.Errorf("plain upload: %s\n%s", resp.Status, body)
	}
	if st := a.Status().Provisioning; st.Serial != 0 || len(st.History) != 0 {
		t.Errorf("after a plain upload: serial %d, history %+v", st.Serial, st.History)
	}
	if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p)); err == nil {
		c.Close()
		t.Errorf("the bundle's port %d answers", p)
	}
}
