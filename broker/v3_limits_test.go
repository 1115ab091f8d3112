package broker_test

import (
	"bytes"
	"net"
	"runtime"
	"slices"
	"testing"
	"time"

	"edgebroker/broker"
	"edgebroker/broker/brokertest"
	"edgebroker/broker/packet"
	"edgebroker/broker/testenv"
)

// MQTT 3.1.1 tests of the broker's limits, slow consumers and malformed
// packets.

func TestV3MaxSubscriptions(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{Limits: broker.Limits{MaxSubscriptions: 2}}, nil)
	c, _ := brokertest.V3Dial(t, addr, "many", true)
	codes := c.Subscribe(1,
		packet.Subscription{Filter: []byte("ms/a"), QoS: 1},
		packet.Subscription{Filter: []byte("ms/b"), QoS: 1},
		packet.Subscription{Filter: []byte("ms/c"), QoS: 1})
	if want := []packet.Code{1, 1, 0x80}; !slices.Equal(codes, want) {
		t.Errorf("SUBACK: got %v, want %v", codes, want)
	}
	// Replacing a subscription does not count as a new one.
	codes = c.Subscribe(2, packet.Subscription{Filter: []byte("ms/a"), QoS: 2}, packet.Subscription{Filter: []byte("ms/d")})
	if want := []packet.Code{2, 0x80}; !slices.Equal(codes, want) {
		t.Errorf("second SUBACK: got %v, want %v", codes, want)
	}
}

func TestV3MaxPacketSize(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{Limits: broker.Limits{MaxPacketSize: 1024}}, nil)
	c, _ := brokertest.V3Dial(t, addr, "big", true)
	c.V3Pub("mp/t", 1, false, 1, string(make([]byte, 900)))
	c.Send(&packet.Publish{Topic: []byte("mp/t"), QoS: 1, PacketID: 2, Payload: make([]byte, 1100)})
	c.V3Closed(brokertest.WaitTime)
}

// A declared remaining length far beyond MaxPacketSize closes the
// connection at once, before the broker buffers (or allocates) it.
func TestV3HugeRemainingLength(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{Limits: broker.Limits{MaxPacketSize: 1 << 20}}, nil)
	huge := packet.AppendVarint(nil, 200<<20)
	for _, tc := range []struct {
		name      string
		connected bool
		first     byte
	}{
		{"PUBLISH", true, byte(packet.PUBLISH) << 4},
		{"CONNECT", false, byte(packet.CONNECT) << 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := brokertest.Dial(t, addr, packet.V311)
			if tc.connected {
				c.Connect(&packet.Connect{ClientID: []byte("huge"), CleanStart: true})
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			c.Write(append([]byte{tc.first}, huge...))
			c.Write(make([]byte, 4096)) // the start of a body
			c.V3Closed(time.Second)
			runtime.ReadMemStats(&after)
			if got := after.TotalAlloc - before.TotalAlloc; got > 50<<20 {
				t.Errorf("allocated %d MB while refusing the packet", got>>20)
			}
		})
	}
}

func TestV3MaxConnections(t *testing.T) {
	s, addr := brokertest.Start(t, broker.Config{Limits: broker.Limits{MaxConnections: 2}}, nil)
	first, _ := brokertest.V3Dial(t, addr, "c1", true)
	brokertest.V3Dial(t, addr, "c2", true)
	// Beyond the limit a socket is closed when it is accepted, before it
	// can send anything (sockets that have not finished CONNECT count).
	c := brokertest.Dial(t, addr, packet.V311)
	c.V3Closed(brokertest.WaitTime)
	first.V3Disconnect()
	brokertest.WaitConns(t, s, 1)
	brokertest.V3Dial(t, addr, "c3", true) // room again
}

func TestV3TopicLimits(t *testing.T) {
	for _, tc := range []struct {
		name     string
		lim      broker.Limits
		ok, long string
	}{
		{"levels", broker.Limits{MaxTopicLevels: 3}, "a/b/c", "a/b/c/d"},
		{"length", broker.Limits{MaxTopicLength: 10}, "0123456789", "0123456789a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, addr := brokertest.Start(t, broker.Config{Limits: tc.lim}, nil)
			c, _ := brokertest.V3Dial(t, addr, "limited", true)
			codes := c.Subscribe(1, packet.Subscription{Filter: []byte(tc.long), QoS: 1}, packet.Subscription{Filter: []byte(tc.ok), QoS: 1})
			if want := []packet.Code{0x80, 1}; !slices.Equal(codes, want) {
				t.Errorf("SUBACK: got %v, want %v", codes, want)
			}
			pub, _ := brokertest.V3Dial(t, addr, "pub", true)
			pub.V3Pub(tc.ok, 1, false, 1, "fits")
			c.V3Expect(tc.ok, "fits", 1)
			pub.Send(&packet.Publish{Topic: []byte(tc.long), QoS: 1, PacketID: 2, Payload: []byte("too deep")})
			pub.V3Closed(brokertest.WaitTime)
		})
	}
}

// A subscriber that never reads costs QoS 0 messages (counted as dropped)
// but neither blocks the publisher nor starves other subscribers.
func TestV3SlowConsumer(t *testing.T) {
	s, addr := brokertest.Start(t, broker.Config{Limits: broker.Limits{MaxPendingBytes: 16 << 10, MaxQueued: 1 << 20}}, nil)
	slow := brokertest.Dial(t, addr, packet.V311)
	slow.Conn.(*net.TCPConn).SetReadBuffer(4096)
	slow.Connect(&packet.Connect{ClientID: []byte("slow"), CleanStart: true})
	slow.V3Sub("sc/t", 0)

	fast, _ := brokertest.V3Dial(t, addr, "fast", true)
	fast.V3Sub("sc/t", 1)
	received := make(chan int, 1)
	go func() { // fast reads and acknowledges everything (no t.Fatal here)
		n := 0
		defer func() { received <- n }()
		for {
			h, body, err := fast.TryRead()
			if err != nil || h.Type != packet.PUBLISH {
				return
			}
			var p packet.Publish
			if p.Decode(packet.V311, h.Flags, body) != nil || p.QoS != 1 {
				return
			}
			fast.Conn.Write((&packet.Ack{Type: packet.PUBACK, PacketID: p.PacketID}).Append(nil, packet.V311))
			n++
		}
	}()

	pub, _ := brokertest.V3Dial(t, addr, "pub", true)
	const batch, maxSent = 100, 40000
	payload := bytes.Repeat([]byte("x"), 2048)
	var wire []byte
	sent := 0
	start := time.Now()
	for sent < 1000 || s.Stats.MessagesDropped.Load() == 0 {
		if sent >= maxSent {
			t.Fatalf("no message dropped after %d messages", sent)
		}
		wire = wire[:0]
		for i := range batch {
			p := packet.Publish{Topic: []byte("sc/t"), QoS: 1, PacketID: uint16(i + 1), Payload: payload}
			wire = p.Append(wire, packet.V311)
		}
		pub.Write(wire)
		for i := range batch { // Read fails the test after brokertest.WaitTime
			if a := pub.ExpectAck(packet.PUBACK); a.PacketID != uint16(i+1) {
				t.Fatalf("PUBACK packet id %d, want %d", a.PacketID, i+1)
			}
		}
		sent += batch
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("publishing %d messages took %v", sent, el)
	}
	testenv.Eventually(t, brokertest.WaitTime, "the fast subscriber", func() bool {
		return s.Stats.MessagesSent.Load()+s.Stats.MessagesDropped.Load() >= uint64(2*sent)
	})
	fast.Write(packet.AppendPingreq(nil)) // ends the reader goroutine after the last PUBLISH
	if got := <-received; got != sent {
		t.Errorf("fast subscriber: got %d messages, want %d", got, sent)
	}
	t.Logf("sent %d, dropped %d", sent, s.Stats.MessagesDropped.Load())
}

func TestV3MalformedPackets(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{}, nil)
	for _, tc := range []struct {
		name string
		wire []byte
	}{
		{"remaining length of 5 bytes", []byte{0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}},
		{"remaining length not minimal", []byte{0x30, 0x80, 0x00}},
		{"PUBLISH QoS 3", []byte{0x36, 5, 0, 1, 'a', 0, 1}},                 // [MQTT-3.3.1-4]
		{"SUBSCRIBE flags 0", []byte{0x80, 6, 0, 1, 0, 1, 'a', 1}},          // [MQTT-3.8.1-1]
		{"UNSUBSCRIBE flags 0", []byte{0xA0, 5, 0, 1, 0, 1, 'a'}},           // [MQTT-3.10.1-1]
		{"PUBREL flags 0", []byte{0x60, 2, 0, 1}},                           // [MQTT-3.6.1-1]
		{"DISCONNECT flags 1", []byte{0xE1, 0}},                             // [MQTT-2.2.2-2]
		{"truncated topic", []byte{0x30, 5, 0, 10, 'a', 'b', 'c'}},          // [MQTT-1.5.3]
		{"truncated filter", []byte{0x82, 5, 0, 1, 0, 5, 'a'}},              // [MQTT-1.5.3]
		{"topic with +", []byte{0x30, 5, 0, 3, 'a', '/', '+'}},              // [MQTT-3.3.2-2]
		{"topic with #", []byte{0x30, 5, 0, 3, 'a', '/', '#'}},              // [MQTT-3.3.2-2]
		{"topic invalid UTF-8", []byte{0x30, 4, 0, 2, 0xC3, 0x28}},          // [MQTT-1.5.3-1]
		{"topic with U+0000", []byte{0x30, 4, 0, 2, 'a', 0}},                // [MQTT-1.5.3-2]
		{"topic UTF-16 surrogate", []byte{0x30, 5, 0, 3, 0xED, 0xA0, 0x80}}, // [MQTT-1.5.3-1]
		{"empty topic", []byte{0x30, 3, 0, 0, 'x'}},                         // [MQTT-4.7.3-1]
		{"DUP with QoS 0", []byte{0x38, 4, 0, 1, 'a', 'x'}},                 // [MQTT-3.3.1-2]
		{"QoS 1 packet id 0", []byte{0x32, 5, 0, 1, 'a', 0, 0}},             // [MQTT-2.3.1-1]
		{"SUBSCRIBE without filters", []byte{0x82, 2, 0, 1}},                // [MQTT-3.8.3-3]
		{"SUBSCRIBE QoS 3", []byte{0x82, 6, 0, 1, 0, 1, 'a', 3}},            // [MQTT-3-8.3-4]
		{"SUBSCRIBE reserved bits", []byte{0x82, 6, 0, 1, 0, 1, 'a', 0x11}}, // [MQTT-3-8.3-4]
		{"UNSUBSCRIBE without filters", []byte{0xA2, 2, 0, 1}},              // [MQTT-3.10.3-2]
		{"reserved type 0", []byte{0x00, 0}},                                // [MQTT-2.2.1]
		{"AUTH in 3.1.1", []byte{0xF0, 0}},
		{"CONNACK from a client", []byte{0x20, 2, 0, 0}},
		{"SUBACK from a client", []byte{0x90, 3, 0, 1, 0}},
		{"PINGREQ with a body", []byte{0xC0, 1, 0}},
		{"PUBACK too long", []byte{0x40, 3, 0, 1, 0}},
		{"DISCONNECT with a body", []byte{0xE0, 1, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := brokertest.V3Dial(t, addr, "bad", true)
			c.Write(tc.wire)
			c.V3Closed(brokertest.WaitTime)
		})
	}
	c, _ := brokertest.V3Dial(t, addr, "good", true) // the broker is still serving
	c.V3Sub("ok", 0)
}

// The writer writes without waiting and falls back to a blocking write,
// with the write deadline, only when the socket is full. A subscriber
// that stops reading is closed after WriteTimeout; one that catches up
// again stays, also once that deadline has passed (a deadline left
// behind by the blocking write would fail the next write).
func TestWriterBlockingFallback(t *testing.T) {
	const timeout = time.Second // the slow one reads 8 MiB within it, under the race detector too
	s := broker.New(broker.Config{Limits: broker.Limits{WriteTimeout: timeout,
		MaxPendingBytes: 32 << 20, MaxTotalPendingBytes: 128 << 20}})
	broker.SetWriterIdle(s, time.Minute) // the writer stays while the deadline passes (parking clears it)
	addr := brokertest.Serve(t, s, nil)
	subs := make([]*brokertest.Raw, 2) // stuck, then slow (it reads, after a while)
	for i, id := range []string{"stuck", "slow"} {
		subs[i] = brokertest.Dial(t, addr, packet.V311)
		subs[i].Conn.(*net.TCPConn).SetReadBuffer(64 << 10)
		subs[i].Connect(&packet.Connect{ClientID: []byte(id), CleanStart: true})
		subs[i].V3Sub("wf/t", 0)
	}
	stuck, slow := subs[0], subs[1]
	pub, _ := brokertest.V3Dial(t, addr, "pub", true)
	payload := string(bytes.Repeat([]byte("x"), 64<<10))
	for range 128 { // 8 MiB: more than the sockets' buffers hold
		pub.V3Pub("wf/t", 0, false, 0, payload)
	}
	pub.V3Pub("wf/t", 0, false, 0, "mark")
	for { // the slow one catches up
		p := slow.ExpectPublish()
		if string(p.Payload) == "mark" {
			break
		}
	}
	// The stuck one is closed once its blocking write times out.
	brokertest.WaitConns(t, s, 2)
	// The write deadline the slow one's blocking write had set passes.
	time.Sleep(2 * timeout)
	pub.V3Pub("wf/t", 0, false, 0, "after")
	if p := slow.ExpectPublish(); string(p.Payload) != "after" {
		t.Fatalf("got %q, want after", p.Payload)
	}
	stuck.ExpectClosed()
}
