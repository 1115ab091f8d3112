package appliance_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"edgebroker/appliance"
	"edgebroker/broker"
	"edgebroker/statestore/brokerstate"
)

// persistConfig runs the appliance over dataDir with one anonymous
// loopback port.
func persistConfig(t *testing.T, dataDir string) appliance.Config {
	cfg := filepath.Join(t.TempDir(), "listener.yaml")
	err := os.WriteFile(cfg, []byte(`apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: local
spec:
  serviceType: ClusterIp
  ports:
  - port: 1883
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	return appliance.Config{DataDir: dataDir, ConfigPath: cfg, PortMap: map[int]int{1883: 0}}
}

type v3got struct {
	topic, payload string
	retained       bool
}

// v3client connects a paho 3.1.1 client; every message, subscribed or
// arriving for a resumed session, goes to the returned channel.
func v3client(t *testing.T, addr net.Addr, id string, clean bool) (mqtt.Client, bool, <-chan v3got) {
	t.Helper()
	ch := make(chan v3got, 100)
	o := mqtt.NewClientOptions().AddBroker("tcp://" + addr.String()).SetClientID(id).
		SetCleanSession(clean).SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(wait).
		SetOrderMatters(true).SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
		ch <- v3got{m.Topic(), string(m.Payload()), m.Retained()}
	})
	c := mqtt.NewClient(o)
	tok := c.Connect()
	v3ok(t, "connect "+id, tok)
	t.Cleanup(func() { c.Disconnect(0) })
	return c, tok.(*mqtt.ConnectToken).SessionPresent(), ch
}

func v3ok(t *testing.T, what string, tok mqtt.Token) {
	t.Helper()
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("%s: %v", what, tok.Error())
	}
}

func v3want(t *testing.T, ch <-chan v3got, want v3got) {
	t.Helper()
	select {
	case got := <-ch:
		if got != want {
			t.Errorf("got %+v, want %+v", got, want)
		}
	case <-time.After(wait):
		t.Fatalf("no message, want %+v", want)
	}
}

// v5client connects a paho.golang 5.0 client without clean start and with
// a session expiry of an hour.
func v5client(t *testing.T, addr net.Addr, id string) (*paho.Client, *paho.Connack, <-chan *paho.Publish) {
	t.Helper()
	c, ack, ch, err := v5user(t, addr, "", id)
	if err != nil {
		t.Fatalf("connect %s: %v", id, err)
	}
	return c, ack, ch
}

// TestPersistAcrossRestart: a retained message, a 3.1.1 session (clean
// session false) and a 5.0 session (expiry one hour) survive stopping the
// appliance and starting it again on the same data directory; so does a
// message queued for the offline 3.1.1 session.
func TestPersistAcrossRestart(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	_, addrs, stop := launch(t, persistConfig(t, dataDir))
	addr := addrs[0]

	pub, _, _ := v3client(t, addr, "pub", true)
	v3ok(t, "publish retained", pub.Publish("status/dev1", 1, true, "online"))

	s3, _, _ := v3client(t, addr, "persist3", false)
	v3ok(t, "subscribe", s3.Subscribe("cmd/#", 1, nil))
	s3.Disconnect(250)

	s5, ack, _ := v5client(t, addr, "persist5")
	if ack.SessionPresent {
		t.Fatal("new 5.0 session present")
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := s5.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "cmd/#", QoS: 1}}}); err != nil {
		t.Fatalf("5.0 subscribe: %v", err)
	}
	v3ok(t, "publish queued", pub.Publish("cmd/queued", 1, false, "while offline"))
	stop() // s5 is still connected: the shutdown disconnects it

	if _, err := os.Stat(filepath.Join(dataDir, appliance.JournalDir)); err != nil {
		t.Fatalf("journal folder: %v", err)
	}

	_, addrs, stop = launch(t, persistConfig(t, dataDir))
	defer stop()
	addr = addrs[0]

	fresh, _, freshMsgs := v3client(t, addr, "fresh", true)
	v3ok(t, "subscribe status/#", fresh.Subscribe("status/#", 1, nil))
	v3want(t, freshMsgs, v3got{"status/dev1", "online", true})

	_, present, msgs3 := v3client(t, addr, "persist3", false)
	if !present {
		t.Error("3.1.1 client: session present = 0 after restart")
	}
	v3want(t, msgs3, v3got{"cmd/queued", "while offline", false})

	_, ack, msgs5 := v5client(t, addr, "persist5")
	if !ack.SessionPresent {
		t.Error("5.0 client: session present = 0 after restart")
	}
	pub, _, _ = v3client(t, addr, "pub", true)
	v3ok(t, "publish after restart", pub.Publish("cmd/after", 1, false, "after restart"))
	v3want(t, msgs3, v3got{"cmd/after", "after restart", false})
	timeout := time.After(wait)
	for {
		select {
		case m := <-msgs5:
			if m.Topic == "cmd/queued" {
				continue // it was online then: a resend of an unacknowledged copy is allowed
			}
			if m.Topic != "cmd/after" || string(m.Payload) != "after restart" {
				t.Errorf("5.0 client got %q %q, want cmd/after", m.Topic, m.Payload)
			}
			return
		case <-timeout:
			t.Fatal("5.0 client: no message after restart without subscribing again")
		}
	}
}

// TestImportLegacyBrokerState: the store of an earlier version
// (DATA/brokerstate) is imported into the journal at start: its retained
// message, session and queued message are served, the old store is moved
// aside, and a second start serves them from the journal.
func TestImportLegacyBrokerState(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	st, err := brokerstate.Open(filepath.Join(dataDir, appliance.BrokerStateDir), brokerstate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st.RetainedChanged("status/dev1", &broker.StoredMessage{Topic: []byte("status/dev1"), Payload: []byte("online"), QoS: 1})
	st.SessionChanged("persist3", &broker.StoredSession{ID: "persist3", Expiry: 0xFFFFFFFF,
		Subscriptions: []broker.StoredSubscription{{Filter: "cmd/#", QoS: 1}},
		Queue:         []broker.StoredDelivery{{QoS: 1, Message: broker.StoredMessage{Topic: []byte("cmd/queued"), Payload: []byte("while offline"), QoS: 1}}}})
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		_, addrs, stop := launch(t, persistConfig(t, dataDir))
		fresh, _, freshMsgs := v3client(t, addrs[0], "fresh", true)
		v3ok(t, "subscribe status/#", fresh.Subscribe("status/#", 1, nil))
		v3want(t, freshMsgs, v3got{"status/dev1", "online", true})
		c, present, msgs := v3client(t, addrs[0], "persist3", false)
		if !present {
			t.Errorf("round %d: the imported session is not present", round)
		}
		if round == 0 {
			v3want(t, msgs, v3got{"cmd/queued", "while offline", false})
		}
		c.Disconnect(100)
		stop()
		if _, err := os.Stat(filepath.Join(dataDir, appliance.BrokerStateDir)); !os.IsNotExist(err) {
			t.Errorf("round %d: the old store is still in place: %v", round, err)
		}
	}
	aside, _ := filepath.Glob(filepath.Join(dataDir, appliance.BrokerStateDir+".imported-*"))
	if len(aside) != 1 {
		t.Errorf("old store moved aside: %v", aside)
	}
}
