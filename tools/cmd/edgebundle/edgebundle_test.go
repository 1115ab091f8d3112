package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"edgebroker/provisioning/bundle"
)

const listener = `apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata: {name: lan}
spec:
  ports:
  - port: 18885
    tls:
      mode: Manual
      manual: {secretRef: server-cert}
`

// tlsPair returns a self-signed certificate and key as PEM.
func tlsPair(t *testing.T) (crt, key []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gw"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(k)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// edgebundle runs the command and returns exit code, stdout and stderr.
func edgebundle(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func expect(t *testing.T, wantCode int, want string, args ...string) string {
	t.Helper()
	code, out, errOut := edgebundle(t, args...)
	if code != wantCode || !strings.Contains(out+errOut, want) {
		t.Fatalf("edgebundle %s: exit %d, want %d; output:\n%s%s\nwant it to contain %q", strings.Join(args, " "), code, wantCode, out, errOut, want)
	}
	return out + errOut
}

func TestEdgebundle(t *testing.T) {
	dir := t.TempDir()
	crt, key := tlsPair(t)
	cfg := filepath.Join(dir, "cfg")
	writeTree(t, cfg, map[string]string{
		"listener.yaml":               listener,
		"secrets/server-cert/tls.crt": string(crt),
		"secrets/server-cert/tls.key": string(key),
		".DS_Store":                   "junk",
	})
	bad := filepath.Join(dir, "bad")
	writeTree(t, bad, map[string]string{
		"listener.yaml":               strings.Replace(listener, "18885", "70000", 1),
		"secrets/server-cert/tls.crt": "not a certificate",
		"secrets/server-cert/tls.key": string(key),
	})
	k1, k2 := filepath.Join(dir, "k1"), filepath.Join(dir, "k2")

	// keygen
	expect(t, 0, "key id ", "keygen", "-o", k1)
	expect(t, 0, "public key ", "keygen", "-o", k2)
	if fi, err := os.Stat(k1 + ".key"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("k1.key: %v, %v; want mode 0600", fi, err)
	}
	expect(t, 1, "k1.key exists; not overwriting a key", "keygen", "-o", k1)
	pubPEM, _ := os.ReadFile(k1 + ".pub")
	pub1, err := bundle.ParsePublicKey(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	id1 := bundle.KeyID(pub1)

	// lint: the appliance's validator, errors with file:line.
	expect(t, 0, "2 resources valid", "lint", cfg)
	out := expect(t, 1, filepath.Join(bad, "listener.yaml")+":6: BrokerListener/lan: spec.ports[0].port: 70000 is not a port number", "lint", bad)
	if want := filepath.Join(bad, "secrets/server-cert") + ": Secret/server-cert: data[tls.crt]: no PEM CERTIFICATE"; !strings.Contains(out, want) {
		t.Errorf("lint: every error: got\n%s\nwant also %s", out, want)
	}
	expect(t, 1, "listener.yaml:6:", "lint", filepath.Join(bad, "listener.yaml"))

	// pack refuses what lint refuses.
	badOut := filepath.Join(dir, "bad.bundle")
	expect(t, 1, "does not validate; no bundle written", "pack", "-key", k1+".key", "-serial", "1", "-o", badOut, bad)
	if _, err := os.Stat(badOut); err == nil {
		t.Error("pack wrote a bundle of an invalid folder")
	}

	// pack refuses serials a gateway would refuse.
	expect(t, 2, "-serial 18446744073709551615 is above 9007199254740992 (2^53)", "pack", "-key", k1+".key", "-serial", "18446744073709551615", "-o", badOut, cfg)
	expect(t, 2, "-serial 9007199254740993 is above", "pack", "-key", k1+".key", "-serial", "9007199254740993", "-o", badOut, cfg)
	if _, err := os.Stat(badOut); err == nil {
		t.Error("pack wrote a bundle with a serial above 2^53")
	}

	// pack, inspect, verify, lint a bundle.
	b1 := filepath.Join(dir, "one.bundle")
	expect(t, 0, "serial 7, 3 files", "pack", "-key", k1+".key", "-serial", "7", "-enrol", k2+".pub", "-device-model", "Raspberry Pi 5", "-o", b1, cfg)
	out = expect(t, 0, "signer:   key "+id1, "inspect", b1)
	for _, want := range []string{"serial:   7", "secrets/server-cert/tls.key", "listener.yaml", `device:   model "Raspberry Pi 5"`, "enrol:    key ", "(valid for 720h0m0s)"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect: missing %q in\n%s", want, out)
		}
	}
	if strings.Contains(out, ".DS_Store") {
		t.Errorf("inspect: hidden file packed:\n%s", out)
	}
	expect(t, 0, "OK: serial 7 signed by trusted key "+id1, "verify", "-trust", k2+".pub,"+k1+".pub", b1)
	expect(t, 0, "OK", "verify", "-trust", k1+".pub", "-device-model", "Raspberry Pi 5", b1)
	expect(t, 1, "bundle: not for this device", "verify", "-trust", k1+".pub", "-device-model", "Raspberry Pi 4", b1)
	expect(t, 1, "bundle: untrusted key: signed by key "+id1, "verify", "-trust", k2+".pub", b1)
	expect(t, 1, "bundle: replayed serial: serial 7 is not above 7", "verify", "-trust", k1+".pub", "-last-serial", "7", b1)
	expect(t, 0, "2 resources valid", "lint", b1)

	// A bundle changed on the stick.
	data, _ := os.ReadFile(b1)
	data[bytes.Index(data, []byte("port: 18885"))+6] = '2'
	tampered := filepath.Join(dir, "tampered.bundle")
	os.WriteFile(tampered, data, 0o644)
	expect(t, 1, "bundle: hash mismatch: listener.yaml", "verify", "-trust", k1+".pub", tampered)
	data, _ = os.ReadFile(b1)
	expect(t, 1, "bundle: truncated", "inspect", writeFile(t, dir, "cut.bundle", data[:len(data)-700]))

	// Flags may follow the folder; the output defaults to edgebroker.bundle.
	t.Chdir(dir)
	expect(t, 0, "wrote edgebroker.bundle: serial 8", "pack", cfg, "-key", k2+".key", "-serial", "8", "-expires", "1h")
	expect(t, 0, "valid for 1h0m0s", "inspect", bundle.FileName)

	// Usage errors.
	expect(t, 2, "usage:", "pack", cfg)
	expect(t, 2, "unknown command", "sign")
	expect(t, 2, "-trust K.pub is required", "verify", b1)
	expect(t, 2, "want one FOLDER or FILE, got 2 arguments", "lint", cfg, bad)
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
