package broker_test

import (
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	"edgebroker/broker"
	"edgebroker/broker/brokertest"
	"edgebroker/broker/packet"
)

// MQTT 3.1.1 message flow tests: QoS in both directions, retained
// messages, wildcards, shared and overlapping subscriptions.

func topics(ps []*packet.Publish) []string {
	var ts []string
	for _, p := range ps {
		ts = append(ts, string(p.Topic))
	}
	return ts
}

func TestV3InboundAckFlows(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{}, nil)
	c, _ := brokertest.V3Dial(t, addr, "pub", true)

	c.Send(&packet.Publish{Topic: []byte("in/0"), Payload: []byte("x")})
	c.ExpectSilence(100 * time.Millisecond) // QoS 0: no acknowledgement

	c.Send(&packet.Publish{Topic: []byte("in/1"), QoS: 1, PacketID: 0x1234, Payload: []byte("x")})
	h, body := c.Read() // [MQTT-4.3.2-2]
	if got, want := fmt.Sprintf("%d % x", h.Type, body), fmt.Sprintf("%d 12 34", packet.PUBACK); got != want {
		t.Errorf("QoS 1: got %s, want %s", got, want)
	}

	c.Send(&packet.Publish{Topic: []byte("in/2"), QoS: 2, PacketID: 0x4321, Payload: []byte("x")})
	h, body = c.Read() // [MQTT-4.3.3-2]
	if got, want := fmt.Sprintf("%d % x", h.Type, body), fmt.Sprintf("%d 43 21", packet.PUBREC); got != want {
		t.Errorf("QoS 2: got %s, want %s", got, want)
	}
	c.Ack(packet.PUBREL, 0x4321)
	h, body = c.Read()
	if got, want := fmt.Sprintf("%d % x", h.Type, body), fmt.Sprintf("%d 43 21", packet.PUBCOMP); got != want {
		t.Errorf("QoS 2 PUBREL: got %s, want %s", got, want)
	}
}

func TestV3OutboundAckFlows(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{}, nil)
	sub, _ := brokertest.V3Dial(t, addr, "sub", true)
	sub.V3Sub("out/#", 2)
	pub, _ := brokertest.V3Dial(t, addr, "pub", true)

	pub.V3Pub("out/0", 0, false, 0, "zero")
	if p := sub.ExpectPublish(); p.QoS != 0 || p.PacketID != 0 || p.Dup {
		t.Errorf("QoS 0 delivery: QoS %d packet id %d dup %v", p.QoS, p.PacketID, p.Dup)
	}

	pub.V3Pub("out/1", 1, false, 1, "one")
	p := sub.ExpectPublish()
	if p.QoS != 1 || p.PacketID == 0 || p.Dup {
		t.Fatalf("QoS 1 delivery: QoS %d packet id %d dup %v", p.QoS, p.PacketID, p.Dup)
	}
	sub.Ack(packet.PUBACK, p.PacketID)

	pub.V3Pub("out/2", 2, false, 2, "two")
	p = sub.ExpectPublish()
	if p.QoS != 2 || p.PacketID == 0 {
		t.Fatalf("QoS 2 delivery: QoS %d packet id %d", p.QoS, p.PacketID)
	}
	sub.Ack(packet.PUBREC, p.PacketID)
	if a := sub.ExpectAck(packet.PUBREL); a.PacketID != p.PacketID { // [MQTT-4.3.3-3]
		t.Fatalf("PUBREL packet id: got %d, want %d", a.PacketID, p.PacketID)
	}
	sub.Ack(packet.PUBCOMP, p.PacketID)
	sub.ExpectSilence(100 * time.Millisecond)
}

// In-flight QoS 1 deliveries have distinct, non-zero packet identifiers.
func TestV3OutboundPacketIDs(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{}, nil)
	sub, _ := brokertest.V3Dial(t, addr, "sub", true)
	sub.V3Sub("ids", 1)
	pub, _ := brokertest.V3Dial(t, addr, "pub", true)
	seen := map[uint16]bool{}
	for i := range 10 {
		pub.V3Pub("ids", 1, false, 1, fmt.Sprint(i))
	}
	for i := range 10 {
		p := sub.ExpectPublish() // not acknowledged yet
		if p.PacketID == 0 || seen[p.PacketID] {
			t.Errorf("message %d: packet id %d (seen before: %v)", i, p.PacketID, seen[p.PacketID])
		}
		seen[p.PacketID] = true
	}
}

func TestV3QoSDowngrade(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{}, nil)
	var subs []*brokertest.Raw
	for q := range byte(3) {
		s, _ := brokertest.V3Dial(t, addr, fmt.Sprint("sub", q), true)
		s.V3Sub("dg/t", q)
		subs = append(subs, s)
	}
	pub, _ := brokertest.V3Dial(t, addr, "pub", true)
	for pq := range byte(3) {
		pub.V3Pub("dg/t", pq, false, 1, fmt.Sprint("q", pq))
	}
	for sq, s := range subs {
		got := s.V3Drain()
		if len(got) != 3 {
			t.Fatalf("subscriber QoS %d: got %d messages, want 3", sq, len(got))
		}
		for pq, p := range got { // [MQTT-3.8.4-6]
			if want := min(byte(pq), byte(sq)); p.QoS != want {
				t.Errorf("published QoS %d to subscription QoS %d: delivered QoS %d, want %d", pq, sq, p.QoS, want)
			}
		}
	}
}

// A QoS 2 PUBLISH sent again with DUP before PUBREL is routed once.
func TestV3QoS2DuplicateDeliveredOnce(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{}, nil)
	sub, _ := brokertest.V3Dial(t, addr, "sub", true)
	sub.V3Sub("dup/t", 2)
	pub, _ := brokertest.V3Dial(t, addr, "pub", true)
	p := &packet.Publish{Topic: []byte("dup/t"), QoS: 2, PacketID: 5, Payload: []byte("once")}
	pub.Send(p)
	pub.ExpectAck(packet.PUBREC)
	p.Dup = true
	pub.Send(p) // [MQTT-4.3.3-10]
	if a := pub.ExpectAck(packet.PUBREC); a.PacketID != 5 {
		t.Errorf("second PUBREC packet id: got %d, want 5", a.PacketID)
	}
	pub.Ack(packet.PUBREL, 5)
	pub.ExpectAck(packet.PUBCOMP)
	if got := sub.V3Drain(); len(got) != 1 {
		t.Errorf("deliveries: got %d, want 1", len(got))
	}
	// After PUBCOMP the identifier is free: the same id is a new message.
	pub.V3Pub("dup/t", 2, false, 5, "again")
	if got := sub.V3Drain(); len(got) != 1 || string(got[0].Payload) != "again" {
		t.Errorf("after PUBCOMP: got %d messages, want the new one", len(got))
	}
}

func TestV3PahoQoS(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{}, nil)
	sub := brokertest.V3Paho(t, addr, "paho-sub", true, nil)
	ch := brokertest.V3PahoSub(t, sub, "pq/#", 2)
	pub := brokertest.V3Paho(t, addr, "paho-pub", true, nil)
	for q := range byte(3) {
		brokertest.V3Wait(t, "publish", pub.Publish(fmt.Sprint("pq/", q), q, false, fmt.Sprint("qos", q)))
		m := brokertest.V3Next(t, ch)
		if got, want := m, (brokertest.V3Msg{Topic: fmt.Sprint("pq/", q), Payload: fmt.Sprint("qos", q), QoS: q}); got != want {
			t.Errorf("got %+v, want %+v", got, want)
		}
	}
	brokertest.V3NoMsg(t, ch, 100*time.Millisecond)
}

func TestV3Retained(t *testing.T) {
	s, addr := brokertest.Start(t, broker.Config{}, nil)
	live, _ := brokertest.V3Dial(t, addr, "live", true)
	live.V3Sub("ret/#", 1)
	pub, _ := brokertest.V3Dial(t, addr, "pub", true)
	pub.V3Pub("ret/a", 1, true, 1, "v1")
	pub.V3Pub("ret/a", 1, true, 2, "v2") // replaces v1 [MQTT-3.3.1-5]
	pub.V3Pub("ret/b", 0, true, 0, "b")

	for _, p := range live.V3Drain() {
		if p.Retain { // 3.1.1 [MQTT-3.3.1-9]: normal deliveries have retain 0
			t.Errorf("live delivery %q %q: retain got true, want false", p.Topic, p.Payload)
		}
	}
	if got, want := s.Retained(), 2; got != want {
		t.Errorf("retained messages: got %d, want %d", got, want)
	}

	late, _ := brokertest.V3Dial(t, addr, "late", true)
	late.V3Sub("ret/a", 1)
	if p := late.V3Expect("ret/a", "v2", 1); !p.Retain { // [MQTT-3.3.1-8]
		t.Errorf("retained delivery: retain got false, want true")
	}
	late.ExpectSilence(50 * time.Millisecond)

	pub.V3Pub("ret/a", 1, true, 3, "") // deletes [MQTT-3.3.1-10]
	if got, want := s.Retained(), 1; got != want {
		t.Errorf("after delete: retained messages got %d, want %d", got, want)
	}
	later, _ := brokertest.V3Dial(t, addr, "later", true)
	later.V3Sub("ret/+", 1)
	got := later.V3Drain()
	if want := []string{"ret/b"}; !slices.Equal(topics(got), want) {
		t.Errorf("after delete: got retained %v, want %v", topics(got), want)
	}
	if len(got) == 1 && (!got[0].Retain || got[0].QoS != 0) {
		t.Errorf("ret/b: retain %v QoS %d, want retain true QoS 0", got[0].Retain, got[0].QoS)
	}
}

func TestV3PahoRetained(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{}, nil)
	pub := brokertest.V3Paho(t, addr, "paho-pub", true, nil)
	brokertest.V3Wait(t, "publish", pub.Publish("pr/t", 1, true, "kept"))
	sub := brokertest.V3Paho(t, addr, "paho-sub", true, nil)
	ch := brokertest.V3PahoSub(t, sub, "pr/#", 1)
	if got, want := brokertest.V3Next(t, ch), (brokertest.V3Msg{Topic: "pr/t", Payload: "kept", QoS: 1, Retained: true}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	brokertest.V3Wait(t, "publish", pub.Publish("pr/t", 1, true, "live"))
	if got, want := brokertest.V3Next(t, ch), (brokertest.V3Msg{Topic: "pr/t", Payload: "live", QoS: 1}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestV3Wildcards(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{}, nil)
	published := []string{"sport", "sport/tennis", "sport/tennis/player1", "sports", "sport/",
		"/finance", "a", "x", "a/x", "$SYS/x", "$SYS/a/b"}
	for _, tc := range []struct {
		filter string
		want   []string
	}{
		{"sport/#", []string{"sport", "sport/tennis", "sport/tennis/player1", "sport/"}}, // [MQTT-4.7.1-2]
		{"sport/+", []string{"sport/tennis", "sport/"}},
		{"sport/+/player1", []string{"sport/tennis/player1"}},
		{"+", []string{"sport", "sports", "a", "x"}},
		{"+/+", []string{"sport/tennis", "sport/", "/finance", "a/x"}},
		{"+/x", []string{"a/x"}}, // not $SYS/x [MQTT-4.7.2-1]
		{"#", []string{"sport", "sport/tennis", "sport/tennis/player1", "sports", "sport/", "/finance", "a", "x", "a/x"}},
		{"$SYS/#", []string{"$SYS/x", "$SYS/a/b"}},
		{"$SYS/+", []string{"$SYS/x"}},
	} {
		t.Run(tc.filter, func(t *testing.T) {
			sub, _ := brokertest.V3Dial(t, addr, "sub", true)
			sub.V3Sub(tc.filter, 1)
			pub, _ := brokertest.V3Dial(t, addr, "pub", true)
			for i, tp := range published {
				pub.V3Pub(tp, 1, false, uint16(i+1), "x")
			}
			if got := topics(sub.V3Drain()); !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestV3SharedSubscriptions(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{}, nil)
	var g1 []*brokertest.Raw
	for _, id := range []string{"a", "b"} {
		c, _ := brokertest.V3Dial(t, addr, id, true)
		c.V3Sub("$share/g1/sh/+", 1)
		g1 = append(g1, c)
	}
	g2, _ := brokertest.V3Dial(t, addr, "c", true)
	g2.V3Sub("$share/g2/sh/t", 1)
	plain, _ := brokertest.V3Dial(t, addr, "d", true)
	plain.V3Sub("sh/t", 1)

	pub, _ := brokertest.V3Dial(t, addr, "pub", true)
	const n = 10
	var want []string
	for i := range n {
		pub.V3Pub("sh/t", 1, false, uint16(i+1), fmt.Sprint(i))
		want = append(want, fmt.Sprint(i))
	}
	var union []string
	for i, c := range g1 {
		got := c.V3Drain()
		if len(got) == 0 {
			t.Errorf("group member %d got nothing", i)
		}
		for _, p := range got {
			union = append(union, string(p.Payload))
		}
	}
	sort.Slice(union, func(i, j int) bool {
		return len(union[i]) < len(union[j]) || len(union[i]) == len(union[j]) && union[i] < union[j]
	})
	if !slices.Equal(union, want) { // each message to exactly one member
		t.Errorf("group g1 got %q, want each of %q once", union, want)
	}
	for name, c := range map[string]*brokertest.Raw{"group g2": g2, "plain subscriber": plain} {
		var got []string
		for _, p := range c.V3Drain() {
			got = append(got, string(p.Payload))
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s got %q, want %q", name, got, want)
		}
	}
}

func TestV3OverlappingSubscriptions(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{}, nil)
	sub, _ := brokertest.V3Dial(t, addr, "sub", true)
	codes := sub.Subscribe(1,
		packet.Subscription{Filter: []byte("ov/#"), QoS: 1},
		packet.Subscription{Filter: []byte("ov/+"), QoS: 2},
		packet.Subscription{Filter: []byte("ov/t"), QoS: 0})
	if want := []packet.Code{1, 2, 0}; !slices.Equal(codes, want) {
		t.Fatalf("SUBACK: got %v, want %v", codes, want)
	}
	pub, _ := brokertest.V3Dial(t, addr, "pub", true)
	for _, q := range []byte{2, 1, 0} {
		pub.V3Pub("ov/t", q, false, 1, fmt.Sprint("q", q))
		got := sub.V3Drain()
		if len(got) != 1 { // one copy [MQTT-3.3.5-1]
			t.Fatalf("published at QoS %d: got %d copies, want 1", q, len(got))
		}
		if got[0].QoS != q { // at the highest granted QoS, capped by the publish
			t.Errorf("published at QoS %d: delivered at QoS %d", q, got[0].QoS)
		}
	}
}

func TestV3Unsubscribe(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{}, nil)
	sub, _ := brokertest.V3Dial(t, addr, "sub", true)
	sub.V3Sub("un/+", 1)
	sub.V3Sub("un/a", 1)
	pub, _ := brokertest.V3Dial(t, addr, "pub", true)

	sub.Send(&packet.Unsubscribe{PacketID: 0x0102, Filters: [][]byte{[]byte("un/+")}})
	h, body := sub.Read() // 3.1.1 UNSUBACK: the packet id only [MQTT-3.10.4-4]
	if got, want := fmt.Sprintf("%d % x", h.Type, body), fmt.Sprintf("%d 01 02", packet.UNSUBACK); got != want {
		t.Errorf("UNSUBACK: got %s, want %s", got, want)
	}
	pub.V3Pub("un/b", 1, false, 1, "gone")
	pub.V3Pub("un/a", 1, false, 2, "kept")
	if got, want := topics(sub.V3Drain()), []string{"un/a"}; !slices.Equal(got, want) {
		t.Errorf("after UNSUBSCRIBE: got %q, want %q", got, want)
	}
	// Unsubscribing from a filter never subscribed is acknowledged too.
	sub.Send(&packet.Unsubscribe{PacketID: 3, Filters: [][]byte{[]byte("un/none")}})
	h, body = sub.Read()
	if got, want := fmt.Sprintf("%d % x", h.Type, body), fmt.Sprintf("%d 00 03", packet.UNSUBACK); got != want {
		t.Errorf("UNSUBACK for an unknown filter: got %s, want %s", got, want)
	}
}
