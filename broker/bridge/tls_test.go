package bridge_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"edgebroker/broker/bridge"
	"edgebroker/broker/brokertest"
	"edgebroker/broker/testenv"
)

// testCA is a certificate authority for a test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a leaf's certificate and key in PEM: a server's for
// 127.0.0.1, or a client's.
func (ca *testCA) issue(t *testing.T, name string, server bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// TestUpTLSClientCertificate: a flow up to a mosquitto that requires a
// client certificate over TLS forwards with the flow's certificate; a flow
// whose trusted CA is wrong shows the certificate error in its status,
// never connects, and local traffic goes on unaffected.
func TestUpTLSClientCertificate(t *testing.T) {
	ca := newCA(t, "cloud CA")
	srvCert, srvKey := ca.issue(t, "cloud", true)
	up := testenv.StartMosquittoTLS(t, ca.pem, srvCert, srvKey)
	cliCertPEM, cliKeyPEM := ca.issue(t, "site1", false)
	cliCert, err := tls.X509KeyPair(cliCertPEM, cliKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	tc := &tls.Config{RootCAs: ca.pool(), Certificates: []tls.Certificate{cliCert}, MinVersion: tls.VersionTLS12}

	got := make(chan string, 10)
	sub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("ssl://" + up.Addr).SetClientID("cloud-sub").SetTLSConfig(tc))
	if tok := sub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("TLS subscriber: %v", tok.Error())
	}
	defer sub.Disconnect(0)
	if tok := sub.Subscribe("site1/#", 1, func(_ mqtt.Client, m mqtt.Message) { got <- m.Topic() + " " + string(m.Payload()) }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}

	s, addr := localBroker(t)
	good, err := bridge.Start(bridge.Config{Name: "up", Local: s, Up: true, Sources: []string{"telemetry/#"}, Map: prefix("site1/"),
		Remote: bridge.Remote{Hosts: []string{up.Addr}, ClientID: "site1-up", QoS: 1, TLS: tc}})
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	wrongCA := newCA(t, "someone else")
	bad, err := bridge.Start(bridge.Config{Name: "bad", Local: s, Up: true, Sources: []string{"telemetry/#"}, Map: prefix("site1/bad/"),
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		Remote: bridge.Remote{Hosts: []string{up.Addr}, ClientID: "site1-bad", QoS: 1,
			TLS: &tls.Config{RootCAs: wrongCA.pool(), Certificates: []tls.Certificate{cliCert}, MinVersion: tls.VersionTLS12}}})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	testenv.Eventually(t, 10*time.Second, "the certificate error in the bad flow's status", func() bool {
		st := bad.Status()
		return st.Connected == "" && strings.Contains(st.LastError, "certificate")
	})
	testenv.Eventually(t, 10*time.Second, "the good flow connected", func() bool { return good.Status().Connected == up.Addr })

	local, _ := brokertest.V5Paho(t, addr, &paho.Connect{ClientID: "local", CleanStart: true, KeepAlive: 30})
	local.Sub(paho.SubscribeOptions{Topic: "telemetry/#", QoS: 1}, 0)
	pub, _ := brokertest.V5Paho(t, addr, &paho.Connect{ClientID: "sensor", CleanStart: true, KeepAlive: 30})
	pub.Pub(&paho.Publish{Topic: "telemetry/t", QoS: 1, Payload: []byte("21.5")})
	if m := local.ExpectMessage(); string(m.Payload) != "21.5" {
		t.Fatalf("local subscriber got %q", m.Payload)
	}
	select {
	case m := <-got:
		if m != "site1/telemetry/t 21.5" {
			t.Fatalf("upstream got %q", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("nothing arrived over TLS (%+v)", good.Status())
	}
	if st := bad.Status(); st.Forwarded != 0 || st.Connected != "" {
		t.Errorf("the flow with the wrong CA: %+v", st)
	}
}
