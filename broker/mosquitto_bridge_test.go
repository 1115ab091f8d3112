package broker_test

import (
	"fmt"
	"testing"

	"edgebroker/broker"
	"edgebroker/broker/brokertest"
	"edgebroker/broker/packet"
	"edgebroker/broker/testenv"
)

// TestMosquittoBridge: a real mosquitto bridges to the broker with its
// defaults (try_private: CONNECT protocol level 0x84, "I am a broker").
// The broker takes it as a bridge, as mosquitto takes one: nothing the
// bridge sent comes back to it (no echo, no loop), and a retained message
// reaches it retained, so mosquitto keeps it for its own subscribers.
func TestMosquittoBridge(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{}, nil)
	m := testenv.StartMosquittoConf(t, fmt.Sprintf("connection eb\naddress %s\ntopic b/# both 1\ncleansession true\nnotifications false\nrestart_timeout 1\n", addr))

	local := brokertest.V3Paho(t, addr, "eb-sub", true, nil)
	onEB := brokertest.V3PahoSub(t, local, "b/#", 1)
	remote := brokertest.V3Paho(t, m.Addr, "mosq-sub", true, nil)
	onMosq := brokertest.V3PahoSub(t, remote, "b/#", 1)

	// The bridge is up once its subscription carries a message across.
	testenv.Eventually(t, brokertest.WaitTime, "the bridge to subscribe", func() bool {
		brokertest.V3Wait(t, "publish", local.Publish("b/ping", 1, false, "ping"))
		select {
		case <-onMosq:
			return true
		default:
			return false
		}
	})
	// next skips the probes, which may still be on their way.
	next := func(ch <-chan brokertest.V3Msg) brokertest.V3Msg {
		t.Helper()
		for {
			if m := brokertest.V3Next(t, ch); m.Topic != "b/ping" {
				return m
			}
		}
	}

	// mosquitto → broker: arrives once on each side; no echo back.
	brokertest.V3Wait(t, "publish on mosquitto", remote.Publish("b/up", 1, false, "from mosquitto"))
	if got := next(onEB); got.Payload != "from mosquitto" {
		t.Fatalf("the broker's subscriber got %+v", got)
	}
	if got := next(onMosq); got.Payload != "from mosquitto" {
		t.Fatalf("mosquitto's subscriber got %+v", got)
	}
	// An echo would have been routed to the bridge before this one.
	brokertest.V3Wait(t, "publish on the broker", local.Publish("b/sync", 1, false, "sync"))
	if got := next(onMosq); got.Payload != "sync" {
		t.Fatalf("mosquitto's subscriber got %+v, want sync: the broker sent the bridge's message back", got)
	}

	// broker → mosquitto, retained: mosquitto keeps it retained.
	brokertest.V3Wait(t, "publish retained", local.Publish("b/kept", 1, true, "kept"))
	if got := next(onMosq); got.Payload != "kept" {
		t.Fatalf("mosquitto's subscriber got %+v", got)
	}
	late := brokertest.V3Paho(t, m.Addr, "mosq-late", true, nil)
	if got := brokertest.V3Next(t, brokertest.V3PahoSub(t, late, "b/kept", 1)); got.Payload != "kept" || !got.Retained {
		t.Fatalf("a later mosquitto subscriber got %+v, want the retained message", got)
	}
}

// TestBridgeProtocolLevel: 0x84 (and 0x83, 3.1) is a bridge's CONNECT;
// other levels with bit 7 set are refused with return code 1.
func TestBridgeProtocolLevel(t *testing.T) {
	for _, tt := range []struct {
		name    string
		level   byte
		pname   string
		connack []byte
	}{
		{"3.1.1 bridge", 0x84, "MQTT", []byte{0x20, 2, 0, 0}},
		{"3.1 bridge", 0x83, "MQIsdp", []byte{0x20, 2, 0, 0}},
		{"5.0 with bit 7", 0x85, "MQTT", []byte{0x20, 2, 0, 1}},
		{"3.1.1 with bit 6", 0x44, "MQTT", []byte{0x20, 2, 0, 1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, addr := brokertest.Start(t, broker.Config{}, nil)
			c := brokertest.Dial(t, addr, packet.V311)
			body := append([]byte{0, byte(len(tt.pname))}, tt.pname...)
			body = append(body, tt.level, 0x02, 0, 30, 0, 2, 'b', 'r')
			c.Write(append([]byte{byte(packet.CONNECT) << 4, byte(len(body))}, body...))
			h, b := c.Read()
			if got := append([]byte{byte(h.Type) << 4, byte(len(b))}, b...); string(got) != string(tt.connack) {
				t.Fatalf("CONNACK % x, want % x", got, tt.connack)
			}
		})
	}
}
