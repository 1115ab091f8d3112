package brokertest

import (
	"context"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"edgebroker/broker/testenv"
)

// V5Client is a real MQTT 5.0 client (eclipse/paho.golang) whose received
// messages and server DISCONNECTs arrive on channels.
type V5Client struct {
	*paho.Client
	t    testing.TB            // the test the client fails
	msgs chan *paho.Publish    // received PUBLISHes, buffered: 100
	disc chan *paho.Disconnect // the server's DISCONNECT
}

// V5DialPaho connects a paho.golang client to a loopback address with
// CONNECT cp; conf may adjust its configuration first. It returns the
// CONNACK and the Connect error (a refused CONNACK is an error with a
// non-nil CONNACK). A connected client is disconnected when the test ends.
func V5DialPaho(t testing.TB, addr string, cp *paho.Connect, conf func(*paho.ClientConfig)) (*V5Client, *paho.Connack, error) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, WaitTime)
	if err != nil {
		t.Fatal(err)
	}
	pc := &V5Client{t: t, msgs: make(chan *paho.Publish, 100), disc: make(chan *paho.Disconnect, 1)}
	cfg := paho.ClientConfig{
		Conn:          testenv.LockedConn(nc),
		PacketTimeout: WaitTime,
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
	ctx, cancel := context.WithTimeout(context.Background(), WaitTime)
	defer cancel()
	ack, err := pc.Connect(ctx, cp)
	if err != nil {
		nc.Close()
		return nil, ack, err
	}
	t.Cleanup(func() { pc.Disconnect(&paho.Disconnect{}) })
	return pc, ack, nil
}

// V5Paho is V5DialPaho for connections that must succeed.
func V5Paho(t testing.TB, addr string, cp *paho.Connect) (*V5Client, *paho.Connack) {
	t.Helper()
	c, ack, err := V5DialPaho(t, addr, cp, nil)
	if err != nil {
		t.Fatalf("paho connect %q: %v", cp.ClientID, err)
	}
	return c, ack
}

// waitCtx is a context that ends after WaitTime or with the test.
func waitCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), WaitTime)
	t.Cleanup(cancel)
	return ctx
}

// Sub subscribes with one filter, id as its subscription identifier (0:
// none), and requires the requested QoS granted.
func (c *V5Client) Sub(opts paho.SubscribeOptions, id int) {
	c.t.Helper()
	s := &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{opts}}
	if id > 0 {
		s.Properties = &paho.SubscribeProperties{SubscriptionIdentifier: &id}
	}
	ack, err := c.Subscribe(waitCtx(c.t), s)
	if err != nil {
		c.t.Fatalf("subscribe %q: %v", opts.Topic, err)
	}
	if got, want := ack.Reasons, []byte{opts.QoS}; !slices.Equal(got, want) {
		c.t.Fatalf("SUBACK %q: got %v, want %v", opts.Topic, got, want)
	}
}

// Pub publishes p and fails the test on an error.
func (c *V5Client) Pub(p *paho.Publish) *paho.PublishResponse {
	c.t.Helper()
	r, err := c.Publish(waitCtx(c.t), p)
	if err != nil {
		c.t.Fatalf("publish %q: %v", p.Topic, err)
	}
	return r
}

// ExpectMessage waits for the next received message.
func (c *V5Client) ExpectMessage() *paho.Publish {
	c.t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(WaitTime):
		c.t.Fatal("no message received")
		return nil
	}
}

// ExpectNoMessage requires that no message arrives within d.
func (c *V5Client) ExpectNoMessage(d time.Duration) {
	c.t.Helper()
	select {
	case m := <-c.msgs:
		c.t.Fatalf("unexpected message on %q: %q", m.Topic, m.Payload)
	case <-time.After(d):
	}
}

// ExpectDisconnect waits for a DISCONNECT from the server.
func (c *V5Client) ExpectDisconnect() *paho.Disconnect {
	c.t.Helper()
	select {
	case d := <-c.disc:
		return d
	case <-time.After(WaitTime):
		c.t.Fatal("no DISCONNECT from the server")
		return nil
	}
}
