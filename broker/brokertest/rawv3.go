package brokertest

import (
	"testing"
	"time"

	"edgebroker/broker/packet"
)

// Raw's helpers for MQTT 3.1.1.

// V3Dial opens a raw 3.1.1 connection and connects as id, requiring the
// CONNACK to accept it. It returns the client and whether the broker had a
// session for it (session present).
func V3Dial(t testing.TB, addr, id string, clean bool) (*Raw, bool) {
	t.Helper()
	r := Dial(t, addr, packet.V311)
	ack := r.Connect(&packet.Connect{ClientID: []byte(id), CleanStart: clean})
	if ack.Code != 0 {
		t.Fatalf("CONNACK for %q: return code %d, want 0", id, ack.Code)
	}
	return r, ack.SessionPresent
}

// V3Connect opens a raw 3.1.1 connection with CONNECT c, requiring
// acceptance.
func V3Connect(t testing.TB, addr string, c *packet.Connect) *Raw {
	t.Helper()
	r := Dial(t, addr, packet.V311)
	if ack := r.Connect(c); ack.Code != 0 {
		t.Fatalf("CONNACK for %q: return code %d, want 0", c.ClientID, ack.Code)
	}
	return r
}

// V3Pub sends a PUBLISH and completes the client→broker acknowledgement
// flow for its QoS (PUBACK, or PUBREC/PUBREL/PUBCOMP; a PINGREQ round trip
// for QoS 0). When it returns, the broker has routed the message.
func (r *Raw) V3Pub(topic string, qos byte, retain bool, pid uint16, payload string) {
	r.T.Helper()
	r.Send(&packet.Publish{Topic: []byte(topic), QoS: qos, Retain: retain, PacketID: pid, Payload: []byte(payload)})
	switch qos {
	case 0:
		r.Sync()
	case 1:
		if a := r.ExpectAck(packet.PUBACK); a.PacketID != pid {
			r.T.Fatalf("PUBACK packet id %d, want %d", a.PacketID, pid)
		}
	case 2:
		if a := r.ExpectAck(packet.PUBREC); a.PacketID != pid {
			r.T.Fatalf("PUBREC packet id %d, want %d", a.PacketID, pid)
		}
		r.Ack(packet.PUBREL, pid)
		if a := r.ExpectAck(packet.PUBCOMP); a.PacketID != pid {
			r.T.Fatalf("PUBCOMP packet id %d, want %d", a.PacketID, pid)
		}
	}
}

// V3Recv reads the next PUBLISH and acknowledges it as a client must (QoS
// 2: PUBREC, then PUBREL from the broker, then PUBCOMP).
func (r *Raw) V3Recv() *packet.Publish {
	r.T.Helper()
	p := r.ExpectPublish()
	switch p.QoS {
	case 1:
		r.Ack(packet.PUBACK, p.PacketID)
	case 2:
		r.Ack(packet.PUBREC, p.PacketID)
		if a := r.ExpectAck(packet.PUBREL); a.PacketID != p.PacketID {
			r.T.Fatalf("PUBREL packet id %d, want %d", a.PacketID, p.PacketID)
		}
		r.Ack(packet.PUBCOMP, p.PacketID)
	}
	return p
}

// V3Collect receives n PUBLISH packets, acknowledging each as a client
// must, while PUBRELs for earlier QoS 2 messages interleave with later
// PUBLISHes. It returns when every QoS 2 flow is complete.
func (r *Raw) V3Collect(n int) []*packet.Publish {
	r.T.Helper()
	return r.v3receive(func(got []*packet.Publish, _ bool) bool { return len(got) >= n })
}

// V3Drain returns every PUBLISH the broker has already queued for r: it
// sends PINGREQ and receives (acknowledging) until the PINGRESP. Call it
// after the publisher's acknowledgements arrived, when routing is done.
func (r *Raw) V3Drain() []*packet.Publish {
	r.T.Helper()
	r.Write(packet.AppendPingreq(nil))
	return r.v3receive(func(_ []*packet.Publish, pong bool) bool { return pong })
}

// v3receive reads and acknowledges packets until done reports true and no
// QoS 2 flow is open.
func (r *Raw) v3receive(done func(got []*packet.Publish, pong bool) bool) []*packet.Publish {
	r.T.Helper()
	var got []*packet.Publish
	pong := false
	open := map[uint16]bool{} // QoS 2 awaiting PUBREL
	for !done(got, pong) || len(open) > 0 {
		h, body := r.Read()
		switch h.Type {
		case packet.PINGRESP:
			pong = true
		case packet.PUBLISH:
			var p packet.Publish
			if err := p.Decode(r.Version, h.Flags, body); err != nil {
				r.T.Fatalf("PUBLISH: %v", err)
			}
			got = append(got, &p)
			switch p.QoS {
			case 1:
				r.Ack(packet.PUBACK, p.PacketID)
			case 2:
				open[p.PacketID] = true
				r.Ack(packet.PUBREC, p.PacketID)
			}
		case packet.PUBREL:
			var a packet.Ack
			if err := a.Decode(h.Type, r.Version, h.Flags, body); err != nil {
				r.T.Fatalf("PUBREL: %v", err)
			}
			if !open[a.PacketID] {
				r.T.Fatalf("PUBREL for packet id %d, which is not awaiting one", a.PacketID)
			}
			delete(open, a.PacketID)
			r.Ack(packet.PUBCOMP, a.PacketID)
		default:
			r.T.Fatalf("got packet type %d, want PUBLISH, PUBREL or PINGRESP", h.Type)
		}
	}
	return got
}

// V3Expect receives the next PUBLISH (acknowledging it as V3Recv does) and
// checks topic, payload and QoS.
func (r *Raw) V3Expect(topic, payload string, qos byte) *packet.Publish {
	r.T.Helper()
	p := r.V3Recv()
	if string(p.Topic) != topic || string(p.Payload) != payload || p.QoS != qos {
		r.T.Fatalf("got PUBLISH %q %q QoS %d, want %q %q QoS %d", p.Topic, p.Payload, p.QoS, topic, payload, qos)
	}
	return p
}

// V3Sub subscribes to one filter (packet id 1) and requires the granted
// code to be qos.
func (r *Raw) V3Sub(filter string, qos byte) {
	r.T.Helper()
	codes := r.Subscribe(1, packet.Subscription{Filter: []byte(filter), QoS: qos})
	if len(codes) != 1 || codes[0] != packet.Code(qos) {
		r.T.Fatalf("SUBACK for %q: %v, want [%d]", filter, codes, qos)
	}
}

// V3Disconnect sends DISCONNECT and waits for the broker to close.
func (r *Raw) V3Disconnect() {
	r.T.Helper()
	r.Write([]byte{byte(packet.DISCONNECT) << 4, 0})
	r.ExpectClosed()
}

// V3Closed requires the broker to close the connection within d, without
// sending any packet first.
func (r *Raw) V3Closed(d time.Duration) {
	r.T.Helper()
	start := time.Now()
	h, _, err := r.TryRead()
	if err == nil {
		r.T.Fatalf("got packet type %d, want the connection closed", h.Type)
	}
	if !isClosed(err) {
		r.T.Fatalf("got %v, want the connection closed", err)
	}
	if el := time.Since(start); el > d {
		r.T.Fatalf("closed after %v, want within %v", el, d)
	}
}
