package firmware

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"fmt"
)

// ParsePrivateKey decodes a PEM "PRIVATE KEY" (PKCS #8) ed25519 key, as
// edgebundle keygen (provisioning/bundle.MarshalPrivateKey) and openssl
// genpkey -algorithm ed25519 write it: the key that signs bundles signs
// firmware too.
func ParsePrivateKey(data []byte) (ed25519.PrivateKey, error) {
	blk, _ := pem.Decode(data)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("firmware: private key: want a PEM PRIVATE KEY block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("firmware: private key: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("firmware: private key: %T, want ed25519", k)
	}
	return priv, nil
}
