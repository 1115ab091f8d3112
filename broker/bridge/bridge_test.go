package bridge_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"edgebroker/broker"
	"edgebroker/broker/bridge"
	"edgebroker/broker/brokertest"
	"edgebroker/broker/journal"
	"edgebroker/broker/testenv"
)

// remoteClient is a paho.golang client of the upstream with a channel of
// what it receives.
func remoteClient(t *testing.T, addr, id string, filter string) (*brokertest.V5Client, chan *paho.Publish) {
	t.Helper()
	got := make(chan *paho.Publish, 100000)
	expiry := uint32(3600)
	c, _, err := brokertest.V5DialPaho(t, addr, &paho.Connect{ClientID: id, KeepAlive: 30,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}}, func(cfg *paho.ClientConfig) {
		cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){func(r paho.PublishReceived) (bool, error) {
			got <- r.Packet
			return true, nil
		}}
	})
	if err != nil {
		t.Fatal(err)
	}
	if filter != "" {
		c.Sub(paho.SubscribeOptions{Topic: filter, QoS: 1}, 0)
	}
	return c, got
}

func localBroker(t *testing.T) (*broker.Server, string) {
	t.Helper()
	j, err := journal.Open(t.TempDir(), journal.Options{SegmentSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	s := broker.New(broker.Config{Journal: j})
	addr := brokertest.Serve(t, s, nil)
	t.Cleanup(func() { s.Close(); j.Close() })
	return s, addr
}

// TestUpAcrossAnOutage: messages published locally go up with the
// destination template, in order, with their properties; while the
// upstream is down they are acknowledged locally (journaled) and held,
// and once it is back every one arrives.
func TestUpAcrossAnOutage(t *testing.T) {
	up := testenv.StartMosquitto(t)
	s, addr := localBroker(t)
	b, err := bridge.Start(bridge.Config{Name: "up", Local: s, Up: true, Sources: []string{"telemetry/#"},
		Map: prefix("site1/"), MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond,
		Remote: bridge.Remote{Hosts: []string{"127.0.0.1:1", up.Addr}, ClientID: "site1-up", QoS: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	_, got := remoteClient(t, up.Addr, "cloud-sub", "site1/#")
	testenv.Eventually(t, 10*time.Second, "the bridge to connect", func() bool { return b.Status().Connected == up.Addr })
	testenv.Eventually(t, 10*time.Second, "the bridge's local subscription", func() bool { return b.Status().Subscribed })

	pub, _ := brokertest.V5Paho(t, addr, &paho.Connect{ClientID: "sensor", CleanStart: true, KeepAlive: 30})
	ct := "text/plain"
	pub.Pub(&paho.Publish{Topic: "telemetry/a", QoS: 1, Payload: []byte("0"), Properties: &paho.PublishProperties{
		ContentType: ct, User: paho.UserProperties{{Key: "k", Value: "v"}}}})
	first := <-got
	if first.Topic != "site1/telemetry/a" || string(first.Payload) != "0" || first.Properties.ContentType != ct ||
		first.Properties.User.Get("k") != "v" {
		t.Fatalf("first message upstream: %s %q %+v", first.Topic, first.Payload, first.Properties)
	}

	const n = 500
	for i := 1; i < n; i++ {
		if i == 100 {
			up.Stop() // the WAN goes down; the local publisher keeps being acknowledged
		}
		pub.Pub(&paho.Publish{Topic: "telemetry/a", QoS: 1, Payload: []byte(strconv.Itoa(i))})
	}
	up.Start()
	_, got2 := remoteClient(t, up.Addr, "cloud-sub", "")
	// Every message arrives. What the upstream itself redelivers (DUP:
	// it had sent it to the subscriber's old connection) may come late;
	// every other first arrival is in order.
	seen := map[int]bool{0: true}
	last, dups := 0, 0
	deadline := time.After(60 * time.Second)
	for len(seen) < n {
		var m *paho.Publish
		select {
		case m = <-got: // the old connection's, all in the channel since the stop: first
		default:
			select {
			case m = <-got2:
			case <-deadline:
				t.Fatalf("after the outage: %d of %d messages arrived (bridge %+v)", len(seen), n, b.Status())
			}
		}

		v, _ := strconv.Atoi(string(m.Payload))
		switch {
		case seen[v]:
			dups++ // QoS 1 across a reconnection
		case m.Duplicate():
			seen[v] = true
		case v < last:
			t.Fatalf("message %d arrived after %d", v, last)
		default:
			seen[v], last = true, v
		}
	}
	t.Logf("%d messages up across the outage, %d duplicates; status %+v", n, dups, b.Status())
}

// TestUpWithoutHandoffs: a flow up moves messages from the local broker
// to the upstream on its clients' readers: the local reader writes them
// upstream itself (TryMessage, a write per batch) and the upstream
// reader retires them and writes the local PUBACKs itself; no message
// and no write goes to another goroutine (deliver, serve).
func TestUpWithoutHandoffs(t *testing.T) {
	up := testenv.StartMosquitto(t)
	s, addr := localBroker(t)
	b, err := bridge.Start(bridge.Config{Name: "up", Local: s, Up: true, Sources: []string{"telemetry/#"},
		Map: prefix(""), Remote: bridge.Remote{Hosts: []string{up.Addr}, ClientID: "site1-up", QoS: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	_, got := remoteClient(t, up.Addr, "cloud-sub", "telemetry/#")
	testenv.Eventually(t, 10*time.Second, "the bridge to connect", func() bool { return b.Status().Connected == up.Addr })
	pub, _ := brokertest.V5Paho(t, addr, &paho.Connect{ClientID: "sensor", CleanStart: true, KeepAlive: 30})
	before := b.Handoffs()
	const n = 2000
	for i := range n {
		pub.Pub(&paho.Publish{Topic: "telemetry/a", QoS: 1, Payload: []byte(strconv.Itoa(i))})
	}
	deadline := time.After(30 * time.Second)
	for i := range n {
		select {
		case m := <-got:
			if string(m.Payload) != strconv.Itoa(i) {
				t.Fatalf("upstream got %s where %d was expected", m.Payload, i)
			}
		case <-deadline:
			t.Fatalf("%d of %d messages arrived upstream", i, n)
		}
	}
	testenv.Eventually(t, 10*time.Second, "all acknowledged locally", func() bool { return b.Status().Inflight == 0 })
	if h := b.Handoffs() - before; h > 2 {
		t.Errorf("%d hand-offs to other goroutines for %d messages", h, n)
	}
}

// TestDown: a flow down brings upstream messages to local subscribers,
// including ones published upstream while the gateway was away.
func TestDown(t *testing.T) {
	up := testenv.StartMosquitto(t)
	s, addr := localBroker(t)
	cfg := bridge.Config{Name: "down", Local: s, Up: false, Sources: []string{"commands/site1/#"},
		Map: func(topic string) (string, bool) { return "cmd/" + strings.Split(topic, "/")[2], true }, MinBackoff: 50 * time.Millisecond,
		Remote: bridge.Remote{Hosts: []string{up.Addr}, ClientID: "site1-down", QoS: 1}}
	b, err := bridge.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	local, got := remoteClient(t, addr, "actuator", "cmd/#")
	_ = local
	cloud, _ := remoteClient(t, up.Addr, "cloud", "")
	testenv.Eventually(t, 10*time.Second, "the bridge to connect", func() bool { return b.Status().Connected != "" })
	// The upstream subscription is made after CONNACK: wait for it by
	// publishing until one arrives.
	testenv.Eventually(t, 10*time.Second, "a command down", func() bool {
		cloud.Pub(&paho.Publish{Topic: "commands/site1/reboot", QoS: 1, Payload: []byte("now")})
		select {
		case m := <-got:
			return m.Topic == "cmd/reboot" && string(m.Payload) == "now"
		case <-time.After(200 * time.Millisecond):
			return false
		}
	})
	b.Close()
	for len(got) > 0 {
		<-got
	}
	cloud.Pub(&paho.Publish{Topic: "commands/site1/open", QoS: 1, Payload: []byte("queued upstream")})
	b, err = bridge.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		select {
		case m := <-got:
			if m.Topic == "cmd/open" && string(m.Payload) == "queued upstream" {
				return
			}
		case <-ctx.Done():
			t.Fatal("the command queued upstream while the gateway was away did not arrive")
		}
	}
}

// prefix maps a topic to the same under p.
func prefix(p string) func(string) (string, bool) {
	return func(topic string) (string, bool) { return p + topic, true }
}

// TestRestartWithUpstreamDown: 1,000 messages acknowledged locally while
// the upstream is unreachable wait in the journal (the bridge's
// persistent session); the broker stops (no save: the journal already
// holds them) and starts again from its journal, the upstream comes
// up, and all 1,000 arrive, in order.
func TestRestartWithUpstreamDown(t *testing.T) {
	up := testenv.StartMosquitto(t)
	remoteClient(t, up.Addr, "cloud-sub", "site1/#") // a session upstream that keeps the subscription
	up.Stop()

	dir := t.TempDir()
	open := func() (*broker.Server, *journal.Journal, string) {
		j, err := journal.Open(dir, journal.Options{SegmentSize: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		s := broker.New(broker.Config{Journal: j})
		if _, err := s.RestoreJournal(); err != nil {
			t.Fatal(err)
		}
		return s, j, brokertest.Serve(t, s, nil)
	}
	cfg := bridge.Config{Name: "up", Up: true, Sources: []string{"telemetry/#"}, Map: prefix("site1/"),
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		Remote: bridge.Remote{Hosts: []string{up.Addr}, ClientID: "site1-up", QoS: 1}}
	s, j, addr := open()
	cfg.Local = s
	b, err := bridge.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the bridge's local subscription", func() bool { return b.Status().Subscribed })
	pub, _ := brokertest.V5Paho(t, addr, &paho.Connect{ClientID: "sensor", CleanStart: true, KeepAlive: 30})
	const n = 1000
	for i := range n {
		pub.Pub(&paho.Publish{Topic: "telemetry/a", QoS: 1, Payload: []byte(strconv.Itoa(i))})
	}
	pub.Disconnect(&paho.Disconnect{})
	b.Close()
	s.Close()
	j.Close()

	s, j, _ = open()
	defer func() { s.Close(); j.Close() }()
	if r := j.Report(true); r.PerSession[bridge.LocalClientID("up")].Messages < n-100 {
		t.Fatalf("after the restart the journal holds %+v for the bridge", r.PerSession)
	}
	cfg.Local = s
	b, err = bridge.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	up.Start()
	_, got := remoteClient(t, up.Addr, "cloud-sub", "") // its session kept the subscription
	next := 0
	for next < n {
		select {
		case m := <-got:
			if v, _ := strconv.Atoi(string(m.Payload)); v == next {
				next++
			} else if v > next {
				t.Fatalf("message %d before %d", v, next)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%d of %d messages arrived after the restart (%+v)", next, n, b.Status())
		}
	}
}

// TestQueueDiskBytesDropsOldest: while the upstream is down, a flow up
// keeps at most QueueDiskBytes queued on disk: every local publish is
// acknowledged, the oldest queued messages make room, and once the
// upstream is back the newest arrive, in order, the last one included.
func TestQueueDiskBytesDropsOldest(t *testing.T) {
	up := testenv.StartMosquitto(t)
	remoteClient(t, up.Addr, "cloud-sub", "site1/#")
	up.Stop()
	s, addr := localBroker(t)
	b, err := bridge.Start(bridge.Config{Name: "up", Local: s, Up: true, Sources: []string{"telemetry/#"}, Map: prefix("site1/"),
		QueueDiskBytes: 32 << 10, MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		Remote: bridge.Remote{Hosts: []string{up.Addr}, ClientID: "site1-up", QoS: 1, MaxInflight: 5}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	pub, _ := brokertest.V5Paho(t, addr, &paho.Connect{ClientID: "sensor", CleanStart: true, KeepAlive: 30})
	const n = 200
	pad := strings.Repeat("x", 1000)
	for i := range n {
		if r := pub.Pub(&paho.Publish{Topic: "telemetry/a", QoS: 1, Payload: []byte(strconv.Itoa(i) + " " + pad)}); r.ReasonCode != 0 {
			t.Fatalf("publish %d: reason code %#x", i, r.ReasonCode)
		}
	}
	dropped := s.Stats.MessagesDroppedOldest.Load()
	if dropped == 0 {
		t.Fatal("nothing dropped: the queue is not bounded")
	}
	up.Start()
	_, got := remoteClient(t, up.Addr, "cloud-sub", "")
	last, count := -1, 0
	for last != n-1 {
		select {
		case m := <-got:
			v, _ := strconv.Atoi(strings.Fields(string(m.Payload))[0])
			if v <= last {
				t.Fatalf("message %d after %d", v, last)
			}
			last = v
			count++
		case <-time.After(30 * time.Second):
			t.Fatalf("the last message did not arrive (last %d, %+v)", last, b.Status())
		}
	}
	if count > n-int(dropped) {
		t.Errorf("%d arrived, %d dropped of %d", count, dropped, n)
	}
	t.Logf("%d of %d arrived, %d dropped oldest first", count, n, dropped)
}
