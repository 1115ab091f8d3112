package pebbletest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/acme"
)

// client returns an ACME client for p with a new account key.
func client(t *testing.T, p *Pebble) *acme.Client {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &acme.Client{Key: key, DirectoryURL: p.DirectoryURL, HTTPClient: p.HTTPClient()}
}

// authorize registers (with eab, if any), orders name and accepts its
// challenge of type typ; it returns the order's URL and the
// authorization's final state.
func authorize(t *testing.T, c *acme.Client, eab *acme.ExternalAccountBinding, name, typ string, answer func(token string)) (string, *acme.Authorization, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.Register(ctx, &acme.Account{ExternalAccountBinding: eab}, acme.AcceptTOS); err != nil {
		t.Fatalf("Register: %v", err)
	}
	o, err := c.AuthorizeOrder(ctx, acme.DomainIDs(name))
	if err != nil {
		t.Fatalf("AuthorizeOrder: %v", err)
	}
	z, err := c.GetAuthorization(ctx, o.AuthzURLs[0])
	if err != nil {
		t.Fatal(err)
	}
	var ch *acme.Challenge
	for _, x := range z.Challenges {
		if x.Type == typ {
			ch = x
		}
	}
	if ch == nil {
		t.Fatalf("no %s challenge in %+v", typ, z.Challenges)
	}
	if answer != nil {
		answer(ch.Token)
	}
	if _, err := c.Accept(ctx, ch); err != nil {
		t.Fatalf("Accept: %v", err)
	}
	z, err = c.WaitAuthorization(ctx, z.URI)
	return o.URI, z, err
}

// TestStart: Pebble validates http-01 on Options.HTTPPort, through the
// DNS server resolving the name to 127.0.0.1; Roots is the root that
// issues its certificates, fetched over CABundlePEM.
func TestStart(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	var keyAuth atomic.Value // string
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ka, _ := keyAuth.Load().(string)
		if ka == "" || r.URL.Path != "/.well-known/acme-challenge/"+strings.SplitN(ka, ".", 2)[0] {
			http.NotFound(w, r)
			return
		}
		hits.Add(1)
		w.Write([]byte(ka))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	p := Start(t, Options{HTTPPort: ln.Addr().(*net.TCPAddr).Port})
	if !strings.HasPrefix(p.DirectoryURL, "https://127.0.0.1:") || !strings.HasSuffix(p.DirectoryURL, "/dir") {
		t.Errorf("DirectoryURL %q", p.DirectoryURL)
	}
	c := client(t, p)
	orderURL, z, err := authorize(t, c, nil, "http.edge.test", "http-01", func(token string) {
		ka, err := c.HTTP01ChallengeResponse(token)
		if err != nil {
			t.Fatal(err)
		}
		keyAuth.Store(ka)
	})
	if err != nil || z.Status != acme.StatusValid {
		t.Fatalf("authorization: %+v, %v; want valid", z, err)
	}
	if hits.Load() == 0 {
		t.Error("authorization valid without Pebble fetching the answer")
	}

	roots, err := p.Roots()
	if err != nil {
		t.Fatalf("Roots: %v", err)
	}
	minica := x509.NewCertPool()
	minica.AppendCertsFromPEM(p.CABundlePEM)
	if roots.Equal(minica) {
		t.Error("Roots is the minica root of Pebble's HTTPS certificate, not the issuing root")
	}
	// The issuing root is Pebble's: ask for a certificate and verify it.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{"http.edge.test"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	o, err := c.WaitOrder(ctx, orderURL)
	if err != nil {
		t.Fatalf("WaitOrder: %v", err)
	}
	der, _, err := c.CreateCertFromOrder(ctx, o, csr, true)
	if err != nil {
		t.Fatalf("finalize: %v", err)
	}
	leaf, _ := x509.ParseCertificate(der[0])
	inter := x509.NewCertPool()
	for _, d := range der[1:] {
		crt, _ := x509.ParseCertificate(d)
		inter.AddCert(crt)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: "http.edge.test"}); err != nil {
		t.Errorf("issued certificate does not verify against Roots: %v", err)
	}
	if got := leaf.NotAfter.Sub(leaf.NotBefore); got > DefaultValidity {
		t.Errorf("lifetime %v, longer than the default profiles'", got)
	}
}

// TestOptions: EAB makes binding required and accepts the key;
// AlwaysValid validates a challenge nobody answers; Profiles are listed
// in the directory.
func TestOptions(t *testing.T) {
	t.Parallel()
	mac := []byte("0123456789abcdef0123456789abcdef")
	p := Start(t, Options{
		AlwaysValid: true,
		EAB:         map[string]string{"kid-1": base64.RawURLEncoding.EncodeToString(mac)},
		Profiles:    map[string]Profile{"tiny": {Validity: time.Hour}},
	})
	res, err := p.HTTPClient().Get(p.DirectoryURL)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var dir struct {
		Meta struct {
			ExternalAccountRequired bool              `json:"externalAccountRequired"`
			Profiles                map[string]string `json:"profiles"`
		} `json:"meta"`
	}
	if err := json.NewDecoder(res.Body).Decode(&dir); err != nil {
		t.Fatal(err)
	}
	if !dir.Meta.ExternalAccountRequired {
		t.Error("directory: externalAccountRequired false")
	}
	if _, ok := dir.Meta.Profiles["tiny"]; !ok || len(dir.Meta.Profiles) != 1 {
		t.Errorf("directory profiles %v, want only tiny", dir.Meta.Profiles)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := client(t, p).Register(ctx, &acme.Account{}, acme.AcceptTOS); err == nil {
		t.Error("registered without external account binding")
	}
	_, z, err := authorize(t, client(t, p), &acme.ExternalAccountBinding{KID: "kid-1", Key: mac}, "unserved.edge.test", "tls-alpn-01", nil)
	if err != nil || z.Status != acme.StatusValid {
		t.Fatalf("authorization with AlwaysValid and nothing answering: %+v, %v; want valid", z, err)
	}
}

// TestUnusedPort: with TLSPort 0, validating tls-alpn-01 fails.
func TestUnusedPort(t *testing.T) {
	t.Parallel()
	p := Start(t, Options{})
	_, _, err := authorize(t, client(t, p), nil, "nowhere.edge.test", "tls-alpn-01", nil)
	var ae *acme.AuthorizationError
	if !errors.As(err, &ae) {
		t.Fatalf("authorization: %v, want it invalid", err)
	}
}

// TestRepoRoot finds the repository from this package's directory and
// reads module lines.
func TestRepoRoot(t *testing.T) {
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "tools", "pebble", "go.mod")); err != nil {
		t.Errorf("repoRoot %s: %v", root, err)
	}

	dir := t.TempDir()
	for _, tt := range []struct {
		gomod, want, wantErr string
	}{
		{"module edgebroker\n\ngo 1.26.0\n", "edgebroker", ""},
		{"// comment\nmodule \"edgebroker\" // quoted\n", "edgebroker", ""},
		{"module edgebroker/tools/pebble\n", "edgebroker/tools/pebble", ""},
		{"modulex edgebroker\n", "", "no module line"},
	} {
		f := filepath.Join(dir, "go.mod")
		if err := os.WriteFile(f, []byte(tt.gomod), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := moduleName(f)
		if got != tt.want || tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("moduleName(%q) = %q, %v; want %q, %q", tt.gomod, got, err, tt.want, tt.wantErr)
		}
	}
}
