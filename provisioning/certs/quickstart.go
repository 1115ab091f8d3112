package certs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"edgebroker/provisioning/atomicfile"
)

// Quick-start root CA parameters.
const (
	QuickStartCommonName = "edgebroker quick-start root CA"
	QuickStartDuration   = 10 * 365 * 24 * time.Hour
)

// QuickStartCA creates (on first start) or loads the quick-start root CA
// kept in dir (tls.crt, tls.key, ca.crt): a self-signed ECDSA P-256 CA
// valid for 10 years. It writes the CA certificate as PEM to exportPath
// (the ca.crt users give to clients, e.g. mosquitto_pub --cafile) and
// returns a CA issuer. A stored CA that cannot be read is an error, not
// silently replaced: clients trust it. An expired one is replaced.
func QuickStartCA(dir, exportPath string, now time.Time) (*CA, error) {
	c, err := loadSecret(dir)
	switch {
	case err == nil && c.Leaf.IsCA && now.Before(c.Leaf.NotAfter):
	case err == nil || errors.Is(err, fs.ErrNotExist):
		key, err := KeySpec{ECDSA, 256}.Generate()
		if err != nil {
			return nil, err
		}
		is, err := SelfSigned{}.Issue(context.Background(), &Request{
			CommonName: QuickStartCommonName,
			IsCA:       true,
			Duration:   QuickStartDuration,
			Key:        key,
			Now:        now,
		})
		if err != nil {
			return nil, err
		}
		if err := writeSecret(dir, is, key); err != nil {
			return nil, err
		}
		if c, err = loadSecret(dir); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("certs: quick-start CA in %s: %w", dir, err)
	}
	if err := os.MkdirAll(filepath.Dir(exportPath), 0o755); err != nil {
		return nil, fmt.Errorf("certs: export quick-start CA: %w", err)
	}
	if err := atomicfile.WriteFile(exportPath, encodeCerts(c.Leaf.Raw), 0o644); err != nil {
		return nil, fmt.Errorf("certs: export quick-start CA: %w", err)
	}
	return caFrom(c)
}
