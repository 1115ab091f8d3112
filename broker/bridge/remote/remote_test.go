package remote

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"edgebroker/broker/packet"
	"edgebroker/broker/testenv"
)

// subscriber is a paho (3.1.1) QoS 1 subscriber on an upstream; it
// records the payloads in arrival order.
type subscriber struct {
	mu   sync.Mutex
	got  []string
	cli  mqtt.Client
	seen map[string]bool
}

func subscribe(t *testing.T, addr, id, filter string, clean bool) *subscriber {
	t.Helper()
	s := &subscriber{seen: map[string]bool{}}
	o := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetCleanSession(clean).SetOrderMatters(true).
		SetAutoReconnect(false)
	s.cli = mqtt.NewClient(o)
	if tok := s.cli.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber connect: %v", tok.Error())
	}
	if tok := s.cli.Subscribe(filter, 1, func(_ mqtt.Client, m mqtt.Message) {
		s.mu.Lock()
		s.got = append(s.got, string(m.Payload()))
		s.seen[string(m.Payload())] = true
		s.mu.Unlock()
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	t.Cleanup(func() { s.cli.Disconnect(0) })
	return s
}

func (s *subscriber) distinct() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}

// inOrder checks that every number 0..n-1 arrived and that their first
// arrivals are in order (a resend after a reconnection may repeat some:
// duplicates are counted, not errors).
// doneInOrder requires that the done callbacks ran in the order of the
// messages: order lists each callback's message number as it ran.
func doneInOrder(t *testing.T, order []int) {
	t.Helper()
	for i, v := range order {
		if v != i {
			t.Fatalf("done %d called at place %d", v, i)
		}
	}
}

func (s *subscriber) inOrder(t *testing.T, n int) (dups int) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	first := map[string]bool{}
	next := 0
	for _, p := range s.got {
		if first[p] {
			dups++
			continue
		}
		first[p] = true
		if p != strconv.Itoa(next) {
			t.Fatalf("first arrivals out of order: %s where %d was expected", p, next)
		}
		next++
	}
	if next != n {
		t.Fatalf("%d of %d messages arrived", next, n)
	}
	return dups
}

func publishN(t *testing.T, c *Client, topic string, from, n int, done *atomic.Int64, order *[]int, mu *sync.Mutex) {
	t.Helper()
	for i := from; i < from+n; i++ {
		p := &packet.Publish{Topic: []byte(topic), QoS: 1, Payload: []byte(strconv.Itoa(i))}
		if err := c.Publish(context.Background(), p, func() {
			mu.Lock()
			*order = append(*order, i)
			mu.Unlock()
			done.Add(1)
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPublishOrderMosquitto: 3,000 QoS 1 messages through a window of 50
// to a real mosquitto over MQTT 5.0 all arrive, in order, and their done
// callbacks run in the order Publish took them.
func TestPublishOrderMosquitto(t *testing.T) {
	m := testenv.StartMosquitto(t)
	sub := subscribe(t, m.Addr, "sub", "up/#", true)
	c := New(Config{Hosts: []string{m.Addr}, ClientID: "bridge", MaxInflight: 50})
	defer c.Close()
	var done atomic.Int64
	var mu sync.Mutex
	var order []int
	publishN(t, c, "up/a", 0, 3000, &done, &order, &mu)
	testenv.Eventually(t, 20*time.Second, "3,000 acknowledged", func() bool { return done.Load() == 3000 })
	testenv.Eventually(t, 10*time.Second, "3,000 delivered", func() bool { return sub.distinct() == 3000 })
	if dups := sub.inOrder(t, 3000); dups != 0 {
		t.Errorf("%d duplicates without a reconnection", dups)
	}
	doneInOrder(t, order)
	if st := c.Status(); st.Version != packet.V5 || st.Fallback || st.Connected != m.Addr || st.Inflight != 0 {
		t.Errorf("status %+v", st)
	}
}

// proxy forwards TCP connections to target until cut; when refuse5 is
// set it answers an MQTT 5.0 CONNECT as a 3.1.1-only server does (CONNACK
// return code 1) instead.
type proxy struct {
	ln      net.Listener
	target  string
	refuse5 bool
	mu      sync.Mutex
	conns   []net.Conn
	refused atomic.Int32
}

func startProxy(t *testing.T, target string, refuse5 bool) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, refuse5: refuse5}
	go p.accept()
	t.Cleanup(func() { ln.Close(); p.cut() })
	return p
}

func (p *proxy) Addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.serve(c)
	}
}

func (p *proxy) serve(c net.Conn) {
	// The CONNECT's protocol level: fixed header (2 bytes for a short
	// CONNECT), protocol name (6 bytes), level.
	head := make([]byte, 9)
	if _, err := io.ReadFull(c, head); err != nil {
		c.Close()
		return
	}
	if p.refuse5 && head[8] == packet.V5 {
		p.refused.Add(1)
		c.Write([]byte{0x20, 0x02, 0x00, packet.ConnackBadProtocolVersion})
		c.Close()
		return
	}
	u, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns = append(p.conns, c, u)
	p.mu.Unlock()
	u.Write(head)
	go func() { io.Copy(u, c); u.Close() }()
	io.Copy(c, u)
	c.Close()
}

// cut closes every connection made so far, as a node that dies does.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// TestFallback311: an upstream that refuses 5.0 (as a NATS server's MQTT
// gateway does) gets 3.1.1, and it says so in status; properties it
// cannot carry are counted.
func TestFallback311(t *testing.T) {
	m := testenv.StartMosquitto(t)
	sub := subscribe(t, m.Addr, "sub", "up/#", true)
	p := startProxy(t, m.Addr, true)
	c := New(Config{Hosts: []string{p.Addr()}, ClientID: "bridge"})
	defer c.Close()
	var done atomic.Int64
	msg := &packet.Publish{Topic: []byte("up/x"), QoS: 1, Payload: []byte("0")}
	msg.Props.Set(packet.PropContentType)
	msg.Props.ContentType = []byte("text/plain")
	if err := c.Publish(context.Background(), msg, func() { done.Add(1) }); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the message acknowledged", func() bool { return done.Load() == 1 })
	testenv.Eventually(t, 5*time.Second, "the message delivered", func() bool { return sub.distinct() == 1 })
	st := c.Status()
	if st.Version != packet.V311 || !st.Fallback || st.PropsDropped != 1 || p.refused.Load() != 1 {
		t.Errorf("status %+v, 5.0 refused %d times", st, p.refused.Load())
	}
}

// TestResendInOrder: the connection to the first host dies with messages
// in flight; the client goes on with the next host and sends every
// unacknowledged message again, in order, before new ones: all arrive, in
// order of first arrival.
func TestResendInOrder(t *testing.T) {
	m := testenv.StartMosquitto(t)
	sub := subscribe(t, m.Addr, "sub", "up/#", false)
	p := startProxy(t, m.Addr, false)
	p2 := startProxy(t, m.Addr, false)
	c := New(Config{Hosts: []string{p.Addr(), p2.Addr()}, ClientID: "bridge", MaxInflight: 200,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	defer c.Close()
	var done atomic.Int64
	var mu sync.Mutex
	var order []int
	go func() {
		testenv.Eventually(t, 10*time.Second, "some acknowledged", func() bool { return done.Load() > 500 })
		p.ln.Close() // the first host is gone for good
		p.cut()
	}()
	publishN(t, c, "up/a", 0, 5000, &done, &order, &mu)
	testenv.Eventually(t, 30*time.Second, "5,000 acknowledged", func() bool { return done.Load() == 5000 })
	testenv.Eventually(t, 10*time.Second, "5,000 delivered", func() bool { return sub.distinct() == 5000 })
	dups := sub.inOrder(t, 5000)
	t.Logf("%d duplicates after the reconnection", dups)
	if st := c.Status(); st.Connected != p2.Addr() || st.LastError == "" {
		t.Errorf("status %+v", st)
	}
	doneInOrder(t, order)
}

// TestSubscribeDown: a client with subscriptions gets what is published
// upstream, in order, including what was queued for its persistent
// session while it was away; a message it does not acknowledge comes
// again after a reconnection.
func TestSubscribeDown(t *testing.T) {
	m := testenv.StartMosquitto(t)
	var mu sync.Mutex
	var got []string
	hold := atomic.Bool{}
	cfg := Config{Hosts: []string{m.Addr}, ClientID: "down", Subscriptions: []string{"cmd/#"}, SubQoS: 1,
		OnMessage: func(p *packet.Publish, ack func()) {
			mu.Lock()
			got = append(got, string(p.Payload))
			mu.Unlock()
			if !hold.Load() {
				ack()
			}
		}}
	c := New(cfg)
	select {
	case <-c.Subscribed():
	case <-time.After(10 * time.Second):
		t.Fatal("not subscribed")
	}
	if !c.Status().Subscribed {
		t.Fatal("Subscribed closed, but the status does not say so")
	}
	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + m.Addr).SetClientID("pub"))
	if tok := pub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer pub.Disconnect(0)
	send := func(from, n int) {
		for i := from; i < from+n; i++ {
			if tok := pub.Publish("cmd/x", 1, false, strconv.Itoa(i)); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatal(tok.Error())
			}
		}
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }
	send(0, 100)
	testenv.Eventually(t, 10*time.Second, "100 down", func() bool { return count() == 100 })
	hold.Store(true)
	send(100, 1)
	testenv.Eventually(t, 10*time.Second, "the held one", func() bool { return count() == 101 })
	c.Close()
	send(101, 50) // queued upstream for the persistent session
	hold.Store(false)
	c = New(cfg)
	defer c.Close()
	testenv.Eventually(t, 10*time.Second, "the held one again and the 50 queued", func() bool { return count() >= 152 })
	mu.Lock()
	defer mu.Unlock()
	want := 0
	for i, p := range got {
		if i == 101 && p == "100" { // the unacknowledged one, again
			continue
		}
		if p != strconv.Itoa(want) {
			t.Fatalf("at %d: %s, want %d (%v)", i, p, want, fmt.Sprint(got[max(0, i-3):min(len(got), i+3)]))
		}
		want++
	}
}

// TestQoS0Sent: a QoS 0 message on an idle connection leaves at once
// (nothing else comes to push it out of the write buffer), and its done
// runs once it is written.
func TestQoS0Sent(t *testing.T) {
	m := testenv.StartMosquitto(t)
	sub := subscribe(t, m.Addr, "sub", "up/#", true)
	c := New(Config{Hosts: []string{m.Addr}, ClientID: "bridge"})
	defer c.Close()
	testenv.Eventually(t, 10*time.Second, "connected", func() bool { return c.Status().Connected != "" })
	var done atomic.Int64
	if err := c.Publish(context.Background(), &packet.Publish{Topic: []byte("up/q0"), Payload: []byte("0")}, func() { done.Add(1) }); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, "the QoS 0 message delivered", func() bool { return sub.distinct() == 1 && done.Load() == 1 })
}

// hostile is an upstream that accepts one connection, answers its CONNECT
// (and SUBSCRIBE), and then floods it with PUBLISHes, or sends one
// oversized packet, without waiting for acknowledgements. written counts
// what it wrote; done is closed when the client closed the connection
// (oversized) or stopped reading (a flood's write timed out: the flood
// goes on once the client reads again).
func hostile(t *testing.T, flood int, oversized bool) (addr string, written *atomic.Int64, done chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	written, done = &atomic.Int64{}, make(chan struct{})
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		tc := c.(*net.TCPConn)
		tc.SetReadBuffer(4096)
		tc.SetWriteBuffer(4096)
		buf := make([]byte, 4096)
		c.Read(buf)                                   // CONNECT
		c.Write([]byte{0x20, 0x03, 0x00, 0x00, 0x00}) // 5.0 CONNACK, no properties
		n, _ := c.Read(buf)                           // SUBSCRIBE
		if n > 3 {
			pid := buf[2:4]
			c.Write([]byte{0x90, 0x04, pid[0], pid[1], 0x00, 0x01}) // SUBACK: granted QoS 1
		}
		if oversized {
			p := (&packet.Publish{Topic: []byte("cmd/x"), QoS: 1, PacketID: 1, Payload: make([]byte, 2<<20)}).Append(nil, packet.V5)
			c.Write(p[:64])
			// The client must close without reading the rest.
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Read(buf); err != nil {
				close(done)
			}
			return
		}
		stalled := false
		for i := range flood {
			p := (&packet.Publish{Topic: []byte("cmd/x"), QoS: 1, PacketID: uint16(i%60000 + 1), Payload: make([]byte, 64<<10)}).Append(nil, packet.V5)
			for len(p) > 0 {
				wait := time.Second // then the client counts as stalled
				if stalled {
					wait = 30 * time.Second
				}
				c.SetWriteDeadline(time.Now().Add(wait))
				k, err := c.Write(p)
				written.Add(int64(k))
				p = p[k:]
				if err == nil {
					continue
				}
				if stalled {
					return
				}
				// Stalled: the client stopped reading. Like a real
				// upstream, keep the connection, take the client's
				// acknowledgements, and go on (the rest of this
				// PUBLISH first) once it reads again.
				stalled = true
				close(done)
				go io.Copy(io.Discard, c)
			}
		}
	}()
	return ln.Addr().String(), written, done
}

// TestReceiveBudget: an upstream that floods a flow down faster than the
// handler acknowledges finds the client stops reading once the handler
// holds MaxReceivedBytes (the rest waits in the socket buffers and at the
// upstream); the client reads on once the handler acknowledges.
func TestReceiveBudget(t *testing.T) {
	const total = 400 * 64 << 10 // 25 MiB, far beyond the socket buffers
	addr, written, stalled := hostile(t, 400, false)
	var held []func()
	var mu sync.Mutex
	var got atomic.Int64
	c := New(Config{Hosts: []string{addr}, ClientID: "down", Subscriptions: []string{"cmd/#"}, SubQoS: 1,
		MaxReceivedBytes: 1 << 20, MaxInflight: 1000,
		OnMessage: func(p *packet.Publish, ack func()) {
			got.Add(int64(len(p.Payload)))
			mu.Lock()
			held = append(held, ack)
			mu.Unlock()
		}})
	defer c.Close()
	select {
	case <-stalled:
	case <-time.After(20 * time.Second):
		t.Fatalf("the flood never stalled: %d of %d bytes written, %d handed over", written.Load(), total, got.Load())
	}
	if g := got.Load(); g > 1<<20 {
		t.Fatalf("the handler holds %d bytes, above MaxReceivedBytes", g)
	}
	if w := written.Load(); w >= total {
		t.Fatalf("all %d bytes were taken off the socket with 1 MiB allowed", w)
	}
	mu.Lock()
	for _, ack := range held {
		ack()
	}
	held = nil
	mu.Unlock()
	testenv.Eventually(t, 10*time.Second, "reading on after the acknowledgements", func() bool { return got.Load() > 1<<20 })
}

// TestMaxPacketSize: a packet above MaxPacketSize ends the connection
// before its body is read (and MaxPacketSize is announced in CONNECT).
func TestMaxPacketSize(t *testing.T) {
	addr, _, closed := hostile(t, 0, true)
	c := New(Config{Hosts: []string{addr}, ClientID: "down", Subscriptions: []string{"cmd/#"}, SubQoS: 1,
		MaxPacketSize: 1 << 20, OnMessage: func(p *packet.Publish, ack func()) { t.Error("an oversized message was delivered") }})
	defer c.Close()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the connection stayed open")
	}
	testenv.Eventually(t, 5*time.Second, "the error in status", func() bool {
		return strings.Contains(c.Status().LastError, "maximum packet size")
	})
}
