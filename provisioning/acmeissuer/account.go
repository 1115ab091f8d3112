package acmeissuer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"edgebroker/provisioning/atomicfile"
	"edgebroker/provisioning/certs"
)

// maxKeyFileSize bounds the account key file read at startup.
const maxKeyFileSize = 64 << 10

// loadOrCreateKey returns the account key stored in path (PEM: PKCS #8,
// SEC 1 or PKCS #1), or creates an EC P-256 key and stores it there with
// mode 0600. created reports whether the key is new.
func loadOrCreateKey(path string) (key crypto.Signer, created bool, err error) {
	data, err := readBounded(path)
	if err == nil {
		key, err := certs.ParseKey(data)
		if err != nil {
			return nil, false, fmt.Errorf("acme: account key %s: %w", path, err)
		}
		// A key file readable by others (copied in by hand) is tightened.
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(path, 0o600); err != nil {
				return nil, false, fmt.Errorf("acme: account key: %w", err)
			}
		}
		return key, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("acme: account key: %w", err)
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, false, fmt.Errorf("acme: account key: generate: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, false, fmt.Errorf("acme: account key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("acme: account key: %w", err)
	}
	if err := atomicfile.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, false, fmt.Errorf("acme: account key: %w", err)
	}
	return k, true, nil
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > maxKeyFileSize {
		return nil, fmt.Errorf("%s: %d bytes is too large for a key file", path, fi.Size())
	}
	data := make([]byte, fi.Size())
	if _, err := f.ReadAt(data, 0); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return data, nil
}

// httpClient builds the client for the ACME server's API: it trusts
// caBundle (PEM) instead of the system roots when given, or nothing at
// all with skipVerify. Timeouts bound each step; the caller's context
// bounds the whole issuance.
func httpClient(caBundle []byte, skipVerify bool) (*http.Client, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: skipVerify}
	if len(caBundle) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caBundle) {
			return nil, errors.New("acme: caBundle holds no PEM certificate")
		}
		tc.RootCAs = pool
	}
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           dialer.DialContext,
			TLSClientConfig:       tc,
			TLSHandshakeTimeout:   15 * time.Second,
			ResponseHeaderTimeout: 60 * time.Second,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConns:          4,
			ForceAttemptHTTP2:     true,
		},
	}, nil
}
