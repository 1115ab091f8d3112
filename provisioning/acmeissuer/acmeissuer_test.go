package acmeissuer

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/acme"

	"edgebroker/broker/testenv"
	"edgebroker/provisioning/acmeissuer/pebbletest"
	"edgebroker/provisioning/certs"
)

var loopback = net.IPv4(127, 0, 0, 1)

// testLogger logs to t, and to a buffer the test can search.
func testLogger(t *testing.T, buf *lockedBuffer) *slog.Logger {
	w := &tWriter{t: t, buf: buf}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct {
	t   *testing.T
	buf *lockedBuffer
}

func (w *tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Logf("%s", bytes.TrimSuffix(p, []byte("\n")))
	if w.buf != nil {
		w.buf.Write(p)
	}
	return len(p), nil
}

// newIssuer returns an issuer for e's Pebble with an account key in a new
// directory, changed by mod.
func newIssuer(t *testing.T, e *pebbleEnv, mod func(*Config)) *Issuer {
	t.Helper()
	cfg := Config{
		Server:         e.ca.DirectoryURL,
		Email:          "ops@edge.test",
		AccountKeyFile: filepath.Join(t.TempDir(), "acme", "account.key"),
		CABundle:       e.ca.CABundlePEM,
		TLSALPN01:      true,
		Challenges:     e.challenges,
		Logger:         testLogger(t, nil),
	}
	if mod != nil {
		mod(&cfg)
	}
	is, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return is
}

func newKey(t *testing.T) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func issue(t *testing.T, is *Issuer, req *certs.Request) *certs.Issued {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, err := is.Issue(ctx, req)
	if err != nil {
		t.Fatalf("Issue(%v %v): %v", req.DNSNames, req.IPs, err)
	}
	return got
}

// verify checks that iss chains to Pebble's issuing root, is for key and
// is valid for exactly names and ips; it returns the leaf.
func verify(t *testing.T, p *pebbletest.Pebble, iss *certs.Issued, key crypto.Signer, names []string, ips []net.IP) *x509.Certificate {
	t.Helper()
	var chain []*x509.Certificate
	for i, der := range iss.Chain {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatalf("chain[%d]: %v", i, err)
		}
		chain = append(chain, c)
	}
	if len(chain) < 2 {
		t.Fatalf("chain has %d certificates, want the leaf and an intermediate", len(chain))
	}
	leaf := chain[0]
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	roots, err := p.Roots()
	if err != nil {
		t.Fatalf("Pebble roots: %v", err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter}); err != nil {
		t.Errorf("leaf does not verify against Pebble's issuing root: %v", err)
	}
	if !key.Public().(*ecdsa.PublicKey).Equal(leaf.PublicKey) {
		t.Errorf("leaf is for another key")
	}
	if got, want := leaf.NotAfter, iss.NotAfter; !got.Equal(want) {
		t.Errorf("NotAfter: got %v, want the leaf's %v", want, got)
	}
	if !bytes.Equal(iss.CA, iss.Chain[len(iss.Chain)-1]) {
		t.Errorf("CA is not the top of the chain")
	}
	for _, n := range names {
		if err := leaf.VerifyHostname(n); err != nil {
			t.Errorf("leaf: %v", err)
		}
	}
	for _, ip := range ips {
		if err := leaf.VerifyHostname(ip.String()); err != nil {
			t.Errorf("leaf: %v", err)
		}
	}
	if len(leaf.DNSNames) != len(names) || len(leaf.IPAddresses) != len(ips) {
		t.Errorf("leaf SANs %v %v, want %v %v", leaf.DNSNames, leaf.IPAddresses, names, ips)
	}
	return leaf
}

func (e *pebbleEnv) pending() int {
	e.challenges.mu.RLock()
	defer e.challenges.mu.RUnlock()
	return len(e.challenges.http) + len(e.challenges.alpn)
}

// TestIssue issues a certificate for a DNS name and an IP address with
// each solver against Pebble, which validates on the ports where the
// test serves Challenges.
func TestIssue(t *testing.T) {
	e := needPebble(t, pebbletest.Options{})
	for _, tt := range []struct {
		name              string
		http01, tlsalpn01 bool
		names             []string
		ips               []net.IP
		wantALPN          bool
	}{
		{"tls-alpn-01", false, true, []string{"broker.edge.test"}, []net.IP{loopback}, true},
		{"http-01", true, false, []string{"broker.edge.test", "mqtt.edge.test"}, []net.IP{loopback}, false},
		{"both enabled: tls-alpn-01 preferred", true, true, []string{"gw.edge.test"}, nil, true},
		{"IP only via tls-alpn-01", false, true, nil, []net.IP{loopback}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			is := newIssuer(t, e, func(c *Config) { c.HTTP01, c.TLSALPN01 = tt.http01, tt.tlsalpn01 })
			key := newKey(t)
			http0, alpn0 := e.httpHits.Load(), e.alpnHits.Load()
			iss := issue(t, is, &certs.Request{DNSNames: tt.names, IPs: tt.ips, Key: key, Duration: time.Hour})
			verify(t, e.ca, iss, key, tt.names, tt.ips)
			dHTTP, dALPN := e.httpHits.Load()-http0, e.alpnHits.Load()-alpn0
			if tt.wantALPN && (dALPN == 0 || dHTTP != 0) || !tt.wantALPN && (dHTTP == 0 || dALPN != 0) {
				t.Errorf("answers served: %d http-01, %d tls-alpn-01; want only %s", dHTTP, dALPN, map[bool]string{true: "tls-alpn-01", false: "http-01"}[tt.wantALPN])
			}
			if n := e.pending(); n != 0 {
				t.Errorf("%d challenge answers left in the registry after Issue", n)
			}
		})
	}
}

// TestValidationFails: when the CA cannot validate (the answer is not
// served), Issue fails naming the identifier, the challenge and the CA's
// problem, withdraws the answer and deactivates the authorization.
func TestValidationFails(t *testing.T) {
	e := needPebble(t, pebbletest.Options{})
	unserved := new(Challenges) // not mounted on any listener
	is := newIssuer(t, e, func(c *Config) { c.HTTP01, c.TLSALPN01, c.Challenges = true, false, unserved })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := is.Issue(ctx, &certs.Request{DNSNames: []string{"unserved.edge.test"}, Key: newKey(t), Duration: time.Hour})
	t.Logf("Issue: %v", err)
	const want = "acme: http-01 challenge for dns:unserved.edge.test failed: authorization invalid; http-01: "
	if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "404") {
		t.Fatalf("Issue: got %v, want %q… naming the 404", err, want)
	}
	if len(unserved.http) != 0 {
		t.Errorf("answer not withdrawn after the failure")
	}
}

// TestAuthorizationReused: with a CA that reuses valid authorizations,
// the next order for the same names needs no challenge.
func TestAuthorizationReused(t *testing.T) {
	e := needPebble(t, pebbletest.Options{AuthzReuse: 100})
	is := newIssuer(t, e, nil)
	req := func() *certs.Request {
		return &certs.Request{DNSNames: []string{"reuse.edge.test"}, IPs: []net.IP{loopback}, Key: newKey(t), Duration: time.Hour}
	}
	issue(t, is, req())
	alpn0 := e.alpnHits.Load()
	r := req()
	verify(t, e.ca, issue(t, is, r), r.Key, r.DNSNames, r.IPs)
	if d := e.alpnHits.Load() - alpn0; d != 0 {
		t.Errorf("%d challenge answers served for reused authorizations, want 0", d)
	}
}

// TestIssueCommonName: the common name is ordered too, first, and
// Pebble's default profile (configured like Let's Encrypt's classic one)
// puts it in the subject.
func TestIssueCommonName(t *testing.T) {
	e := needPebble(t, pebbletest.Options{})
	is := newIssuer(t, e, func(c *Config) { c.Profile = "default" })
	key := newKey(t)
	iss := issue(t, is, &certs.Request{CommonName: "cn.edge.test", DNSNames: []string{"san.edge.test"}, Key: key, Duration: time.Hour})
	leaf := verify(t, e.ca, iss, key, []string{"san.edge.test", "cn.edge.test"}, nil)
	if got, want := leaf.Subject.CommonName, "cn.edge.test"; got != want {
		t.Errorf("CommonName: got %q, want %q", got, want)
	}
}

// TestAccountPersisted: the account key is created with mode 0600 and a
// second issuer on the same file (a restart) uses the same account.
func TestAccountPersisted(t *testing.T) {
	e := needPebble(t, pebbletest.Options{})
	keyFile := filepath.Join(t.TempDir(), "acme", "account.key")
	withFile := func(f string) func(*Config) { return func(c *Config) { c.AccountKeyFile = f } }
	is1 := newIssuer(t, e, withFile(keyFile))
	if is1.AccountURL() != "" {
		t.Errorf("AccountURL before the first Issue: %q, want none", is1.AccountURL())
	}
	issue(t, is1, &certs.Request{DNSNames: []string{"a.edge.test"}, Key: newKey(t), Duration: time.Hour})
	url1 := is1.AccountURL()
	if url1 == "" {
		t.Fatal("no account URL after Issue")
	}
	fi, err := os.Stat(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("account key mode %v, want 0600", got)
	}
	key1, _ := os.ReadFile(keyFile)

	is2 := newIssuer(t, e, withFile(keyFile))
	key := newKey(t)
	iss := issue(t, is2, &certs.Request{DNSNames: []string{"b.edge.test"}, Key: key, Duration: time.Hour})
	verify(t, e.ca, iss, key, []string{"b.edge.test"}, nil)
	if got := is2.AccountURL(); got != url1 {
		t.Errorf("restarted issuer uses account %q, want the first one %q", got, url1)
	}
	if key2, _ := os.ReadFile(keyFile); !bytes.Equal(key1, key2) {
		t.Errorf("account key file was rewritten")
	}

	// Another key file is another account: the check above can fail.
	is3 := newIssuer(t, e, nil)
	if _, err := is3.account(context.Background()); err != nil {
		t.Fatal(err)
	}
	if is3.AccountURL() == url1 {
		t.Errorf("a new key file got the same account %q", url1)
	}
}

// TestAccountKeyNotLogged: logs name the account and the order, never
// key material.
func TestAccountKeyNotLogged(t *testing.T) {
	e := needPebble(t, pebbletest.Options{})
	var logs lockedBuffer
	keyFile := filepath.Join(t.TempDir(), "account.key")
	is := newIssuer(t, e, func(c *Config) { c.AccountKeyFile = keyFile; c.Logger = testLogger(t, &logs) })
	key := newKey(t)
	issue(t, is, &certs.Request{DNSNames: []string{"logs.edge.test"}, Key: key, Duration: time.Hour})
	acct, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	acctKey, err := certs.ParseKey(acct)
	if err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if !strings.Contains(out, is.AccountURL()) {
		t.Errorf("logs do not name the account %s:\n%s", is.AccountURL(), out)
	}
	for name, k := range map[string]crypto.Signer{"account": acctKey, "certificate": key} {
		d, err := k.(*ecdsa.PrivateKey).Bytes()
		if err != nil {
			t.Fatal(err)
		}
		d = bytes.TrimLeft(d, "\x00") // as big.Int.Bytes had it
		for _, enc := range []string{string(acct), base64.StdEncoding.EncodeToString(d), base64.RawURLEncoding.EncodeToString(d), new(big.Int).SetBytes(d).String()} {
			if strings.Contains(out, strings.TrimSpace(enc)) {
				t.Errorf("logs contain the %s private key", name)
			}
		}
	}
}

// TestProfile orders with the shortlived profile: Pebble applies its
// validity; an unknown profile fails with a message naming it.
func TestProfile(t *testing.T) {
	e := needPebble(t, pebbletest.Options{})
	is := newIssuer(t, e, func(c *Config) { c.Profile = "shortlived" })
	key := newKey(t)
	iss := issue(t, is, &certs.Request{DNSNames: []string{"short.edge.test"}, Key: key, Duration: time.Hour})
	leaf := verify(t, e.ca, iss, key, []string{"short.edge.test"}, nil)
	if got := leaf.NotAfter.Sub(leaf.NotBefore); got < shortlivedValidity-time.Minute || got > shortlivedValidity {
		t.Errorf("lifetime %v, want the shortlived profile's %v", got, shortlivedValidity)
	}

	bad := newIssuer(t, e, func(c *Config) { c.Profile = "no-such-profile" })
	_, err := bad.Issue(context.Background(), &certs.Request{DNSNames: []string{"x.edge.test"}, Key: key, Duration: time.Hour})
	if err == nil || !strings.Contains(err.Error(), "no-such-profile") || !strings.HasPrefix(err.Error(), "acme: new order") {
		t.Errorf("unknown profile: got %v, want an order error naming it", err)
	}
}

// TestExternalAccountBinding registers with a Pebble that requires EAB.
func TestExternalAccountBinding(t *testing.T) {
	mac := []byte("0123456789abcdef0123456789abcdef")
	e := needPebble(t, pebbletest.Options{EAB: map[string]string{"kid-1": base64.RawURLEncoding.EncodeToString(mac)}})
	dirURL := e.ca.DirectoryURL

	for _, tt := range []struct {
		name    string
		eab     *acme.ExternalAccountBinding
		wantErr string
	}{
		{"bound", &acme.ExternalAccountBinding{KID: "kid-1", Key: mac}, ""},
		{"missing", nil, "acme: register account at " + dirURL},
		{"wrong key", &acme.ExternalAccountBinding{KID: "kid-1", Key: []byte("another key of thirty-two bytes!")}, "acme: register account at " + dirURL},
	} {
		t.Run(tt.name, func(t *testing.T) {
			is := newIssuer(t, e, func(c *Config) { c.EAB = tt.eab })
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := is.account(ctx)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.wantErr)) {
				t.Errorf("account: got %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// TestUnreachable: a server that refuses connections fails at once with
// the step and URL named; one that never answers fails when ctx ends.
func TestUnreachable(t *testing.T) {
	refused := "https://127.0.0.1:" + itoa(testenv.FreePort(t)) + "/dir"

	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()

	for _, tt := range []struct {
		name    string
		server  string
		timeout time.Duration
		prefix  string
		is      error
	}{
		{"refused", refused, 30 * time.Second, "acme: directory " + refused + ": ", syscall.ECONNREFUSED},
		{"silent", "https://" + silent.Addr().String() + "/dir", 300 * time.Millisecond, "acme: directory https://" + silent.Addr().String() + "/dir: ", context.DeadlineExceeded},
	} {
		t.Run(tt.name, func(t *testing.T) {
			is, err := New(Config{Server: tt.server, AccountKeyFile: filepath.Join(t.TempDir(), "k"), TLSALPN01: true,
				Challenges: new(Challenges), Logger: testLogger(t, nil)})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
			defer cancel()
			start := time.Now()
			_, err = is.Issue(ctx, &certs.Request{DNSNames: []string{"a.edge.test"}, Key: newKey(t), Duration: time.Hour})
			t.Logf("Issue: %v", err)
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("Issue took %v", took)
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.prefix) || !errors.Is(err, tt.is) {
				t.Errorf("Issue: got %v, want %q… wrapping %v", err, tt.prefix, tt.is)
			}
		})
	}
}

// TestRenewal runs a certificate through certs.Manager as the appliance
// does for ACME: Schedule, then Run issues it; after a restart the stored
// certificate is kept; when it is due, Run renews it with a new one.
func TestRenewal(t *testing.T) {
	e := needPebble(t, pebbletest.Options{})
	// Pebble picks a random profile for orders without one.
	is := newIssuer(t, e, func(c *Config) { c.Profile = "default" })
	dir := t.TempDir()
	var offset atomic.Int64 // the Managers' clock runs ahead by this
	issued := make(chan string, 4)
	newManager := func() *certs.Manager {
		return &certs.Manager{
			Dir:    dir,
			Now:    func() time.Time { return time.Now().Add(time.Duration(offset.Load())) },
			Logger: testLogger(t, nil),
			Issued: func(name string) {
				offset.Store(0) // back to now before Run looks for due certificates again
				select {
				case issued <- name:
				default:
				}
			},
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// run runs m until a certificate was issued.
	run := func(m *certs.Manager) *tls.Certificate {
		t.Helper()
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- m.Run(runCtx) }()
		defer func() { stop(); <-done }()
		select {
		case <-issued:
		case <-ctx.Done():
			st, _ := m.Status("mqtt")
			t.Fatalf("nothing issued within 30 s; status %+v", st)
		}
		return m.Holder("mqtt").Load()
	}
	spec := certs.Spec{DNSNames: []string{"renew.edge.test"}, IPs: []net.IP{loopback}}

	m := newManager()
	if c, err := m.Schedule("mqtt", spec, is); c != nil || err != nil {
		t.Fatalf("Schedule with nothing stored: %v, %v; want nil, nil", c, err)
	}
	c1 := run(m)
	verify(t, e.ca, &certs.Issued{Chain: c1.Certificate, CA: c1.Certificate[len(c1.Certificate)-1], NotAfter: c1.Leaf.NotAfter},
		c1.PrivateKey.(crypto.Signer), spec.DNSNames, spec.IPs)

	// A restart keeps the stored certificate: the ACME leaf matches the spec.
	m = newManager()
	c2, err := m.Schedule("mqtt", spec, is)
	if err != nil || c2 == nil {
		t.Fatalf("Schedule after restart: %v, %v", c2, err)
	}
	if c2.Leaf.SerialNumber.Cmp(c1.Leaf.SerialNumber) != 0 {
		t.Errorf("restart did not load the stored certificate")
	}
	st, _ := m.Status("mqtt")
	if !st.NextRenewal.After(time.Now().Add(time.Hour)) {
		t.Fatalf("stored ACME certificate is due at once (NextRenewal %v): does the leaf match the spec?", st.NextRenewal)
	}

	// Due: Schedule marks it, Run renews it.
	offset.Store(int64(time.Until(st.NextRenewal) + time.Hour))
	if c, err := m.Schedule("mqtt", spec, is); c == nil || err != nil {
		t.Fatalf("Schedule when due: %v, %v; want the stored certificate", c, err)
	}
	c3 := run(m)
	if c3.Leaf.SerialNumber.Cmp(c1.Leaf.SerialNumber) == 0 {
		t.Fatal("renewal kept the old certificate")
	}
	verify(t, e.ca, &certs.Issued{Chain: c3.Certificate, CA: c3.Certificate[len(c3.Certificate)-1], NotAfter: c3.Leaf.NotAfter},
		c3.PrivateKey.(crypto.Signer), spec.DNSNames, spec.IPs)
	crt, err := os.ReadFile(filepath.Join(m.SecretDir("mqtt"), "tls.crt"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(filepath.Join(m.SecretDir("mqtt"), "tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	stored, err := certs.ParseChain(crt, key)
	if err != nil {
		t.Fatalf("stored Secret: %v", err)
	}
	if stored.Leaf.SerialNumber.Cmp(c3.Leaf.SerialNumber) != 0 {
		t.Errorf("stored certificate is not the renewed one")
	}
	if st, _ := m.Status("mqtt"); st.LastError != nil {
		t.Errorf("Status.LastError: %v", st.LastError)
	}
}

// TestMQTTPortHandshakes: on a TLS port configured like the MQTT port,
// only acme-tls/1 handshakes for a pending identifier get the challenge
// certificate; MQTT clients are not affected.
func TestMQTTPortHandshakes(t *testing.T) {
	var c Challenges
	var hits atomic.Int64
	base := selfSignedCert("mqtt.edge.test")
	addr := handshakeServer(t, mqttPortConfig(&c, base, &hits))
	client := &acme.Client{Key: newKey(t)}
	nameCert, err := client.TLSALPN01ChallengeCert("token-a", "broker.edge.test")
	if err != nil {
		t.Fatal(err)
	}
	ipCert, err := client.TLSALPN01ChallengeCert("token-b", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	removeName := c.addTLSALPN01("Broker.Edge.Test.", &nameCert)
	removeIP := c.addTLSALPN01("127.0.0.1", &ipCert)

	for _, tt := range []struct {
		name      string
		sni       string
		protos    []string
		wantProto string
		wantLeaf  *tls.Certificate // nil: the handshake fails
	}{
		{"acme-tls/1 for a pending name", "broker.edge.test", []string{ALPNProto}, ALPNProto, &nameCert},
		{"acme-tls/1 for a pending IP (RFC 8738 reverse name)", "1.0.0.127.in-addr.arpa", []string{ALPNProto}, ALPNProto, &ipCert},
		{"acme-tls/1 without SNI: the local address", "", []string{ALPNProto}, ALPNProto, &ipCert},
		{"mqtt client for the same name", "broker.edge.test", []string{"mqtt"}, "mqtt", base},
		{"no ALPN", "broker.edge.test", nil, "", base},
		{"acme-tls/1 among others", "broker.edge.test", []string{"mqtt", ALPNProto}, "mqtt", base},
		{"acme-tls/1 for a name without challenge", "other.edge.test", []string{ALPNProto}, "", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: tt.sni, NextProtos: tt.protos, InsecureSkipVerify: true})
			if tt.wantLeaf == nil {
				if err == nil {
					conn.Close()
					t.Fatal("handshake succeeded, want it to fail")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			cs := conn.ConnectionState()
			if cs.NegotiatedProtocol != tt.wantProto {
				t.Errorf("protocol %q, want %q", cs.NegotiatedProtocol, tt.wantProto)
			}
			if !bytes.Equal(cs.PeerCertificates[0].Raw, tt.wantLeaf.Certificate[0]) {
				t.Errorf("got certificate for %v %v, want the other one", cs.PeerCertificates[0].DNSNames, cs.PeerCertificates[0].IPAddresses)
			}
		})
	}

	removeName()
	removeIP()
	if len(c.alpn) != 0 {
		t.Errorf("registry not empty after removal: %v", c.alpn)
	}
	conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "broker.edge.test", NextProtos: []string{ALPNProto}, InsecureSkipVerify: true})
	if err == nil {
		conn.Close()
		t.Error("challenge answered after it was removed")
	}
}
