package broker_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"edgebroker/broker"
	"edgebroker/broker/packet"
)

// Helpers for the MQTT 3.1.1 tests (v3_*_test.go), on top of harness_test.go.

// v3dial opens a raw 3.1.1 connection and connects as id, requiring the
// CONNACK to accept it. It returns the client and whether the broker had a
// session for it (session present).
func v3dial(t testing.TB, addr, id string, clean bool) (*rawClient, bool) {
	t.Helper()
	r := dialRaw(t, addr, packet.V311)
	ack := r.connect(&packet.Connect{ClientID: []byte(id), CleanStart: clean})
	if ack.Code != 0 {
		t.Fatalf("CONNACK for %q: return code %d, want 0", id, ack.Code)
	}
	return r, ack.SessionPresent
}

// v3connect opens a raw 3.1.1 connection with CONNECT c, requiring acceptance.
func v3connect(t testing.TB, addr string, c *packet.Connect) *rawClient {
	t.Helper()
	r := dialRaw(t, addr, packet.V311)
	if ack := r.connect(c); ack.Code != 0 {
		t.Fatalf("CONNACK for %q: return code %d, want 0", c.ClientID, ack.Code)
	}
	return r
}

// v3pub sends a PUBLISH and completes the client→broker acknowledgement flow
// for its QoS (PUBACK, or PUBREC/PUBREL/PUBCOMP; a PINGREQ round trip for
// QoS 0). When it returns, the broker has routed the message.
func (r *rawClient) v3pub(topic string, qos byte, retain bool, pid uint16, payload string) {
	r.t.Helper()
	r.send(&packet.Publish{Topic: []byte(topic), QoS: qos, Retain: retain, PacketID: pid, Payload: []byte(payload)})
	switch qos {
	case 0:
		r.write(packet.AppendPingreq(nil))
		if h, _ := r.read(); h.Type != packet.PINGRESP {
			r.t.Fatalf("got packet type %d, want PINGRESP", h.Type)
		}
	case 1:
		if a := r.expectAck(packet.PUBACK); a.PacketID != pid {
			r.t.Fatalf("PUBACK packet id %d, want %d", a.PacketID, pid)
		}
	case 2:
		if a := r.expectAck(packet.PUBREC); a.PacketID != pid {
			r.t.Fatalf("PUBREC packet id %d, want %d", a.PacketID, pid)
		}
		r.v3ack(packet.PUBREL, pid)
		if a := r.expectAck(packet.PUBCOMP); a.PacketID != pid {
			r.t.Fatalf("PUBCOMP packet id %d, want %d", a.PacketID, pid)
		}
	}
}

// v3ack sends a PUBACK, PUBREC, PUBREL or PUBCOMP.
func (r *rawClient) v3ack(typ packet.Type, pid uint16) {
	r.t.Helper()
	r.send(&packet.Ack{Type: typ, PacketID: pid})
}

// v3recv reads the next PUBLISH and acknowledges it as a client must (QoS 2:
// PUBREC, then PUBREL from the broker, then PUBCOMP).
func (r *rawClient) v3recv() *packet.Publish {
	r.t.Helper()
	p := r.expectPublish()
	switch p.QoS {
	case 1:
		r.v3ack(packet.PUBACK, p.PacketID)
	case 2:
		r.v3ack(packet.PUBREC, p.PacketID)
		if a := r.expectAck(packet.PUBREL); a.PacketID != p.PacketID {
			r.t.Fatalf("PUBREL packet id %d, want %d", a.PacketID, p.PacketID)
		}
		r.v3ack(packet.PUBCOMP, p.PacketID)
	}
	return p
}

// v3collect receives n PUBLISH packets, acknowledging each as a client
// must, while PUBRELs for earlier QoS 2 messages interleave with later
// PUBLISHes. It returns when every QoS 2 flow is complete.
func (r *rawClient) v3collect(n int) []*packet.Publish {
	r.t.Helper()
	return r.v3receive(func(got []*packet.Publish, _ bool) bool { return len(got) >= n })
}

// v3drain returns every PUBLISH the broker has already queued for r: it
// sends PINGREQ and receives (acknowledging) until the PINGRESP. Call it
// after the publisher's acknowledgements arrived, when routing is done.
func (r *rawClient) v3drain() []*packet.Publish {
	r.t.Helper()
	r.write(packet.AppendPingreq(nil))
	return r.v3receive(func(_ []*packet.Publish, pong bool) bool { return pong })
}

// v3receive reads and acknowledges packets until done reports true and no
// QoS 2 flow is open.
func (r *rawClient) v3receive(done func(got []*packet.Publish, pong bool) bool) []*packet.Publish {
	r.t.Helper()
	var got []*packet.Publish
	pong := false
	open := map[uint16]bool{} // QoS 2 awaiting PUBREL
	for !done(got, pong) || len(open) > 0 {
		h, body := r.read()
		switch h.Type {
		case packet.PINGRESP:
			pong = true
		case packet.PUBLISH:
			var p packet.Publish
			if err := p.Decode(r.v, h.Flags, body); err != nil {
				r.t.Fatalf("PUBLISH: %v", err)
			}
			got = append(got, &p)
			switch p.QoS {
			case 1:
				r.v3ack(packet.PUBACK, p.PacketID)
			case 2:
				open[p.PacketID] = true
				r.v3ack(packet.PUBREC, p.PacketID)
			}
		case packet.PUBREL:
			var a packet.Ack
			if err := a.Decode(h.Type, r.v, h.Flags, body); err != nil {
				r.t.Fatalf("PUBREL: %v", err)
			}
			if !open[a.PacketID] {
				r.t.Fatalf("PUBREL for packet id %d, which is not awaiting one", a.PacketID)
			}
			delete(open, a.PacketID)
			r.v3ack(packet.PUBCOMP, a.PacketID)
		default:
			r.t.Fatalf("got packet type %d, want PUBLISH, PUBREL or PINGRESP", h.Type)
		}
	}
	return got
}

// v3expect receives the next PUBLISH and checks topic, payload and QoS.
func (r *rawClient) v3expect(topic, payload string, qos byte) *packet.Publish {
	r.t.Helper()
	p := r.v3recv()
	if string(p.Topic) != topic || string(p.Payload) != payload || p.QoS != qos {
		r.t.Fatalf("got PUBLISH %q %q QoS %d, want %q %q QoS %d", p.Topic, p.Payload, p.QoS, topic, payload, qos)
	}
	return p
}

// v3sub subscribes to one filter and requires the granted code.
func (r *rawClient) v3sub(filter string, qos byte) {
	r.t.Helper()
	codes := r.subscribe(1, packet.Subscription{Filter: []byte(filter), QoS: qos})
	if len(codes) != 1 || codes[0] != packet.Code(qos) {
		r.t.Fatalf("SUBACK for %q: %v, want [%d]", filter, codes, qos)
	}
}

// v3disconnect sends DISCONNECT and waits for the broker to close.
func (r *rawClient) v3disconnect() {
	r.t.Helper()
	r.write([]byte{byte(packet.DISCONNECT) << 4, 0})
	r.expectClosed()
}

// v3closed requires the broker to close the connection within d,
// without sending any packet first.
func (r *rawClient) v3closed(d time.Duration) {
	r.t.Helper()
	start := time.Now()
	h, _, err := r.tryRead()
	if err == nil {
		r.t.Fatalf("got packet type %d, want the connection closed", h.Type)
	}
	if !v3isClosed(err) {
		r.t.Fatalf("got %v, want the connection closed", err)
	}
	if el := time.Since(start); el > d {
		r.t.Fatalf("closed after %v, want within %v", el, d)
	}
}

func v3isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err)
}

// v3waitFor polls cond until it holds, failing after waitTime.
func v3waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTime)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// v3waitConns waits until the server counts conns connections: after a
// close, the closed connection is gone and its session detached.
func v3waitConns(t testing.TB, s *broker.Server, conns int64) {
	t.Helper()
	v3waitFor(t, fmt.Sprintf("%d connections", conns), func() bool { return s.Stats.Connections.Load() == conns })
}

// v3msg is a message received by a paho client.
type v3msg struct {
	topic    string
	payload  string
	qos      byte
	retained bool
	dup      bool
}

// v3paho connects a paho client; opt may adjust its options first.
func v3paho(t testing.TB, addr, id string, clean bool, opt func(*mqtt.ClientOptions)) mqtt.Client {
	t.Helper()
	o := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).
		SetCleanSession(clean).SetProtocolVersion(4).SetAutoReconnect(false).
		SetConnectRetry(false).SetConnectTimeout(waitTime).SetKeepAlive(30 * time.Second).
		SetWriteTimeout(waitTime).SetOrderMatters(true)
	if opt != nil {
		opt(o)
	}
	c := mqtt.NewClient(o)
	v3wait(t, "connect "+id, c.Connect())
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

// v3wait waits for a paho token and fails on error.
func v3wait(t testing.TB, what string, tok mqtt.Token) {
	t.Helper()
	if !tok.WaitTimeout(waitTime) {
		t.Fatalf("%s: timed out", what)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// v3pahoSub subscribes c to filter and returns the channel of messages.
func v3pahoSub(t testing.TB, c mqtt.Client, filter string, qos byte) <-chan v3msg {
	t.Helper()
	ch := make(chan v3msg, 1000)
	v3wait(t, "subscribe "+filter, c.Subscribe(filter, qos, func(_ mqtt.Client, m mqtt.Message) {
		ch <- v3msg{m.Topic(), string(m.Payload()), m.Qos(), m.Retained(), m.Duplicate()}
	}))
	return ch
}

// v3next returns the next message from ch, failing after waitTime.
func v3next(t testing.TB, ch <-chan v3msg) v3msg {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(waitTime):
		t.Fatal("timed out waiting for a message")
		return v3msg{}
	}
}

// v3noMsg requires that nothing arrives on ch within d.
func v3noMsg(t testing.TB, ch <-chan v3msg, d time.Duration) {
	t.Helper()
	select {
	case m := <-ch:
		t.Fatalf("unexpected message %+v", m)
	case <-time.After(d):
	}
}
