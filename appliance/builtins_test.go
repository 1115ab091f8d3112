package appliance_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"edgebroker/appliance"
	"edgebroker/provisioning/certs"
)

// aioDefaultListener is AIO's default listener as AIO installs it: it
// refers to AIO's built-in BrokerAuthentication default and ClusterIssuer
// azure-iot-operations-aio-certificate-issuer and defines neither.
const aioDefaultListener = `apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: default
  namespace: azure-iot-operations
spec:
  serviceType: ClusterIp
  serviceName: aio-broker
  ports:
  - port: 18883
    authenticationRef: default
    protocol: Mqtt
    tls:
      mode: Automatic
      certManagerCertificateSpec:
        issuerRef: {name: azure-iot-operations-aio-certificate-issuer, kind: ClusterIssuer, group: cert-manager.io}
        privateKey: {algorithm: Ec256, rotationPolicy: Always}
`

// passwordSecret is an Opaque Secret name holding user's password "pw".
func passwordSecret(name, user string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata: {name: %s}\nstringData:\n  passwords: |\n    %s:%s\n", name, user, pwHash)
}

// TestBuiltinIssuerAndAuthentication: AIO's default listener runs as
// written. Its certificate comes from the quick-start root CA, the very
// one the embedded default made on this data directory, and a TLS client
// verifies it against DATA/ca.crt; BrokerAuthentication default is the
// password file in Secret quickstart-passwords.
func TestBuiltinIssuerAndAuthentication(t *testing.T) {
	data := t.TempDir()
	_, _, stop := launch(t, appliance.Config{DataDir: data, Loopback: "127.0.0.1:0", PortMap: map[int]int{18883: 0}})
	stop()
	quickstart, err := os.ReadFile(filepath.Join(data, appliance.CAFile))
	if err != nil {
		t.Fatalf("the embedded default exported no ca.crt: %v", err)
	}

	dir := writeConfig(t, map[string]string{"listener.yaml": aioDefaultListener, "users.yaml": passwordSecret("quickstart-passwords", "alice")})
	a, err := runAt(t, dir, data, map[int]int{18883: 0})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	addr := served(t, a, "default", 18883)
	caPEM, err := os.ReadFile(filepath.Join(data, appliance.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(caPEM, quickstart) {
		t.Errorf("DATA/ca.crt is not the quick-start root CA the embedded default made:\n%s\nwant\n%s", caPEM, quickstart)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("ca.crt holds no certificate")
	}
	c, err := tls.Dial("tcp", "127.0.0.1:"+portOf(addr), &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		t.Fatalf("TLS handshake verified with DATA/ca.crt: %v", err)
	}
	chain := c.ConnectionState().VerifiedChains[0]
	c.Close()
	if root := chain[len(chain)-1]; root.Subject.CommonName != certs.QuickStartCommonName {
		t.Errorf("verified chain ends at %q, want %q", root.Subject.CommonName, certs.QuickStartCommonName)
	}

	url := "tls://localhost:" + portOf(addr)
	opts := func(user, pw string) *mqtt.ClientOptions {
		return mqtt.NewClientOptions().AddBroker(url).SetClientID(user).SetUsername(user).SetPassword(pw).SetTLSConfig(&tls.Config{RootCAs: pool})
	}
	alice := pahoClient(t, opts("alice", "pw"))
	alice.Disconnect(0)
	if c, err := pahoConnect(opts("alice", "wrong")); err == nil {
		c.Disconnect(0)
		t.Error("a wrong password was admitted on the built-in default authentication")
	}
}

// TestOwnDefaultAuthentication: a configuration that defines its own
// BrokerAuthentication default uses it, not the built-in.
func TestOwnDefaultAuthentication(t *testing.T) {
	own := `apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthentication
metadata: {name: default}
spec:
  authenticationMethods:
  - method: UsernamePassword
    usernamePasswordSettings: {passwordFileSecretRef: mine}
`
	dir := writeConfig(t, map[string]string{"listener.yaml": aioDefaultListener, "authn.yaml": own,
		"mine.yaml": passwordSecret("mine", "bob"), "quickstart.yaml": passwordSecret("quickstart-passwords", "alice")})
	data := filepath.Join(t.TempDir(), "data")
	a, err := runAt(t, dir, data, map[int]int{18883: 0})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	addr := served(t, a, "default", 18883)
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(filepath.Join(data, appliance.CAFile))
	pool.AppendCertsFromPEM(caPEM)
	opts := func(user string) *mqtt.ClientOptions {
		return mqtt.NewClientOptions().AddBroker("tls://localhost:" + portOf(addr)).SetClientID(user).SetUsername(user).SetPassword("pw").SetTLSConfig(&tls.Config{RootCAs: pool})
	}
	bob := pahoClient(t, opts("bob"))
	bob.Disconnect(0)
	if c, err := pahoConnect(opts("alice")); err == nil {
		c.Disconnect(0)
		t.Error("alice (Secret quickstart-passwords) was admitted: the built-in default replaced the configuration's own")
	}
}
