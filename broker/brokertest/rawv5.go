package brokertest

import (
	"testing"

	"edgebroker/broker/packet"
)

// Raw's helpers for MQTT 5.0.

// V5Connect builds a CONNECT for a raw 5.0 client.
func V5Connect(id string, clean bool) *packet.Connect {
	return &packet.Connect{ClientID: []byte(id), CleanStart: clean}
}

// V5Expiry sets the Session Expiry Interval of a CONNECT and returns it.
func V5Expiry(c *packet.Connect, sec uint32) *packet.Connect {
	c.Props.Set(packet.PropSessionExpiry)
	c.Props.SessionExpiry = sec
	return c
}

// V5Dial connects a raw 5.0 client with CONNECT c and requires CONNACK
// success.
func V5Dial(t testing.TB, addr string, c *packet.Connect) (*Raw, *packet.Connack) {
	t.Helper()
	r := Dial(t, addr, packet.V5)
	ack := r.Connect(c)
	if ack.Code != packet.Success {
		t.Fatalf("CONNACK %q: code %#x", c.ClientID, byte(ack.Code))
	}
	return r, ack
}

// V5Pub sends a PUBLISH and does not wait for an acknowledgement.
func (r *Raw) V5Pub(topic string, qos byte, pid uint16, payload string) {
	r.T.Helper()
	r.Send(&packet.Publish{Topic: []byte(topic), QoS: qos, PacketID: pid, Payload: []byte(payload)})
}

// V5Sub subscribes to one filter and requires the granted code want.
func (r *Raw) V5Sub(pid uint16, s packet.Subscription, want packet.Code) {
	r.T.Helper()
	if got := r.Subscribe(pid, s); len(got) != 1 || got[0] != want {
		r.T.Fatalf("SUBACK %q: got %v, want [%#x]", s.Filter, got, byte(want))
	}
}

// V5SubID subscribes to one filter with subscription identifier id and
// requires the requested QoS granted.
func (r *Raw) V5SubID(pid uint16, id uint32, s packet.Subscription) {
	r.T.Helper()
	sp := &packet.Subscribe{PacketID: pid, Filters: []packet.Subscription{s}}
	sp.Props.SubscriptionIDs = []uint32{id}
	r.Send(sp)
	h, body := r.Read()
	var a packet.Suback
	if h.Type != packet.SUBACK || a.Decode(r.Version, h.Flags, body) != nil {
		r.T.Fatalf("got packet type %d, want SUBACK", h.Type)
	}
	if len(a.Codes) != 1 || a.Codes[0] != packet.Code(s.QoS) {
		r.T.Fatalf("SUBACK %q: %v", s.Filter, a.Codes)
	}
}
