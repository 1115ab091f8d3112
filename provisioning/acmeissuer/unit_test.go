package acmeissuer

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/acme"

	"edgebroker/provisioning/certs"
)

func itoa(i int) string { return strconv.Itoa(i) }

func TestParseReverseDNS(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want string // "" = not a reverse name
	}{
		{"1.0.0.127.in-addr.arpa", "127.0.0.1"},
		{"4.3.2.192.in-addr.arpa", "192.2.3.4"},
		{"b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.0.0.1.2.3.4.ip6.arpa", "4321:0:1:2:3:4:567:89ab"},
		{"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa", "::1"},
		{"0.0.127.in-addr.arpa", ""},
		{"256.0.0.127.in-addr.arpa", ""},
		{"x.0.0.127.in-addr.arpa", ""},
		{"1.0.0.0.ip6.arpa", ""},
		{"broker.edge.test", ""},
		{"in-addr.arpa", ""},
	} {
		ip, ok := parseReverseDNS(tt.in)
		got := ""
		if ok {
			got = ip.String()
		}
		if got != tt.want {
			t.Errorf("parseReverseDNS(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestServeHTTP(t *testing.T) {
	var c Challenges
	remove := c.addHTTP01("tok-EN_1", "tok-EN_1.thumb")
	for _, tt := range []struct {
		method, path string
		wantCode     int
		wantBody     string
	}{
		{"GET", "/.well-known/acme-challenge/tok-EN_1", 200, "tok-EN_1.thumb"},
		{"HEAD", "/.well-known/acme-challenge/tok-EN_1", 200, ""},
		{"POST", "/.well-known/acme-challenge/tok-EN_1", 404, ""},
		{"GET", "/.well-known/acme-challenge/other", 404, ""},
		{"GET", "/.well-known/acme-challenge/", 404, ""},
		{"GET", "/.well-known/acme-challenge/tok-EN_1/x", 404, ""},
		{"GET", "/.well-known/acme-challenge/../tok-EN_1", 404, ""},
		{"GET", "/.well-known/acme-challenge/" + strings.Repeat("a", maxTokenLen+1), 404, ""},
		{"GET", "/tok-EN_1", 404, ""},
	} {
		rec := httptest.NewRecorder()
		c.ServeHTTP(rec, httptest.NewRequest(tt.method, "http://h"+tt.path, nil))
		if rec.Code != tt.wantCode || tt.wantCode == 200 && rec.Body.String() != tt.wantBody {
			t.Errorf("%s %s: %d %q, want %d %q", tt.method, tt.path, rec.Code, rec.Body, tt.wantCode, tt.wantBody)
		}
	}
	remove()
	rec := httptest.NewRecorder()
	c.ServeHTTP(rec, httptest.NewRequest("GET", "http://h/.well-known/acme-challenge/tok-EN_1", nil))
	if rec.Code != 404 {
		t.Errorf("after removal: %d, want 404", rec.Code)
	}
	if len(c.http) != 0 {
		t.Errorf("registry not empty: %v", c.http)
	}
}

// TestServeHTTPListener serves the registry on a real loopback listener.
func TestServeHTTPListener(t *testing.T) {
	var c Challenges
	defer c.addHTTP01("abc", "abc.xyz")()
	srv := httptest.NewServer(&c)
	defer srv.Close()
	res, err := http.Get(srv.URL + "/.well-known/acme-challenge/abc")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(body) != "abc.xyz" {
		t.Errorf("got %s %q, want 200 %q", res.Status, body, "abc.xyz")
	}
}

// TestSameIdentifierTwice: two issuers validating the same name at once
// each keep their answer until they withdraw it.
func TestSameIdentifierTwice(t *testing.T) {
	var c Challenges
	client := &acme.Client{Key: newKey(t)}
	a, _ := client.TLSALPN01ChallengeCert("a", "x.edge.test")
	b, _ := client.TLSALPN01ChallengeCert("b", "x.edge.test")
	hello := &tls.ClientHelloInfo{ServerName: "x.edge.test", SupportedProtos: []string{ALPNProto}}
	ra := c.addTLSALPN01("x.edge.test", &a)
	rb := c.addTLSALPN01("x.edge.test", &b)
	if got := c.TLSALPN01(hello); got != &b {
		t.Errorf("newest answer not served")
	}
	rb()
	if got := c.TLSALPN01(hello); got != &a {
		t.Errorf("first answer lost when the second was withdrawn")
	}
	ra()
	if got := c.TLSALPN01(hello); got != nil {
		t.Errorf("answer served after both were withdrawn")
	}
}

func TestNew(t *testing.T) {
	good := Config{Server: "https://acme.example/dir", AccountKeyFile: "/perm/acme/k", HTTP01: true, Challenges: new(Challenges)}
	for _, tt := range []struct {
		name    string
		mod     func(*Config)
		wantErr string
	}{
		{"ok", func(*Config) {}, ""},
		{"no server", func(c *Config) { c.Server = "" }, "acme: no server"},
		{"not a URL", func(c *Config) { c.Server = "acme.example/dir" }, "is not an http(s) URL"},
		{"no key file", func(c *Config) { c.AccountKeyFile = "" }, "acme: no account key file"},
		{"no solver", func(c *Config) { c.HTTP01 = false }, "acme: no solver enabled"},
		{"no registry", func(c *Config) { c.Challenges = nil }, "acme: no Challenges registry"},
		{"bad caBundle", func(c *Config) { c.CABundle = []byte("not PEM") }, "acme: caBundle holds no PEM certificate"},
		{"EAB without key", func(c *Config) { c.EAB = &acme.ExternalAccountBinding{KID: "k"} }, "acme: external account binding needs"},
		{"bad email", func(c *Config) { c.Email = "root" }, `acme: email "root" is not an address`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			tt.mod(&cfg)
			is, err := New(cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if got, want := is.Name(), "acme https://acme.example/dir"; got != want {
					t.Errorf("Name: %q, want %q", got, want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New: got %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestIdentifiers(t *testing.T) {
	key := newKey(t)
	for _, tt := range []struct {
		name    string
		req     certs.Request
		want    []acme.AuthzID
		wantErr string
	}{
		{"names and IPs", certs.Request{DNSNames: []string{"A.edge.test", "b.edge.test."}, IPs: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}},
			[]acme.AuthzID{{Type: "dns", Value: "a.edge.test"}, {Type: "dns", Value: "b.edge.test"}, {Type: "ip", Value: "127.0.0.1"}, {Type: "ip", Value: "::1"}}, ""},
		{"duplicates", certs.Request{CommonName: "a.edge.test", DNSNames: []string{"A.edge.test", "a.edge.test"}, IPs: []net.IP{net.ParseIP("::ffff:127.0.0.1"), net.IPv4(127, 0, 0, 1)}},
			[]acme.AuthzID{{Type: "dns", Value: "a.edge.test"}, {Type: "ip", Value: "127.0.0.1"}}, ""},
		{"common name added", certs.Request{CommonName: "cn.edge.test", IPs: []net.IP{net.ParseIP("127.0.0.1")}},
			[]acme.AuthzID{{Type: "dns", Value: "cn.edge.test"}, {Type: "ip", Value: "127.0.0.1"}}, ""},
		{"IP common name", certs.Request{CommonName: "127.0.0.1"}, []acme.AuthzID{{Type: "ip", Value: "127.0.0.1"}}, ""},
		{"CA", certs.Request{DNSNames: []string{"a"}, IsCA: true}, nil, "does not issue CA certificates"},
		{"no names", certs.Request{}, nil, "no DNS name or IP address"},
		{"bad IP", certs.Request{IPs: []net.IP{{1, 2}}}, nil, "bad IP address"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.Key = key
			got, _, err := identifiers(&tt.req)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("got %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("identifiers (-want +got):\n%s", d)
			}
		})
	}
}

// TestAccountKeyFile: a broken key file fails Issue with the file named,
// before any network use; a good one is reused as is.
func TestAccountKeyFile(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.key")
	if err := os.WriteFile(bad, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	is, err := New(Config{Server: "https://127.0.0.1:1/dir", AccountKeyFile: bad, HTTP01: true, Challenges: new(Challenges)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = is.Issue(context.Background(), &certs.Request{DNSNames: []string{"a.edge.test"}, Key: newKey(t), Duration: time.Hour})
	if err == nil || !strings.HasPrefix(err.Error(), "acme: account key "+bad+": ") {
		t.Errorf("Issue: got %v, want an error naming %s", err, bad)
	}

	fresh := filepath.Join(dir, "sub", "acct.key")
	k1, created, err := loadOrCreateKey(fresh)
	if err != nil || !created {
		t.Fatalf("loadOrCreateKey(new): created %v, %v", created, err)
	}
	k2, created, err := loadOrCreateKey(fresh)
	if err != nil || created {
		t.Fatalf("loadOrCreateKey(existing): created %v, %v", created, err)
	}
	if !k1.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(k2.Public()) {
		t.Error("reloaded key differs")
	}
	if fi, err := os.Stat(filepath.Dir(fresh)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("key directory: %v %v, want mode 0700", fi.Mode(), err)
	}

	// A key file readable by others is tightened to 0600.
	if err := os.Chmod(fresh, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := loadOrCreateKey(fresh); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(fresh); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v %v, want mode 0600", fi.Mode(), err)
	}
}

func TestIssuedBy(t *testing.T) {
	is, err := New(Config{Server: "https://acme.example/dir", AccountKeyFile: "k", HTTP01: true, Challenges: new(Challenges)})
	if err != nil {
		t.Fatal(err)
	}
	self := selfSignedCert("a.edge.test")
	leaf, err := x509.ParseCertificate(self.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if is.IssuedBy([]*x509.Certificate{leaf}) {
		t.Error("IssuedBy(self-signed leaf) = true; a Secret switched from selfSigned to ACME would keep it")
	}
	if is.IssuedBy([]*x509.Certificate{leaf, leaf}) {
		t.Error("IssuedBy(self-signed leaf, itself) = true")
	}
	// A CA-issued chain passes: TestRenewal's restart keeps Pebble's.
}

// TestStandaloneTLSConfig: the config for a listener that only answers
// tls-alpn-01 serves pending challenges and refuses everything else.
func TestStandaloneTLSConfig(t *testing.T) {
	var c Challenges
	client := &acme.Client{Key: newKey(t)}
	cert, err := client.TLSALPN01ChallengeCert("tok", "x.edge.test")
	if err != nil {
		t.Fatal(err)
	}
	defer c.addTLSALPN01("x.edge.test", &cert)()
	addr := handshakeServer(t, c.TLSConfig())
	for _, tt := range []struct {
		sni    string
		protos []string
		ok     bool
	}{
		{"x.edge.test", []string{ALPNProto}, true},
		{"y.edge.test", []string{ALPNProto}, false},
		{"x.edge.test", []string{"mqtt"}, false},
		{"x.edge.test", nil, false},
	} {
		conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: tt.sni, NextProtos: tt.protos, InsecureSkipVerify: true})
		if (err == nil) != tt.ok {
			t.Errorf("%s %v: handshake error %v, want success %v", tt.sni, tt.protos, err, tt.ok)
		}
		if err == nil {
			if got := conn.ConnectionState().NegotiatedProtocol; got != ALPNProto {
				t.Errorf("%s: protocol %q", tt.sni, got)
			}
			conn.Close()
		}
	}
}

// handshakeServer serves TLS with cfg on loopback until the test ends:
// each connection is closed after its handshake. It returns the address.
func handshakeServer(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { conn.(*tls.Conn).Handshake(); conn.Close() }()
		}
	}()
	return ln.Addr().String()
}
