package appliance_test

import (
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/crypto/bcrypt"

	"edgebroker/provisioning/certs/certstest"
)

// pwHash is "pw" hashed once, so rewriting the users file changes only
// the policy.
var pwHash = func() []byte {
	h, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		panic(err)
	}
	return h
}()

// usersAndPolicy is a UsernamePassword BrokerAuthentication with alice and
// bob (password "pw"), and a policy letting them publish under topic.
func usersAndPolicy(topic string) string {
	return passwordUsers(fmt.Sprintf("alice:%[1]s\nbob:%[1]s\n", pwHash)) + fmt.Sprintf(`---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthorization
metadata:
  name: policy
spec:
  authorizationPolicies:
    rules:
    - principals:
        usernames: [alice, bob]
      brokerResources:
      - method: Connect
      - method: Publish
        topics: ["%s"]
      - method: Subscribe
        topics: ["#"]
`, topic)
}

// passwordUsers is the BrokerAuthentication "users" checking passwords
// against file, a password file (user:hash lines), and the Secret
// "passwords" holding it.
func passwordUsers(file string) string {
	return `apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthentication
metadata: {name: users}
spec:
  authenticationMethods:
  - {method: UsernamePassword, usernamePasswordSettings: {passwordFileSecretRef: passwords}}
---
apiVersion: v1
kind: Secret
metadata: {name: passwords}
type: Opaque
stringData:
  passwords: ` + block(file, 4) + "\n"
}

// twoPorts: 1883 with the policy, 1884 authenticated without one.
const twoPorts = `apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: local
spec:
  serviceType: ClusterIp
  ports:
  - port: 1883
    authenticationRef: users
    authorizationRef: policy
  - port: 1884
    authenticationRef: users
`

// watchLost connects a paho client that reports a lost connection.
func watchLost(t *testing.T, addr, id string) (mqtt.Client, chan struct{}) {
	t.Helper()
	lost := make(chan struct{}, 1)
	o := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetUsername("alice").SetPassword("pw").
		SetAutoReconnect(false).SetConnectTimeout(wait).
		SetConnectionLostHandler(func(mqtt.Client, error) { lost <- struct{}{} })
	return pahoClient(t, o), lost
}

// isLost reports whether ch fires within d; with d == 0, whether it has
// fired already (a timer of 0 could win the select against a ready ch).
func isLost(ch chan struct{}, d time.Duration) bool {
	if d == 0 {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	select {
	case <-ch:
		return true
	case <-time.After(d):
		return false
	}
}

// TestReloadPolicyChange: a changed BrokerAuthorization disconnects
// exactly the clients of the port that uses it; they reconnect under the
// new policy. A bad configuration afterwards changes nothing.
func TestReloadPolicyChange(t *testing.T) {
	dir := writeConfig(t, map[string]string{"listener.yaml": twoPorts, "users.yaml": usersAndPolicy("old/#")})
	a := runConfig(t, dir, 1883, 1884)
	policed, unpoliced := served(t, a, "local", 1883).String(), served(t, a, "local", 1884).String()

	_, lostA := watchLost(t, policed, "on-policy-port")
	_, lostB := watchLost(t, unpoliced, "on-other-port")

	writeFile(t, dir, "users.yaml", usersAndPolicy("new/#"))
	if err := a.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if !isLost(lostA, wait) {
		t.Error("the client on the port whose policy changed stayed connected")
	}
	if isLost(lostB, 500*time.Millisecond) {
		t.Error("the client on the other port was disconnected")
	}
	if got := served(t, a, "local", 1883).String(); got != policed {
		t.Errorf("port rebound: %s, was %s", got, policed)
	}

	// Reconnected, alice works under the new policy.
	sub, _ := watchLost(t, unpoliced, "watcher")
	got := subscribe(t, sub, "#")
	pub, _ := watchLost(t, policed, "reconnected")
	done(t, "publish old", pub.Publish("old/x", 1, false, "denied now"))
	done(t, "publish new", pub.Publish("new/x", 1, false, "allowed now"))
	expect(t, got, "new/x allowed now")

	// A bad configuration: rejected, nothing changes.
	writeFile(t, dir, "listener.yaml", strings.Replace(twoPorts, "port: 1884", "port: 1883", 1))
	if err := a.Reload(); err == nil || !strings.Contains(err.Error(), "already used") {
		t.Errorf("Reload of a bad configuration: %v, want the duplicate port named", err)
	}
	if isLost(lostB, 300*time.Millisecond) {
		t.Error("a rejected reload disconnected a client")
	}
	done(t, "publish after bad reload", pub.Publish("new/y", 1, false, "still served"))
	expect(t, got, "new/y still served")
}

// TestReloadSecretAndPorts: a port waiting for its Secret starts serving
// when a reload brings it; a changed Secret serves the new certificate
// to new handshakes while existing connections stay; a removed port
// closes and an added one opens.
func TestReloadSecretAndPorts(t *testing.T) {
	listener := `apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: edge
spec:
  serviceType: ClusterIp
  ports:
  - port: 1883
  - port: 8885
    tls:
      mode: Manual
      manual:
        secretRef: server-cert
`
	dir := writeConfig(t, map[string]string{"listener.yaml": listener})
	a := runConfig(t, dir, 1883, 8885, 1886)
	if st, _ := a.Status().Port("edge", 8885); st.Serving {
		t.Fatal("8885 served without its Secret")
	}
	plain := served(t, a, "edge", 1883).String()
	_, lostPlain := watchLost(t, plain, "plain")

	root := certstest.Root("root", certstest.EC256)
	inter := root.Intermediate("intermediate", certstest.EC256)
	first := inter.Server("first", []string{"localhost"}, nil, certstest.EC256)
	writeFile(t, dir, "secret.yaml", tlsSecret("server-cert", first.ChainPEM(), first.KeyPEM()))
	if err := a.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	tlsAddr := served(t, a, "edge", 8885).String()
	tc := &tls.Config{RootCAs: rootPool(root), ServerName: "localhost"}
	if got := handshakeCN(t, tlsAddr, tc); got != "first" {
		t.Errorf("server certificate %q, want first", got)
	}
	o := mqtt.NewClientOptions().AddBroker("ssl://" + tlsAddr).SetClientID("tls").SetTLSConfig(tc).SetAutoReconnect(false)
	lostTLS := make(chan struct{}, 1)
	o.SetConnectionLostHandler(func(mqtt.Client, error) { lostTLS <- struct{}{} })
	pahoClient(t, o)

	second := inter.Server("second", []string{"localhost"}, nil, certstest.EC256)
	writeFile(t, dir, "secret.yaml", tlsSecret("server-cert", second.ChainPEM(), second.KeyPEM()))
	if err := a.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if got := handshakeCN(t, tlsAddr, tc); got != "second" {
		t.Errorf("after the Secret changed: server certificate %q, want second", got)
	}
	if isLost(lostTLS, 300*time.Millisecond) || isLost(lostPlain, 0) {
		t.Error("a certificate change disconnected clients")
	}

	// Port 1883 goes, 1886 comes.
	writeFile(t, dir, "listener.yaml", strings.Replace(listener, "port: 1883", "port: 1886", 1))
	if err := a.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if !isLost(lostPlain, wait) {
		t.Error("the client of the removed port stayed connected")
	}
	if _, ok := a.Status().Port("edge", 1883); ok {
		t.Error("removed port still in status")
	}
	watchLostAnon(t, served(t, a, "edge", 1886).String())
	if isLost(lostTLS, 0) {
		t.Error("removing another port disconnected the TLS client")
	}
}

func watchLostAnon(t *testing.T, addr string) {
	t.Helper()
	pahoClient(t, mqtt.NewClientOptions().AddBroker("tcp://"+addr).SetClientID("new-port").SetAutoReconnect(false))
}

// handshakeCN returns the CN of the server certificate a new TLS
// handshake sees.
func handshakeCN(t *testing.T, addr string, tc *tls.Config) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr, tc)
	if err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName
}

func writeFile(t *testing.T, dir, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}
