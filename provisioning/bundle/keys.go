package bundle

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"

	"edgebroker/provisioning/firmware"
)

// GenerateKey returns a new ed25519 signing key.
func GenerateKey() (ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("bundle: generate key: %w", err)
	}
	return priv, nil
}

// KeyID names a public key: the first 8 bytes of its SHA-256, in hex.
// The same keys sign firmware updates: firmware.KeyID is the one
// implementation (image/ shares it and imports nothing else).
func KeyID(pub ed25519.PublicKey) string { return firmware.KeyID(pub) }

// MarshalPrivateKey encodes key as PEM "PRIVATE KEY" (PKCS #8, as openssl
// writes it). Store it with mode 0600.
func MarshalPrivateKey(key ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("bundle: marshal private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParsePrivateKey decodes a key written by MarshalPrivateKey (or openssl
// genpkey -algorithm ed25519): firmware.ParsePrivateKey.
func ParsePrivateKey(data []byte) (ed25519.PrivateKey, error) { return firmware.ParsePrivateKey(data) }

// MarshalPublicKey encodes pub as PEM "PUBLIC KEY" (PKIX).
func MarshalPublicKey(pub ed25519.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err) // cannot fail for an ed25519 key
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// PublicKeyString encodes pub as a base64 one-liner (the raw 32 bytes),
// the form to bake into an image's flags or environment.
func PublicKeyString(pub ed25519.PublicKey) string {
	return base64.StdEncoding.EncodeToString(pub)
}

// ParsePublicKey decodes a PEM "PUBLIC KEY" block or a base64 one-liner of
// the raw 32 bytes (surrounding white space is ignored).
func ParsePublicKey(data []byte) (ed25519.PublicKey, error) {
	if blk, _ := pem.Decode(data); blk != nil {
		if blk.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("bundle: public key: PEM block is %s, want PUBLIC KEY", blk.Type)
		}
		k, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("bundle: public key: %w", err)
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("bundle: public key: %T, want ed25519", k)
		}
		return pub, nil
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(data)))
	if err != nil {
		return nil, fmt.Errorf("bundle: public key: neither PEM nor base64: %v", err)
	}
	if len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("bundle: public key: %d bytes, want %d", len(raw), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(raw), nil
}

// ParsePublicKeys decodes a file of public keys, as a device's -trust flag
// reads it: PEM "PUBLIC KEY" blocks, or base64 one-liners one per line
// (blank lines and # comments skipped). A file without a key is an error.
func ParsePublicKeys(data []byte) ([]ed25519.PublicKey, error) {
	var keys []ed25519.PublicKey
	if strings.Contains(string(data), "-----BEGIN") {
		for {
			blk, rest := pem.Decode(data)
			if blk == nil {
				break
			}
			k, err := ParsePublicKey(pem.EncodeToMemory(blk))
			if err != nil {
				return nil, err
			}
			keys, data = append(keys, k), rest
		}
	} else {
		for i, line := range strings.Split(string(data), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			k, err := ParsePublicKey([]byte(line))
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", i+1, err)
			}
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("no public key in the file")
	}
	return keys, nil
}

// TrustSet is the set of public keys a device accepts bundles from.
type TrustSet []ed25519.PublicKey

// Key returns the key whose KeyID is id, or nil.
func (t TrustSet) Key(id string) ed25519.PublicKey {
	for _, k := range t {
		if KeyID(k) == id {
			return k
		}
	}
	return nil
}

// Contains reports whether pub is in t.
func (t TrustSet) Contains(pub ed25519.PublicKey) bool {
	return slices.ContainsFunc(t, func(k ed25519.PublicKey) bool { return k.Equal(pub) })
}

// Change returns t with enrol added and retire removed (t is not modified).
func (t TrustSet) Change(enrol, retire []ed25519.PublicKey) TrustSet {
	out := TrustSet{}
	for _, k := range slices.Concat(t, enrol) {
		if !out.Contains(k) && !TrustSet(retire).Contains(k) {
			out = append(out, k)
		}
	}
	return out
}

// IDs returns the KeyIDs of t.
func (t TrustSet) IDs() []string {
	ids := make([]string, len(t))
	for i, k := range t {
		ids[i] = KeyID(k)
	}
	return ids
}
