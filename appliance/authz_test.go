package appliance_test

import (
	"crypto/tls"
	"crypto/x509/pkix"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"edgebroker/provisioning/certs/certstest"
)

// TestX509AttributesAndPolicy: client certificates issued by an
// intermediate whose subject has authorizationAttributes; the policy lets
// building 17 publish only under sensors/17/. A subscriber on an
// anonymous loopback port sees what was allowed.
func TestX509AttributesAndPolicy(t *testing.T) {
	site := startX509Site(t, `{building: "17"}`, "buildings", `apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthorization
metadata:
  name: buildings
spec:
  authorizationPolicies:
    rules:
    - principals:
        attributes:
        - building: "17"
      brokerResources:
      - method: Connect
      - method: Publish
        topics:
        - "sensors/{principal.attributes.building}/#"
`)
	sub := pahoClient(t, mqtt.NewClientOptions().AddBroker("tcp://"+site.plain.String()).SetClientID("watcher"))
	defer sub.Disconnect(0)
	got := subscribe(t, sub, "sensors/#")

	// MQTT over TLS, and over WebSockets over TLS (wss://, which the
	// WebSocket listener serves itself), take the same certificates.
	for _, url := range []string{"tls://" + site.secure.String(), "wss://" + site.wss.String() + "/mqtt"} {
		t.Run(url[:strings.Index(url, ":")], func(t *testing.T) { x509Policy(t, site, url, got) })
	}
}

// x509Policy is TestX509AttributesAndPolicy on one port (url): the
// subscriber got sees what sensor-a may publish.
func x509Policy(t *testing.T, site *x509Site, url string, got chan string) {
	sensor := site.b17.Client(pkix.Name{CommonName: "sensor-a"}, time.Time{}, certstest.EC256)
	other := site.clientRoot.Intermediate("Elsewhere CA", certstest.EC256).Client(pkix.Name{CommonName: "stranger"}, time.Time{}, certstest.EC256)
	pub := pahoClient(t, mqtt.NewClientOptions().AddBroker(url).SetClientID("sensor-a").SetTLSConfig(site.clientTLS(sensor)))
	defer pub.Disconnect(0)
	done(t, "publish denied", pub.Publish("sensors/18/temp", 1, false, "denied"))
	done(t, "publish allowed", pub.Publish("sensors/17/temp", 1, false, "allowed"))
	expect(t, got, "sensors/17/temp allowed")
	select {
	case m := <-got:
		t.Errorf("unexpected message %q", m)
	case <-time.After(100 * time.Millisecond):
	}

	// A certificate without the attribute authenticates but may not connect.
	if _, err := pahoConnect(mqtt.NewClientOptions().AddBroker(url).SetClientID("stranger").SetTLSConfig(site.clientTLS(other))); !errors.Is(err, packets.ErrorRefusedNotAuthorised) {
		t.Errorf("stranger: got %v, want CONNACK 5", err)
	}
	// No certificate at all: no method is relevant.
	noCert := &tls.Config{RootCAs: rootPool(site.serverRoot), ServerName: "localhost"}
	if _, err := pahoConnect(mqtt.NewClientOptions().AddBroker(url).SetClientID("anon").SetTLSConfig(noCert)); !errors.Is(err, packets.ErrorRefusedNotAuthorised) {
		t.Errorf("no certificate: got %v, want CONNACK 5", err)
	}
	// A certificate from an untrusted CA fails the handshake.
	rogue := certstest.Root("Rogue", certstest.EC256).Intermediate("Rogue I", certstest.EC256).Client(pkix.Name{CommonName: "sensor-a"}, time.Time{}, certstest.EC256)
	if _, err := pahoConnect(mqtt.NewClientOptions().AddBroker(url).SetClientID("rogue").SetTLSConfig(site.clientTLS(rogue))); err == nil {
		t.Error("a client certificate from an untrusted CA was accepted")
	}
}

// TestClusterIPAndWebSockets: a ClusterIp listener binds loopback only; a
// WebSockets port answers paho over ws://.
func TestClusterIPAndWebSockets(t *testing.T) {
	dir := writeConfig(t, map[string]string{"config.yaml": `apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: local
spec:
  serviceType: ClusterIp
  ports:
  - port: 1883
  - port: 8080
    protocol: WebSockets
`})
	a := runConfig(t, dir, 1883, 8080)
	tcp, ws := served(t, a, "local", 1883), served(t, a, "local", 8080)
	for _, addr := range []*net.TCPAddr{tcp, ws} {
		if !addr.IP.Equal(net.IPv4(127, 0, 0, 1)) {
			t.Errorf("ClusterIp port bound to %v, want 127.0.0.1", addr)
		}
	}
	sub := pahoClient(t, mqtt.NewClientOptions().AddBroker("ws://"+ws.String()+"/mqtt").SetClientID("ws-sub"))
	defer sub.Disconnect(0)
	got := subscribe(t, sub, "a/#")
	pub := pahoClient(t, mqtt.NewClientOptions().AddBroker("tcp://"+tcp.String()).SetClientID("tcp-pub"))
	done(t, "publish", pub.Publish("a/b", 1, false, "over websockets"))
	pub.Disconnect(0)
	expect(t, got, "a/b over websockets")
}

// TestBadConfigAtStart: Run refuses a configuration with errors, each
// naming file:line, before serving anything.
func TestBadConfigAtStart(t *testing.T) {
	_, leaf := seedTLS()
	wrongOrder := append(leaf.Issuer.CertPEM(), leaf.CertPEM()...)
	otherKey := certstest.Root("x", certstest.EC256).KeyPEM()
	rsaLeaf := certstest.Root("r", certstest.EC256).Intermediate("i", certstest.RSA2048).Server("s", []string{"localhost"}, nil, certstest.EC256)
	listener := `apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: tls
spec:
  serviceType: LoadBalancer
  ports:
  - port: 8885
    tls:
      mode: Manual
      manual:
        secretRef: server-cert
`
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"validation", map[string]string{"listener.yaml": `apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: lb
spec:
  serviceType: LoadBalancer
  ports:
  - port: 70000
    authorizationRef: nobody
`}, []string{"listener.yaml:8: BrokerListener/lb: spec.ports[0].port: 70000 is not a port number",
			"listener.yaml:9: BrokerListener/lb: spec.ports[0].authorizationRef: authorization needs authentication"}},
		{"chain order", map[string]string{"l.yaml": listener, "s.yaml": tlsSecret("server-cert", wrongOrder, leaf.KeyPEM())},
			[]string{"s.yaml:4: Secret/server-cert: stringData[tls.crt]: server certificate chain: certs: tls.crt is not in order"}},
		{"key mismatch", map[string]string{"l.yaml": listener, "s.yaml": tlsSecret("server-cert", leaf.ChainPEM(), otherKey)},
			[]string{"Secret/server-cert", "tls.key does not match the leaf"}},
		{"mixed algorithms", map[string]string{"l.yaml": listener, "s.yaml": tlsSecret("server-cert", rsaLeaf.ChainPEM(), rsaLeaf.KeyPEM())},
			[]string{"Secret/server-cert", "mixes key algorithms"}},
		{"policy", map[string]string{"c.yaml": `apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthorization
metadata:
  name: bad
spec:
  authorizationPolicies:
    rules:
    - principals:
        usernames: ["a"]
      brokerResources:
      - method: Publish
        topics: ["sensors/x{principal.username}"]
`}, []string{"c.yaml:12: BrokerAuthorization/bad: spec.authorizationPolicies.rules[0].brokerResources[0].topics[0]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := tryRunConfig(t, writeConfig(t, tc.files), 8885)
			if err == nil {
				t.Fatalf("Run accepted a bad configuration; status:\n%s", a.Status())
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
}

// x509Site is the X.509 setup of seed 001 that TestX509AttributesAndPolicy
// and TestStateStoreSeed001 share: the server's chain (seedTLS), a client
// root whose intermediate "Building 17 CA" (OU Engineering) issues the
// certificates that get attributes, and a running appliance whose
// listener "devices" serves 1883 without authentication, and 8883 over
// TLS and 8884 over WebSockets over TLS with client certificates.
type x509Site struct {
	serverRoot, clientRoot, b17 *certstest.Cert
	plain, secure, wss          *net.TCPAddr // ports 1883, 8883 and 8884 (WebSockets)
}

// startX509Site runs the appliance with the X.509 setup: building 17's
// certificates get attrs (a YAML flow mapping), and 8883 is authorized by
// authz, the BrokerAuthorization document named authzName.
func startX509Site(t *testing.T, attrs, authzName, authz string) *x509Site {
	t.Helper()
	serverRoot, leaf := seedTLS()
	clientRoot := certstest.Root("Contoso Root CA Cert", certstest.EC256)
	b17 := clientRoot.IntermediateName(pkix.Name{CommonName: "Building 17 CA", OrganizationalUnit: []string{"Engineering"}}, certstest.EC256)
	dir := writeConfig(t, map[string]string{
		"secret.yaml": tlsSecret("server-cert", leaf.ChainPEM(), leaf.KeyPEM()),
		"config.yaml": `apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: devices
spec:
  serviceType: ClusterIp
  ports:
  - port: 1883
  - port: 8883
    authenticationRef: x509
    authorizationRef: ` + authzName + `
    tls:
      mode: Manual
      manual:
        secretRef: server-cert
  - port: 8884
    protocol: WebSockets
    authenticationRef: x509
    authorizationRef: ` + authzName + `
    tls:
      mode: Manual
      manual:
        secretRef: server-cert
---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthentication
metadata:
  name: x509
spec:
  authenticationMethods:
  - method: X509
    x509Settings:
      trustedClientCaCert: client-ca
      authorizationAttributes:
        building17:
          subject: "CN = Building 17 CA, OU = Engineering"
          attributes: ` + attrs + `
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: client-ca
data:
  client_ca.pem: ` + block(string(clientRoot.CertPEM()), 4) + `
---
` + authz,
	})
	a := runConfig(t, dir, 1883, 8883, 8884)
	return &x509Site{serverRoot: serverRoot, clientRoot: clientRoot, b17: b17,
		plain: served(t, a, "devices", 1883), secure: served(t, a, "devices", 8883), wss: served(t, a, "devices", 8884)}
}

// clientTLS is the TLS configuration of a client that trusts the server's
// root and presents c with its issuer.
func (s *x509Site) clientTLS(c *certstest.Cert) *tls.Config {
	return &tls.Config{RootCAs: rootPool(s.serverRoot), ServerName: "localhost", Certificates: []tls.Certificate{{
		Certificate: [][]byte{c.Cert.Raw, c.Issuer.Cert.Raw}, PrivateKey: c.Key, Leaf: c.Cert}}}
}
