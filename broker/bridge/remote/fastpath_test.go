package remote

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/sys/unix"

	"edgebroker/broker/packet"
	"edgebroker/broker/testenv"
)

// TestForwardWakesNoGoroutine: on a connection whose writer is idle,
// Publish and a run of TryPublish + Flush write the PUBLISHes on the
// caller's goroutine, and the reader retires what the upstream
// acknowledged itself: 2,000 messages to a real mosquitto, in order,
// wake the connection's serve goroutine (nearly) never. Before, every
// Publish kicked it and every PUBACK was an event for it.
func TestForwardWakesNoGoroutine(t *testing.T) {
	m := testenv.StartMosquitto(t)
	sub := subscribe(t, m.Addr, "sub", "up/#", true)
	c := New(Config{Hosts: []string{m.Addr}, ClientID: "bridge", MaxInflight: 100})
	defer c.Close()
	testenv.Eventually(t, 10*time.Second, "connected", func() bool { return c.Status().Connected != "" })
	var done atomic.Int64
	var order []int
	var mu sync.Mutex
	doneFn := func(i int) func() {
		return func() {
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			done.Add(1)
		}
	}
	msg := func(i int) *packet.Publish {
		return &packet.Publish{Topic: []byte("up/a"), QoS: 1, Payload: []byte(strconv.Itoa(i))}
	}
	wakes := c.serveWakes.Load()
	const n, batch = 2000, 50
	for i := 0; i < n/2; i++ { // Publish: a write each
		if err := c.Publish(context.Background(), msg(i), doneFn(i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := n / 2; i < n; i += batch { // TryPublish: a write a batch
		testenv.Eventually(t, 10*time.Second, "room for a batch", func() bool { return c.Status().Inflight <= 100-batch })
		for j := i; j < i+batch; j++ {
			if !c.TryPublish(msg(j), doneFn(j)) {
				t.Fatalf("TryPublish refused message %d with room in the window", j)
			}
		}
		c.Flush()
	}
	testenv.Eventually(t, 20*time.Second, "2,000 acknowledged", func() bool { return done.Load() == n })
	if w := c.serveWakes.Load() - wakes; w > 2 {
		t.Errorf("the serve goroutine woke %d times for %d messages", w, n)
	}
	testenv.Eventually(t, 10*time.Second, "2,000 delivered", func() bool { return sub.distinct() == n })
	if dups := sub.inOrder(t, n); dups != 0 {
		t.Errorf("%d duplicates without a reconnection", dups)
	}
	mu.Lock()
	defer mu.Unlock()
	doneInOrder(t, order)
}

// TestTryMessageFallback: a message TryMessage declines goes to
// OnMessage, and while OnMessage holds it every later one goes there
// too, behind it (the order); once OnMessage returned, TryMessage takes
// them again.
func TestTryMessageFallback(t *testing.T) {
	m := testenv.StartMosquitto(t)
	var mu sync.Mutex
	var got []string
	var tried, slow []int
	release := make(chan struct{})
	record := func(p *packet.Publish, path *[]int) {
		mu.Lock()
		got = append(got, string(p.Payload))
		i, _ := strconv.Atoi(string(p.Payload))
		*path = append(*path, i)
		mu.Unlock()
	}
	c := New(Config{Hosts: []string{m.Addr}, ClientID: "down", Subscriptions: []string{"cmd/#"}, SubQoS: 1,
		TryMessage: func(p *packet.Publish, ack func()) bool {
			if string(p.Payload) == "5" {
				return false
			}
			record(p, &tried)
			ack()
			return true
		},
		OnMessage: func(p *packet.Publish, ack func()) {
			if string(p.Payload) == "5" {
				<-release
			}
			record(p, &slow)
			ack()
		}})
	defer c.Close()
	select {
	case <-c.Subscribed():
	case <-time.After(10 * time.Second):
		t.Fatal("not subscribed")
	}
	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + m.Addr).SetClientID("pub"))
	if tok := pub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer pub.Disconnect(0)
	send := func(from, to int) {
		for i := from; i < to; i++ {
			if tok := pub.Publish("cmd/x", 1, false, strconv.Itoa(i)); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatal(tok.Error())
			}
		}
	}
	send(0, 20)
	testenv.Eventually(t, 10*time.Second, "6 to 19 queued behind 5", func() bool { return c.waiting.Load() == 15 })
	close(release)
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }
	testenv.Eventually(t, 10*time.Second, "20 handled", func() bool { return count() == 20 })
	testenv.Eventually(t, 10*time.Second, "OnMessage done", func() bool { return c.waiting.Load() == 0 })
	send(20, 30)
	testenv.Eventually(t, 10*time.Second, "30 handled", func() bool { return count() == 30 })
	mu.Lock()
	defer mu.Unlock()
	for i, p := range got {
		if p != strconv.Itoa(i) {
			t.Fatalf("at %d: %s (%v)", i, p, got)
		}
	}
	span := func(from, to int) []int {
		var s []int
		for i := from; i < to; i++ {
			s = append(s, i)
		}
		return s
	}
	if got, want := fmt.Sprint(slow), fmt.Sprint(span(5, 20)); got != want {
		t.Errorf("OnMessage took %s, want %s", got, want)
	}
	if got, want := fmt.Sprint(tried), fmt.Sprint(append(span(0, 5), span(20, 30)...)); got != want {
		t.Errorf("TryMessage took %s, want %s", got, want)
	}
}

// TestWireFullSocket: what a non-blocking write leaves on a full socket
// stays in the wire, in order, and flush (serve's) writes it, with what
// was appended meanwhile, once the peer reads.
func TestWireFullSocket(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.SetsockoptInt(fds[0], unix.SOL_SOCKET, unix.SO_SNDBUF, 4096)
	var conns [2]net.Conn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "pair")
		conns[i], err = net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		defer conns[i].Close()
	}
	w := newWire(conns[0])
	if w.rc == nil {
		t.Fatal("no raw socket for a Unix socket")
	}
	var want bytes.Buffer
	add := func(n int) {
		for i := range n {
			b := []byte(strconv.Itoa(i) + ",")
			want.Write(b)
			w.add(b)
		}
	}
	add(100_000) // far beyond the socket's buffer
	if !w.tryFlush() {
		t.Fatal("tryFlush wrote 500 KB to a socket of a few KB without handing off")
	}
	w.mu.Lock()
	left := len(w.buf)
	w.mu.Unlock()
	if left == 0 || left == want.Len() {
		t.Fatalf("%d of %d bytes left after a non-blocking write", left, want.Len())
	}
	got := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(conns[1])
		got <- b
	}()
	add(1000)
	if err := w.flush(); err != nil {
		t.Fatal(err)
	}
	conns[0].Close() // the peer reads to the end
	select {
	case b := <-got:
		if !bytes.Equal(b, want.Bytes()) {
			t.Fatalf("the peer read %d bytes, not the %d written in order", len(b), want.Len())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the peer read nothing to the end")
	}
	if w.tryFlush() {
		t.Error("tryFlush of an empty wire handed off")
	}
}

// TestStalledUpstreamWireBounded: an upstream that stops reading does not
// make the wire grow without limit. QoS 0 messages leave the queue once
// they are on the wire, so the wire's byte limit is what holds them back:
// the queue fills to MaxInflight and TryPublish says no.
func TestStalledUpstreamWireBounded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	stop := make(chan struct{})
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.(*net.TCPConn).SetReadBuffer(4096)
		buf := make([]byte, 4096)
		c.Read(buf)                                   // CONNECT
		c.Write([]byte{0x20, 0x03, 0x00, 0x00, 0x00}) // 5.0 CONNACK; then it reads nothing more
		<-stop
	}()
	c := New(Config{Hosts: []string{ln.Addr().String()}, ClientID: "stalled", MaxInflight: 10})
	defer func() {
		close(stop) // the upstream hangs up first: the blocked write ends
		c.Close()
	}()
	testenv.Eventually(t, 10*time.Second, "connected", func() bool { return c.Status().Connected != "" })
	payload := make([]byte, 1<<10)
	accepted := 0
	for range 20_000 { // 20 MiB: far beyond the socket buffers and the wire's limit
		if !c.TryPublish(&packet.Publish{Topic: []byte("up/q0"), Payload: payload}, func() {}) {
			break
		}
		c.Flush()
		accepted++
	}
	c.mu.Lock()
	var waiting int
	if s := c.cur; s != nil {
		s.w.mu.Lock()
		waiting = len(s.w.buf)
		s.w.mu.Unlock()
	}
	c.mu.Unlock()
	if accepted == 20_000 || waiting > maxWireBytes+2<<10 {
		t.Fatalf("a stalled upstream: %d of 20,000 QoS 0 messages taken, %d bytes waiting in the wire (limit %d)", accepted, waiting, maxWireBytes)
	}
}
