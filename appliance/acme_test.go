package appliance_test

import (
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"edgebroker/appliance"
	"edgebroker/broker/testenv"
	"edgebroker/provisioning/acmeissuer/pebbletest"
)

// acmeIssuer is an ACME Issuer with one solver ("tlsAlpn01" or "http01").
func acmeIssuer(name, server string, caBundle []byte, solver string) string {
	return fmt.Sprintf(`apiVersion: cert-manager.io/v1
kind: Issuer
metadata:
  name: %s
spec:
  acme:
    server: %s
    email: ops@example.test
    privateKeySecretRef:
      name: %s-account
    caBundle: %s
    solvers:
    - %s: {}
`, name, server, name, base64.StdEncoding.EncodeToString(caBundle), solver)
}

// acmePort is a BrokerListener port with Automatic TLS from issuer.
func acmePort(port int, issuer, san string) string {
	return fmt.Sprintf(`  - port: %d
    protocol: Mqtt
    tls:
      mode: Automatic
      certManagerCertificateSpec:
        issuerRef:
          name: %s
          kind: Issuer
          group: cert-manager.io
        san:
          %s
`, port, issuer, san)
}

// TestACMEIssuance: ports with Automatic TLS from ACME issuers get their
// certificates from a real ACME CA (Pebble), one validated with
// tls-alpn-01 on the MQTT TLS port itself and one with http-01; an
// unreachable ACME server leaves its port waiting, with the error in
// status, while the others serve; a restart reuses the certificates.
func TestACMEIssuance(t *testing.T) {
	alpnPort, httpPort, http01Listen := testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)
	pb := pebbletest.Start(t, pebbletest.Options{TLSPort: alpnPort, HTTPPort: http01Listen})
	roots, err := pb.Roots()
	if err != nil {
		t.Fatal(err)
	}
	dead := testenv.FreePort(t)
	dir := writeConfig(t, map[string]string{
		"issuers.yaml": acmeIssuer("alpn", pb.DirectoryURL, pb.CABundlePEM, "tlsAlpn01") + "---\n" +
			acmeIssuer("http", pb.DirectoryURL, pb.CABundlePEM, "http01") + "---\n" +
			acmeIssuer("dead", fmt.Sprintf("https://127.0.0.1:%d/dir", dead), pb.CABundlePEM, "tlsAlpn01"),
		"listeners.yaml": `apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: public
spec:
  serviceType: LoadBalancer
  ports:
` + acmePort(8883, "alpn", "dns: [gw.example.test]\n          ip: [127.0.0.1]") + acmePort(8884, "http", "dns: [gw-http.example.test]") + acmePort(8885, "dead", "dns: [gw-dead.example.test]"),
	})
	data := t.TempDir()
	run := func() (*appliance.Appliance, func()) {
		a, _, stop := launch(t, appliance.Config{DataDir: data, ConfigPath: dir,
			PortMap:      map[int]int{8883: alpnPort, 8884: httpPort, 8885: 0},
			ACMEHTTPAddr: fmt.Sprintf("127.0.0.1:%d", http01Listen)})
		return a, stop
	}
	a, stop := run()
	issued := func(port int) bool {
		st, _ := a.Status().Port("public", port)
		return st.TLS != nil && !st.TLS.NotAfter.IsZero()
	}
	testenv.Eventually(t, 20*time.Second, "ACME certificates issued", func() bool { return issued(8883) && issued(8884) })

	serials := map[string]string{}
	for _, tt := range []struct {
		listener string
		port     int
		name     string
	}{{"alpn", 8883, "gw.example.test"}, {"alpn", 8883, "127.0.0.1"}, {"http", 8884, "gw-http.example.test"}} {
		addr := served(t, a, "public", tt.port)
		c, err := tls.Dial("tcp", "127.0.0.1:"+portOf(addr), &tls.Config{RootCAs: roots, ServerName: tt.name, NextProtos: []string{"mqtt"}})
		if err != nil {
			t.Fatalf("%s: handshake as %s verified by the ACME CA's root: %v", tt.listener, tt.name, err)
		}
		leaf := c.ConnectionState().PeerCertificates[0]
		serials[tt.listener] = leaf.SerialNumber.String()
		c.Close()
		st, _ := a.Status().Port("public", tt.port)
		if !strings.HasPrefix(st.TLS.Issuer, "acme https://127.0.0.1") || st.TLS.LastError != "" || st.Message != "" {
			t.Errorf("%s status: %+v, message %q", tt.listener, st.TLS, st.Message)
		}
	}
	// A real MQTT client over the ACME certificate.
	addr := served(t, a, "public", 8883)
	cl := pahoClient(t, mqtt.NewClientOptions().AddBroker("tls://127.0.0.1:"+portOf(addr)).SetClientID("acme").
		SetTLSConfig(&tls.Config{RootCAs: roots, ServerName: "gw.example.test"}))
	got := subscribe(t, cl, "acme/test")
	done(t, "publish", cl.Publish("acme/test", 1, false, "over ACME"))
	expect(t, got, "acme/test over ACME")
	cl.Disconnect(0)

	// The unreachable server: the port is up (ready for tls-alpn-01) but
	// says why it has no certificate, and nothing else suffers.
	st, _ := a.Status().Port("public", 8885)
	testenv.Eventually(t, 20*time.Second, "the unreachable server's error in status", func() bool {
		st, _ = a.Status().Port("public", 8885)
		return st.TLS != nil && strings.Contains(st.TLS.LastError, "connection refused")
	})
	if !strings.Contains(st.Message, "Awaiting certificate") || !strings.Contains(st.Message, fmt.Sprintf("127.0.0.1:%d", dead)) {
		t.Errorf("dead/8885 message: %q", st.Message)
	}
	t.Logf("status, as the user sees it:\n%s", a.Status())

	// A restart serves the stored certificates: nothing is reissued.
	stop()
	a, stop = run()
	defer stop()
	for listener, serial := range serials {
		port := map[string]int{"alpn": 8883, "http": 8884}[listener]
		addr := served(t, a, "public", port)
		c, err := tls.Dial("tcp", "127.0.0.1:"+portOf(addr), &tls.Config{RootCAs: roots, ServerName: map[string]string{"alpn": "gw.example.test", "http": "gw-http.example.test"}[listener]})
		if err != nil {
			t.Fatalf("%s after restart: %v", listener, err)
		}
		if got := c.ConnectionState().PeerCertificates[0].SerialNumber.String(); got != serial {
			t.Errorf("%s: certificate reissued after a restart", listener)
		}
		c.Close()
	}
}

// TestACMETLSALPNPort: with -acme-tls, a CA validating tls-alpn-01 on
// its own port (443 in real life) is answered there, while the MQTT TLS
// port lives elsewhere.
func TestACMETLSALPNPort(t *testing.T) {
	alpn := testenv.FreePort(t)
	pb := pebbletest.Start(t, pebbletest.Options{TLSPort: alpn})
	dir := writeConfig(t, map[string]string{
		"issuer.yaml": acmeIssuer("le", pb.DirectoryURL, pb.CABundlePEM, "tlsAlpn01"),
		"listener.yaml": `apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: public
spec:
  serviceType: LoadBalancer
  ports:
` + acmePort(8883, "le", "dns: [gw.example.test]"),
	})
	a, _, stop := launch(t, appliance.Config{DataDir: t.TempDir(), ConfigPath: dir,
		PortMap: map[int]int{8883: 0}, ACMEHTTPAddr: "off", ACMETLSAddr: fmt.Sprintf("127.0.0.1:%d", alpn)})
	defer stop()
	testenv.Eventually(t, 20*time.Second, "certificate issued through the tls-alpn-01 port", func() bool {
		st, _ := a.Status().Port("public", 8883)
		return st.TLS != nil && !st.TLS.NotAfter.IsZero()
	})
}
