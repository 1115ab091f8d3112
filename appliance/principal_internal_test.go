package appliance

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"edgebroker/broker"
	"edgebroker/broker/auth"
	"edgebroker/broker/packet"
	"edgebroker/provisioning/certs/certstest"
)

// TestMethodPrincipals: each method names the identity it verified: the
// password-file user, the certificate's subject (whichever trusted CA
// issued it), and for Custom what the server was shown.
func TestMethodPrincipals(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	pw, err := auth.ParsePasswordFile([]byte("alice:" + string(hash) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	res, _ := (&passwordMethod{pw: pw}).authenticate(&broker.Client{},
		&broker.AuthRequest{Username: []byte("alice"), Password: []byte("pw"), HasPassword: true})
	if res.Code != packet.Success || res.Principal != "user:alice" {
		t.Errorf("password: %+v, want principal user:alice", res)
	}

	subject := pkix.Name{CommonName: "sensor-1", Organization: []string{"plant"}}
	var got []string
	for _, caName := range []string{"ca-a", "ca-b"} {
		root := certstest.Root(caName, certstest.EC256)
		leaf := root.Client(subject, time.Now().Add(time.Hour), certstest.EC256)
		c := &broker.Client{TLS: &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf.Cert},
			VerifiedChains: [][]*x509.Certificate{{leaf.Cert, root.Cert}}}}
		res, _ := (&x509Method{}).authenticate(c, &broker.AuthRequest{})
		if res.Code != packet.Success {
			t.Fatalf("x509: %+v", res)
		}
		got = append(got, res.Principal)
		if want := "custom:" + res.Principal; customPrincipal(c, &broker.AuthRequest{}) != want {
			t.Errorf("custom with a certificate: %q, want %q", customPrincipal(c, &broker.AuthRequest{}), want)
		}
	}
	if want := "x509:CN=sensor-1,O=plant"; got[0] != want || got[1] != want {
		t.Errorf("x509 principals %q, want %q for both CAs", got, want)
	}
	if p := customPrincipal(&broker.Client{Port: "l/1883"}, &broker.AuthRequest{Username: []byte("bob")}); p != "custom:user:bob" {
		t.Errorf("custom with a username: %q", p)
	}
	if p := customPrincipal(&broker.Client{Port: "l/1883"}, &broker.AuthRequest{}); p != "custom:port:l/1883" {
		t.Errorf("custom with nothing to name: %q", p)
	}
}
