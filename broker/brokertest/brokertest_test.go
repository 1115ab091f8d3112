package brokertest_test

import (
	"testing"
	"testing/synctest"

	"edgebroker/broker"
	"edgebroker/broker/brokertest"
	"edgebroker/broker/packet"
)

// TestHarnessSmoke: a raw subscriber gets a raw publisher's message, in
// 3.1.1 and 5.0, on a loopback socket.
func TestHarnessSmoke(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{}, nil)
	smoke(t, addr)
}

// TestHarnessSmokeMem is TestHarnessSmoke on the in-memory listener, in a
// synctest bubble.
func TestHarnessSmokeMem(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, addr := brokertest.StartMem(t, broker.Config{}, nil)
		smoke(t, addr)
	})
}

func smoke(t *testing.T, addr string) {
	for _, v := range []byte{packet.V311, packet.V5} {
		sub := brokertest.Dial(t, addr, v)
		if ack := sub.Connect(&packet.Connect{ClientID: []byte("sub"), CleanStart: true}); ack.Code != 0 {
			t.Fatalf("v%d CONNACK code %#x", v, ack.Code)
		}
		if codes := sub.Subscribe(1, packet.Subscription{Filter: []byte("a/+"), QoS: 1}); len(codes) != 1 || codes[0] != 1 {
			t.Fatalf("v%d SUBACK %v", v, codes)
		}
		pub := brokertest.Dial(t, addr, v)
		pub.Connect(&packet.Connect{ClientID: []byte("pub"), CleanStart: true})
		pub.Send(&packet.Publish{Topic: []byte("a/b"), QoS: 1, PacketID: 7, Payload: []byte("x")})
		if a := pub.ExpectAck(packet.PUBACK); a.PacketID != 7 {
			t.Errorf("v%d PUBACK id %d", v, a.PacketID)
		}
		if p := sub.ExpectPublish(); string(p.Topic) != "a/b" || string(p.Payload) != "x" || p.QoS != 1 {
			t.Errorf("v%d got %q %q qos %d", v, p.Topic, p.Payload, p.QoS)
		}
		sub.Conn.Close()
		pub.Conn.Close()
	}
}
