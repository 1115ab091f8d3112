package broker_test

import (
	"fmt"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"edgebroker/broker"
	"edgebroker/broker/brokertest"
	"edgebroker/broker/packet"
)

// MQTT 3.1.1 session tests: clean session 0 and 1, offline queues,
// redelivery, and the queue limits.

// v3offline disconnects r and waits until the broker has detached its
// session, leaving conns connections.
func v3offline(t testing.TB, s *broker.Server, r *brokertest.Raw, conns int64) {
	t.Helper()
	r.V3Disconnect()
	brokertest.WaitConns(t, s, conns)
}

func TestV3SubscriptionsSurviveReconnect(t *testing.T) {
	s, addr := brokertest.Start(t, broker.Config{}, nil)
	c, present := brokertest.V3Dial(t, addr, "keeper", false)
	if present {
		t.Errorf("first connect: session present got true, want false")
	}
	c.V3Sub("ps/+", 1)
	v3offline(t, s, c, 0)

	c, present = brokertest.V3Dial(t, addr, "keeper", false)
	if !present { // [MQTT-3.2.2-2]
		t.Errorf("reconnect: session present got false, want true")
	}
	pub, _ := brokertest.V3Dial(t, addr, "pub", true)
	pub.V3Pub("ps/a", 1, false, 1, "still subscribed")
	c.V3Expect("ps/a", "still subscribed", 1)
}

func TestV3OfflineQueueInOrder(t *testing.T) {
	s, addr := brokertest.Start(t, broker.Config{}, nil)
	c, _ := brokertest.V3Dial(t, addr, "queued", false)
	c.V3Sub("q/#", 2)
	v3offline(t, s, c, 0)

	pub, _ := brokertest.V3Dial(t, addr, "pub", true)
	want := []struct {
		topic string
		qos   byte
	}{{"q/1", 1}, {"q/2", 2}, {"q/1", 1}, {"q/2", 2}, {"q/3", 2}}
	for i, m := range want {
		pub.V3Pub(m.topic, m.qos, false, uint16(i+1), fmt.Sprint("m", i))
	}
	c, present := brokertest.V3Dial(t, addr, "queued", false)
	if !present {
		t.Errorf("session present: got false, want true")
	}
	got := c.V3Collect(len(want))
	for i, m := range want { // [MQTT-3.1.2-5], in order [MQTT-4.6.0-6]
		p := got[i]
		if string(p.Topic) != m.topic || string(p.Payload) != fmt.Sprint("m", i) || p.QoS != m.qos {
			t.Errorf("message %d: got %q %q QoS %d, want %q %q QoS %d", i, p.Topic, p.Payload, p.QoS, m.topic, fmt.Sprint("m", i), m.qos)
		}
	}
	c.ExpectSilence(100 * time.Millisecond)
}

func TestV3RedeliverUnackedQoS1(t *testing.T) {
	s, addr := brokertest.Start(t, broker.Config{}, nil)
	c, _ := brokertest.V3Dial(t, addr, "slowack", false)
	c.V3Sub("r/t", 1)
	pub, _ := brokertest.V3Dial(t, addr, "pub", true)
	pub.V3Pub("r/t", 1, false, 9, "once more")
	first := c.ExpectPublish()
	if first.Dup {
		t.Errorf("first delivery: DUP got true, want false")
	}
	c.Conn.Close() // without PUBACK
	brokertest.WaitConns(t, s, 1)

	c, _ = brokertest.V3Dial(t, addr, "slowack", false)
	again := c.ExpectPublish() // [MQTT-4.4.0-1]
	if !again.Dup {
		t.Errorf("redelivery: DUP got false, want true")
	}
	if got, want := again.PacketID, first.PacketID; got != want {
		t.Errorf("redelivery packet id: got %d, want %d", got, want)
	}
	if got, want := string(again.Payload), "once more"; got != want {
		t.Errorf("redelivery payload: got %q, want %q", got, want)
	}
	c.Ack(packet.PUBACK, again.PacketID)
	c.ExpectSilence(100 * time.Millisecond)
}

// A QoS 2 delivery whose PUBREC arrived is resumed with PUBREL, not with
// the PUBLISH again.
func TestV3RedeliverPubrel(t *testing.T) {
	s, addr := brokertest.Start(t, broker.Config{}, nil)
	c, _ := brokertest.V3Dial(t, addr, "q2", false)
	c.V3Sub("r/2", 2)
	pub, _ := brokertest.V3Dial(t, addr, "pub", true)
	pub.V3Pub("r/2", 2, false, 4, "exactly once")
	p := c.ExpectPublish()
	c.Ack(packet.PUBREC, p.PacketID)
	if a := c.ExpectAck(packet.PUBREL); a.PacketID != p.PacketID {
		t.Fatalf("PUBREL packet id: got %d, want %d", a.PacketID, p.PacketID)
	}
	c.Conn.Close() // without PUBCOMP
	brokertest.WaitConns(t, s, 1)

	c, _ = brokertest.V3Dial(t, addr, "q2", false)
	if a := c.ExpectAck(packet.PUBREL); a.PacketID != p.PacketID {
		t.Fatalf("resent PUBREL packet id: got %d, want %d", a.PacketID, p.PacketID)
	}
	c.Ack(packet.PUBCOMP, p.PacketID)
	c.ExpectSilence(100 * time.Millisecond)
}

func TestV3CleanSessionDiscardsOld(t *testing.T) {
	s, addr := brokertest.Start(t, broker.Config{}, nil)
	c, _ := brokertest.V3Dial(t, addr, "fresh", false)
	c.V3Sub("cs/t", 1)
	v3offline(t, s, c, 0)
	pub, _ := brokertest.V3Dial(t, addr, "pub", true)
	pub.V3Pub("cs/t", 1, false, 1, "queued for the old session")

	c, present := brokertest.V3Dial(t, addr, "fresh", true) // [MQTT-3.1.2-6]
	if present {
		t.Errorf("clean session 1: session present got true, want false")
	}
	pub.V3Pub("cs/t", 1, false, 2, "after the subscription went")
	c.ExpectSilence(200 * time.Millisecond)
	v3offline(t, s, c, 1)

	// A clean session ends with its connection [MQTT-3.1.2-6].
	_, present = brokertest.V3Dial(t, addr, "fresh", false)
	if present {
		t.Errorf("after clean session 1: session present got true, want false")
	}
}

func TestV3PahoPersistentSession(t *testing.T) {
	s, addr := brokertest.Start(t, broker.Config{}, nil)
	c := brokertest.V3Paho(t, addr, "paho-ps", false, nil)
	brokertest.V3PahoSub(t, c, "pp/#", 2)
	c.Disconnect(100)
	brokertest.WaitConns(t, s, 0)

	pub := brokertest.V3Paho(t, addr, "paho-pub", true, nil)
	for i := range 6 {
		brokertest.V3Wait(t, "publish", pub.Publish("pp/x", byte(i%3), false, fmt.Sprint("m", i)))
	}
	ch := make(chan brokertest.V3Msg, 10)
	brokertest.V3Paho(t, addr, "paho-ps", false, func(o *mqtt.ClientOptions) {
		o.SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
			ch <- brokertest.V3MsgOf(m)
		})
	})
	// QoS 0 messages are not queued for an offline session by default.
	for _, i := range []int{1, 2, 4, 5} {
		m := brokertest.V3Next(t, ch)
		if got, want := m.Payload, fmt.Sprint("m", i); got != want {
			t.Errorf("queued message: got %q, want %q", got, want)
		}
		if got, want := m.QoS, byte(i%3); got != want {
			t.Errorf("%s: QoS got %d, want %d", m.Payload, got, want)
		}
	}
	brokertest.V3NoMsg(t, ch, 100*time.Millisecond)
}

func testMaxQueued(t *testing.T, policy broker.DropPolicy, want []int) {
	s, addr := brokertest.Start(t, broker.Config{Limits: broker.Limits{MaxQueued: 3, DropPolicy: policy}}, nil)
	c, _ := brokertest.V3Dial(t, addr, "offline", false)
	c.V3Sub("mq/t", 1)
	v3offline(t, s, c, 0)
	pub, _ := brokertest.V3Dial(t, addr, "pub", true)
	for i := 1; i <= 5; i++ {
		pub.V3Pub("mq/t", 1, false, uint16(i), fmt.Sprint("m", i))
	}
	if got, want := s.Stats.MessagesDropped.Load(), uint64(2); got != want {
		t.Errorf("MessagesDropped: got %d, want %d", got, want)
	}
	c, _ = brokertest.V3Dial(t, addr, "offline", false)
	for _, i := range want {
		c.V3Expect("mq/t", fmt.Sprint("m", i), 1)
	}
	c.ExpectSilence(100 * time.Millisecond)
}

func TestV3MaxQueuedDropOldest(t *testing.T) {
	testMaxQueued(t, broker.DropOldest, []int{3, 4, 5})
}

func TestV3MaxQueuedDropNewest(t *testing.T) {
	testMaxQueued(t, broker.DropNewest, []int{1, 2, 3})
}
