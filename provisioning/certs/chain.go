// Package certs manages the appliance's TLS server certificates: it checks
// and loads certificate chains from Secrets (Manual mode), and issues,
// persists and renews them (Automatic mode) through an Issuer (SelfSigned,
// CA, SecretCA; ACME later) and a Manager that keeps one directory per
// Secret (tls.crt, tls.key, ca.crt) and swaps renewed certificates into a
// Holder without touching established connections.
package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// Errors returned by ParseChain; each names one problem with a Secret's
// chain so the message can say exactly what to fix.
var (
	ErrNoCertificate  = errors.New("certs: tls.crt holds no PEM certificate")
	ErrNoKey          = errors.New("certs: tls.key holds no PEM private key")
	ErrChainOrder     = errors.New("certs: tls.crt is not in order: the leaf comes first, then each certificate's issuer")
	ErrKeyMismatch    = errors.New("certs: tls.key does not match the leaf certificate in tls.crt")
	ErrMixedAlgorithm = errors.New("certs: the chain mixes key algorithms; every certificate must use the same one (all EC or all RSA)")
)

// ParseChain checks a kubernetes.io/tls Secret's tls.crt (the full chain,
// leaf first, then intermediates) and tls.key, and returns the certificate
// for a tls.Config. It rejects a chain out of order, a key that does not
// match the leaf, and a chain that mixes key algorithms.
func ParseChain(crtPEM, keyPEM []byte) (*tls.Certificate, error) {
	chain, err := ParseCerts(crtPEM)
	if err != nil {
		return nil, err
	}
	for i := 0; i+1 < len(chain); i++ {
		if err := chain[i].CheckSignatureFrom(chain[i+1]); err != nil {
			return nil, fmt.Errorf("%w (certificate %d, %q, is not signed by certificate %d, %q)",
				ErrChainOrder, i+1, chain[i].Subject.CommonName, i+2, chain[i+1].Subject.CommonName)
		}
	}
	alg := algorithm(chain[0].PublicKey)
	for i, c := range chain[1:] {
		if a := algorithm(c.PublicKey); a != alg {
			return nil, fmt.Errorf("%w (the leaf uses %s, certificate %d, %q, uses %s)", ErrMixedAlgorithm, alg, i+2, c.Subject.CommonName, a)
		}
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, err
	}
	if !publicKeyOf(key).Equal(chain[0].PublicKey) {
		return nil, ErrKeyMismatch
	}
	cert := &tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, c := range chain {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	return cert, nil
}

// ParseCerts returns the certificates of PEM data (a tls.crt or ca.crt),
// in order; blocks of other types are skipped. ErrNoCertificate if there
// is none.
func ParseCerts(data []byte) ([]*x509.Certificate, error) {
	var chain []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certs: certificate %d: %w", len(chain)+1, err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil, ErrNoCertificate
	}
	return chain, nil
}

func parseKey(data []byte) (crypto.Signer, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, ErrNoKey
		}
		var k any
		var err error
		switch b.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("certs: tls.key: %w", err)
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("certs: tls.key: unsupported key type %T", k)
		}
		return s, nil
	}
}

type equaler interface{ Equal(crypto.PublicKey) bool }

func publicKeyOf(k crypto.Signer) equaler {
	if e, ok := k.Public().(equaler); ok {
		return e
	}
	return neverEqual{}
}

type neverEqual struct{}

func (neverEqual) Equal(crypto.PublicKey) bool { return false }

// algorithm names a public key's algorithm family.
func algorithm(k any) string {
	switch k.(type) {
	case *ecdsa.PublicKey:
		return "EC"
	case *rsa.PublicKey:
		return "RSA"
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", k)
}
