package bridge_test

import (
	"crypto/tls"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"edgebroker/broker"
	"edgebroker/broker/bridge"
	"edgebroker/broker/brokertest"
	"edgebroker/broker/testenv"
	"edgebroker/broker/wsnet"
)

// wsUpstream is a broker that takes MQTT over TCP at addr (for the test's
// subscriber) and MQTT over WebSockets only at wsAddr (over TLS when tc
// is set: wss:// as the appliance serves it), the broker's own WebSocket
// listener.
func wsUpstream(t *testing.T, tc *tls.Config) (addr, wsAddr string) {
	t.Helper()
	s, addr := brokertest.Start(t, broker.Config{}, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wl := wsnet.ListenTLS(ln, tc, nil, wsnet.DefaultMaxUpgrading, nil)
	done := make(chan error, 1)
	go func() { done <- s.Serve(wl) }()
	t.Cleanup(func() {
		wl.Close()
		if err := <-done; err != nil && !errors.Is(err, broker.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return addr, ln.Addr().String()
}

// TestUpOverWebSockets: a flow up reaches an upstream that speaks MQTT
// over WebSockets only, plain (ws) and over TLS (wss, the upstream's
// certificate checked against the flow's CA: another CA shows a
// certificate error in the status), and every message arrives in order
// with its properties.
func TestUpOverWebSockets(t *testing.T) {
	cert, pool, _ := testenv.SelfSigned(t, "127.0.0.1")
	_, otherCA, _ := testenv.SelfSigned(t, "127.0.0.1")
	for _, tc := range []struct {
		name   string
		server *tls.Config
		client *tls.Config
		wrong  *tls.Config // a client TLS that must not connect
	}{
		{"ws", nil, nil, nil},
		{"wss", &tls.Config{Certificates: []tls.Certificate{cert}}, &tls.Config{RootCAs: pool}, &tls.Config{RootCAs: otherCA}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, wsAddr := wsUpstream(t, tc.server)
			s, local := localBroker(t)
			cfg := bridge.Config{Name: "up", Local: s, Up: true, Sources: []string{"telemetry/#"},
				Map: prefix("site1/"), MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond,
				Remote: bridge.Remote{Hosts: []string{wsAddr}, ClientID: "site1-up", QoS: 1, WebSocket: true}}
			if tc.wrong != nil {
				cfg.Remote.TLS = tc.wrong
				b, err := bridge.Start(cfg)
				if err != nil {
					t.Fatal(err)
				}
				testenv.Eventually(t, 10*time.Second, "a certificate error in the status", func() bool {
					st := b.Status()
					return st.Connected == "" && strings.Contains(st.LastError, "certificate")
				})
				b.Close()
			}
			cfg.Remote.TLS = tc.client
			b, err := bridge.Start(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			_, got := remoteClient(t, addr, "cloud-sub", "site1/#")
			testenv.Eventually(t, 10*time.Second, "the bridge to connect over WebSockets", func() bool {
				return b.Status().Connected == wsAddr
			})
			testenv.Eventually(t, 10*time.Second, "the bridge's local subscription", func() bool { return b.Status().Subscribed })

			pub, _ := brokertest.V5Paho(t, local, &paho.Connect{ClientID: "sensor", CleanStart: true, KeepAlive: 30})
			const n = 200
			for i := range n {
				pub.Pub(&paho.Publish{Topic: "telemetry/a", QoS: 1, Payload: []byte(strconv.Itoa(i)),
					Properties: &paho.PublishProperties{User: paho.UserProperties{{Key: "k", Value: "v"}}}})
			}
			for i := range n {
				select {
				case m := <-got:
					if m.Topic != "site1/telemetry/a" || string(m.Payload) != strconv.Itoa(i) || m.Properties.User.Get("k") != "v" {
						t.Fatalf("message %d upstream: %s %q %+v", i, m.Topic, m.Payload, m.Properties)
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("%d of %d messages arrived (%+v)", i, n, b.Status())
				}
			}
			if st := b.Status(); st.Protocol != "5.0" {
				t.Errorf("protocol: got %q, want 5.0", st.Protocol)
			}
		})
	}
}
