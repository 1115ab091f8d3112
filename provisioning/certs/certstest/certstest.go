// Package certstest builds certificate chains for tests: a root CA,
// intermediates and leaves with EC or RSA keys, as PEM.
package certstest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"sync/atomic"
	"time"
)

var serial atomic.Int64

// Cert is a certificate with its key.
type Cert struct {
	Cert   *x509.Certificate
	Key    crypto.Signer
	Issuer *Cert // nil for a root
}

// Alg selects the key algorithm.
type Alg int

const (
	EC256 Alg = iota
	RSA2048
)

func newKey(a Alg) crypto.Signer {
	var k crypto.Signer
	var err error
	if a == RSA2048 {
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	} else {
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		panic(err)
	}
	return k
}

func (parent *Cert) sign(tmpl *x509.Certificate, a Alg) *Cert {
	tmpl.SerialNumber = big.NewInt(serial.Add(1))
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = time.Now().Add(-time.Hour)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	}
	k := newKey(a)
	issuerCert, issuerKey := tmpl, k
	if parent != nil {
		issuerCert, issuerKey = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuerCert, k.Public(), issuerKey)
	if err != nil {
		panic(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	return &Cert{Cert: c, Key: k, Issuer: parent}
}

// Root makes a self-signed root CA.
func Root(cn string, a Alg) *Cert {
	return (*Cert)(nil).sign(caTemplate(pkix.Name{CommonName: cn}), a)
}

// Intermediate makes a CA signed by c.
func (c *Cert) Intermediate(cn string, a Alg) *Cert {
	return c.sign(caTemplate(pkix.Name{CommonName: cn}), a)
}

// IntermediateName makes a CA with a full subject, signed by c.
func (c *Cert) IntermediateName(n pkix.Name, a Alg) *Cert { return c.sign(caTemplate(n), a) }

func caTemplate(n pkix.Name) *x509.Certificate {
	return &x509.Certificate{
		Subject:               n,
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
}

// Server makes a TLS server leaf signed by c.
func (c *Cert) Server(cn string, dns []string, ips []net.IP, a Alg) *Cert {
	return c.sign(&x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		DNSNames:    dns,
		IPAddresses: ips,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, a)
}

// Client makes a TLS client leaf signed by c, valid until notAfter (zero:
// a day).
func (c *Cert) Client(n pkix.Name, notAfter time.Time, a Alg) *Cert {
	return c.sign(&x509.Certificate{
		Subject:     n,
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, a)
}

// CertPEM is c's certificate as PEM.
func (c *Cert) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Cert.Raw})
}

// KeyPEM is c's private key as PKCS #8 PEM.
func (c *Cert) KeyPEM() []byte {
	der, err := x509.MarshalPKCS8PrivateKey(c.Key)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// ChainPEM is c followed by its issuers up to, not including, the root:
// what a kubernetes.io/tls Secret's tls.crt holds.
func (c *Cert) ChainPEM() []byte {
	var out []byte
	for x := c; x != nil && x.Issuer != nil; x = x.Issuer {
		out = append(out, x.CertPEM()...)
	}
	return out
}
