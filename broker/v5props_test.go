package broker_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/google/go-cmp/cmp"

	"edgebroker/broker"
	"edgebroker/broker/brokertest"
	"edgebroker/broker/packet"
)

// TestV5PropertiesPassThrough: user properties (order and duplicates
// kept), response topic, correlation data, content type and payload format
// travel from a paho publisher to a paho subscriber unchanged
// [MQTT-3.3.2-15..20].
func TestV5PropertiesPassThrough(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{}, nil)
	sub, _ := brokertest.V5Paho(t, addr, &paho.Connect{ClientID: "sub", CleanStart: true, KeepAlive: 30})
	sub.Sub(paho.SubscribeOptions{Topic: "req/#", QoS: 1}, 0)
	pub, _ := brokertest.V5Paho(t, addr, &paho.Connect{ClientID: "pub", CleanStart: true, KeepAlive: 30})
	sent := &paho.PublishProperties{
		CorrelationData: []byte{0, 1, 0xFF},
		ContentType:     "application/json",
		ResponseTopic:   "resp/pub",
		PayloadFormat:   paho.Byte(1),
		User:            paho.UserProperties{{Key: "b", Value: "1"}, {Key: "a", Value: "2"}, {Key: "b", Value: "3"}, {Key: "b", Value: "1"}},
	}
	pub.Pub(&paho.Publish{Topic: "req/x", QoS: 1, Payload: []byte(`{"k":1}`), Properties: sent})
	m := sub.ExpectMessage()
	got := m.Properties
	if got == nil {
		t.Fatal("message without properties")
	}
	if diff := cmp.Diff(sent.User, got.User); diff != "" {
		t.Errorf("user properties (-want +got):\n%s", diff)
	}
	if got.ResponseTopic != sent.ResponseTopic || got.ContentType != sent.ContentType ||
		string(got.CorrelationData) != string(sent.CorrelationData) {
		t.Errorf("got response topic %q content type %q correlation %x, want %q %q %x",
			got.ResponseTopic, got.ContentType, got.CorrelationData, sent.ResponseTopic, sent.ContentType, sent.CorrelationData)
	}
	if got.PayloadFormat == nil || *got.PayloadFormat != 1 {
		t.Errorf("Payload Format Indicator %v, want 1", got.PayloadFormat)
	}
}

// TestV5PayloadFormatInvalid: Payload Format Indicator 1 with a payload
// that is not UTF-8 is refused: PUBACK 0x99 at QoS 1, DISCONNECT 0x99 at
// QoS 0 [MQTT-3.3.2-4].
func TestV5PayloadFormatInvalid(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{}, nil)
	sub, _ := brokertest.V5Dial(t, addr, brokertest.V5Connect("sub", true))
	sub.V5Sub(1, packet.Subscription{Filter: []byte("t"), QoS: 1}, 1)
	bad := func(qos byte) *packet.Publish {
		p := &packet.Publish{Topic: []byte("t"), QoS: qos, Payload: []byte{0xFF, 0xFE}}
		if qos > 0 {
			p.PacketID = 9
		}
		p.Props.Set(packet.PropPayloadFormat)
		p.Props.PayloadFormat = 1
		return p
	}
	c, _ := brokertest.V5Dial(t, addr, brokertest.V5Connect("c", true))
	c.Send(bad(1))
	if a := c.ExpectAck(packet.PUBACK); a.Code != packet.PayloadFormatInvalid {
		t.Errorf("PUBACK %#x, want 0x99", byte(a.Code))
	}
	c.Send(bad(0))
	if got, want := c.ExpectClosed(), int(packet.PayloadFormatInvalid); got != want {
		t.Errorf("DISCONNECT %#x, want %#x", got, want)
	}
	sub.ExpectSilence(100 * time.Millisecond)
}

// TestV5SubscriptionIdentifier: a paho subscriber gets its subscription
// identifier back with each matching message [MQTT-3.3.4-3].
func TestV5SubscriptionIdentifier(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{}, nil)
	c, _ := brokertest.V5Paho(t, addr, &paho.Connect{ClientID: "c", CleanStart: true, KeepAlive: 30})
	c.Sub(paho.SubscribeOptions{Topic: "a/#", QoS: 1}, 7)
	c.Sub(paho.SubscribeOptions{Topic: "b/#", QoS: 1}, 300)
	for _, tt := range []struct {
		topic string
		id    int
	}{{"a/1", 7}, {"b/1", 300}} {
		c.Pub(&paho.Publish{Topic: tt.topic, QoS: 1, Payload: []byte("x")})
		m := c.ExpectMessage()
		if m.Properties == nil || m.Properties.SubscriptionIdentifier == nil {
			t.Errorf("%s: no subscription identifier", tt.topic)
			continue
		}
		if got := *m.Properties.SubscriptionIdentifier; got != tt.id {
			t.Errorf("%s: subscription identifier %d, want %d", tt.topic, got, tt.id)
		}
	}
}

// TestV5OverlappingSubscriptions: a client with several matching
// subscriptions gets one copy at the highest granted QoS carrying every
// matching subscription identifier [MQTT-3.3.4-2, MQTT-3.3.4-5].
func TestV5OverlappingSubscriptions(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{}, nil)
	c, _ := brokertest.V5Dial(t, addr, brokertest.V5Connect("c", true))
	c.V5SubID(1, 1, packet.Subscription{Filter: []byte("a/+"), QoS: 0})
	c.V5SubID(2, 2, packet.Subscription{Filter: []byte("a/b"), QoS: 2})
	c.V5SubID(3, 3, packet.Subscription{Filter: []byte("#"), QoS: 1})
	c.V5SubID(4, 4, packet.Subscription{Filter: []byte("x/#"), QoS: 1})
	p, _ := brokertest.V5Dial(t, addr, brokertest.V5Connect("p", true))
	p.V5Pub("a/b", 2, 1, "x")
	p.ExpectAck(packet.PUBREC)
	m := c.ExpectPublish()
	if got, want := m.QoS, byte(2); got != want {
		t.Errorf("QoS %d, want %d", got, want)
	}
	ids := slices.Sorted(slices.Values(m.Props.SubscriptionIDs))
	if diff := cmp.Diff([]uint32{1, 2, 3}, ids); diff != "" {
		t.Errorf("subscription identifiers (-want +got):\n%s", diff)
	}
	c.ExpectSilence(100 * time.Millisecond) // exactly one copy
}

// TestV5NoLocal: with No Local a client does not get its own messages,
// but still gets everyone else's [MQTT-3.8.3-3].
func TestV5NoLocal(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{}, nil)
	c, _ := brokertest.V5Dial(t, addr, brokertest.V5Connect("c", true))
	c.V5Sub(1, packet.Subscription{Filter: []byte("chat"), NoLocal: true}, 0)
	other, _ := brokertest.V5Dial(t, addr, brokertest.V5Connect("other", true))
	c.V5Pub("chat", 0, 0, "mine")
	other.V5Pub("chat", 0, 0, "theirs")
	if m := c.ExpectPublish(); string(m.Payload) != "theirs" {
		t.Errorf("got %q, want only the other client's message", m.Payload)
	}
	c.ExpectSilence(50 * time.Millisecond)
}

// TestV5RetainAsPublished: on normal delivery the retain flag is kept only
// for subscriptions with Retain As Published [MQTT-3.3.1-12, MQTT-3.3.1-13].
func TestV5RetainAsPublished(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{}, nil)
	rap, _ := brokertest.V5Dial(t, addr, brokertest.V5Connect("rap", true))
	rap.V5Sub(1, packet.Subscription{Filter: []byte("t"), RetainAsPublished: true}, 0)
	plain, _ := brokertest.V5Dial(t, addr, brokertest.V5Connect("plain", true))
	plain.V5Sub(1, packet.Subscription{Filter: []byte("t")}, 0)
	p, _ := brokertest.V5Dial(t, addr, brokertest.V5Connect("p", true))
	p.Send(&packet.Publish{Topic: []byte("t"), Retain: true, Payload: []byte("r")})
	if m := rap.ExpectPublish(); !m.Retain {
		t.Error("Retain As Published: retain flag cleared")
	}
	if m := plain.ExpectPublish(); m.Retain {
		t.Error("without Retain As Published: retain flag set on normal delivery")
	}
}

// TestV5RetainHandling: 0 sends retained messages on every SUBSCRIBE, 1
// only when the subscription is new, 2 never [MQTT-3.3.1-9..11].
func TestV5RetainHandling(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{}, nil)
	p, _ := brokertest.V5Dial(t, addr, brokertest.V5Connect("p", true))
	p.Send(&packet.Publish{Topic: []byte("r"), Retain: true, Payload: []byte("kept")})
	p.Sync() // stored before anyone subscribes
	for _, tt := range []struct {
		rh   byte
		want []bool // retained message sent on the first and second SUBSCRIBE
	}{{0, []bool{true, true}}, {1, []bool{true, false}}, {2, []bool{false, false}}} {
		c, _ := brokertest.V5Dial(t, addr, brokertest.V5Connect("c", true))
		for i, want := range tt.want {
			c.V5Sub(uint16(i+1), packet.Subscription{Filter: []byte("r"), RetainHandling: tt.rh}, 0)
			if !want {
				c.ExpectSilence(50 * time.Millisecond)
				continue
			}
			if m := c.ExpectPublish(); string(m.Payload) != "kept" || !m.Retain {
				t.Errorf("RH %d subscribe %d: got %q retain %v", tt.rh, i+1, m.Payload, m.Retain)
			}
		}
		c.Conn.Close()
	}
}

// TestV5ReasonCodes: PUBACK 0x10 with no subscribers, UNSUBACK 0x11 for
// an unknown filter, SUBACK 0x8F for an invalid filter and 0x97 beyond
// Limits.MaxSubscriptions.
func TestV5ReasonCodes(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{Limits: broker.Limits{MaxSubscriptions: 2}}, nil)
	c, _ := brokertest.V5Dial(t, addr, brokertest.V5Connect("c", true))
	c.V5Pub("nobody/listens", 1, 1, "x")
	if a := c.ExpectAck(packet.PUBACK); a.Code != packet.NoMatchingSubscribers {
		t.Errorf("PUBACK %#x, want 0x10", byte(a.Code))
	}
	c.Send(&packet.Unsubscribe{PacketID: 2, Filters: [][]byte{[]byte("never/subscribed")}})
	h, body := c.Read()
	var ua packet.Unsuback
	if h.Type != packet.UNSUBACK || ua.Decode(packet.V5, h.Flags, body) != nil {
		t.Fatalf("got packet type %d, want UNSUBACK", h.Type)
	}
	if diff := cmp.Diff([]packet.Code{packet.NoSubscriptionExisted}, ua.Codes); diff != "" {
		t.Errorf("UNSUBACK (-want +got):\n%s", diff)
	}
	got := c.Subscribe(3,
		packet.Subscription{Filter: []byte("a/#/b")},
		packet.Subscription{Filter: []byte("one")},
		packet.Subscription{Filter: []byte("two"), QoS: 1},
		packet.Subscription{Filter: []byte("three")},
		packet.Subscription{Filter: []byte("one"), QoS: 2}, // replaces: no new quota
	)
	want := []packet.Code{packet.TopicFilterInvalid, 0, 1, packet.QuotaExceeded, 2}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("SUBACK (-want +got):\n%s", diff)
	}
}

// TestV5SharedNoLocal: No Local on a shared subscription is a Protocol
// Error [MQTT-3.8.3-4].
func TestV5SharedNoLocal(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{}, nil)
	c, _ := brokertest.V5Dial(t, addr, brokertest.V5Connect("c", true))
	c.Send(&packet.Subscribe{PacketID: 1, Filters: []packet.Subscription{{Filter: []byte("$share/g/t"), NoLocal: true}}})
	if got, want := c.ExpectClosed(), int(packet.ProtocolError); got != want {
		t.Errorf("DISCONNECT %#x, want %#x", got, want)
	}
}

// denyTopic is an Authorizer that refuses one topic for publish and
// subscribe, and one client id at CONNECT.
type denyTopic struct{ topic, client string }

func (d denyTopic) Authorize(c *broker.Client) broker.Permissions {
	if c.ID == d.client {
		return nil
	}
	return d
}
func (d denyTopic) AllowPublish(t []byte) bool   { return string(t) != d.topic }
func (d denyTopic) AllowSubscribe(f []byte) bool { return string(f) != d.topic }

// TestV5RequestProblemInfoZero: refusals explain themselves with a Reason
// String, unless the client set Request Problem Information to 0.
func TestV5RequestProblemInfoZero(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{}, &broker.Port{Name: "acl", Authorizer: denyTopic{topic: "secret"}})
	for _, problemInfo := range []bool{true, false} {
		cp := brokertest.V5Connect(fmt.Sprintf("c-%v", problemInfo), true)
		if !problemInfo {
			cp.Props.Set(packet.PropRequestProblemInfo) // value 0
		}
		c, _ := brokertest.V5Dial(t, addr, cp)
		c.V5Pub("secret", 1, 1, "x")
		if a := c.ExpectAck(packet.PUBACK); a.Code != packet.NotAuthorized || a.Props.Has(packet.PropReasonString) != problemInfo {
			t.Errorf("problem info %v: PUBACK %#x, Reason String %q", problemInfo, byte(a.Code), a.Props.ReasonString)
		}
		c.Send(&packet.Subscribe{PacketID: 2, Filters: []packet.Subscription{{Filter: []byte("secret")}}})
		h, body := c.Read()
		var sa packet.Suback
		if h.Type != packet.SUBACK || sa.Decode(packet.V5, h.Flags, body) != nil {
			t.Fatalf("got packet type %d, want SUBACK", h.Type)
		}
		if sa.Props.Has(packet.PropReasonString) != problemInfo {
			t.Errorf("problem info %v: SUBACK Reason String %q", problemInfo, sa.Props.ReasonString)
		}
	}
}
