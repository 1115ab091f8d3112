package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestQuickStartCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "quickstart-ca")
	export := filepath.Join(t.TempDir(), "export", "ca.crt")
	ca, err := QuickStartCA(dir, export, t0)
	if err != nil {
		t.Fatal(err)
	}
	root := ca.Chain[0]
	if pub, ok := root.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("key: got %T, want ECDSA P-256", root.PublicKey)
	}
	if !root.IsCA || !isSelfSigned(root) || root.Subject.CommonName != QuickStartCommonName {
		t.Errorf("not a self-signed root CA: %v", root.Subject)
	}
	if got, want := root.NotAfter.Sub(root.NotBefore), QuickStartDuration; got != want {
		t.Errorf("lifetime: got %v, want %v", got, want)
	}
	exported, err := os.ReadFile(export)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(exported, encodeCerts(root.Raw)) {
		t.Error("exported ca.crt is not the root")
	}

	// A restart loads the same CA and exports it again.
	os.Remove(export)
	again, err := QuickStartCA(dir, export, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !again.Chain[0].Equal(root) {
		t.Error("second start made a new CA")
	}
	if _, err := os.Stat(export); err != nil {
		t.Errorf("not exported again: %v", err)
	}

	// Leaves it issues verify against the exported ca.crt.
	req := newKey(t, KeySpec{})
	req.DNSNames, req.Now = []string{"device"}, t0
	_, chain := issue(t, again, req)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(exported)
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: pool, DNSName: "device", CurrentTime: t0.Add(time.Minute)}); err != nil {
		t.Errorf("leaf does not verify with the exported ca.crt: %v", err)
	}

	// A damaged CA is an error, not silently replaced.
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := QuickStartCA(dir, export, t0); err == nil {
		t.Error("QuickStartCA with a damaged key: got nil error")
	}

	// An expired CA is replaced.
	dir2 := filepath.Join(t.TempDir(), "qs")
	old, err := QuickStartCA(dir2, export, t0)
	if err != nil {
		t.Fatal(err)
	}
	renewed, err := QuickStartCA(dir2, export, t0.Add(QuickStartDuration+time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if renewed.Chain[0].Equal(old.Chain[0]) {
		t.Error("expired CA kept")
	}
}
