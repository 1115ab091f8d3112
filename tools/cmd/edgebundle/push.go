package main

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// maxReport bounds the device's answer that push prints.
const maxReport = 1 << 20

// push uploads a bundle to a gateway's status endpoint (POST /bundle,
// served over TLS with edgebroker -status-tls) and prints the report the
// gateway answers with. The gateway is authenticated by -cacert (its
// DATA/ca.crt), by -pin (the SHA-256 of a certificate it presents, its
// own or its CA's), or by the system's roots; never by nothing.
func (c *cmd) push(args []string) error {
	fl := flag.NewFlagSet("push", flag.ContinueOnError)
	caFile := fl.String("cacert", "", "trust the gateway's certificate if this CA signed it (the gateway's DATA/ca.crt, or edgebroker-ca.crt from a stick's report)")
	pin := fl.String("pin", "", "trust the gateway if it presents a certificate (its own or its CA's) with this SHA-256 fingerprint (hex, colons allowed)")
	asJSON := fl.Bool("json", false, "ask for the JSON report instead of the text one")
	timeout := fl.Duration("timeout", 5*time.Minute, "give up after this long")
	var pos []string
	fl.SetOutput(c.stderr)
	for {
		if err := fl.Parse(args); err != nil {
			return err
		}
		if fl.NArg() == 0 {
			break
		}
		pos = append(pos, fl.Arg(0))
		args = fl.Args()[1:]
	}
	if len(pos) != 2 {
		return fmt.Errorf("%w: want https://GATEWAY:PORT and FILE, got %d arguments", errUsage, len(pos))
	}
	target, err := bundleURL(pos[0])
	if err != nil {
		return err
	}
	tc, err := pushTLS(*caFile, *pin)
	if err != nil {
		return err
	}
	f, err := os.Open(pos[1])
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	req, err := http.NewRequest(http.MethodPost, target, f)
	if err != nil {
		return err
	}
	req.ContentLength = fi.Size()
	req.Header.Set("Content-Type", "application/octet-stream")
	// The gateway answers a bundle it refuses unread (too large, busy)
	// before the body is sent.
	req.Header.Set("Expect", "100-continue")
	if *asJSON {
		req.Header.Set("Accept", "application/json")
	}
	client := &http.Client{Timeout: *timeout, Transport: &http.Transport{
		TLSClientConfig: tc, ExpectContinueTimeout: 10 * time.Second,
	}}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	report, err := io.ReadAll(io.LimitReader(resp.Body, maxReport))
	if err != nil {
		return fmt.Errorf("reading the gateway's report: %w", err)
	}
	c.stdout.Write(report)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: the gateway did not apply the bundle: %s", pos[1], resp.Status)
	}
	return nil
}

// bundleURL is the gateway's POST /bundle URL from https://HOST:PORT (a
// path other than / or /bundle is an error). Plain http is refused: the
// bundle carries the configuration's secrets.
func bundleURL(s string) (string, error) {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "", fmt.Errorf("%w: %v", errUsage, err)
	case u.Scheme != "https":
		return "", fmt.Errorf("%w: %q: want https://GATEWAY:PORT (the gateway's -status address with -status-tls): a bundle carries secrets, never sent in the clear", errUsage, s)
	case u.Host == "":
		return "", fmt.Errorf("%w: %q: no host", errUsage, s)
	}
	switch u.Path {
	case "", "/":
		u.Path = "/bundle"
	case "/bundle":
	default:
		return "", fmt.Errorf("%w: %q: want https://GATEWAY:PORT, without a path", errUsage, s)
	}
	return u.String(), nil
}

// pushTLS is the client configuration that authenticates the gateway:
// the CA in caFile (with the host name checked), the pinned fingerprint,
// both, or else the system's roots.
func pushTLS(caFile, pin string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pemData, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemData) {
			return nil, fmt.Errorf("%s: no PEM certificate", caFile)
		}
		tc.RootCAs = pool
	}
	if pin == "" {
		return tc, nil
	}
	want, err := parsePin(pin)
	if err != nil {
		return nil, err
	}
	// With a pin alone crypto/tls checks neither chain nor name:
	// VerifyConnection does, on every handshake, with the pinned
	// certificate as the only root.
	tc.InsecureSkipVerify = caFile == ""
	tc.VerifyConnection = func(cs tls.ConnectionState) error { return verifyPin(cs.PeerCertificates, want) }
	return tc, nil
}

// verifyPin accepts a gateway whose chain holds the certificate whose
// SHA-256 is want: its own (the leaf), or a CA that the leaf chains to
// (presenting a CA's certificate, which is public, proves nothing by
// itself). The host name is not checked: the pin names the gateway.
func verifyPin(chain []*x509.Certificate, want []byte) error {
	var seen []string
	for i, cert := range chain {
		sum := sha256.Sum256(cert.Raw)
		if !bytes.Equal(sum[:], want) {
			seen = append(seen, hex.EncodeToString(sum[:]))
			continue
		}
		if i == 0 {
			return nil
		}
		roots, inter := x509.NewCertPool(), x509.NewCertPool()
		roots.AddCert(cert)
		for _, c := range chain[1:i] {
			inter.AddCert(c)
		}
		_, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		if err != nil {
			return fmt.Errorf("the gateway's certificate does not chain to the pinned one (SHA-256 %x): %w", want, err)
		}
		return nil
	}
	return fmt.Errorf("the gateway presents no certificate with SHA-256 %x (it presents %s)", want, strings.Join(seen, ", "))
}

// parsePin reads a SHA-256 fingerprint: 64 hex digits, colons allowed (as
// openssl x509 -fingerprint -sha256 prints it).
func parsePin(s string) ([]byte, error) {
	b, err := hex.DecodeString(strings.ReplaceAll(strings.TrimPrefix(strings.TrimSpace(s), "sha256 Fingerprint="), ":", ""))
	if err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("%w: -pin %q: want a SHA-256 fingerprint, 64 hex digits", errUsage, s)
	}
	return b, nil
}
