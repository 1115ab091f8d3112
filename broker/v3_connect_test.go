package broker_test

import (
	"testing"
	"time"

	"edgebroker/broker"
	"edgebroker/broker/brokertest"
	"edgebroker/broker/packet"
)

// MQTT 3.1.1 connection tests: CONNECT checks, wills, takeover, keep-alive.

// v3connectBytes encodes a 3.1.1 CONNECT, then lets edit change the wire bytes.
func v3connectBytes(c packet.Connect, edit func(b []byte)) []byte {
	if c.Version == 0 {
		c.Version = packet.V311
	}
	b := c.Append(nil)
	if edit != nil {
		edit(b)
	}
	return b
}

// v3flagsAt is the offset of the Connect Flags byte in a CONNECT with
// protocol name "MQTT" and a one-byte remaining length.
const v3flagsAt = 2 + 2 + 4 + 1

func TestV3ConnectRefused(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{}, nil)
	for _, tc := range []struct {
		name string
		wire []byte
		code byte
	}{
		{"protocol name", v3connectBytes(packet.Connect{ProtocolName: []byte("MQTX"), ClientID: []byte("a"), CleanStart: true}, nil), 1},
		{"protocol level 6", v3connectBytes(packet.Connect{Version: 6, ClientID: []byte("a"), CleanStart: true}, nil), 1},
		{"protocol level 2", v3connectBytes(packet.Connect{Version: 2, ClientID: []byte("a"), CleanStart: true}, nil), 1},
		{"empty id, clean session 0", v3connectBytes(packet.Connect{CleanStart: false}, nil), 2}, // [MQTT-3.1.3-8]
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := brokertest.Dial(t, addr, packet.V311)
			r.Write(tc.wire)
			h, body := r.Read()
			if h.Type != packet.CONNACK {
				t.Fatalf("got packet type %d, want CONNACK", h.Type)
			}
			if got, want := body, []byte{0, tc.code}; string(got) != string(want) {
				t.Errorf("CONNACK body: got % x, want % x", got, want)
			}
			r.V3Closed(brokertest.WaitTime)
		})
	}
}

func TestV3ConnectClosedWithoutConnack(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{}, nil)
	good := packet.Connect{ClientID: []byte("c"), CleanStart: true}
	for _, tc := range []struct {
		name string
		wire []byte
	}{
		// [MQTT-3.1.2-3]: the reserved flag must be zero.
		{"reserved flag", v3connectBytes(good, func(b []byte) { b[v3flagsAt] |= 0x01 })},
		// [MQTT-3.1.0-1]: the first packet must be CONNECT.
		{"PINGREQ first", packet.AppendPingreq(nil)},
		{"PUBLISH first", (&packet.Publish{Topic: []byte("a"), Payload: []byte("x")}).Append(nil, packet.V311)},
		{"will QoS 3", v3connectBytes(packet.Connect{ClientID: []byte("c"), CleanStart: true, WillFlag: true, WillTopic: []byte("w"), WillPayload: []byte("x")},
			func(b []byte) { b[v3flagsAt] |= 3 << 3 })},
		{"will retain without will", v3connectBytes(good, func(b []byte) { b[v3flagsAt] |= 0x20 })},
		{"password without user name", v3connectBytes(packet.Connect{ClientID: []byte("c"), CleanStart: true, PasswordFlag: true, Password: []byte("p")}, nil)},
		{"CONNECT flags in fixed header", v3connectBytes(good, func(b []byte) { b[0] |= 1 })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := brokertest.Dial(t, addr, packet.V311)
			r.Write(tc.wire)
			r.V3Closed(brokertest.WaitTime)
		})
	}
}

func TestV3ConnectEmptyIDCleanSession(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{}, nil)
	r, present := brokertest.V3Dial(t, addr, "", true) // [MQTT-3.1.3-6]
	if present {
		t.Errorf("session present: got true, want false")
	}
	r.V3Sub("e/x", 1)
	pub, _ := brokertest.V3Dial(t, addr, "", true) // a second client with its own assigned id
	pub.V3Pub("e/x", 1, false, 3, "hello")
	r.V3Expect("e/x", "hello", 1)
}

func TestV3SecondConnectCloses(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{}, nil)
	r, _ := brokertest.V3Dial(t, addr, "twice", true)
	r.Write(v3connectBytes(packet.Connect{ClientID: []byte("twice"), CleanStart: true}, nil)) // [MQTT-3.1.0-2]
	r.V3Closed(brokertest.WaitTime)
}

func TestV3ConnectTimeout(t *testing.T) {
	t.Parallel()
	_, addr := brokertest.Start(t, broker.Config{Limits: broker.Limits{ConnectTimeout: 200 * time.Millisecond}}, nil)
	silent := brokertest.Dial(t, addr, packet.V311)
	partial := brokertest.Dial(t, addr, packet.V311)
	partial.Write(v3connectBytes(packet.Connect{ClientID: []byte("slow")}, nil)[:5])
	// brokertest.WaitTime is shorter than the default connect timeout of 10 s, so
	// this fails if the configured limit is not applied.
	silent.V3Closed(2 * time.Second)
	partial.V3Closed(2 * time.Second)
}

func TestV3SessionTakeover(t *testing.T) {
	s, addr := brokertest.Start(t, broker.Config{}, nil)
	first, _ := brokertest.V3Dial(t, addr, "same", false)
	first.V3Sub("take/t", 1)
	second, present := brokertest.V3Dial(t, addr, "same", false) // [MQTT-3.1.4-2]
	first.V3Closed(brokertest.WaitTime)
	if !present {
		t.Errorf("session present after takeover: got false, want true")
	}
	brokertest.WaitConns(t, s, 1)
	pub, _ := brokertest.V3Dial(t, addr, "pub", true)
	pub.V3Pub("take/t", 1, false, 1, "to second")
	second.V3Expect("take/t", "to second", 1)
}

func v3will(id string, retain bool) *packet.Connect {
	return &packet.Connect{ClientID: []byte(id), CleanStart: true, KeepAlive: 30,
		WillFlag: true, WillQoS: 1, WillRetain: retain, WillTopic: []byte("will/" + id), WillPayload: []byte(id + " gone")}
}

func TestV3WillOnAbnormalClose(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{}, nil)
	sub, _ := brokertest.V3Dial(t, addr, "watcher", true)
	sub.V3Sub("will/#", 1)
	w := brokertest.V3Connect(t, addr, v3will("w1", false))
	w.Conn.Close() // no DISCONNECT
	p := sub.V3Expect("will/w1", "w1 gone", 1)
	if p.Retain {
		t.Errorf("retain: got true, want false")
	}
}

func TestV3NoWillAfterDisconnect(t *testing.T) {
	s, addr := brokertest.Start(t, broker.Config{}, nil)
	sub, _ := brokertest.V3Dial(t, addr, "watcher", true)
	sub.V3Sub("will/#", 1)
	w := brokertest.V3Connect(t, addr, v3will("w3", true))
	w.V3Disconnect() // [MQTT-3.1.2-10]: the will is discarded
	brokertest.WaitConns(t, s, 1)
	sub.ExpectSilence(200 * time.Millisecond)
	if got, want := s.Retained(), 0; got != want {
		t.Errorf("retained messages: got %d, want %d", got, want)
	}
}

func TestV3WillRetain(t *testing.T) {
	s, addr := brokertest.Start(t, broker.Config{}, nil)
	live, _ := brokertest.V3Dial(t, addr, "live", true)
	live.V3Sub("will/#", 1)
	w := brokertest.V3Connect(t, addr, v3will("w4", true))
	w.Conn.Close()
	if p := live.V3Expect("will/w4", "w4 gone", 1); p.Retain {
		t.Errorf("live delivery retain: got true, want false")
	}
	if got, want := s.Retained(), 1; got != want {
		t.Errorf("retained messages: got %d, want %d", got, want)
	}
	late, _ := brokertest.V3Dial(t, addr, "late", true)
	late.V3Sub("will/+", 1)
	if p := late.V3Expect("will/w4", "w4 gone", 1); !p.Retain {
		t.Errorf("retained will: retain flag got false, want true")
	}
}

func TestV3WillNotRetained(t *testing.T) {
	s, addr := brokertest.Start(t, broker.Config{}, nil)
	live, _ := brokertest.V3Dial(t, addr, "live", true)
	live.V3Sub("will/#", 0)
	w := brokertest.V3Connect(t, addr, v3will("w5", false))
	w.Conn.Close()
	live.V3Expect("will/w5", "w5 gone", 0)
	if got, want := s.Retained(), 0; got != want {
		t.Errorf("retained messages: got %d, want %d", got, want)
	}
}
