package broker_test

import (
	"fmt"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"edgebroker/broker"
	"edgebroker/broker/packet"
)

// MQTT 3.1.1 session tests: clean session 0 and 1, offline queues,
// redelivery, and the queue limits.

// v3offline disconnects r and waits until the broker has detached its
// session, leaving conns connections.
func v3offline(t testing.TB, s *broker.Server, r *rawClient, conns int64) {
	t.Helper()
	r.v3disconnect()
	v3waitConns(t, s, conns)
}

func TestV3SubscriptionsSurviveReconnect(t *testing.T) {
	s, addr := startServer(t, broker.Config{}, nil)
	c, present := v3dial(t, addr, "keeper", false)
	if present {
		t.Errorf("first connect: session present got true, want false")
	}
	c.v3sub("ps/+", 1)
	v3offline(t, s, c, 0)

	c, present = v3dial(t, addr, "keeper", false)
	if !present { // [MQTT-3.2.2-2]
		t.Errorf("reconnect: session present got false, want true")
	}
	pub, _ := v3dial(t, addr, "pub", true)
	pub.v3pub("ps/a", 1, false, 1, "still subscribed")
	c.v3expect("ps/a", "still subscribed", 1)
}

func TestV3OfflineQueueInOrder(t *testing.T) {
	s, addr := startServer(t, broker.Config{}, nil)
	c, _ := v3dial(t, addr, "queued", false)
	c.v3sub("q/#", 2)
	v3offline(t, s, c, 0)

	pub, _ := v3dial(t, addr, "pub", true)
	want := []struct {
		topic string
		qos   byte
	}{{"q/1", 1}, {"q/2", 2}, {"q/1", 1}, {"q/2", 2}, {"q/3", 2}}
	for i, m := range want {
		pub.v3pub(m.topic, m.qos, false, uint16(i+1), fmt.Sprint("m", i))
	}
	c, present := v3dial(t, addr, "queued", false)
	if !present {
		t.Errorf("session present: got false, want true")
	}
	got := c.v3collect(len(want))
	for i, m := range want { // [MQTT-3.1.2-5], in order [MQTT-4.6.0-6]
		p := got[i]
		if string(p.Topic) != m.topic || string(p.Payload) != fmt.Sprint("m", i) || p.QoS != m.qos {
			t.Errorf("message %d: got %q %q QoS %d, want %q %q QoS %d", i, p.Topic, p.Payload, p.QoS, m.topic, fmt.Sprint("m", i), m.qos)
		}
	}
	c.expectSilence(100 * time.Millisecond)
}

func TestV3RedeliverUnackedQoS1(t *testing.T) {
	s, addr := startServer(t, broker.Config{}, nil)
	c, _ := v3dial(t, addr, "slowack", false)
	c.v3sub("r/t", 1)
	pub, _ := v3dial(t, addr, "pub", true)
	pub.v3pub("r/t", 1, false, 9, "once more")
	first := c.expectPublish()
	if first.Dup {
		t.Errorf("first delivery: DUP got true, want false")
	}
	c.nc.Close() // without PUBACK
	v3waitConns(t, s, 1)

	c, _ = v3dial(t, addr, "slowack", false)
	again := c.expectPublish() // [MQTT-4.4.0-1]
	if !again.Dup {
		t.Errorf("redelivery: DUP got false, want true")
	}
	if got, want := again.PacketID, first.PacketID; got != want {
		t.Errorf("redelivery packet id: got %d, want %d", got, want)
	}
	if got, want := string(again.Payload), "once more"; got != want {
		t.Errorf("redelivery payload: got %q, want %q", got, want)
	}
	c.v3ack(packet.PUBACK, again.PacketID)
	c.expectSilence(100 * time.Millisecond)
}

// A QoS 2 delivery whose PUBREC arrived is resumed with PUBREL, not with
// the PUBLISH again.
func TestV3RedeliverPubrel(t *testing.T) {
	s, addr := startServer(t, broker.Config{}, nil)
	c, _ := v3dial(t, addr, "q2", false)
	c.v3sub("r/2", 2)
	pub, _ := v3dial(t, addr, "pub", true)
	pub.v3pub("r/2", 2, false, 4, "exactly once")
	p := c.expectPublish()
	c.v3ack(packet.PUBREC, p.PacketID)
	if a := c.expectAck(packet.PUBREL); a.PacketID != p.PacketID {
		t.Fatalf("PUBREL packet id: got %d, want %d", a.PacketID, p.PacketID)
	}
	c.nc.Close() // without PUBCOMP
	v3waitConns(t, s, 1)

	c, _ = v3dial(t, addr, "q2", false)
	if a := c.expectAck(packet.PUBREL); a.PacketID != p.PacketID {
		t.Fatalf("resent PUBREL packet id: got %d, want %d", a.PacketID, p.PacketID)
	}
	c.v3ack(packet.PUBCOMP, p.PacketID)
	c.expectSilence(100 * time.Millisecond)
}

func TestV3CleanSessionDiscardsOld(t *testing.T) {
	s, addr := startServer(t, broker.Config{}, nil)
	c, _ := v3dial(t, addr, "fresh", false)
	c.v3sub("cs/t", 1)
	v3offline(t, s, c, 0)
	pub, _ := v3dial(t, addr, "pub", true)
	pub.v3pub("cs/t", 1, false, 1, "queued for the old session")

	c, present := v3dial(t, addr, "fresh", true) // [MQTT-3.1.2-6]
	if present {
		t.Errorf("clean session 1: session present got true, want false")
	}
	pub.v3pub("cs/t", 1, false, 2, "after the subscription went")
	c.expectSilence(200 * time.Millisecond)
	v3offline(t, s, c, 1)

	// A clean session ends with its connection [MQTT-3.1.2-6].
	_, present = v3dial(t, addr, "fresh", false)
	if present {
		t.Errorf("after clean session 1: session present got true, want false")
	}
}

func TestV3PahoPersistentSession(t *testing.T) {
	s, addr := startServer(t, broker.Config{}, nil)
	c := v3paho(t, addr, "paho-ps", false, nil)
	v3pahoSub(t, c, "pp/#", 2)
	c.Disconnect(100)
	v3waitConns(t, s, 0)

	pub := v3paho(t, addr, "paho-pub", true, nil)
	for i := range 6 {
		v3wait(t, "publish", pub.Publish("pp/x", byte(i%3), false, fmt.Sprint("m", i)))
	}
	ch := make(chan v3msg, 10)
	v3paho(t, addr, "paho-ps", false, func(o *mqtt.ClientOptions) {
		o.SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
			ch <- v3msg{m.Topic(), string(m.Payload()), m.Qos(), m.Retained(), m.Duplicate()}
		})
	})
	// QoS 0 messages are not queued for an offline session by default.
	for _, i := range []int{1, 2, 4, 5} {
		m := v3next(t, ch)
		if got, want := m.payload, fmt.Sprint("m", i); got != want {
			t.Errorf("queued message: got %q, want %q", got, want)
		}
		if got, want := m.qos, byte(i%3); got != want {
			t.Errorf("%s: QoS got %d, want %d", m.payload, got, want)
		}
	}
	v3noMsg(t, ch, 100*time.Millisecond)
}

func testMaxQueued(t *testing.T, policy broker.DropPolicy, want []int) {
	s, addr := startServer(t, broker.Config{Limits: broker.Limits{MaxQueued: 3, DropPolicy: policy}}, nil)
	c, _ := v3dial(t, addr, "offline", false)
	c.v3sub("mq/t", 1)
	v3offline(t, s, c, 0)
	pub, _ := v3dial(t, addr, "pub", true)
	for i := 1; i <= 5; i++ {
		pub.v3pub("mq/t", 1, false, uint16(i), fmt.Sprint("m", i))
	}
	if got, want := s.Stats.MessagesDropped.Load(), uint64(2); got != want {
		t.Errorf("MessagesDropped: got %d, want %d", got, want)
	}
	c, _ = v3dial(t, addr, "offline", false)
	for _, i := range want {
		c.v3expect("mq/t", fmt.Sprint("m", i), 1)
	}
	c.expectSilence(100 * time.Millisecond)
}

func TestV3MaxQueuedDropOldest(t *testing.T) {
	testMaxQueued(t, broker.DropOldest, []int{3, 4, 5})
}

func TestV3MaxQueuedDropNewest(t *testing.T) {
	testMaxQueued(t, broker.DropNewest, []int{1, 2, 3})
}
