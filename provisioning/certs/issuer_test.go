package certs

import (
	"context"
	"crypto/x509"
	"errors"
	"io/fs"
	"net"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"edgebroker/provisioning/certs/certstest"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func issue(t *testing.T, is Issuer, req *Request) (*Issued, []*x509.Certificate) {
	t.Helper()
	out, err := is.Issue(context.Background(), req)
	if err != nil {
		t.Fatalf("%s: Issue: %v", is.Name(), err)
	}
	var chain []*x509.Certificate
	for _, der := range out.Chain {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		chain = append(chain, c)
	}
	return out, chain
}

func newKey(t *testing.T, spec KeySpec) *Request {
	t.Helper()
	k, err := spec.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return &Request{Key: k, Duration: 24 * time.Hour, Now: t0}
}

func TestSelfSigned(t *testing.T) {
	for _, tt := range []struct {
		name string
		key  KeySpec
		isCA bool
	}{
		{"leaf ec256", KeySpec{"Ec256", 0}, false},
		{"leaf ed25519", KeySpec{"Ed25519", 0}, false},
		{"leaf rsa2048", KeySpec{"Rsa2048", 0}, false},
		{"ca ecdsa", KeySpec{"ECDSA", 256}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := newKey(t, tt.key)
			req.CommonName, req.IsCA = "dev", tt.isCA
			req.DNSNames = []string{"dev.local"}
			req.IPs = []net.IP{net.ParseIP("192.0.2.1")}
			out, chain := issue(t, SelfSigned{}, req)
			if len(chain) != 1 {
				t.Fatalf("chain length %d, want 1", len(chain))
			}
			c := chain[0]
			if err := c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature); err != nil {
				t.Errorf("not self-signed: %v", err)
			}
			if !slices.Equal(out.CA, out.Chain[0]) {
				t.Error("ca.crt is not the certificate itself")
			}
			if got, want := c.NotAfter, t0.Add(24*time.Hour); !got.Equal(want) || !out.NotAfter.Equal(want) {
				t.Errorf("NotAfter: got %v (Issued %v), want %v", got, out.NotAfter, want)
			}
			if c.IsCA != tt.isCA {
				t.Errorf("IsCA: got %v, want %v", c.IsCA, tt.isCA)
			}
			if tt.isCA {
				if c.KeyUsage&x509.KeyUsageCertSign == 0 {
					t.Error("CA lacks certSign")
				}
			} else if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
				t.Errorf("EKU: got %v, want serverAuth", c.ExtKeyUsage)
			}
			if !slices.Equal(c.DNSNames, req.DNSNames) || len(c.IPAddresses) != 1 || !c.IPAddresses[0].Equal(req.IPs[0]) {
				t.Errorf("SANs: got %v %v", c.DNSNames, c.IPAddresses)
			}
			if !(SelfSigned{}).IssuedBy(chain) {
				t.Error("IssuedBy: false for its own certificate")
			}
		})
	}
}

func TestIssueBadRequest(t *testing.T) {
	req := newKey(t, KeySpec{})
	req.Duration = 0
	if _, err := (SelfSigned{}).Issue(context.Background(), req); err == nil {
		t.Error("Issue with zero duration: got nil error")
	}
	if _, err := (SelfSigned{}).Issue(context.Background(), &Request{Duration: time.Hour}); err == nil {
		t.Error("Issue without key: got nil error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := (SelfSigned{}).Issue(ctx, newKey(t, KeySpec{})); !errors.Is(err, context.Canceled) {
		t.Errorf("Issue with a canceled context: got %v", err)
	}
}

func TestCA(t *testing.T) {
	root := certstest.Root("root", certstest.EC256)
	inter := root.Intermediate("inter", certstest.EC256)
	for _, tt := range []struct {
		name      string
		caSecret  *certstest.Cert
		crt       []byte
		wantChain []string // subjects of tls.crt
		wantCA    string   // subject of ca.crt
	}{
		{"self-signed root", root, root.CertPEM(), []string{"leaf"}, "root"},
		{"intermediate with root", inter, append(inter.CertPEM(), root.CertPEM()...), []string{"leaf", "inter"}, "root"},
		{"intermediate alone", inter, inter.CertPEM(), []string{"leaf", "inter"}, "inter"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ca, err := NewCA(tt.crt, tt.caSecret.KeyPEM())
			if err != nil {
				t.Fatal(err)
			}
			req := newKey(t, KeySpec{"Rsa2048", 0})
			req.Now = time.Now()
			req.CommonName = "leaf"
			out, chain := issue(t, ca, req)
			var got []string
			for _, c := range chain {
				got = append(got, c.Subject.CommonName)
			}
			if !slices.Equal(got, tt.wantChain) {
				t.Errorf("tls.crt: got %q, want %q", got, tt.wantChain)
			}
			caCert, err := x509.ParseCertificate(out.CA)
			if err != nil {
				t.Fatal(err)
			}
			if caCert.Subject.CommonName != tt.wantCA {
				t.Errorf("ca.crt: got %q, want %q", caCert.Subject.CommonName, tt.wantCA)
			}
			if chain[0].KeyUsage&x509.KeyUsageKeyEncipherment == 0 {
				t.Error("RSA leaf lacks keyEncipherment")
			}
			// NotAfter is capped at the CA's (certstest: 24h from now).
			if chain[0].NotAfter.After(tt.caSecret.Cert.NotAfter) {
				t.Errorf("leaf outlives its CA: %v > %v", chain[0].NotAfter, tt.caSecret.Cert.NotAfter)
			}
			if !ca.IssuedBy(chain) {
				t.Error("IssuedBy: false for its own leaf")
			}
			if (SelfSigned{}).IssuedBy(chain) {
				t.Error("SelfSigned.IssuedBy: true for a CA-signed leaf")
			}
		})
	}
}

func TestNewCARejectsLeaf(t *testing.T) {
	leaf := certstest.Root("root", certstest.EC256).Server("leaf", nil, nil, certstest.EC256)
	if _, err := NewCA(leaf.CertPEM(), leaf.KeyPEM()); !errors.Is(err, ErrNotCA) {
		t.Errorf("NewCA(leaf): got %v, want ErrNotCA", err)
	}
}

func TestSecretCAMissing(t *testing.T) {
	s := SecretCA{Dir: filepath.Join(t.TempDir(), "test-ca"), SecretName: "test-ca"}
	_, err := s.Issue(context.Background(), newKey(t, KeySpec{}))
	if !errors.Is(err, ErrNotReady) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Issue with a missing CA secret: got %v, want ErrNotReady and fs.ErrNotExist", err)
	}
}
