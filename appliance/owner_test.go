package appliance_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"edgebroker/appliance"
	"edgebroker/broker/testenv"
)

// tenants is a password port where alice and bob (password "pw") each
// publish and subscribe under their own name, and carol may publish to
// bob; dave (no rule) may not connect.
func tenants() map[string]string {
	return map[string]string{
		"listener.yaml": `apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: local
spec:
  serviceType: ClusterIp
  ports:
  - port: 1883
    authenticationRef: users
    authorizationRef: tenants
`,
		"users.yaml": passwordUsers(fmt.Sprintf("alice:%[1]s\nbob:%[1]s\ncarol:%[1]s\ndave:%[1]s\n", pwHash)) + `---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthorization
metadata:
  name: tenants
spec:
  authorizationPolicies:
    rules:
    - principals:
        usernames: [alice]
      brokerResources:
      - method: Connect
      - method: Publish
        topics: ["alice/#"]
      - method: Subscribe
        topics: ["alice/#"]
    - principals:
        usernames: [bob]
      brokerResources:
      - method: Connect
      - method: Publish
        topics: ["bob/#"]
      - method: Subscribe
        topics: ["bob/#"]
    - principals:
        usernames: [carol]
      brokerResources:
      - method: Connect
      - method: Publish
        topics: ["bob/#"]
`,
	}
}

// tenantConfig runs tenants() over dataDir, logging to log as well as to
// the test.
func tenantConfig(t *testing.T, confDir, dataDir string, log io.Writer) appliance.Config {
	w := io.Writer(t.Output())
	if log != nil {
		w = io.MultiWriter(w, log)
	}
	return appliance.Config{DataDir: dataDir, ConfigPath: confDir, PortMap: map[int]int{1883: 0},
		StatusAddr: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(w, nil))}
}

// v3user connects a paho 3.1.1 client as user ("pw") with client id;
// messages, subscribed or arriving for a resumed session, go to the
// returned channel.
func v3user(user, pass, id string, addr net.Addr, clean bool, msgs chan<- v3got) *mqtt.ClientOptions {
	return mqtt.NewClientOptions().AddBroker("tcp://" + addr.String()).SetClientID(id).SetUsername(user).SetPassword(pass).
		SetCleanSession(clean).SetProtocolVersion(4).SetOrderMatters(true).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
			if msgs != nil {
				msgs <- v3got{m.Topic(), string(m.Payload()), m.Retained()}
			}
		})
}

// v5user connects a paho.golang 5.0 client as user (none: "") with client
// id, clean start off and a session expiry of an hour; it returns the
// connection's error and CONNACK.
func v5user(t *testing.T, addr net.Addr, user, id string) (*paho.Client, *paho.Connack, <-chan *paho.Publish, error) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr.String(), wait)
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan *paho.Publish, 100)
	c := paho.NewClient(paho.ClientConfig{Conn: testenv.LockedConn(nc), PacketTimeout: wait,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(r paho.PublishReceived) (bool, error) {
			ch <- r.Packet
			return true, nil
		}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	expiry := uint32(3600)
	cp := &paho.Connect{ClientID: id, CleanStart: false, KeepAlive: 30,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}}
	if user != "" {
		cp.Username, cp.UsernameFlag, cp.Password, cp.PasswordFlag = user, true, []byte("pw"), true
	}
	ack, err := c.Connect(ctx, cp)
	if err != nil {
		nc.Close()
		return nil, ack, nil, err
	}
	t.Cleanup(func() { c.Disconnect(&paho.Disconnect{}) })
	return c, ack, ch, nil
}

func v5want(t *testing.T, ch <-chan *paho.Publish, topic, payload string) {
	t.Helper()
	select {
	case p := <-ch:
		if p.Topic != topic || string(p.Payload) != payload {
			t.Errorf("got %q on %q, want %q on %q", p.Payload, p.Topic, payload, topic)
		}
	case <-time.After(wait):
		t.Fatalf("no message, want %q on %q", payload, topic)
	}
}

// prepend returns a channel that yields p, then what ch yields.
func prepend(p *paho.Publish, ch <-chan *paho.Publish) <-chan *paho.Publish {
	out := make(chan *paho.Publish, cap(ch)+1)
	out <- p
	go func() {
		for m := range ch {
			out <- m
		}
	}()
	return out
}

// TestSessionBelongsToPrincipal: through the appliance, with real 3.1.1
// and 5.0 clients, alice cannot get bob's session by using its client id
// (3.1.1 CONNACK 5, 5.0 0x87): bob stays connected and receives his live
// messages, his queued messages stay for him, and after a restart (the
// owner persisted) alice is still refused and bob resumes.
func TestSessionBelongsToPrincipal(t *testing.T) {
	conf := writeConfig(t, tenants())
	data := filepath.Join(t.TempDir(), "data")
	a, addrs, stop := launch(t, tenantConfig(t, conf, data, nil))
	defer func() { stop() }()
	addr := addrs[0]
	carol := pahoClient(t, v3user("carol", "pw", "carol", addr, true, nil))
	defer carol.Disconnect(0)

	aliceV3 := func() {
		t.Helper()
		_, err := pahoConnect(v3user("alice", "pw", "bob-3", addr, false, nil))
		if !errors.Is(err, packets.ErrorRefusedNotAuthorised) {
			t.Fatalf("alice with bob's 3.1.1 client id: %v, want %v", err, packets.ErrorRefusedNotAuthorised)
		}
	}
	aliceV5 := func() {
		t.Helper()
		c, ack, _, err := v5user(t, addr, "alice", "bob-5")
		if err == nil {
			c.Disconnect(&paho.Disconnect{})
			t.Fatal("alice connected with bob's 5.0 client id")
		}
		if ack == nil || ack.ReasonCode != 0x87 || ack.SessionPresent {
			t.Fatalf("alice with bob's 5.0 client id: CONNACK %+v (%v), want 0x87", ack, err)
		}
	}

	// 3.1.1: bob online, then offline.
	msgs3 := make(chan v3got, 100)
	lost := make(chan struct{}, 1)
	bob3 := pahoClient(t, v3user("bob", "pw", "bob-3", addr, false, msgs3).
		SetConnectionLostHandler(func(mqtt.Client, error) { lost <- struct{}{} }))
	done(t, "bob subscribes", bob3.Subscribe("bob/3/#", 1, nil))
	aliceV3()
	done(t, "carol publishes", carol.Publish("bob/3/live", 1, false, "live"))
	v3want(t, msgs3, v3got{"bob/3/live", "live", false})
	select {
	case <-lost:
		t.Fatal("bob's 3.1.1 connection lost")
	default:
	}
	bob3.Disconnect(250)
	done(t, "carol publishes", carol.Publish("bob/3/queued", 1, false, "queued 3"))
	aliceV3()

	// 5.0: the same.
	bob5, _, msgs5, err := v5user(t, addr, "bob", "bob-5")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := bob5.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "bob/5/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	aliceV5()
	done(t, "carol publishes", carol.Publish("bob/5/live", 1, false, "live"))
	v5want(t, msgs5, "bob/5/live", "live")
	if err := bob5.Disconnect(&paho.Disconnect{}); err != nil {
		t.Fatal(err)
	}
	done(t, "carol publishes", carol.Publish("bob/5/queued", 1, false, "queued 5"))
	aliceV5()
	if got := metric(t, a, "takeover_refused"); got != 4 {
		t.Errorf("takeover_refused %d, want 4", got)
	}

	carol.Disconnect(0)
	stop()
	a, addrs, stop = launch(t, tenantConfig(t, conf, data, nil))
	addr = addrs[0]
	aliceV3()
	aliceV5()
	msgs3 = make(chan v3got, 100)
	bob3 = pahoClient(t, v3user("bob", "pw", "bob-3", addr, false, msgs3))
	defer bob3.Disconnect(0)
	v3want(t, msgs3, v3got{"bob/3/queued", "queued 3", false})
	_, ack, msgs5, err := v5user(t, addr, "bob", "bob-5")
	if err != nil || !ack.SessionPresent {
		t.Fatalf("bob's 5.0 session after restart: present %v, %v", ack != nil && ack.SessionPresent, err)
	}
	// "live" again first is allowed: bob's client may have disconnected
	// before its PUBACK reached the broker, and an unacknowledged message
	// is sent again after a restart.
	select {
	case p := <-msgs5:
		if p.Topic != "bob/5/live" {
			msgs5 = prepend(p, msgs5)
		}
	case <-time.After(wait):
		t.Fatal("bob's 5.0 session: nothing after the restart")
	}
	v5want(t, msgs5, "bob/5/queued", "queued 5")
	if got := metric(t, a, "takeover_refused"); got != 2 {
		t.Errorf("takeover_refused after restart %d, want 2", got)
	}
}

// TestSecurityEventsLogged: a wrong password, a client not authorized to
// connect, a denied publish, a denied will and a denied subscribe each
// produce a Warn line (without -v) with the remote address, and a count
// in /metrics; neither the password nor a payload appears in the log.
func TestSecurityEventsLogged(t *testing.T) {
	var logs testenv.SyncBuffer
	a, addrs, stop := launch(t, tenantConfig(t, writeConfig(t, tenants()), t.TempDir(), &logs))
	defer stop()
	addr := addrs[0]

	if _, err := pahoConnect(v3user("alice", "not-the-password-x7", "alice", addr, true, nil)); err == nil {
		t.Fatal("wrong password accepted")
	}
	if _, err := pahoConnect(v3user("dave", "pw", "dave", addr, true, nil)); !errors.Is(err, packets.ErrorRefusedNotAuthorised) {
		t.Fatalf("dave without a rule: %v, want %v", err, packets.ErrorRefusedNotAuthorised)
	}
	alice := pahoClient(t, v3user("alice", "pw", "alice", addr, true, nil).SetWill("bob/will", "gone", 1, false))
	defer alice.Disconnect(0)
	tok := alice.Subscribe("bob/#", 1, nil)
	done(t, "subscribe", tok)
	if codes := tok.(*mqtt.SubscribeToken).Result(); codes["bob/#"] != 0x80 {
		t.Errorf("alice's subscription to bob/#: %v, want 0x80", codes)
	}
	done(t, "publish", alice.Publish("bob/x", 1, false, "secret payload"))

	want := map[string]uint64{"auth_failed": 1, "connect_denied": 1, "publish_denied": 2, "subscribe_denied": 1}
	for ev, n := range want {
		if got := metric(t, a, ev); got != n {
			t.Errorf("%s counted %d, want %d", ev, got, n)
		}
	}
	out := logs.String()
	for _, line := range []string{
		`level=WARN msg="authentication failed" subsystem=broker event=auth_failed client=alice username=alice port=local/1883 remote=127.0.0.1:`,
		`level=WARN msg="connection not authorized" subsystem=broker event=connect_denied principal=user:dave client=dave port=local/1883 remote=127.0.0.1:`,
		`level=WARN msg="will not authorized: dropped" subsystem=broker event=publish_denied principal=user:alice client=alice topic=bob/will remote=127.0.0.1:`,
		`level=WARN msg="subscription not authorized" subsystem=broker event=subscribe_denied principal=user:alice client=alice filter=bob/# remote=127.0.0.1:`,
		`level=WARN msg="publish not authorized: dropped" subsystem=broker event=publish_denied principal=user:alice client=alice topic=bob/x remote=127.0.0.1:`,
	} {
		if !strings.Contains(out, line) {
			t.Errorf("log lacks %s", line)
		}
	}
	for _, secret := range []string{"not-the-password-x7", "secret payload"} {
		if strings.Contains(out, secret) {
			t.Errorf("log shows %q", secret)
		}
	}
	if t.Failed() {
		t.Logf("log:\n%s", out)
	}
}

// metric returns edgebroker_security_events_total for event from the
// appliance's /metrics.
func metric(t *testing.T, a *appliance.Appliance, event string) uint64 {
	t.Helper()
	resp, err := http.Get("http://" + a.StatusAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	prefix := fmt.Sprintf("edgebroker_security_events_total{event=%q} ", event)
	for line := range strings.Lines(string(body)) {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), prefix); ok {
			var n uint64
			fmt.Sscan(rest, &n)
			return n
		}
	}
	t.Fatalf("/metrics lacks %s", prefix)
	return 0
}
