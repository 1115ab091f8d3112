package certs

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"

	"edgebroker/provisioning/atomicfile"
)

// The files of a Secret directory, as in a kubernetes.io/tls Secret.
const (
	fileCert = "tls.crt" // leaf, then intermediates (PEM)
	fileKey  = "tls.key" // PKCS #8 PEM, mode 0600
	fileCA   = "ca.crt"  // the CA to trust (PEM)
)

// writeSecret persists an issued certificate and its key in dir, each file
// with atomicfile. The key is written first: a crash between the files
// leaves a tls.crt that does not match tls.key, which loadSecret rejects,
// so the certificate is issued again (with that key, under RotateNever).
func writeSecret(dir string, is *Issued, key crypto.Signer) error {
	keyPEM, err := MarshalKey(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	for _, f := range []struct {
		name string
		data []byte
		perm os.FileMode
	}{
		{fileKey, keyPEM, 0o600},
		{fileCert, is.ChainPEM(), 0o644},
		{fileCA, is.CAPEM(), 0o644},
	} {
		if err := atomicfile.WriteFile(filepath.Join(dir, f.name), f.data, f.perm); err != nil {
			return fmt.Errorf("certs: %w", err)
		}
	}
	return nil
}

// loadSecret reads tls.crt and tls.key from dir. Unlike ParseChain it
// does not apply Manual mode's rules on the chain: it only checks that the
// key matches the leaf.
func loadSecret(dir string) (*tls.Certificate, error) {
	crt, err := os.ReadFile(filepath.Join(dir, fileCert))
	if err != nil {
		return nil, err
	}
	key, err := loadKey(dir)
	if err != nil {
		return nil, err
	}
	chain, err := ParseCerts(crt)
	if err != nil {
		return nil, err
	}
	if !publicKeyOf(key).Equal(chain[0].PublicKey) {
		return nil, ErrKeyMismatch
	}
	return tlsCert(chain, key), nil
}

func loadKey(dir string) (crypto.Signer, error) {
	b, err := os.ReadFile(filepath.Join(dir, fileKey))
	if err != nil {
		return nil, err
	}
	return parseKey(b)
}

func tlsCert(chain []*x509.Certificate, key crypto.Signer) *tls.Certificate {
	c := &tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, x := range chain {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	return c
}
