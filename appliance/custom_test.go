package appliance_test

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"edgebroker/provisioning/certs/certstest"
)

// authServer is an AIO custom authentication server (API 0.5.0) on
// loopback HTTPS.
func authServer(t *testing.T) (url string, root *certstest.Cert, calls chan map[string]string) {
	t.Helper()
	calls = make(chan map[string]string, 16)
	srv, root := startAuthServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]string
		json.NewDecoder(r.Body).Decode(&body)
		body["api-version"], body["x-site"] = r.URL.Query().Get("api-version"), r.Header.Get("X-Site")
		calls <- body
		pw, _ := base64.StdEncoding.DecodeString(body["password"])
		w.Header().Set("Content-Type", "application/json")
		switch {
		case body["username"] == "good" && string(pw) == "pw":
			fmt.Fprint(w, `{"attributes": {"building": "17"}}`)
		case body["username"] == "expiring":
			fmt.Fprintf(w, `{"expiry": %q, "attributes": {}}`, time.Now().Add(600*time.Millisecond).Format(time.RFC3339Nano))
		case body["username"] == "bad":
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `{"reason": 134, "message": "wrong password"}`)
		default:
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	return srv.URL + "/auth", root, calls
}

// startAuthServer serves h on loopback HTTPS with a certificate from a
// fresh root.
func startAuthServer(t *testing.T, h http.Handler) (*httptest.Server, *certstest.Cert) {
	t.Helper()
	root := certstest.Root("auth-root", certstest.EC256)
	leaf := root.Server("auth-server", nil, []net.IP{net.IPv4(127, 0, 0, 1)}, certstest.EC256)
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leaf.Cert.Raw}, PrivateKey: leaf.Key}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, root
}

// TestCustomAuthentication: the Custom method asks the HTTPS server; its
// attributes drive authorization, its reason code refuses, its expiry
// ends the connection, and an unusable answer falls through to Not
// authorized.
func TestCustomAuthentication(t *testing.T) {
	url, root, calls := authServer(t)
	dir := writeConfig(t, map[string]string{"custom.yaml": fmt.Sprintf(`apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: local
spec:
  serviceType: ClusterIp
  ports:
  - port: 1883
    authenticationRef: custom
    authorizationRef: buildings
---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthentication
metadata:
  name: custom
spec:
  authenticationMethods:
  - method: Custom
    customSettings:
      endpoint: %s
      caCertConfigMap: auth-ca
      headers:
        X-Site: plant-7
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: auth-ca
data:
  ca.crt: %s
---
apiVersion: mqttbroker.iotoperations.azure.com/v1
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
        topics: ["sensors/{principal.attributes.building}/#"]
      - method: Subscribe
        topics: ["sensors/#"]
    - principals:
        usernames: [expiring]
      brokerResources:
      - method: Connect
`, url, block(string(root.CertPEM()), 4))})
	a := runConfig(t, dir, 1883)
	addr := "tcp://" + served(t, a, "local", 1883).String()
	opts := func(user, pw string) *mqtt.ClientOptions {
		return mqtt.NewClientOptions().AddBroker(addr).SetClientID(user).SetUsername(user).SetPassword(pw).
			SetAutoReconnect(false).SetConnectTimeout(wait)
	}

	c := pahoClient(t, opts("good", "pw"))
	got := subscribe(t, c, "sensors/#")
	done(t, "publish", c.Publish("sensors/18/t", 1, false, "other building"))
	done(t, "publish", c.Publish("sensors/17/t", 1, false, "own building"))
	expect(t, got, "sensors/17/t own building")
	call := <-calls
	if call["type"] != "connect" || call["api-version"] != "0.5.0" || call["x-site"] != "plant-7" {
		t.Errorf("request to the auth server: %v", call)
	}

	for _, tc := range []struct {
		user string
		want byte // 3.1.1 CONNACK return code
	}{
		{"bad", 4},    // 0x86 from the server → bad user name or password
		{"nobody", 5}, // the server answers 500: not relevant, no other method
	} {
		cl := mqtt.NewClient(opts(tc.user, "pw"))
		tok := cl.Connect()
		tok.WaitTimeout(wait)
		if got := tok.(*mqtt.ConnectToken).ReturnCode(); got != tc.want {
			t.Errorf("%s: CONNACK %d, want %d (err %v)", tc.user, got, tc.want, tok.Error())
		}
	}

	lost := make(chan struct{}, 1)
	pahoClient(t, opts("expiring", "x").SetConnectionLostHandler(func(mqtt.Client, error) { lost <- struct{}{} }))
	select {
	case <-lost:
	case <-time.After(wait):
		t.Error("the connection outlived the credential expiry the server gave")
	}
}
