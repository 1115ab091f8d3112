package update

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"edgebroker/provisioning/firmware"
	"edgebroker/provisioning/fwupdate"
)

// secureDevice is a device's receiver over TLS on loopback, writing a
// real disk image file.
type secureDevice struct {
	srv *httptest.Server
	ca  *x509.Certificate // the device's CA (DATA/ca.crt)
	rc  *fwupdate.Receiver

	mu      sync.Mutex
	headers []http.Header // of every request that reached the handler
}

func newSecureDevice(t *testing.T, key ed25519.PublicKey) *secureDevice {
	t.Helper()
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(disk, make([]byte, 3<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	d := &secureDevice{}
	d.rc = &fwupdate.Receiver{
		Target: &fwupdate.Disk{Path: disk, BootFS: fwupdate.Extent{Start: 0, Size: 1 << 20},
			Roots: [2]fwupdate.Extent{{Start: 1 << 20, Size: 1 << 20}, {Start: 2 << 20, Size: 1 << 20}},
			Stage: filepath.Join(dir, "boot.staged"),
			Arm:   func(fwupdate.BootFiles, int) error { return nil }},
		Policy: func() firmware.Policy {
			return firmware.Policy{Trust: []ed25519.PublicKey{key}, Board: "qemu", Running: "1.0", Now: time.Now(), MaxRoot: 1 << 20, MaxBoot: 1 << 20}
		},
	}
	mux := http.NewServeMux()
	mux.Handle("/update/", http.StripPrefix("/update", d.rc.Handler()))
	d.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		d.headers = append(d.headers, r.Header.Clone())
		d.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	d.ca, d.srv.TLS = deviceCert(t)
	d.srv.StartTLS()
	t.Cleanup(d.srv.Close)
	return d
}

// deviceCert makes a device's own CA and its certificate for 127.0.0.1,
// as the appliance's on-device CA does (DATA/ca.crt).
func deviceCert(t *testing.T) (*x509.Certificate, *tls.Config) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "edgebroker device CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "edgebroker"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err = x509.CreateCertificate(rand.Reader, leaf, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	return ca, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// pool returns a pool holding the device's CA.
func (d *secureDevice) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(d.ca)
	return p
}

// fingerprint is the SHA-256 of the device's certificate.
func (d *secureDevice) fingerprint() []byte {
	return sum(d.srv.TLS.Certificates[0].Certificate[0])
}

// observer is a TCP proxy on loopback that records every byte a client
// sends, as a machine on the LAN between the host and the device sees it.
type observer struct {
	ln      net.Listener
	wg      sync.WaitGroup
	mu      sync.Mutex   // guards the fields below
	fromCli bytes.Buffer // every byte clients sent
	conns   []net.Conn   // to close at the end (a client may keep one idle)
}

func newObserver(t *testing.T, target string) *observer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &observer{ln: ln}
	t.Cleanup(func() {
		ln.Close()
		o.mu.Lock()
		for _, c := range o.conns {
			c.Close()
		}
		o.mu.Unlock()
		o.wg.Wait()
	})
	o.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			o.mu.Lock()
			o.conns = append(o.conns, c, s)
			o.mu.Unlock()
			o.wg.Go(func() {
				io.Copy(s, io.TeeReader(c, o))
				s.(*net.TCPConn).CloseWrite()
			})
			o.wg.Go(func() {
				io.Copy(c, s)
				c.Close()
				s.Close()
			})
		}
	})
	return o
}

func (o *observer) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.fromCli.Write(p)
}

func (o *observer) seen() []byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	return bytes.Clone(o.fromCli.Bytes())
}

func signedUpdate(t *testing.T, key ed25519.PrivateKey, version string) []byte {
	t.Helper()
	p := &Parts{Root: bytes.Repeat([]byte("root fs "), 50000), Boot: bytes.Repeat([]byte("boot fs "), 20000)}
	h, err := p.Sign(firmware.Manifest{Version: version, Built: time.Now(), Board: "qemu"}, key)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	p.WriteUpdate(&b, h)
	return b.Bytes()
}

// TestLANObserverSeesNoCredential: an update pushed over TLS through a
// recording proxy is installed; the recording holds no credential (no
// Authorization header reached the device, the manifest is not in clear),
// and replaying it to a second device that would accept the same update
// installs nothing. The same observer on the legacy gokrazy protocol
// finds the password: the observer works.
func TestLANObserverSeesNoCredential(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	dev := newSecureDevice(t, pub)
	obs := newObserver(t, dev.srv.Listener.Addr().String())
	upd := signedUpdate(t, key, "1.1")
	sd := &SecureDevice{BaseURL: "https://" + obs.ln.Addr().String(), CA: dev.pool()}
	o, err := PushSigned(context.Background(), sd, bytes.NewReader(upd), int64(len(upd)))
	if err != nil || !o.Installed || o.Version != "1.1" {
		t.Fatalf("PushSigned: %+v, %v", o, err)
	}
	dev.mu.Lock()
	for _, h := range dev.headers {
		if v := h.Get("Authorization"); v != "" {
			t.Errorf("the client sent Authorization %q", v)
		}
	}
	dev.mu.Unlock()
	wire := obs.seen()
	if len(wire) < len(upd) {
		t.Fatalf("the observer saw %d bytes, the update has %d", len(wire), len(upd))
	}
	for _, clear := range []string{firmware.Magic, `"keyId"`, "Authorization", "PUT /update"} {
		if bytes.Contains(wire, []byte(clear)) {
			t.Errorf("the observer reads %q in clear", clear)
		}
	}

	// Replayed byte for byte to another device that would install the
	// update: the TLS handshake fails, nothing reaches its receiver.
	dev2 := newSecureDevice(t, pub)
	c, err := net.Dial("tcp", dev2.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	go c.Write(wire)
	io.Copy(io.Discard, c) // until the device hangs up
	c.Close()
	if a, ok := dev2.rc.Last(); ok {
		t.Errorf("the replay reached the second device's receiver: %v", a)
	}
	// The same update sent properly is accepted by dev2: the replay
	// failed for want of a fresh TLS session, not for the update.
	sd2 := &SecureDevice{BaseURL: dev2.srv.URL, Fingerprint: dev2.fingerprint()}
	if o, err := PushSigned(context.Background(), sd2, bytes.NewReader(upd), int64(len(upd))); err != nil || !o.Installed {
		t.Fatalf("dev2: %+v, %v", o, err)
	}

	// The legacy protocol through the same observer: the password is
	// there for the taking.
	legacy := &device{password: "build-cache-password", got: map[string][]byte{}}
	lsrv := httptest.NewServer(legacy)
	t.Cleanup(lsrv.Close)
	lobs := newObserver(t, lsrv.Listener.Addr().String())
	ld := &Device{BaseURL: "http://" + lobs.ln.Addr().String(), Password: legacy.password}
	if err := Push(context.Background(), ld, &Parts{Boot: []byte("b"), Root: []byte("r")}, false, nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(lobs.seen(), []byte("Authorization: Basic ")) {
		t.Error("the observer did not see the legacy protocol's password: it would not see one in the new protocol either")
	}
}

func sum(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

// TestPushSignedChecksTheDevice: a device whose certificate matches
// neither the CA nor the fingerprint gets no byte of the update, and a
// refusal comes back with its reason.
func TestPushSignedChecksTheDevice(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	dev := newSecureDevice(t, pub)
	other := newSecureDevice(t, pub)
	upd := signedUpdate(t, key, "1.1")
	for name, sd := range map[string]*SecureDevice{
		"another device's CA":          {BaseURL: dev.srv.URL, CA: other.pool()},
		"another device's fingerprint": {BaseURL: dev.srv.URL, Fingerprint: other.fingerprint()},
		"plain http":                   {BaseURL: "http://" + dev.srv.Listener.Addr().String(), Fingerprint: dev.fingerprint()},
	} {
		if _, err := PushSigned(context.Background(), sd, bytes.NewReader(upd), int64(len(upd))); err == nil {
			t.Errorf("%s: the update was sent", name)
		}
	}
	if a, ok := dev.rc.Last(); ok {
		t.Errorf("the device received an update: %v", a)
	}
	old := signedUpdate(t, key, "0.9")
	sd := &SecureDevice{BaseURL: dev.srv.URL, Fingerprint: dev.fingerprint()}
	o, err := PushSigned(context.Background(), sd, bytes.NewReader(old), int64(len(old)))
	if !errors.Is(err, ErrRefused) || o == nil || o.Reason != string(firmware.ReasonDowngrade) {
		t.Errorf("downgrade: %+v, %v; want ErrRefused for %q", o, err, firmware.ReasonDowngrade)
	}
}

func TestParseFingerprint(t *testing.T) {
	want := sum([]byte("x"))
	for _, s := range []string{"sha256:" + hexColons(want), hexColons(want)} {
		if got, err := ParseFingerprint(s); err != nil || !bytes.Equal(got, want) {
			t.Errorf("ParseFingerprint(%q) = %x, %v", s, got, err)
		}
	}
	if _, err := ParseFingerprint("abcd"); err == nil {
		t.Error("a short fingerprint parsed")
	}
}

func hexColons(b []byte) string {
	const digits = "0123456789ABCDEF"
	var s []byte
	for i, c := range b {
		if i > 0 {
			s = append(s, ':')
		}
		s = append(s, digits[c>>4], digits[c&15])
	}
	return string(s)
}
