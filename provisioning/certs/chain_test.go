package certs_test

import (
	"errors"
	"net"
	"testing"

	"edgebroker/provisioning/certs"
	"edgebroker/provisioning/certs/certstest"
)

func TestParseChain(t *testing.T) {
	root := certstest.Root("root", certstest.EC256)
	inter := root.Intermediate("intermediate", certstest.EC256)
	leaf := inter.Server("mqtts-endpoint", []string{"mqtts-endpoint", "localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, certstest.EC256)
	otherLeaf := inter.Server("other", []string{"other"}, nil, certstest.EC256)

	rsaRoot := certstest.Root("rsa-root", certstest.RSA2048)
	rsaInter := rsaRoot.Intermediate("rsa-intermediate", certstest.RSA2048)
	ecUnderRSA := rsaInter.Server("mixed", []string{"localhost"}, nil, certstest.EC256)
	rsaLeaf := rsaInter.Server("rsa", []string{"localhost"}, nil, certstest.RSA2048)

	cat := func(b ...[]byte) (out []byte) {
		for _, x := range b {
			out = append(out, x...)
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		crt, key []byte
		want     error
		certs    int
	}{
		{"leaf then intermediate", leaf.ChainPEM(), leaf.KeyPEM(), nil, 2},
		{"leaf, intermediate and root", cat(leaf.ChainPEM(), root.CertPEM()), leaf.KeyPEM(), nil, 3},
		{"leaf alone", leaf.CertPEM(), leaf.KeyPEM(), nil, 1},
		{"all RSA", rsaLeaf.ChainPEM(), rsaLeaf.KeyPEM(), nil, 2},
		{"intermediate first", cat(inter.CertPEM(), leaf.CertPEM()), leaf.KeyPEM(), certs.ErrChainOrder, 0},
		{"key of another leaf", leaf.ChainPEM(), otherLeaf.KeyPEM(), certs.ErrKeyMismatch, 0},
		{"EC leaf under RSA intermediate", ecUnderRSA.ChainPEM(), ecUnderRSA.KeyPEM(), certs.ErrMixedAlgorithm, 0},
		{"no certificate", []byte("not pem"), leaf.KeyPEM(), certs.ErrNoCertificate, 0},
		{"no key", leaf.ChainPEM(), leaf.CertPEM(), certs.ErrNoKey, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := certs.ParseChain(tc.crt, tc.key)
			if !errors.Is(err, tc.want) {
				t.Fatalf("ParseChain: got %v, want %v", err, tc.want)
			}
			if err != nil {
				return
			}
			if got := len(c.Certificate); got != tc.certs {
				t.Errorf("chain length %d, want %d", got, tc.certs)
			}
			if c.Leaf == nil || c.Leaf.Raw == nil || string(c.Leaf.Raw) != string(c.Certificate[0]) {
				t.Error("Leaf is not the first certificate")
			}
		})
	}
}

// TestParseCerts: the certificates of a PEM file in order, other blocks
// (a key) skipped; none is ErrNoCertificate.
func TestParseCerts(t *testing.T) {
	root := certstest.Root("root", certstest.EC256)
	leaf := root.Server("leaf", []string{"localhost"}, nil, certstest.EC256)
	data := append(append(append([]byte(nil), leaf.CertPEM()...), leaf.KeyPEM()...), root.CertPEM()...)
	got, err := certs.ParseCerts(data)
	if err != nil || len(got) != 2 || got[0].Subject.CommonName != "leaf" || got[1].Subject.CommonName != "root" {
		t.Errorf("ParseCerts(leaf, key, root): %d certificates, %v", len(got), err)
	}
	if _, err := certs.ParseCerts(leaf.KeyPEM()); !errors.Is(err, certs.ErrNoCertificate) {
		t.Errorf("ParseCerts(a key): %v, want ErrNoCertificate", err)
	}
}
