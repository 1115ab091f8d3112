package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"
)

// Key algorithms, in cert-manager's spelling.
const (
	RSA     = "RSA"
	ECDSA   = "ECDSA"
	Ed25519 = "Ed25519"
)

// Key rotation policies (cert-manager and AIO spell them alike).
const (
	RotateAlways = "Always" // a new key on each issuance (the default)
	RotateNever  = "Never"  // keep the key across renewals
)

// ErrKeySpec reports a key algorithm or size this package does not issue.
var ErrKeySpec = errors.New("certs: unsupported private key algorithm or size")

// KeySpec names a private key type. Algorithm takes both spellings:
// cert-manager's (RSA with Size 2048, 3072, 4096 or 8192, default 2048;
// ECDSA with Size 256, 384 or 521, default 256; Ed25519) and AIO's
// (Ec256, Ec384, Ec521, Ed25519, Rsa2048, Rsa4096, Rsa8192, with Size 0).
// The zero KeySpec is ECDSA P-256.
type KeySpec struct {
	Algorithm string
	Size      int
}

var aioKeys = map[string]KeySpec{
	"Ec256": {ECDSA, 256}, "Ec384": {ECDSA, 384}, "Ec521": {ECDSA, 521},
	"Rsa2048": {RSA, 2048}, "Rsa4096": {RSA, 4096}, "Rsa8192": {RSA, 8192},
}

var curves = map[int]elliptic.Curve{256: elliptic.P256(), 384: elliptic.P384(), 521: elliptic.P521()}

// Normalize returns k in cert-manager's spelling with defaults filled in:
// {ECDSA 256}, {ECDSA 384}, {ECDSA 521}, {RSA n} or {Ed25519 0}.
func (k KeySpec) Normalize() (KeySpec, error) {
	if a, ok := aioKeys[k.Algorithm]; ok && (k.Size == 0 || k.Size == a.Size) {
		return a, nil
	}
	bad := fmt.Errorf("%w: %s", ErrKeySpec, k)
	switch k.Algorithm {
	case "", ECDSA:
		if k.Size == 0 {
			k.Size = 256
		}
		if curves[k.Size] == nil {
			return KeySpec{}, bad
		}
		return KeySpec{ECDSA, k.Size}, nil
	case RSA:
		switch k.Size {
		case 0:
			return KeySpec{RSA, 2048}, nil
		case 2048, 3072, 4096, 8192:
			return k, nil
		}
	case Ed25519:
		if k.Size == 0 {
			return k, nil
		}
	}
	return KeySpec{}, bad
}

func (k KeySpec) String() string {
	if k.Size == 0 {
		return k.Algorithm
	}
	return k.Algorithm + " " + strconv.Itoa(k.Size)
}

// Generate makes a new key of type k.
func (k KeySpec) Generate() (crypto.Signer, error) {
	n, err := k.Normalize()
	if err != nil {
		return nil, err
	}
	switch n.Algorithm {
	case ECDSA:
		return ecdsa.GenerateKey(curves[n.Size], rand.Reader)
	case RSA:
		return rsa.GenerateKey(rand.Reader, n.Size)
	default:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	}
}

// Matches reports whether key is of type k.
func (k KeySpec) Matches(key crypto.PublicKey) bool {
	n, err := k.Normalize()
	if err != nil {
		return false
	}
	return specOf(key) == n
}

// specOf returns the KeySpec of a public key, or the zero KeySpec.
func specOf(pub crypto.PublicKey) KeySpec {
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		return KeySpec{ECDSA, p.Curve.Params().BitSize}
	case *rsa.PublicKey:
		return KeySpec{RSA, p.N.BitLen()}
	case ed25519.PublicKey:
		return KeySpec{Ed25519, 0}
	}
	return KeySpec{}
}

// MarshalKey encodes key as a PKCS #8 "PRIVATE KEY" PEM block.
func MarshalKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("certs: marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParseKey decodes the first private key PEM block in data (PKCS #8,
// PKCS #1 or SEC 1).
func ParseKey(data []byte) (crypto.Signer, error) { return parseKey(data) }
