package broker_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"edgebroker/broker"
	"edgebroker/broker/brokertest"
	"edgebroker/broker/packet"
)

// TestV5ReceiveMaximumAnnounced: the CONNACK carries Limits.MaxInflight as
// Receive Maximum, and a client with more unacknowledged QoS 2 PUBLISHes
// than that is disconnected with 0x93 [MQTT-3.3.4-8].
func TestV5ReceiveMaximumAnnounced(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{Limits: broker.Limits{MaxInflight: 2}}, nil)
	c := brokertest.Dial(t, addr, packet.V5)
	ack := c.Connect(brokertest.V5Connect("c", true))
	if got, want := ack.Props.ReceiveMaximum, uint16(2); !ack.Props.Has(packet.PropReceiveMaximum) || got != want {
		t.Errorf("CONNACK Receive Maximum %d (present %v), want %d", got, ack.Props.Has(packet.PropReceiveMaximum), want)
	}
	for pid := uint16(1); pid <= 2; pid++ {
		c.V5Pub("q", 2, pid, "x")
		c.ExpectAck(packet.PUBREC)
	}
	c.V5Pub("q", 2, 3, "x") // third without any PUBREL
	if got, want := c.ExpectClosed(), int(packet.ReceiveMaximumExceeded); got != want {
		t.Errorf("DISCONNECT %#x, want %#x", got, want)
	}
}

// TestV5ClientReceiveMaximum: the server sends at most the client's
// Receive Maximum unacknowledged QoS 1 messages, then the rest in order as
// PUBACKs arrive [MQTT-3.3.4-9].
func TestV5ClientReceiveMaximum(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{}, nil)
	cp := brokertest.V5Connect("c", true)
	cp.Props.Set(packet.PropReceiveMaximum)
	cp.Props.ReceiveMaximum = 2
	c, _ := brokertest.V5Dial(t, addr, cp)
	c.V5Sub(1, packet.Subscription{Filter: []byte("q"), QoS: 1}, 1)
	p, _ := brokertest.V5Dial(t, addr, brokertest.V5Connect("p", true))
	for i := range 5 {
		p.V5Pub("q", 1, uint16(i+1), fmt.Sprint(i))
		p.ExpectAck(packet.PUBACK)
	}
	var pids []uint16
	next := 0
	recv := func() {
		t.Helper()
		m := c.ExpectPublish()
		if got, want := string(m.Payload), fmt.Sprint(next); got != want {
			t.Errorf("message %q, want %q", got, want)
		}
		next++
		pids = append(pids, m.PacketID)
	}
	recv()
	recv()
	c.ExpectSilence(200 * time.Millisecond)
	for next < 5 {
		c.Ack(packet.PUBACK, pids[0])
		pids = pids[1:]
		recv()
		c.ExpectSilence(50 * time.Millisecond)
	}
}

// TestV5MaximumPacketSizeAnnounced: the CONNACK carries
// Limits.MaxPacketSize, and a bigger packet gets DISCONNECT 0x95
// [MQTT-3.2.2-15].
func TestV5MaximumPacketSizeAnnounced(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{Limits: broker.Limits{MaxPacketSize: 512}}, nil)
	c := brokertest.Dial(t, addr, packet.V5)
	ack := c.Connect(brokertest.V5Connect("c", true))
	if got, want := ack.Props.MaximumPacketSize, uint32(512); !ack.Props.Has(packet.PropMaximumPacketSize) || got != want {
		t.Errorf("CONNACK Maximum Packet Size %d, want %d", got, want)
	}
	c.V5Pub("t", 0, 0, string(bytes.Repeat([]byte("x"), 500))) // fits
	c.V5Pub("t", 0, 0, string(bytes.Repeat([]byte("x"), 600)))
	if got, want := c.ExpectClosed(), int(packet.PacketTooLarge); got != want {
		t.Errorf("DISCONNECT %#x, want %#x", got, want)
	}
}

// TestV5ClientMaximumPacketSize: a message larger than a client's Maximum
// Packet Size is not sent to it, other subscribers still get it, and the
// client gets the next message that fits [MQTT-3.1.2-24].
func TestV5ClientMaximumPacketSize(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{}, nil)
	cp := brokertest.V5Connect("small", true)
	cp.Props.Set(packet.PropMaximumPacketSize)
	cp.Props.MaximumPacketSize = 100
	small, _ := brokertest.V5Dial(t, addr, cp)
	small.V5Sub(1, packet.Subscription{Filter: []byte("t"), QoS: 1}, 1)
	big, _ := brokertest.V5Dial(t, addr, brokertest.V5Connect("big", true))
	big.V5Sub(1, packet.Subscription{Filter: []byte("t"), QoS: 1}, 1)

	p, _ := brokertest.V5Dial(t, addr, brokertest.V5Connect("p", true))
	large := string(bytes.Repeat([]byte("x"), 200))
	for i, payload := range []string{large, "small"} {
		for _, qos := range []byte{0, 1} {
			p.V5Pub("t", qos, uint16(i+1), payload)
			if qos == 1 {
				p.ExpectAck(packet.PUBACK)
			}
			if m := big.ExpectPublish(); string(m.Payload) != payload {
				t.Errorf("big client got %d bytes, want %d", len(m.Payload), len(payload))
			}
		}
	}
	for range 2 { // only the small message, at QoS 0 and 1
		if m := small.ExpectPublish(); string(m.Payload) != "small" {
			t.Errorf("small client got %d bytes, want the small message", len(m.Payload))
		} else if m.QoS == 1 {
			small.Ack(packet.PUBACK, m.PacketID)
		}
	}
	small.ExpectSilence(100 * time.Millisecond)
}

// TestV5TopicAliasFromClient: a client sets an alias with a topic, then
// publishes with the alias and an empty topic [MQTT-3.3.2-12].
func TestV5TopicAliasFromClient(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{}, nil)
	sub, _ := brokertest.V5Dial(t, addr, brokertest.V5Connect("sub", true))
	sub.V5Sub(1, packet.Subscription{Filter: []byte("#"), QoS: 0}, 0)
	c, ack := brokertest.V5Dial(t, addr, brokertest.V5Connect("c", true))
	if ack.Props.TopicAliasMaximum == 0 {
		t.Fatal("CONNACK Topic Alias Maximum 0")
	}
	send := func(topic string, alias uint16, payload string) {
		p := &packet.Publish{Topic: []byte(topic), Payload: []byte(payload)}
		p.Props.Set(packet.PropTopicAlias)
		p.Props.TopicAlias = alias
		c.Send(p)
	}
	send("a/b", 1, "1")
	send("c/d", 2, "2")
	send("", 1, "3")
	send("", 2, "4")
	send("e/f", 1, "5") // remap alias 1
	send("", 1, "6")
	for _, want := range []string{"a/b 1", "c/d 2", "a/b 3", "c/d 4", "e/f 5", "e/f 6"} {
		m := sub.ExpectPublish()
		if got := string(m.Topic) + " " + string(m.Payload); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

// TestV5TopicAliasInvalid: alias 0 or above Topic Alias Maximum gets
// DISCONNECT 0x94; an alias never set, with an empty topic, gets 0x82.
func TestV5TopicAliasInvalid(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{Limits: broker.Limits{MaxTopicAliases: 2}}, nil)
	for _, tt := range []struct {
		name  string
		topic string
		alias uint16
		want  packet.Code
	}{
		{"zero", "t", 0, packet.TopicAliasInvalid},
		{"above maximum", "t", 3, packet.TopicAliasInvalid},
		{"unknown", "", 2, packet.ProtocolError},
	} {
		c := brokertest.Dial(t, addr, packet.V5)
		if ack := c.Connect(brokertest.V5Connect("c", true)); ack.Props.TopicAliasMaximum != 2 {
			t.Errorf("CONNACK Topic Alias Maximum %d, want 2", ack.Props.TopicAliasMaximum)
		}
		p := &packet.Publish{Topic: []byte(tt.topic), Payload: []byte("x")}
		p.Props.Set(packet.PropTopicAlias)
		p.Props.TopicAlias = tt.alias
		c.Send(p)
		if got := c.ExpectClosed(); got != int(tt.want) {
			t.Errorf("%s: DISCONNECT %#x, want %#x", tt.name, got, byte(tt.want))
		}
	}
}

// TestV5TopicAliasToClient: a client announcing Topic Alias Maximum gets
// the topic with an alias first, then an empty topic with the alias.
func TestV5TopicAliasToClient(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{}, nil)
	cp := brokertest.V5Connect("c", true)
	cp.Props.Set(packet.PropTopicAliasMaximum)
	cp.Props.TopicAliasMaximum = 4
	c, _ := brokertest.V5Dial(t, addr, cp)
	c.V5Sub(1, packet.Subscription{Filter: []byte("t/#"), QoS: 0}, 0)
	p, _ := brokertest.V5Dial(t, addr, brokertest.V5Connect("p", true))
	for _, topic := range []string{"t/a", "t/a", "t/b", "t/a"} {
		p.V5Pub(topic, 0, 0, topic)
	}
	aliases := map[uint16]string{}
	for i, topic := range []string{"t/a", "t/a", "t/b", "t/a"} {
		m := c.ExpectPublish()
		if !m.Props.Has(packet.PropTopicAlias) {
			t.Fatalf("message %d (%s): no Topic Alias", i, topic)
		}
		a := m.Props.TopicAlias
		first := topic == "t/a" && i == 0 || topic == "t/b"
		switch {
		case first && string(m.Topic) != topic:
			t.Errorf("message %d: topic %q, want %q with alias", i, m.Topic, topic)
		case first:
			aliases[a] = topic
		case len(m.Topic) != 0:
			t.Errorf("message %d: topic %q, want empty (alias %d known)", i, m.Topic, a)
		case aliases[a] != topic:
			t.Errorf("message %d: alias %d means %q, want %q", i, a, aliases[a], topic)
		}
	}
}

// TestV5TopicAliasNotSpentOnDroppedMessage: a message too large for the
// client must not assign an alias the client never learns: the next
// message on that topic still carries the topic.
func TestV5TopicAliasNotSpentOnDroppedMessage(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{}, nil)
	cp := brokertest.V5Connect("c", true)
	cp.Props.Set(packet.PropTopicAliasMaximum)
	cp.Props.TopicAliasMaximum = 4
	cp.Props.Set(packet.PropMaximumPacketSize)
	cp.Props.MaximumPacketSize = 100
	c, _ := brokertest.V5Dial(t, addr, cp)
	c.V5Sub(1, packet.Subscription{Filter: []byte("t"), QoS: 0}, 0)
	p, _ := brokertest.V5Dial(t, addr, brokertest.V5Connect("p", true))
	p.V5Pub("t", 0, 0, string(bytes.Repeat([]byte("x"), 200)))
	p.V5Pub("t", 0, 0, "small")
	m := c.ExpectPublish()
	if got, want := string(m.Topic), "t"; got != want {
		t.Errorf("topic %q (alias %d), want %q: alias assigned by a dropped message", got, m.Props.TopicAlias, want)
	}
}

// TestV5MessageExpiryQueued: a queued message's Message Expiry Interval is
// reduced by the time it waited, and an expired one is not delivered
// [MQTT-3.3.2-5, MQTT-3.3.2-6].
func TestV5MessageExpiryQueued(t *testing.T) {
	var clk brokertest.Clock
	_, addr := brokertest.Start(t, broker.Config{Now: clk.Now}, nil)
	c, _ := brokertest.V5Dial(t, addr, brokertest.V5Expiry(brokertest.V5Connect("c", true), 600))
	c.V5Sub(1, packet.Subscription{Filter: []byte("t"), QoS: 1}, 1)
	c.Send(&packet.Disconnect{})
	c.ExpectClosed()

	p, _ := brokertest.V5Dial(t, addr, brokertest.V5Connect("p", true))
	for _, m := range []struct {
		payload string
		expiry  uint32
	}{{"short", 2}, {"long", 10}} {
		pp := &packet.Publish{Topic: []byte("t"), QoS: 1, PacketID: 1, Payload: []byte(m.payload)}
		pp.Props.Set(packet.PropMessageExpiry)
		pp.Props.MessageExpiry = m.expiry
		p.Send(pp)
		p.ExpectAck(packet.PUBACK)
	}
	clk.Advance(3 * time.Second)

	c, _ = brokertest.V5Dial(t, addr, brokertest.V5Expiry(brokertest.V5Connect("c", false), 600))
	m := c.ExpectPublish()
	if got, want := string(m.Payload), "long"; got != want {
		t.Fatalf("got %q, want %q (the expired message dropped)", got, want)
	}
	if !m.Props.Has(packet.PropMessageExpiry) {
		t.Fatal("no Message Expiry Interval")
	}
	if got := m.Props.MessageExpiry; got < 6 || got > 7 {
		t.Errorf("Message Expiry Interval %d, want 7 (10 less 3 s queued)", got)
	}
	c.Ack(packet.PUBACK, m.PacketID)
	c.ExpectSilence(100 * time.Millisecond)
}

// TestV5MessageExpiryRetained: a retained message is not sent after its
// expiry interval [MQTT-3.3.2-5].
func TestV5MessageExpiryRetained(t *testing.T) {
	var clk brokertest.Clock
	_, addr := brokertest.Start(t, broker.Config{Now: clk.Now}, nil)
	p, _ := brokertest.V5Dial(t, addr, brokertest.V5Connect("p", true))
	for _, topic := range []string{"r/expiring", "r/kept"} {
		pp := &packet.Publish{Topic: []byte(topic), Retain: true, Payload: []byte(topic)}
		if topic == "r/expiring" {
			pp.Props.Set(packet.PropMessageExpiry)
			pp.Props.MessageExpiry = 2
		}
		p.Send(pp)
	}
	p.Sync() // stored before anyone subscribes
	// Before expiry both are sent; the expiring one with its remaining time.
	c, _ := brokertest.V5Dial(t, addr, brokertest.V5Connect("c1", true))
	c.V5Sub(1, packet.Subscription{Filter: []byte("r/expiring"), QoS: 0}, 0)
	if m := c.ExpectPublish(); !m.Retain || m.Props.MessageExpiry == 0 {
		t.Errorf("retained %q: retain %v expiry %d", m.Topic, m.Retain, m.Props.MessageExpiry)
	}
	clk.Advance(3 * time.Second)
	c, _ = brokertest.V5Dial(t, addr, brokertest.V5Connect("c2", true))
	c.V5Sub(1, packet.Subscription{Filter: []byte("r/#"), QoS: 0}, 0)
	if m := c.ExpectPublish(); string(m.Topic) != "r/kept" {
		t.Errorf("got retained %q, want only r/kept", m.Topic)
	}
	c.ExpectSilence(100 * time.Millisecond)
}

// TestMaxMessageExpiry: Limits.MaxMessageExpiry (AIO's
// maxMessageExpirySeconds) caps a message's expiry interval and gives one
// to messages without: a retained message then expires with the cap.
func TestMaxMessageExpiry(t *testing.T) {
	var clk brokertest.Clock
	lim := broker.DefaultLimits()
	lim.MaxMessageExpiry = 5
	_, addr := brokertest.Start(t, broker.Config{Now: clk.Now, Limits: lim}, nil)
	p, _ := brokertest.V5Dial(t, addr, brokertest.V5Connect("p", true))
	for _, m := range []struct {
		topic  string
		expiry uint32 // 0: none
	}{{"r/long", 600}, {"r/none", 0}, {"r/short", 2}} {
		pp := &packet.Publish{Topic: []byte(m.topic), Retain: true, Payload: []byte(m.topic)}
		if m.expiry > 0 {
			pp.Props.Set(packet.PropMessageExpiry)
			pp.Props.MessageExpiry = m.expiry
		}
		p.Send(pp)
	}
	p.Sync()
	c, _ := brokertest.V5Dial(t, addr, brokertest.V5Connect("c1", true))
	c.V5Sub(1, packet.Subscription{Filter: []byte("r/#"), QoS: 0}, 0)
	want := map[string]uint32{"r/long": 5, "r/none": 5, "r/short": 2}
	for range 3 {
		m := c.ExpectPublish()
		if got := m.Props.MessageExpiry; !m.Props.Has(packet.PropMessageExpiry) || got != want[string(m.Topic)] {
			t.Errorf("%s: Message Expiry Interval %d, want %d", m.Topic, got, want[string(m.Topic)])
		}
	}
	clk.Advance(6 * time.Second)
	c, _ = brokertest.V5Dial(t, addr, brokertest.V5Connect("c2", true))
	c.V5Sub(1, packet.Subscription{Filter: []byte("r/#"), QoS: 0}, 0)
	c.ExpectSilence(100 * time.Millisecond) // every retained message expired with the cap
}
