package broker_test

import (
	"context"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"edgebroker/broker"
	"edgebroker/broker/packet"
	"edgebroker/broker/testenv"
)

// v5Client is a real MQTT 5.0 client (eclipse/paho.golang) whose
// received messages and server DISCONNECTs arrive on channels.
type v5Client struct {
	*paho.Client
	t    testing.TB
	msgs chan *paho.Publish
	disc chan *paho.Disconnect
}

// v5DialPaho connects a paho client with cp. It returns the CONNACK and the
// Connect error (a refused CONNACK is an error with a non-nil CONNACK).
func v5DialPaho(t testing.TB, addr string, cp *paho.Connect, conf func(*paho.ClientConfig)) (*v5Client, *paho.Connack, error) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, waitTime)
	if err != nil {
		t.Fatal(err)
	}
	pc := &v5Client{t: t, msgs: make(chan *paho.Publish, 100), disc: make(chan *paho.Disconnect, 1)}
	cfg := paho.ClientConfig{
		Conn:          testenv.LockedConn(nc),
		PacketTimeout: waitTime,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(r paho.PublishReceived) (bool, error) {
			pc.msgs <- r.Packet
			return true, nil
		}},
		OnServerDisconnect: func(d *paho.Disconnect) { pc.disc <- d },
	}
	if conf != nil {
		conf(&cfg)
	}
	pc.Client = paho.NewClient(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	ack, err := pc.Connect(ctx, cp)
	if err != nil {
		nc.Close()
		return nil, ack, err
	}
	t.Cleanup(func() { pc.Disconnect(&paho.Disconnect{}) })
	return pc, ack, nil
}

// v5Paho is v5DialPaho for connections that must succeed.
func v5Paho(t testing.TB, addr string, cp *paho.Connect) (*v5Client, *paho.Connack) {
	t.Helper()
	c, ack, err := v5DialPaho(t, addr, cp, nil)
	if err != nil {
		t.Fatalf("paho connect %q: %v", cp.ClientID, err)
	}
	return c, ack
}

func v5Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	t.Cleanup(cancel)
	return ctx
}

// sub subscribes with one filter and checks the granted QoS.
func (c *v5Client) sub(opts paho.SubscribeOptions, id int) {
	c.t.Helper()
	s := &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{opts}}
	if id > 0 {
		s.Properties = &paho.SubscribeProperties{SubscriptionIdentifier: &id}
	}
	ack, err := c.Subscribe(v5Ctx(c.t), s)
	if err != nil {
		c.t.Fatalf("subscribe %q: %v", opts.Topic, err)
	}
	if got, want := ack.Reasons, []byte{opts.QoS}; !slices.Equal(got, want) {
		c.t.Fatalf("SUBACK %q: got %v, want %v", opts.Topic, got, want)
	}
}

// pub publishes and fails the test on error.
func (c *v5Client) pub(p *paho.Publish) *paho.PublishResponse {
	c.t.Helper()
	r, err := c.Publish(v5Ctx(c.t), p)
	if err != nil {
		c.t.Fatalf("publish %q: %v", p.Topic, err)
	}
	return r
}

// expectMessage waits for the next received message.
func (c *v5Client) expectMessage() *paho.Publish {
	c.t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(waitTime):
		c.t.Fatal("no message received")
		return nil
	}
}

// expectNoMessage requires that no message arrives within d.
func (c *v5Client) expectNoMessage(d time.Duration) {
	c.t.Helper()
	select {
	case m := <-c.msgs:
		c.t.Fatalf("unexpected message on %q: %q", m.Topic, m.Payload)
	case <-time.After(d):
	}
}

// expectDisconnect waits for a DISCONNECT from the server.
func (c *v5Client) expectDisconnect() *paho.Disconnect {
	c.t.Helper()
	select {
	case d := <-c.disc:
		return d
	case <-time.After(waitTime):
		c.t.Fatal("no DISCONNECT from the server")
		return nil
	}
}

// v5 builds a CONNECT for a raw 5.0 client.
func v5Connect(id string, clean bool) *packet.Connect {
	return &packet.Connect{ClientID: []byte(id), CleanStart: clean}
}

// v5Expiry sets the Session Expiry Interval of a CONNECT.
func v5Expiry(c *packet.Connect, sec uint32) *packet.Connect {
	c.Props.Set(packet.PropSessionExpiry)
	c.Props.SessionExpiry = sec
	return c
}

// v5Dial connects a raw 5.0 client and requires CONNACK success.
func v5Dial(t testing.TB, addr string, c *packet.Connect) (*rawClient, *packet.Connack) {
	t.Helper()
	r := dialRaw(t, addr, packet.V5)
	ack := r.connect(c)
	if ack.Code != packet.Success {
		t.Fatalf("CONNACK %q: code %#x", c.ClientID, byte(ack.Code))
	}
	return r, ack
}

// publish sends a PUBLISH from a raw client.
func (r *rawClient) v5Pub(topic string, qos byte, pid uint16, payload string) {
	r.t.Helper()
	r.send(&packet.Publish{Topic: []byte(topic), QoS: qos, PacketID: pid, Payload: []byte(payload)})
}

// v5Sub subscribes to one filter and requires the granted code want.
func (r *rawClient) v5Sub(pid uint16, s packet.Subscription, want packet.Code) {
	r.t.Helper()
	if got := r.subscribe(pid, s); len(got) != 1 || got[0] != want {
		r.t.Fatalf("SUBACK %q: got %v, want [%#x]", s.Filter, got, byte(want))
	}
}

// v5SubID sends a SUBSCRIBE with a subscription identifier.
func (r *rawClient) v5SubID(pid uint16, id uint32, s packet.Subscription) {
	r.t.Helper()
	sp := &packet.Subscribe{PacketID: pid, Filters: []packet.Subscription{s}}
	sp.Props.SubscriptionIDs = []uint32{id}
	r.send(sp)
	h, body := r.read()
	var a packet.Suback
	if h.Type != packet.SUBACK || a.Decode(r.v, h.Flags, body) != nil {
		r.t.Fatalf("got packet type %d, want SUBACK", h.Type)
	}
	if len(a.Codes) != 1 || a.Codes[0] != packet.Code(s.QoS) {
		r.t.Fatalf("SUBACK %q: %v", s.Filter, a.Codes)
	}
}

// ack sends a PUBACK (or another ack type) for pid.
func (r *rawClient) v5Ack(t packet.Type, pid uint16) {
	r.t.Helper()
	r.send(&packet.Ack{Type: t, PacketID: pid})
}

// v5Clock is a settable Config.Now: tests move time forward instead of
// sleeping through message expiry intervals.
type v5Clock struct{ off atomic.Int64 }

func (c *v5Clock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *v5Clock) advance(d time.Duration) { c.off.Add(int64(d)) }

// v5Eventually polls cond until it holds, failing the test after waitTime.
func v5Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTime)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// v5SessionExists reports whether the server holds a session for id.
func v5SessionExists(s *broker.Server, id string) bool {
	return s.HasSession(id)
}
