package update

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// SecureDevice is a device's firmware receiver (provisioning/fwupdate),
// reached over TLS: PUT /update/firmware with a signed update file. No
// password travels: the update's signature is the authority, and the
// device proves who it is with its certificate, checked against CA (the
// device's DATA/ca.crt) or Fingerprint.
type SecureDevice struct {
	// BaseURL is the device's TLS endpoint, e.g. "https://edgebroker:8443".
	BaseURL string
	// CA holds the certificates the device's certificate must chain to.
	CA *x509.CertPool
	// Fingerprint is the SHA-256 of the device's certificate (DER); when
	// set, that certificate is accepted whatever CA or name it has.
	Fingerprint []byte
	// Timeout bounds the whole upload; 0 means 10 minutes.
	Timeout time.Duration
}

// Outcome is the device's answer to an update (provisioning/fwupdate's
// Attempt).
type Outcome struct {
	Time      time.Time `json:"time"`
	Version   string    `json:"version"`
	Board     string    `json:"board"`
	KeyID     string    `json:"keyId"`
	Installed bool      `json:"installed"`
	Reason    string    `json:"reason"`
	Detail    string    `json:"detail"`
}

// ErrRefused is returned, wrapped with the device's reason, when the
// device refuses an update.
var ErrRefused = errors.New("update: refused by the device")

// ParseFingerprint reads a SHA-256 fingerprint: 64 hex digits, with or
// without colons, optionally after "sha256:".
func ParseFingerprint(s string) ([]byte, error) {
	s = strings.TrimPrefix(strings.ToLower(strings.TrimSpace(s)), "sha256:")
	b, err := hex.DecodeString(strings.ReplaceAll(s, ":", ""))
	if err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("update: fingerprint %q: want the SHA-256 of the certificate, 64 hex digits", s)
	}
	return b, nil
}

// tlsConfig checks the device's certificate against the fingerprint, or
// else the CA.
func (d *SecureDevice) tlsConfig() (*tls.Config, error) {
	switch {
	case d.Fingerprint != nil:
		want := d.Fingerprint
		return &tls.Config{
			MinVersion: tls.VersionTLS12,
			// The pinned fingerprint replaces chain and name checks:
			// VerifyConnection accepts exactly one certificate.
			InsecureSkipVerify: true,
			VerifyConnection: func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 {
					return errors.New("update: the device sent no certificate")
				}
				got := sha256.Sum256(cs.PeerCertificates[0].Raw)
				if !bytes.Equal(got[:], want) {
					return fmt.Errorf("update: the device's certificate has fingerprint %x, want %x", got, want)
				}
				return nil
			},
		}, nil
	case d.CA != nil:
		return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: d.CA}, nil
	}
	return nil, errors.New("update: no CA and no fingerprint to check the device with")
}

// PushSigned sends a signed update (size bytes from r) and returns the
// device's outcome; a refusal is an error wrapping ErrRefused.
func PushSigned(ctx context.Context, d *SecureDevice, r io.Reader, size int64) (*Outcome, error) {
	tc, err := d.tlsConfig()
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(d.BaseURL, "https://") {
		return nil, fmt.Errorf("update: %q: the device must be reached over https", d.BaseURL)
	}
	timeout := d.Timeout
	if timeout == 0 {
		timeout = 10 * time.Minute
	}
	tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: timeout}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, strings.TrimSuffix(d.BaseURL, "/")+"/update/firmware", r)
	if err != nil {
		return nil, err
	}
	req.ContentLength = size
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("update: %w", err)
	}
	defer resp.Body.Close()
	var o Outcome
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("update: reading the answer: %w", err)
	}
	if err := json.Unmarshal(body, &o); err != nil {
		return nil, fmt.Errorf("update: %s: %s", resp.Status, bytes.TrimSpace(body))
	}
	if !o.Installed {
		return &o, fmt.Errorf("%w: %s: %s (%s)", ErrRefused, o.Reason, o.Detail, resp.Status)
	}
	return &o, nil
}
