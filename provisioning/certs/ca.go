package certs

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrNotCA reports a CA Secret whose certificate may not sign others.
var ErrNotCA = errors.New("certs: the CA Secret's certificate is not a CA (needs isCA and the certSign key usage)")

// CA signs certificates with a CA certificate and key (cert-manager's ca
// issuer). Chain is the CA Secret's tls.crt: the CA certificate first,
// then its issuers, if any.
type CA struct {
	Chain []*x509.Certificate
	Key   crypto.Signer
}

// NewCA builds a CA issuer from a kubernetes.io/tls Secret's tls.crt and
// tls.key, as ParseChain checks them.
func NewCA(crtPEM, keyPEM []byte) (*CA, error) {
	c, err := ParseChain(crtPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	return caFrom(c)
}

func caFrom(c *tls.Certificate) (*CA, error) {
	var chain []*x509.Certificate
	for _, der := range c.Certificate {
		x, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, err
		}
		chain = append(chain, x)
	}
	if !chain[0].IsCA || chain[0].KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("%w (%q)", ErrNotCA, chain[0].Subject.CommonName)
	}
	return &CA{Chain: chain, Key: c.PrivateKey.(crypto.Signer)}, nil
}

// Name implements Issuer.
func (ca *CA) Name() string { return "ca " + ca.Chain[0].Subject.CommonName }

// Issue implements Issuer. The leaf may not outlive the CA: its NotAfter
// is capped at the CA's, as cert-manager does.
func (ca *CA) Issue(ctx context.Context, req *Request) (*Issued, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t, err := template(req)
	if err != nil {
		return nil, err
	}
	parent := ca.Chain[0]
	if t.NotAfter.After(parent.NotAfter) {
		t.NotAfter = parent.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, t, parent, req.Key.Public(), ca.Key)
	if err != nil {
		return nil, fmt.Errorf("certs: sign with CA %q: %w", parent.Subject.CommonName, err)
	}
	is := &Issued{Chain: [][]byte{der}, NotAfter: t.NotAfter}
	for _, c := range ca.Chain {
		is.Chain = append(is.Chain, c.Raw)
	}
	top := ca.Chain[len(ca.Chain)-1]
	is.CA = top.Raw
	if isSelfSigned(top) {
		is.Chain = is.Chain[:len(is.Chain)-1]
	}
	return is, nil
}

// IssuedBy implements IssuedByChecker: the leaf must be signed by the
// current CA certificate.
func (ca *CA) IssuedBy(chain []*x509.Certificate) bool {
	return len(chain) > 0 && chain[0].CheckSignatureFrom(ca.Chain[0]) == nil
}

// isSelfSigned reports whether c is signed by its own key (a root CA or a
// self-signed leaf; CheckSignatureFrom refuses the latter).
func isSelfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) &&
		c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil
}

// SecretCA is a CA issuer whose certificate and key are read from a
// Secret directory (tls.crt, tls.key) at each issuance, so a renewed CA
// (e.g. one the Manager rotates) signs from then on. A missing Secret
// yields an error wrapping ErrNotReady and fs.ErrNotExist.
type SecretCA struct {
	Dir        string // the Secret's directory
	SecretName string // for Name and errors
}

// Name implements Issuer.
func (s SecretCA) Name() string { return "ca " + s.SecretName }

func (s SecretCA) load() (*CA, error) {
	crt, err := os.ReadFile(filepath.Join(s.Dir, fileCert))
	if err == nil {
		var key []byte
		if key, err = os.ReadFile(filepath.Join(s.Dir, fileKey)); err == nil {
			var ca *CA
			if ca, err = NewCA(crt, key); err == nil {
				return ca, nil
			}
		}
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, missingCA{s.SecretName, err}
	}
	return nil, fmt.Errorf("CA Secret %s: %w", s.SecretName, err)
}

// missingCA is the error of a SecretCA whose Secret does not exist yet.
type missingCA struct {
	name string
	err  error
}

func (e missingCA) Error() string   { return "CA Secret " + e.name + " does not exist yet" }
func (e missingCA) Unwrap() []error { return []error{ErrNotReady, e.err} }

// Issue implements Issuer.
func (s SecretCA) Issue(ctx context.Context, req *Request) (*Issued, error) {
	ca, err := s.load()
	if err != nil {
		return nil, err
	}
	return ca.Issue(ctx, req)
}

// IssuedBy implements IssuedByChecker.
func (s SecretCA) IssuedBy(chain []*x509.Certificate) bool {
	ca, err := s.load()
	return err == nil && ca.IssuedBy(chain)
}
