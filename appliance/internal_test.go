package appliance

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"edgebroker/appliance/config"
	"edgebroker/broker"
	"edgebroker/broker/auth"
	"edgebroker/broker/packet"
)

func TestBrokerLimits(t *testing.T) {
	rs, err := config.Parse("broker.yaml", []byte(`apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: Broker
metadata:
  name: default
spec:
  advanced:
    clients:
      maxSessionExpirySeconds: 86400
      maxMessageExpirySeconds: 3600
      maxPacketSizeBytes: 65536
      maxReceiveMaximum: 64
      maxKeepAliveSeconds: 300
      subscriberQueueLimit:
        length: 100
        strategy: None
  appliance:
    maxConnections: 500
    maxTopicLevels: 8
    queueQos0: true
    connectTimeout: 5s
`))
	if err != nil {
		t.Fatal(err)
	}
	base := broker.Limits{MaxSubscriptions: 7, WriteTimeout: time.Second}
	got := brokerLimits(rs[0].(*config.Broker), base)
	want := broker.Limits{
		MaxSessionExpiry: 86400, MaxMessageExpiry: 3600, MaxPacketSize: 65536, MaxInflight: 64, MaxKeepAlive: 300,
		MaxQueued: 100, DropPolicy: broker.DropNewest, MaxConnections: 500, MaxTopicLevels: 8,
		QueueQoS0: true, ConnectTimeout: 5 * time.Second, MaxSubscriptions: 7, WriteTimeout: time.Second,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("brokerLimits (-want +got):\n%s", diff)
	}
	want = base
	want.MaxKeepAlive = config.DefaultMaxKeepAliveSeconds
	if got := brokerLimits(nil, base); got != want {
		t.Errorf("without a Broker resource: got %+v, want %+v", got, want)
	}
}

// TestAuthorizeRefusesWithNilInterface guards against returning a typed
// nil *auth.Grants, which the broker would take as permissions.
func TestAuthorizeRefusesWithNilInterface(t *testing.T) {
	pol, err := auth.Compile([]auth.Rule{{
		Principals: auth.Principals{Usernames: []string{"alice"}},
		Broker:     []auth.BrokerResource{{Method: auth.Connect}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	az := authorizer{pol}
	if p := az.Authorize(&broker.Client{ID: "c", Username: "bob"}); p != nil {
		t.Errorf("bob: got %#v, want a nil Permissions", p)
	}
	if p := az.Authorize(&broker.Client{ID: "c", Username: "alice"}); p == nil {
		t.Error("alice: refused")
	}
}

type fakeMethod struct {
	res      broker.AuthResult
	relevant bool
}

func (m fakeMethod) authenticate(*broker.Client, *broker.AuthRequest) (broker.AuthResult, bool) {
	return m.res, m.relevant
}

func TestAuthenticatorOrder(t *testing.T) {
	ok := fakeMethod{broker.AuthResult{Code: packet.Success}, true}
	bad := fakeMethod{broker.AuthResult{Code: packet.BadUsernameOrPassword}, true}
	skip := fakeMethod{}
	for _, tc := range []struct {
		name    string
		methods []authMethod
		method  string
		want    packet.Code
	}{
		{"none relevant", []authMethod{skip, skip}, "", packet.NotAuthorized},
		{"no methods", nil, "", packet.NotAuthorized},
		{"first relevant valid", []authMethod{skip, ok, bad}, "", packet.Success},
		{"invalid then valid", []authMethod{bad, ok}, "", packet.Success},
		{"only invalid", []authMethod{skip, bad}, "", packet.BadUsernameOrPassword},
		{"enhanced auth no method takes", []authMethod{skip}, "K8S-SAT", packet.BadAuthenticationMethod},
	} {
		a := &authenticator{methods: tc.methods}
		if got := a.Authenticate(&broker.Client{}, &broker.AuthRequest{Method: tc.method}).Code; got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}
