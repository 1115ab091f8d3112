package broker_test

import (
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/google/go-cmp/cmp"

	"edgebroker/broker"
	"edgebroker/broker/brokertest"
	"edgebroker/broker/packet"
	"edgebroker/broker/testenv"
)

// TestV5SessionExpiryZeroEndsSession: with Session Expiry Interval 0 (the
// default) the session ends when the connection closes [MQTT-3.1.2-23].
func TestV5SessionExpiryZeroEndsSession(t *testing.T) {
	s, addr := brokertest.Start(t, broker.Config{}, nil)
	c, _ := brokertest.V5Dial(t, addr, brokertest.V5Connect("c", false))
	c.V5Sub(1, packet.Subscription{Filter: []byte("t"), QoS: 1}, 1)
	c.Send(&packet.Disconnect{})
	c.ExpectClosed()
	testenv.Eventually(t, brokertest.WaitTime, "session end", func() bool { return !s.HasSession("c") })

	c2, ack := brokertest.V5Dial(t, addr, brokertest.V5Connect("c", false))
	if ack.SessionPresent {
		t.Error("Session Present after expiry 0 session ended")
	}
	p, _ := brokertest.V5Dial(t, addr, brokertest.V5Connect("p", true))
	p.V5Pub("t", 1, 1, "x")
	if a := p.ExpectAck(packet.PUBACK); a.Code != packet.NoMatchingSubscribers {
		t.Errorf("PUBACK code %#x, want 0x10: subscription survived", byte(a.Code))
	}
	c2.ExpectSilence(100 * time.Millisecond)
}

// TestV5SessionResumed: a session with expiry N keeps its subscriptions
// and the QoS 1 and 2 messages queued while offline; the CONNACK says
// Session Present [MQTT-3.2.2-3].
func TestV5SessionResumed(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{}, nil)
	c, _ := brokertest.V5Dial(t, addr, brokertest.V5Expiry(brokertest.V5Connect("c", true), 60))
	c.V5Sub(1, packet.Subscription{Filter: []byte("t/+"), QoS: 2}, 2)
	c.Send(&packet.Disconnect{})
	c.ExpectClosed()

	p, _ := brokertest.V5Dial(t, addr, brokertest.V5Connect("p", true))
	p.V5Pub("t/1", 1, 1, "one")
	p.ExpectAck(packet.PUBACK)
	p.V5Pub("t/2", 2, 2, "two")
	p.ExpectAck(packet.PUBREC)

	c, ack := brokertest.V5Dial(t, addr, brokertest.V5Expiry(brokertest.V5Connect("c", false), 60))
	if !ack.SessionPresent {
		t.Fatal("Session Present = false on resume")
	}
	for _, want := range []struct {
		topic string
		qos   byte
	}{{"t/1", 1}, {"t/2", 2}} {
		m := c.ExpectPublish()
		if string(m.Topic) != want.topic || m.QoS != want.qos {
			t.Errorf("got %q QoS %d, want %q QoS %d", m.Topic, m.QoS, want.topic, want.qos)
		}
	}
	// The subscription itself survived too.
	p.V5Pub("t/3", 0, 0, "three")
	if m := c.ExpectPublish(); string(m.Topic) != "t/3" {
		t.Errorf("got %q, want t/3", m.Topic)
	}
}

// TestV5DisconnectSessionExpiry: DISCONNECT may shorten the expiry to 0
// (the session ends at once) but may not raise it from 0 [MQTT-3.14.2-2].
func TestV5DisconnectSessionExpiry(t *testing.T) {
	s, addr := brokertest.Start(t, broker.Config{}, nil)

	c, _ := brokertest.V5Dial(t, addr, brokertest.V5Expiry(brokertest.V5Connect("a", true), 60))
	d := &packet.Disconnect{}
	d.Props.Set(packet.PropSessionExpiry)
	c.Send(d) // SessionExpiry 0
	c.ExpectClosed()
	testenv.Eventually(t, brokertest.WaitTime, "session end after DISCONNECT expiry 0", func() bool { return !s.HasSession("a") })

	c, _ = brokertest.V5Dial(t, addr, brokertest.V5Connect("b", true))
	d.Props.SessionExpiry = 30
	c.Send(d)
	if got, want := c.ExpectClosed(), int(packet.ProtocolError); got != want {
		t.Errorf("DISCONNECT raising expiry from 0: server sent %#x, want %#x", got, want)
	}
}

// TestV5AssignedClientID: an empty client identifier gets an Assigned
// Client Identifier in the CONNACK [MQTT-3.2.2-16].
func TestV5AssignedClientID(t *testing.T) {
	s, addr := brokertest.Start(t, broker.Config{}, nil)
	c, ack := brokertest.V5Paho(t, addr, &paho.Connect{CleanStart: true, KeepAlive: 30})
	id := ack.Properties.AssignedClientID
	if id == "" {
		t.Fatal("CONNACK without Assigned Client Identifier")
	}
	c.Sub(paho.SubscribeOptions{Topic: "t", QoS: 1}, 0)
	who := senderOf(t, s, "whoami")
	c.Pub(&paho.Publish{Topic: "whoami", QoS: 1})
	cl := recvClient(t, who)
	if cl.ID != id {
		t.Errorf("Client.ID %q, want the assigned %q", cl.ID, id)
	}
	if !s.HasSession(id) || !s.SendTo(cl.Session, &packet.Publish{Topic: []byte("direct"), QoS: 1, Payload: []byte("x")}) {
		t.Fatalf("no session under the assigned id %q", id)
	}
	if m := c.ExpectMessage(); m.Topic != "direct" {
		t.Errorf("got %q, want direct", m.Topic)
	}
}

// TestV5SessionTakeover: a second connection with the same client id
// closes the first with DISCONNECT 0x8E [MQTT-3.1.4-3].
func TestV5SessionTakeover(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{}, nil)
	first, _ := brokertest.V5Paho(t, addr, &paho.Connect{ClientID: "dup", CleanStart: true, KeepAlive: 30})
	second, _ := brokertest.V5Paho(t, addr, &paho.Connect{ClientID: "dup", CleanStart: false, KeepAlive: 30})
	if got, want := first.ExpectDisconnect().ReasonCode, byte(packet.SessionTakenOver); got != want {
		t.Errorf("first connection: DISCONNECT %#x, want %#x", got, want)
	}
	second.Sub(paho.SubscribeOptions{Topic: "still/here", QoS: 0}, 0)
}

// v5WillConnect returns a CONNECT with a will on "will" with delay and
// session expiry.
func v5WillConnect(id string, delay, expiry uint32) *packet.Connect {
	c := brokertest.V5Expiry(brokertest.V5Connect(id, true), expiry)
	c.WillFlag, c.WillTopic, c.WillPayload, c.WillQoS = true, []byte("will"), []byte(id+" gone"), 1
	if delay > 0 {
		c.WillProps.Set(packet.PropWillDelay)
		c.WillProps.WillDelay = delay
	}
	return c
}

func v5WillWatcher(t *testing.T, addr string) *brokertest.Raw {
	w, _ := brokertest.V5Dial(t, addr, brokertest.V5Connect("watcher", true))
	w.V5Sub(1, packet.Subscription{Filter: []byte("will"), QoS: 1}, 1)
	return w
}

// TestV5DisconnectWithWill: DISCONNECT 0x04 publishes the will; 0x00
// discards it [MQTT-3.14.4-3].
func TestV5DisconnectWithWill(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{}, nil)
	w := v5WillWatcher(t, addr)

	c, _ := brokertest.V5Dial(t, addr, v5WillConnect("normal", 0, 0))
	c.Send(&packet.Disconnect{Code: packet.NormalDisconnection})
	c.ExpectClosed()

	c, _ = brokertest.V5Dial(t, addr, v5WillConnect("with-will", 0, 0))
	c.Send(&packet.Disconnect{Code: packet.DisconnectWithWill})
	c.ExpectClosed()
	if m := w.ExpectPublish(); string(m.Payload) != "with-will gone" {
		t.Errorf("will payload %q, want the 0x04 client's will only", m.Payload)
	}
	w.ExpectSilence(100 * time.Millisecond)
}

// TestV5WillProperties: a will's user properties (order and duplicates
// kept) and content type reach a paho subscriber. The will is sent raw:
// paho v0.23.0 packs will properties with the CONNECT property table,
// which drops Content Type.
func TestV5WillProperties(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{}, nil)
	w, _ := brokertest.V5Paho(t, addr, &paho.Connect{ClientID: "w", CleanStart: true, KeepAlive: 30})
	w.Sub(paho.SubscribeOptions{Topic: "will", QoS: 1}, 0)
	cp := v5WillConnect("c", 0, 0)
	wp := &cp.WillProps
	wp.Set(packet.PropContentType)
	wp.ContentType = []byte("text/plain")
	wp.User = []packet.UserProperty{{Key: []byte("k"), Value: []byte("v1")}, {Key: []byte("j"), Value: []byte("x")}, {Key: []byte("k"), Value: []byte("v2")}}
	c, _ := brokertest.V5Dial(t, addr, cp)
	c.Send(&packet.Disconnect{Code: packet.DisconnectWithWill})
	m := w.ExpectMessage()
	if string(m.Payload) != "c gone" || m.Properties == nil {
		t.Fatalf("will %q props %v", m.Payload, m.Properties)
	}
	if got, want := m.Properties.ContentType, "text/plain"; got != want {
		t.Errorf("Content Type %q, want %q", got, want)
	}
	want := paho.UserProperties{{Key: "k", Value: "v1"}, {Key: "j", Value: "x"}, {Key: "k", Value: "v2"}}
	if diff := cmp.Diff(want, m.Properties.User); diff != "" {
		t.Errorf("user properties (-want +got):\n%s", diff)
	}
}

// TestV5ServerKeepAlive: Limits.MaxKeepAlive replaces a longer or zero
// keep-alive, announced as Server Keep Alive [MQTT-3.2.2-21].
func TestV5ServerKeepAlive(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{Limits: broker.Limits{MaxKeepAlive: 5}}, nil)
	for _, ka := range []uint16{60, 0} {
		c := brokertest.Dial(t, addr, packet.V5)
		ack := c.Connect(&packet.Connect{ClientID: []byte("c"), CleanStart: true, KeepAlive: ka})
		if !ack.Props.Has(packet.PropServerKeepAlive) {
			t.Errorf("keep-alive %d: CONNACK without Server Keep Alive", ka)
			continue
		}
		if got, want := ack.Props.ServerKeepAlive, uint16(5); got != want {
			t.Errorf("keep-alive %d: Server Keep Alive %d, want %d", ka, got, want)
		}
	}
}

// TestV5WillMessageExpiry: a will's Message Expiry Interval counts from
// when the will is published, not from the CONNECT (§3.1.3.2.4: "sent as the Publication Expiry Interval when the Server
// publishes the Will Message").
func TestV5WillMessageExpiry(t *testing.T) {
	var clk brokertest.Clock
	_, addr := brokertest.Start(t, broker.Config{Now: clk.Now}, nil)
	w := v5WillWatcher(t, addr)
	cp := v5WillConnect("c", 0, 0)
	cp.WillProps.Set(packet.PropMessageExpiry)
	cp.WillProps.MessageExpiry = 30
	c, _ := brokertest.V5Dial(t, addr, cp)
	clk.Advance(time.Minute) // connected longer than the will's lifetime
	c.Send(&packet.Disconnect{Code: packet.DisconnectWithWill})
	m := w.ExpectPublish()
	if got, want := m.Props.MessageExpiry, uint32(30); !m.Props.Has(packet.PropMessageExpiry) || got != want {
		t.Errorf("will Message Expiry Interval %d, want %d", got, want)
	}
}
