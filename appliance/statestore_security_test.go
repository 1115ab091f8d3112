package appliance_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/eclipse/paho.golang/paho"

	"edgebroker/broker/testenv"
	"edgebroker/statestore/mqttapi"
)

// tenantsConfig is a password port whose users alice and bob may each
// publish under clients/{clientId}/, tenants/{username}/ and
// sensors/{username}/, subscribe to those, to sensors/# and to $SYS/x,
// and read and write every state store key. extra is appended (a Broker
// resource).
func tenantsConfig(t *testing.T, extra string) string {
	t.Helper()
	bin := testenv.NeedTool(t, "mosquitto_passwd")
	pwfile := filepath.Join(t.TempDir(), "passwords")
	for i, u := range []string{"alice", "bob"} {
		args := []string{"-b", pwfile, u, u + "-pw"}
		if i == 0 {
			args = append([]string{"-c"}, args...)
		}
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd: %v\n%s", err, out)
		}
	}
	pw, err := os.ReadFile(pwfile)
	if err != nil {
		t.Fatal(err)
	}
	return writeConfig(t, map[string]string{"config.yaml": `apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: local
spec:
  serviceType: ClusterIp
  ports:
  - port: 1883
    authenticationRef: users
    authorizationRef: tenants
---
` + passwordUsers(string(pw)) + `---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthorization
metadata:
  name: tenants
spec:
  authorizationPolicies:
    rules:
    - principals:
        usernames: [alice, bob]
      brokerResources:
      - method: Connect
        clientIds: ["*"]
      - method: Publish
        topics:
        - "` + mqttapi.RequestTopic + `"
        - "clients/{principal.clientId}/#"
        - "tenants/{principal.username}/#"
        - "sensors/{principal.username}/#"
      - method: Subscribe
        topics:
        - "clients/{principal.clientId}/#"
        - "tenants/{principal.username}/#"
        - "sensors/#"
        - "$SYS/x"
      stateStoreResources:
      - method: ReadWrite
        keyType: Pattern
        keys: ["*"]
` + extra})
}

// ssDialUser is ssDial with a user name and password ("<user>-pw").
func ssDialUser(t *testing.T, addr net.Addr, id, user string) *ssClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr.String(), wait)
	if err != nil {
		t.Fatal(err)
	}
	return ssConnect(t, conn, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30,
		UsernameFlag: true, Username: user, PasswordFlag: true, Password: []byte(user + "-pw")})
}

// TestStateStoreResponseTopicAuthorized (issue row 2): the state store
// publishes a response as the requester's own PUBLISH. alice's GETs with
// a response topic she may not publish on — bob's tenant topic, a sensor
// topic, $SYS/x — answer nothing there, while bob, subscribed to all
// three, receives nothing; her GET to her own response topic still
// works, and she stays connected.
func TestStateStoreResponseTopicAuthorized(t *testing.T) {
	a := runConfig(t, tenantsConfig(t, ""), 1883)
	addr := served(t, a, "local", 1883)
	alice := ssDialUser(t, addr, "alice-app", "alice")
	bob := ssDialUser(t, addr, "bob-app", "bob")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := bob.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
		{Topic: "tenants/bob/#", QoS: 1}, {Topic: "sensors/#", QoS: 1}, {Topic: "$SYS/x", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	if got := alice.call(t, ssResp("SET", "secret", "alice-data")); got != "+OK\r\n" {
		t.Fatalf("SET: %q", got)
	}

	for _, rt := range []string{"tenants/bob/inbox", "sensors/temperature", "$SYS/x"} {
		corr := make([]byte, 16)
		rand.Read(corr)
		if _, err := alice.c.Publish(ctx, &paho.Publish{QoS: 1, Topic: mqttapi.RequestTopic, Payload: []byte(ssResp("GET", "secret")),
			Properties: &paho.PublishProperties{ResponseTopic: rt, CorrelationData: corr}}); err != nil {
			t.Fatalf("GET to %s: %v", rt, err)
		}
	}
	// alice's requests and this marker are routed in order, so anything
	// the GETs published reaches bob before the marker.
	if _, err := alice.c.Publish(ctx, &paho.Publish{QoS: 1, Topic: "sensors/alice/marker", Payload: []byte("marker")}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-bob.msgs:
		if m.Topic != "sensors/alice/marker" {
			t.Errorf("bob received %q on %s", m.Payload, m.Topic)
		}
	case <-ctx.Done():
		t.Fatal("bob did not receive the marker")
	}
	select {
	case m := <-alice.msgs:
		t.Errorf("alice received %q on %s", m.Payload, m.Topic)
	default:
	}
	if got := alice.call(t, ssResp("GET", "secret")); got != "$10\r\nalice-data\r\n" {
		t.Errorf("GET to alice's own response topic: %q", got)
	}
}

// TestStateStorePrincipalQuota (issue row 8): alice writes keys until the
// store refuses; bob can still write. With stateStoreMaxKeys 8 and the
// default share, each principal holds at most 2 keys. A second client of
// alice's is the same principal; alice can replace her keys; a key bob
// overwrites is charged to him.
func TestStateStorePrincipalQuota(t *testing.T) {
	a := runConfig(t, tenantsConfig(t, `---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: Broker
metadata:
  name: default
spec:
  appliance:
    stateStoreMaxKeys: 8
`), 1883)
	addr := served(t, a, "local", 1883)
	alice := ssDialUser(t, addr, "alice-app", "alice")
	bob := ssDialUser(t, addr, "bob-app", "bob")
	const quota = "-ERR the quota has been exceeded\r\n"
	n := 0
	for ; n <= 8; n++ {
		got := alice.call(t, ssResp("SET", fmt.Sprint("a", n), "v"))
		if got == quota {
			break
		}
		if got != "+OK\r\n" {
			t.Fatalf("alice SET a%d: %q", n, got)
		}
	}
	if n != 2 {
		t.Errorf("alice wrote %d keys before the quota error, want 2", n)
	}
	if got := bob.call(t, ssResp("SET", "b0", "v")); got != "+OK\r\n" {
		t.Fatalf("bob SET after alice reached her quota: %q", got)
	}
	if got := ssDialUser(t, addr, "alice-other", "alice").call(t, ssResp("SET", "a9", "v")); got != quota {
		t.Errorf("alice's 3rd key from another client: %q, want %q", got, quota)
	}
	if got := alice.call(t, ssResp("SET", "a0", "replaced")); got != "+OK\r\n" {
		t.Errorf("alice replacing her key: %q", got)
	}
	// bob overwrites a1: it is his now, and alice has room again.
	if got := bob.call(t, ssResp("SET", "a1", "bob's")); got != "+OK\r\n" {
		t.Errorf("bob SET a1: %q", got)
	}
	if got := alice.call(t, ssResp("SET", "a2", "v")); got != "+OK\r\n" {
		t.Errorf("alice after bob took a1: %q", got)
	}
	if got := bob.call(t, ssResp("SET", "b1", "v")); got != quota {
		t.Errorf("bob's 3rd key: %q, want %q", got, quota)
	}
}
