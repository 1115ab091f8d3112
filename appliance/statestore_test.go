package appliance_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"edgebroker/broker/testenv"
	"edgebroker/provisioning/certs/certstest"
	"edgebroker/statestore/mqttapi"
)

// seedBinaryKey is seed 001's Binary state store key (base64, 15 bytes).
const seedBinaryKey = "xxxxxxxxxxxxxxxxxxxx"

// TestStateStoreSeed001: seed 001's state store example through the
// appliance. A client of building 17 / contoso (X.509 attributes) may
// read the Pattern keys and read and write the Binary key; everything
// else is answered "-ERR not authorized". The rule also grants the
// broker resources the protocol needs (publishing requests, subscribing
// to the response topic), which the seed does not list. Responses to the
// requester's own clients/ID/... namespace need no Publish grant.
func TestStateStoreSeed001(t *testing.T) {
	site := startX509Site(t, `{building: "17", organization: contoso}`, "seed001", `apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthorization
metadata:
  name: seed001
spec:
  authorizationPolicies:
    rules:
    - principals:
        attributes:
        - building: "17"
          organization: contoso
        usernames:
        - temperature-sensor
        - humidity-sensor
      brokerResources:
      - method: Connect
        clientIds:
        - "{principal.attributes.building}*"
      - method: Publish
        topics:
        - "sensors/{principal.attributes.building}/{principal.clientId}/telemetry/*"
        - "`+mqttapi.RequestTopic+`"
      - method: Subscribe
        topics:
        - "commands/{principal.attributes.organization}"
        - "clients/{principal.clientId}/#"
      stateStoreResources:
      - method: Read
        keyType: Pattern
        keys:
        - "myreadkey"
        - "myotherkey?"
        - "mynumerickeysuffix[0-9]"
        - "clients/{principal.clientId}/*"
      - method: ReadWrite
        keyType: Binary
        keys:
        - "`+seedBinaryKey+`"
`)
	thermostat := site.b17.Client(pkix.Name{CommonName: "17-thermostat"}, time.Time{}, certstest.EC256)

	conn, err := tls.Dial("tcp", site.secure.String(), site.clientTLS(thermostat))
	if err != nil {
		t.Fatal(err)
	}
	c := ssDial(t, conn, "17-thermostat")
	bin, _ := base64.StdEncoding.DecodeString(seedBinaryKey)

	// Keys are written through the anonymous port, where everything is
	// allowed.
	pconn, err := net.DialTimeout("tcp", site.plain.String(), wait)
	if err != nil {
		t.Fatal(err)
	}
	admin := ssDial(t, pconn, "admin")
	for _, k := range []string{"myreadkey", "myotherkeyA", "mynumerickeysuffix7", "clients/17-thermostat/a", "myreadkey2"} {
		if got := admin.call(t, ssResp("SET", k, "v-"+k)); got != "+OK\r\n" {
			t.Fatalf("admin SET %q: %q", k, got)
		}
	}

	const denied = "-ERR not authorized\r\n"
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"GET", "myreadkey"}, "$11\r\nv-myreadkey\r\n"},
		{[]string{"GET", "myotherkeyA"}, "$13\r\nv-myotherkeyA\r\n"},
		{[]string{"GET", "mynumerickeysuffix7"}, "$21\r\nv-mynumerickeysuffix7\r\n"},
		{[]string{"GET", "clients/17-thermostat/a"}, "$25\r\nv-clients/17-thermostat/a\r\n"},
		{[]string{"KEYNOTIFY", "myreadkey"}, "+OK\r\n"},
		{[]string{"GET", "myreadkey2"}, denied},
		{[]string{"GET", "mynumerickeysuffix10"}, denied},
		{[]string{"GET", "clients/other/a"}, denied},
		{[]string{"GET", seedBinaryKey}, denied}, // the base64 text is not the key
		{[]string{"KEYNOTIFY", "myreadkey2"}, denied},
		{[]string{"SET", "myreadkey", "x"}, denied},
		{[]string{"DEL", "myreadkey"}, denied},
		{[]string{"VDEL", "myreadkey", "v-myreadkey"}, denied},
		{[]string{"SET", "clients/17-thermostat/a", "x"}, denied},
		{[]string{"SET", string(bin), "secret"}, "+OK\r\n"},
		{[]string{"GET", string(bin)}, "$6\r\nsecret\r\n"},
		{[]string{"VDEL", string(bin), "secret"}, ":1\r\n"},
		{[]string{"DEL", string(bin)}, ":0\r\n"},
	} {
		if got := c.call(t, ssResp(tt.args...)); got != tt.want {
			t.Errorf("%q: got %q, want %q", tt.args, got, tt.want)
		}
	}
	if got := admin.call(t, ssResp("GET", "myreadkey")); got != "$11\r\nv-myreadkey\r\n" {
		t.Errorf("denied DEL changed the key: %q", got)
	}
}

type ssClient struct {
	id   string
	c    *paho.Client
	msgs chan *paho.Publish
}

// ssDial connects a state store client as id over conn, without
// credentials, subscribed to its response topic.
func ssDial(t *testing.T, conn net.Conn, id string) *ssClient {
	t.Helper()
	return ssConnect(t, conn, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30})
}

// ssConnect connects a state store client over conn with CONNECT cp and
// subscribes it to its response topic, clients/<client id>/response.
func ssConnect(t *testing.T, conn net.Conn, cp *paho.Connect) *ssClient {
	t.Helper()
	id := cp.ClientID
	cl := &ssClient{id: id, msgs: make(chan *paho.Publish, 16)}
	cl.c = paho.NewClient(paho.ClientConfig{
		Conn: testenv.LockedConn(conn),
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			cl.msgs <- pr.Packet
			return true, nil
		}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if ack, err := cl.c.Connect(ctx, cp); err != nil {
		t.Fatalf("connect %s: %v %+v", id, err, ack)
	}
	if _, err := cl.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "clients/" + id + "/response", QoS: 1}}}); err != nil {
		t.Fatalf("subscribe %s: %v", id, err)
	}
	t.Cleanup(func() { cl.c.Disconnect(&paho.Disconnect{}) })
	return cl
}

// call sends a state store request and returns the response payload.
func (cl *ssClient) call(t *testing.T, payload string) string {
	t.Helper()
	corr := make([]byte, 16)
	rand.Read(corr)
	p := &paho.Publish{QoS: 1, Topic: mqttapi.RequestTopic, Payload: []byte(payload), Properties: &paho.PublishProperties{
		ResponseTopic: "clients/" + cl.id + "/response", CorrelationData: corr,
	}}
	p.Properties.User.Add("__ts", fmt.Sprintf("%015d:%05d:%s", time.Now().UnixMilli(), 0, cl.id))
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if pr, err := cl.c.Publish(ctx, p); err != nil {
		t.Fatalf("publish: %v %+v", err, pr)
	}
	for {
		select {
		case m := <-cl.msgs:
			if string(m.Properties.CorrelationData) == string(corr) {
				return string(m.Payload)
			}
		case <-ctx.Done():
			t.Fatalf("%q: no response", payload)
			return ""
		}
	}
}

func ssResp(args ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.String()
}

// TestStateStoreQuota: spec.appliance.stateStoreMaxKeys bounds the store
// (here with a per-principal quota as large as the total); a SET beyond it
// gets the protocol's quota error and stores nothing.
func TestStateStoreQuota(t *testing.T) {
	dir := writeConfig(t, map[string]string{"config.yaml": `apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: local
spec:
  serviceType: ClusterIp
  ports:
  - port: 1883
---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: Broker
metadata:
  name: default
spec:
  appliance:
    stateStoreMaxKeys: 2
    stateStoreMaxKeysPerPrincipal: 2
`})
	a := runConfig(t, dir, 1883)
	conn, err := net.Dial("tcp", served(t, a, "local", 1883).String())
	if err != nil {
		t.Fatal(err)
	}
	cl := ssDial(t, conn, "quota")
	for _, k := range []string{"k1", "k2"} {
		if got := cl.call(t, ssResp("SET", k, "v")); got != "+OK\r\n" {
			t.Fatalf("SET %s: %q", k, got)
		}
	}
	if got, want := cl.call(t, ssResp("SET", "k3", "v")), "-ERR the quota has been exceeded\r\n"; got != want {
		t.Errorf("SET beyond the quota: %q, want %q", got, want)
	}
	if got := cl.call(t, ssResp("GET", "k3")); got != "$-1\r\n" {
		t.Errorf("GET of the refused key: %q", got)
	}
	if got := cl.call(t, ssResp("SET", "k1", "replaced")); got != "+OK\r\n" {
		t.Errorf("replacing a key at the quota: %q", got)
	}
}
