package certs

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// Issuer issues certificates (practice 14: small, consumer-defined).
//
// Issue signs a certificate for req's public key and returns the chain.
// It must honour ctx, must not keep req, and returns an error wrapping
// ErrNotReady when it cannot issue yet (e.g. its CA Secret does not
// exist) so the caller retries later. Name identifies the issuer in
// status and logs (e.g. "selfSigned", "ca test-ca").
//
// An Issuer may also implement IssuedByChecker; the Manager then reissues
// a stored certificate that this issuer did not sign.
type Issuer interface {
	Issue(ctx context.Context, req *Request) (*Issued, error)
	Name() string
}

// IssuedByChecker is an optional Issuer capability: IssuedBy reports
// whether the stored chain (leaf first) was signed by this issuer as it
// is now (e.g. by the current CA key).
type IssuedByChecker interface {
	IssuedBy(chain []*x509.Certificate) bool
}

// ErrNotReady is wrapped by Issue errors that are expected to go away
// (a CA Secret not created yet): the caller should retry.
var ErrNotReady = errors.New("certs: issuer not ready")

// Request asks for one certificate.
type Request struct {
	CommonName string
	DNSNames   []string
	IPs        []net.IP
	IsCA       bool
	Duration   time.Duration // lifetime; must be positive
	Key        crypto.Signer // the subject's key; the certificate certifies Key.Public()
	Now        time.Time     // NotBefore; zero means time.Now()
}

// Issued is an issued certificate in cert-manager's Secret layout.
type Issued struct {
	// Chain is tls.crt as DER: the leaf, then intermediates. A self-signed
	// root at the top of the chain is left out (RFC 5246 §7.4.2), except
	// when the leaf is itself self-signed.
	Chain [][]byte
	// CA is ca.crt as DER: the top of the chain (the root when known).
	CA       []byte
	NotAfter time.Time
}

// ChainPEM returns tls.crt.
func (is *Issued) ChainPEM() []byte { return encodeCerts(is.Chain...) }

// CAPEM returns ca.crt.
func (is *Issued) CAPEM() []byte { return encodeCerts(is.CA) }

func encodeCerts(ders ...[]byte) []byte {
	var b bytes.Buffer
	for _, d := range ders {
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: d})
	}
	return b.Bytes()
}

// template builds the certificate template for req: a CA certificate, or a
// TLS server leaf (serverAuth) with req's SANs.
func template(req *Request) (*x509.Certificate, error) {
	if req.Key == nil {
		return nil, errors.New("certs: request has no key")
	}
	if req.Duration <= 0 {
		return nil, fmt.Errorf("certs: request duration %v is not positive", req.Duration)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	now := req.Now
	if now.IsZero() {
		now = time.Now()
	}
	// X.509 times have whole seconds: truncate so NotAfter−NotBefore is
	// exactly the requested duration.
	now = now.UTC().Truncate(time.Second)
	t := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: req.CommonName},
		DNSNames:     req.DNSNames,
		IPAddresses:  req.IPs,
		NotBefore:    now,
		NotAfter:     now.Add(req.Duration),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if req.IsCA {
		t.IsCA = true
		t.BasicConstraintsValid = true
		t.KeyUsage |= x509.KeyUsageCertSign | x509.KeyUsageCRLSign
		return t, nil
	}
	if specOf(req.Key.Public()).Algorithm == RSA {
		t.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	return t, nil
}

// SelfSigned signs each certificate with its own key (cert-manager's
// selfSigned issuer): a self-signed leaf, or a root CA.
type SelfSigned struct{}

// Name implements Issuer.
func (SelfSigned) Name() string { return "selfSigned" }

// Issue implements Issuer.
func (SelfSigned) Issue(ctx context.Context, req *Request) (*Issued, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t, err := template(req)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, t, t, req.Key.Public(), req.Key)
	if err != nil {
		return nil, fmt.Errorf("certs: self-sign: %w", err)
	}
	return &Issued{Chain: [][]byte{der}, CA: der, NotAfter: t.NotAfter}, nil
}

// IssuedBy implements IssuedByChecker: the leaf must be self-signed.
func (SelfSigned) IssuedBy(chain []*x509.Certificate) bool {
	return len(chain) == 1 && isSelfSigned(chain[0])
}
