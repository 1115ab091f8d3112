package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"edgebroker/broker/testenv"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// issue creates a certificate for subject signed by parent (self-signed if
// parent is nil).
func issue(t *testing.T, subject pkix.Name, isCA bool, parent *testCA) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject,
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  isCA,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key}
}

// verifiedChain verifies leaf against root with intermediates, returning
// the chain leaf first, as a TLS handshake would.
func verifiedChain(t *testing.T, leaf *testCA, root *testCA, inter ...*testCA) []*x509.Certificate {
	t.Helper()
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root.cert)
	for _, c := range inter {
		inters.AddCert(c.cert)
	}
	chains, err := leaf.cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		t.Fatal(err)
	}
	return chains[0]
}

func TestX509Attributes(t *testing.T) {
	root := issue(t, pkix.Name{CommonName: "Contoso Root CA Cert", OrganizationalUnit: []string{"Engineering"}, Country: []string{"US"}}, true, nil)
	inter := issue(t, pkix.Name{CommonName: "Contoso Intermediate CA", Organization: []string{"Contoso"}}, true, root)
	fan := issue(t, pkix.Name{CommonName: "smart-fan"}, false, inter)
	lock := issue(t, pkix.Name{CommonName: "smart-lock"}, false, inter)
	direct := issue(t, pkix.Name{CommonName: "thermostat"}, false, root)

	// As in the AIO docs' x509Settings.authorizationAttributes.
	entries := []SubjectAttributes{
		{Subject: "CN = Contoso Root CA Cert, OU = Engineering, C = US", Attributes: attrs("organization", "contoso")},
		{Subject: "CN = Contoso Intermediate CA, O = Contoso", Attributes: attrs("city", "seattle", "foo", "bar")},
		{Subject: "CN = smart-fan", Attributes: attrs("building", "17")},
		{Subject: "not a DN", Attributes: attrs("bad", "entry")},
	}
	tests := []struct {
		name  string
		chain []*x509.Certificate
		user  string
		want  map[string]string
	}{
		// The leaf matches an entry, so the walk stops there: smart-fan
		// does not also get the intermediate's or the root's attributes.
		{"leaf entry", verifiedChain(t, fan, root, inter), "smart-fan", attrs("building", "17")},
		{"intermediate entry", verifiedChain(t, lock, root, inter), "smart-lock", attrs("city", "seattle", "foo", "bar")},
		{"root entry", verifiedChain(t, direct, root), "thermostat", attrs("organization", "contoso")},
		{"no entry", verifiedChain(t, lock, root, inter)[:1], "smart-lock", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := X509Attributes(tt.chain, entries); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("X509Attributes: got %v, want %v", got, tt.want)
			}
			if got := CNUsername(tt.chain[0]); got != tt.user {
				t.Errorf("CNUsername: got %q, want %q", got, tt.user)
			}
		})
	}
	if got := X509Attributes(nil, entries); got != nil {
		t.Errorf("X509Attributes(nil chain): got %v", got)
	}
	if got := CNUsername(nil); got != "" {
		t.Errorf("CNUsername(nil): got %q", got)
	}

	// The attributes feed authorization: seed 001's "{principal.attributes.building}*".
	pol := mustCompile(t, []Rule{{
		Principals: Principals{Attributes: []map[string]string{{"building": "17"}}},
		Broker:     []BrokerResource{{Method: Connect, ClientIDs: []string{"{principal.attributes.building}*"}}},
	}})
	chain := verifiedChain(t, fan, root, inter)
	p := &Principal{ClientID: "17-fan", Username: CNUsername(chain[0]), Attributes: X509Attributes(chain, entries)}
	if !pol.AllowConnect(p) {
		t.Errorf("AllowConnect(%+v): got false", p)
	}
}

func TestParseDN(t *testing.T) {
	root := "CN = Contoso Root CA Cert, OU = Engineering, C = US"
	same := []string{
		root,
		"CN=Contoso Root CA Cert,OU=Engineering,C=US",
		"C=US, OU=Engineering, CN=Contoso Root CA Cert", // OpenSSL's DER order
		"cn = contoso  root ca cert , ou=ENGINEERING; c=us",
		`CN="Contoso Root CA Cert",OU=Engineering,C=US`,
		`CN=Contoso\20Root CA Cert,OU=Engineering,2.5.4.6=US`,
		"CN=Contoso Root CA Cert+OU=Engineering,OID.2.5.4.6=US",
	}
	want, err := ParseDN(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range same {
		if got, err := ParseDN(s); err != nil || got != want {
			t.Errorf("ParseDN(%q): got %q, %v; want %q", s, got, err, want)
		}
	}
	cert := issue(t, pkix.Name{CommonName: "Contoso Root CA Cert", OrganizationalUnit: []string{"Engineering"}, Country: []string{"US"}}, true, nil).cert
	if got := SubjectDN(cert.Subject); got != want {
		t.Errorf("SubjectDN: got %q, want %q", got, want)
	}

	different := []string{
		"CN = Contoso Root CA Cert, OU = Engineering",
		"CN = Contoso Root CA Cert, OU = Engineering, C = UK",
		"CN = Contoso Root CA Cert, O = Engineering, C = US",
		`CN = Contoso Root CA Cert\, OU = Engineering, C = US`,
	}
	for _, s := range different {
		if got, err := ParseDN(s); err != nil || got == want {
			t.Errorf("ParseDN(%q): got %q, %v; want a different DN", s, got, err)
		}
	}
	escaped, err := ParseDN(`CN=a\,b\+c\\d\"e, O="x, y"`)
	if err != nil {
		t.Fatal(err)
	}
	if got := SubjectDN(pkix.Name{CommonName: `a,b+c\d"e`, Organization: []string{"x, y"}}); got != escaped {
		t.Errorf("escapes: SubjectDN %q != ParseDN %q", got, escaped)
	}

	for _, bad := range []string{"", "  ", "CN", "CN=", "XX=1", "CN=a\\", `CN="abc`, "CN=#04024869", "1..2=x"} {
		if dn, err := ParseDN(bad); err == nil || !strings.HasPrefix(err.Error(), "auth: ") {
			t.Errorf("ParseDN(%q): got %q, %v; want an error", bad, dn, err)
		}
	}
}

// TestParseDNOpenSSL parses the subject line that openssl prints for a
// certificate and compares it with the certificate's subject.
func TestParseDNOpenSSL(t *testing.T) {
	openssl := testenv.NeedTool(t, "openssl")
	cert := issue(t, pkix.Name{CommonName: "Contoso Root CA Cert", OrganizationalUnit: []string{"Engineering"}, Country: []string{"US"}, Locality: []string{"Redmond, WA"}}, true, nil).cert
	file := filepath.Join(t.TempDir(), "cert.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, nameopt := range []string{"oneline", "RFC2253"} {
		out, err := exec.Command(openssl, "x509", "-in", file, "-noout", "-subject", "-nameopt", nameopt).Output()
		if err != nil {
			t.Fatalf("openssl: %v", err)
		}
		line := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), "subject="))
		dn, err := ParseDN(line)
		if err != nil {
			t.Fatalf("ParseDN(%q): %v", line, err)
		}
		if want := SubjectDN(cert.Subject); dn != want {
			t.Errorf("-nameopt %s: ParseDN(%q) = %q, want %q", nameopt, line, dn, want)
		}
	}
}
