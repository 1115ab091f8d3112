package broker_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"edgebroker/broker"
	"edgebroker/broker/brokertest"
	"edgebroker/broker/packet"
	"edgebroker/broker/seclog"
	"edgebroker/broker/testenv"
)

// pubAck publishes at QoS 1 from a raw client and returns the PUBACK's
// reason code.
func pubAck(r *brokertest.Raw, topic string, retain bool, pid uint16, payload []byte) packet.Code {
	r.T.Helper()
	r.Send(&packet.Publish{Topic: []byte(topic), QoS: 1, Retain: retain, PacketID: pid, Payload: payload})
	a := r.ExpectAck(packet.PUBACK)
	if a.PacketID != pid {
		r.T.Fatalf("PUBACK packet id %d, want %d", a.PacketID, pid)
	}
	return a.Code
}

func TestLimitsForBudget(t *testing.T) {
	l := broker.LimitsForBudget(256 << 20)
	if l.MaxRetainedBytes != 32<<20 || l.MaxRetained != 32768 || l.MaxQueuedBytes != 8<<20 ||
		l.MaxTotalQueuedBytes != 32<<20 || l.MaxSessions != 1024 || l.MaxConnections != 1024 ||
		l.MaxConnectSize != 64<<10 || l.MaxConnecting != 256 || l.MaxReadBuffers != 32<<20 ||
		l.MaxSubscriptionBytes != 1<<20 || l.MaxTotalSubscriptionBytes != 32<<20 || l.MaxTotalPendingBytes != 32<<20 {
		t.Errorf("LimitsForBudget(256 MiB) = %+v", l)
	}
	small := broker.LimitsForBudget(1) // raised to 16 MiB
	if small.MaxConnectSize != 64<<10 || small.MaxConnecting != 16 {
		t.Errorf("LimitsForBudget(16 MiB): connect size %d, connecting %d", small.MaxConnectSize, small.MaxConnecting)
	}
	if d := broker.DefaultLimits(); d.MemoryBudget != broker.DefaultMemoryBudget || d.MaxRetained != l.MaxRetained {
		t.Errorf("DefaultLimits budget %d, retained %d", d.MemoryBudget, d.MaxRetained)
	}
}

// Retained messages beyond the count or byte limit are refused: 5.0 gets
// PUBACK 0x97, 3.1.1 a PUBACK but nothing is stored or routed; each
// refusal is counted. Replacing and deleting always work.
func TestBudgetRetained(t *testing.T) {
	s, addr := brokertest.Start(t, broker.Config{Limits: broker.Limits{MaxRetained: 2, MaxRetainedBytes: 4096}}, nil)
	p5, _ := brokertest.V5Dial(t, addr, brokertest.V5Connect("p5", true))
	watch, _ := brokertest.V5Dial(t, addr, brokertest.V5Connect("watch", true))
	watch.V5Sub(1, packet.Subscription{Filter: []byte("r/#"), QoS: 1}, 1)

	if c := pubAck(p5, "r/1", true, 1, []byte("one")); c != packet.Success {
		t.Fatalf("first retained: %#x", byte(c))
	}
	watch.ExpectPublish()
	if c := pubAck(p5, "r/2", true, 2, []byte("two")); c != packet.Success {
		t.Fatalf("second retained: %#x", byte(c))
	}
	watch.ExpectPublish()
	if c := pubAck(p5, "r/3", true, 3, []byte("three")); c != packet.QuotaExceeded {
		t.Errorf("third retained (count limit): %#x, want 0x97", byte(c))
	}
	if c := pubAck(p5, "r/1", true, 4, []byte("one again")); c != packet.Success {
		t.Errorf("replacing a retained message: %#x", byte(c))
	}
	watch.ExpectPublish() // r/1 again; r/3 was not routed
	if c := pubAck(p5, "r/2", true, 5, bytes.Repeat([]byte("x"), 5000)); c != packet.QuotaExceeded {
		t.Errorf("replacing with a message beyond the byte limit: %#x, want 0x97", byte(c))
	}
	if c := pubAck(p5, "r/2", true, 6, nil); c >= 0x80 {
		t.Errorf("deleting: %#x", byte(c))
	}
	watch.ExpectPublish()
	if c := pubAck(p5, "plain", false, 7, []byte("not retained")); c >= 0x80 && c != packet.NoMatchingSubscribers {
		t.Errorf("a message that is not retained: %#x", byte(c))
	}

	// 3.1.1: the refused message is dropped silently.
	p3, _ := brokertest.V3Dial(t, addr, "p3", true)
	p3.V3Pub("r/3", 1, true, 1, "three")
	p3.V3Pub("r/4", 1, true, 2, "four")
	watch.ExpectPublish() // r/3 fits in the room the delete made
	watch.ExpectSilence(100 * 1e6)
	if got := s.Retained(); got != 2 {
		t.Errorf("%d retained messages, want 2", got)
	}
	if n := s.Security().Count(seclog.LimitRetained); n != 3 {
		t.Errorf("%d limit_retained events, want 3", n)
	}
	if n := s.Stats.MessagesDropped.Load(); n != 3 {
		t.Errorf("%d messages dropped, want 3", n)
	}
	if err := s.Publish(&packet.Publish{Topic: []byte("r/5"), Retain: true, Payload: []byte("x")}); !errors.Is(err, broker.ErrOverBudget) {
		t.Errorf("in-process publish beyond the limit: %v", err)
	}
}

// An offline session's queue is bounded in bytes beside the count, and
// all queues together by the total; a message that can be queued nowhere
// gets PUBACK 0x97 (5.0).
func TestBudgetQueueBytes(t *testing.T) {
	lim := broker.Limits{MaxQueuedBytes: 3000, MaxTotalQueuedBytes: 5000, DropPolicy: broker.DropNewest}
	s, addr := brokertest.Start(t, broker.Config{Limits: lim}, nil)
	for _, id := range []string{"a", "b"} {
		sub, _ := brokertest.V5Dial(t, addr, brokertest.V5Expiry(brokertest.V5Connect(id, true), 600))
		sub.V5Sub(1, packet.Subscription{Filter: []byte(id + "/#"), QoS: 1}, 1)
		sub.Send(&packet.Disconnect{})
		sub.ExpectClosed()
		brokertest.WaitConns(t, s, 0) // detached: offline
	}
	p, _ := brokertest.V5Dial(t, addr, brokertest.V5Connect("pub", true))
	kb := bytes.Repeat([]byte("k"), 1000)
	var codes []packet.Code
	for i := range 4 {
		codes = append(codes, pubAck(p, "a/t", false, uint16(1+i), kb))
	}
	// Two fit the session's 3000 bytes (1003 each); the third does not.
	if want := []packet.Code{0, 0, 0x97, 0x97}; !slicesEqual(codes, want) {
		t.Errorf("PUBACKs for session a: %v, want %v", codes, want)
	}
	codes = codes[:0]
	for i := range 3 {
		codes = append(codes, pubAck(p, "b/t", false, uint16(10+i), kb))
	}
	// The total of 5000 leaves room for two more only.
	if want := []packet.Code{0, 0, 0x97}; !slicesEqual(codes, want) {
		t.Errorf("PUBACKs for session b: %v, want %v", codes, want)
	}
	if n := s.Security().Count(seclog.LimitQueue); n != 3 {
		t.Errorf("%d limit_queue events, want 3", n)
	}

	// 3.1.1 publishers are not told; the message is dropped.
	p3, _ := brokertest.V3Dial(t, addr, "p3", true)
	p3.V3Pub("a/t", 1, false, 1, string(kb))
	if n := s.Stats.MessagesDropped.Load(); n != 4 {
		t.Errorf("%d messages dropped, want 4", n)
	}

	a, _ := brokertest.V5Dial(t, addr, brokertest.V5Expiry(brokertest.V5Connect("a", false), 600))
	for range 2 {
		m := a.ExpectPublish()
		a.Ack(packet.PUBACK, m.PacketID)
	}
	a.ExpectSilence(100 * 1e6)
	testenv.Eventually(t, brokertest.WaitTime, "session a's queue to drain", func() bool { return broker.QueuedBytes(s) == 2*1003 })
}

func slicesEqual(a, b []packet.Code) bool { return string(codeBytes(a)) == string(codeBytes(b)) }

func codeBytes(cs []packet.Code) []byte {
	b := make([]byte, len(cs))
	for i, c := range cs {
		b[i] = byte(c)
	}
	return b
}

// With DropOldest, a full queue (by bytes) gives up its oldest messages.
func TestBudgetQueueBytesDropOldest(t *testing.T) {
	s, addr := brokertest.Start(t, broker.Config{Limits: broker.Limits{MaxQueuedBytes: 2500}}, nil)
	sub, _ := brokertest.V5Dial(t, addr, brokertest.V5Expiry(brokertest.V5Connect("a", true), 600))
	sub.V5Sub(1, packet.Subscription{Filter: []byte("a/#"), QoS: 1}, 1)
	sub.Send(&packet.Disconnect{})
	sub.ExpectClosed()
	brokertest.WaitConns(t, s, 0) // detached: offline
	p, _ := brokertest.V5Dial(t, addr, brokertest.V5Connect("pub", true))
	for i := range 4 {
		if c := pubAck(p, "a/t", false, uint16(1+i), []byte(strings.Repeat(string(rune('0'+i)), 1000))); c != packet.Success {
			t.Fatalf("publish %d: %#x", i, byte(c))
		}
	}
	a, _ := brokertest.V5Dial(t, addr, brokertest.V5Expiry(brokertest.V5Connect("a", false), 600))
	for _, want := range []byte{'2', '3'} {
		m := a.ExpectPublish()
		if m.Payload[0] != want {
			t.Errorf("got message %c, want %c", m.Payload[0], want)
		}
		a.Ack(packet.PUBACK, m.PacketID)
	}
	a.ExpectSilence(100 * 1e6)
}

// Sessions with an expiry are bounded: the CONNECT for one more is
// refused (5.0 0x97, 3.1.1 3); resuming one, or a clean session
// without expiry, still works.
func TestBudgetSessions(t *testing.T) {
	s, addr := brokertest.Start(t, broker.Config{Limits: broker.Limits{MaxSessions: 2}}, nil)
	brokertest.V5Dial(t, addr, brokertest.V5Expiry(brokertest.V5Connect("s1", true), 600))
	brokertest.V3Dial(t, addr, "s2", false)
	c5 := brokertest.Dial(t, addr, packet.V5)
	if ack := c5.Connect(brokertest.V5Expiry(brokertest.V5Connect("s3", true), 600)); ack.Code != packet.QuotaExceeded {
		t.Errorf("third session (5.0): CONNACK %#x, want 0x97", byte(ack.Code))
	}
	c3 := brokertest.Dial(t, addr, packet.V311)
	if ack := c3.Connect(&packet.Connect{ClientID: []byte("s4")}); ack.Code != packet.Code(packet.ConnackServerUnavailable) {
		t.Errorf("third session (3.1.1): CONNACK %d, want 3", ack.Code)
	}
	brokertest.V5Dial(t, addr, brokertest.V5Connect("clean", true))                                 // no expiry: not counted
	r, _ := brokertest.V5Dial(t, addr, brokertest.V5Expiry(brokertest.V5Connect("s1", false), 600)) // takes s1 over
	if n := s.Security().Count(seclog.LimitSessions); n != 2 {
		t.Errorf("%d limit_sessions events, want 2", n)
	}
	// Ending s1 (expiry 0 at DISCONNECT) makes room.
	d := &packet.Disconnect{}
	d.Props.Set(packet.PropSessionExpiry)
	r.Send(d)
	r.ExpectClosed()
	testenv.Eventually(t, brokertest.WaitTime, "session s1 to end", func() bool { return !s.HasSession("s1") })
	brokertest.V5Dial(t, addr, brokertest.V5Expiry(brokertest.V5Connect("s3", true), 600))
}

// A CONNECT larger than MaxConnectSize is refused on its fixed header,
// before its body arrives: 5.0 with CONNACK 0x95, 3.1.1 by closing.
func TestBudgetConnectSize(t *testing.T) {
	s, addr := brokertest.Start(t, broker.Config{Limits: broker.Limits{MaxConnectSize: 1024}}, nil)
	big := &packet.Connect{ProtocolName: []byte("MQTT"), Version: packet.V5, ClientID: []byte("big"), CleanStart: true, UsernameFlag: true, Username: []byte("u"),
		PasswordFlag: true, Password: bytes.Repeat([]byte("p"), 900<<10)}
	b := big.Append(nil)
	c5 := brokertest.Dial(t, addr, packet.V5)
	c5.Write(b[:4096]) // less than half: the broker must not wait for the rest
	h, body := c5.Read()
	var ack packet.Connack
	if h.Type != packet.CONNACK || ack.Decode(packet.V5, h.Flags, body) != nil || ack.Code != packet.PacketTooLarge {
		t.Errorf("5.0: got packet type %d, code %#x; want CONNACK 0x95", h.Type, byte(ack.Code))
	}
	c5.ExpectClosed()

	big.Version = packet.V311
	c3 := brokertest.Dial(t, addr, packet.V311)
	c3.Write(big.Append(nil)[:4096])
	c3.V3Closed(brokertest.WaitTime)

	// Just below the limit is fine.
	ok := &packet.Connect{ProtocolName: []byte("MQTT"), Version: packet.V311, ClientID: []byte("ok"), CleanStart: true,
		UsernameFlag: true, Username: []byte("u"), PasswordFlag: true, Password: bytes.Repeat([]byte("p"), 900)}
	r := brokertest.Dial(t, addr, packet.V311)
	if a := r.Connect(ok); a.Code != 0 {
		t.Errorf("CONNECT below the limit: %d", a.Code)
	}
	if n := s.Security().Count(seclog.LimitConnectSize); n != 2 {
		t.Errorf("%d limit_connect_size events, want 2", n)
	}
}

// Sockets that have not finished CONNECT count toward MaxConnections and
// have a limit of their own; beyond either, a socket is closed at once.
func TestBudgetUnauthenticatedSockets(t *testing.T) {
	s, addr := brokertest.Start(t, broker.Config{Limits: broker.Limits{MaxConnections: 3, MaxConnecting: 2}}, nil)
	silent1 := brokertest.Dial(t, addr, packet.V311)
	silent2 := brokertest.Dial(t, addr, packet.V311)
	testenv.Eventually(t, brokertest.WaitTime, "two unauthenticated sockets", func() bool { return broker.Connecting(s) == 2 })
	third := brokertest.Dial(t, addr, packet.V311)
	third.V3Closed(brokertest.WaitTime) // MaxConnecting
	silent1.Conn.Close()
	testenv.Eventually(t, brokertest.WaitTime, "a silent socket to go", func() bool { return broker.Connecting(s) == 1 })
	brokertest.V3Dial(t, addr, "c1", true)
	brokertest.V3Dial(t, addr, "c2", true)
	// Two connected and one silent socket: MaxConnections is reached.
	fourth := brokertest.Dial(t, addr, packet.V311)
	fourth.V3Closed(brokertest.WaitTime)
	if n := s.Security().Count(seclog.LimitConnections); n != 2 {
		t.Errorf("%d limit_connections events, want 2", n)
	}
	silent2.Conn.Close()
	testenv.Eventually(t, brokertest.WaitTime, "the silent socket to go", func() bool { return broker.Connecting(s) == 0 })
	brokertest.V3Dial(t, addr, "c3", true)
}

// RestoreJournal loads the journal only within the limits; what is left
// out stays on disk (not deleted: a restart with room loads it) and the
// error says how much, wrapping ErrOverBudget. Queued messages beyond
// a session's memory window are not skipped: they wait on disk behind
// it (spilled). A new session under the
// identifier of one left on disk starts empty: it does not inherit that
// one's messages at the next restart.
func TestRestoreWithinBudget(t *testing.T) {
	var retained []broker.StoredMessage
	for i := range 5 {
		retained = append(retained, broker.StoredMessage{Topic: []byte("r/" + string(rune('a'+i))), Payload: []byte("x"), QoS: 1})
	}
	var queue []broker.StoredDelivery
	for range 4 {
		queue = append(queue, broker.StoredDelivery{QoS: 1, Message: broker.StoredMessage{Topic: []byte("q"), Payload: bytes.Repeat([]byte("p"), 1000), QoS: 1}})
	}
	now := time.Now()
	sub := []broker.StoredSubscription{{Filter: "q", QoS: 1}}
	d := &durableBroker{t: t, dir: t.TempDir(), cfg: broker.Config{Limits: broker.Limits{MaxRetained: 3, MaxSessions: 2, MaxQueuedBytes: 2500}}}
	seedJournal(t, d.dir, retained, []broker.StoredSession{
		{ID: "gone", Expiry: 60, Disconnected: now.Add(-time.Hour), Queue: queue[:1]}, // expired: deleted, not skipped
		{ID: "s1", Expiry: 600, Disconnected: now, Subscriptions: sub, Queue: queue},
		{ID: "s2", Expiry: 600, Disconnected: now},
		{ID: "s3", Owner: "user:bob", Expiry: 600, Disconnected: now, Subscriptions: sub, Queue: queue[:1]},
	})
	err := d.start()
	if !errors.Is(err, broker.ErrOverBudget) || !strings.Contains(err.Error(), "2 retained messages, 1 sessions, 0 queued messages") {
		t.Errorf("RestoreJournal: %v", err)
	}
	if n := d.s.Retained(); n != 3 {
		t.Errorf("%d retained messages restored, want 3", n)
	}
	if got := broker.QueuedBytes(d.s); got != 2*1001 {
		t.Errorf("%d bytes queued, want two messages", got)
	}
	// Only the expired session left the journal.
	r := d.j.Report(true)
	if r.Retained != 5 || r.Sessions != 3 || r.PerSession["s1"].Messages != 4 || r.PerSession["s3"].Messages != 1 {
		t.Errorf("the journal holds %d retained messages, %d sessions, messages %v; want 5, 3, s1: 4, s3: 1",
			r.Retained, r.Sessions, r.PerSession)
	}
	// The session limit holds after the restore: s3 was not loaded.
	c := brokertest.Dial(t, d.addr, packet.V5)
	if ack := c.Connect(brokertest.V5Expiry(brokertest.V5Connect("s4", true), 600)); ack.Code != packet.QuotaExceeded {
		t.Errorf("a new session after the restore: CONNACK %#x, want 0x97", byte(ack.Code))
	}
	// s2 ends; a client takes s3's identifier with a clean start: bob's
	// session, not loaded, is not this client's.
	brokertest.V5Dial(t, d.addr, brokertest.V5Connect("s2", true))
	s3, ack := brokertest.V5Dial(t, d.addr, brokertest.V5Expiry(brokertest.V5Connect("s3", true), 600))
	if ack.SessionPresent {
		t.Error("s3: session present")
	}
	s3.V5Sub(1, packet.Subscription{Filter: []byte("new"), QoS: 1}, 1)

	// With room, a restart loads what was left on disk.
	d.cfg.Limits = broker.Limits{}
	d.restart()
	if n := d.s.Retained(); n != 5 {
		t.Errorf("%d retained messages after a restart with room, want 5", n)
	}
	s1, ack := brokertest.V5Dial(t, d.addr, brokertest.V5Expiry(brokertest.V5Connect("s1", false), 600))
	if !ack.SessionPresent {
		t.Fatal("s1 not present after the restart")
	}
	for i := range 4 {
		if m := s1.ExpectPublish(); len(m.Payload) != 1000 {
			t.Fatalf("s1's message %d: %d bytes", i, len(m.Payload))
		}
	}
	st := d.session("s3")
	if st == nil {
		t.Fatal("s3 not in the journal after the restart")
	}
	if len(st.Queue) != 0 || len(st.Subscriptions) != 1 || st.Subscriptions[0].Filter != "new" {
		t.Errorf("s3 after the restart: %d queued messages, subscriptions %v; want the new session (new) without the old one's message",
			len(st.Queue), st.Subscriptions)
	}
}

// Read buffers grown for large packets in progress are bounded in all:
// a packet that finds no room closes its connection (5.0: DISCONNECT
// 0x97); once the buffers are dropped there is room again.
func TestBudgetReadBuffers(t *testing.T) {
	s, addr := brokertest.Start(t, broker.Config{Limits: broker.Limits{MaxReadBuffers: 100 << 10}}, nil)
	big := func(n int) []byte {
		return (&packet.Publish{Topic: []byte("t"), QoS: 1, PacketID: 1, Payload: bytes.Repeat([]byte("b"), n)}).Append(nil, packet.V5)
	}
	a, _ := brokertest.V5Dial(t, addr, brokertest.V5Connect("a", true))
	pa := big(80 << 10)
	a.Write(pa[:len(pa)/2]) // holds an 80 KiB buffer
	testenv.Eventually(t, brokertest.WaitTime, "a's read buffer", func() bool { return broker.ReadBuffers(s) >= 80<<10 })
	b, _ := brokertest.V5Dial(t, addr, brokertest.V5Connect("b", true))
	pb := big(60 << 10)
	b.Write(pb[:1024])
	if code := b.ExpectClosed(); code != int(packet.QuotaExceeded) {
		t.Errorf("second large packet: DISCONNECT %#x, want 0x97", code)
	}
	if n := s.Security().Count(seclog.LimitConnections); n != 1 {
		t.Errorf("%d limit_connections events, want 1", n)
	}
	a.Write(pa[len(pa)/2:])
	if ack := a.ExpectAck(packet.PUBACK); ack.Code >= 0x80 {
		t.Errorf("first large packet: PUBACK %#x", byte(ack.Code))
	}
	c, _ := brokertest.V5Dial(t, addr, brokertest.V5Connect("c", true))
	if code := pubAck(c, "t", false, 1, bytes.Repeat([]byte("c"), 60<<10)); code >= 0x80 {
		t.Errorf("a large packet after the first finished: PUBACK %#x", byte(code))
	}
	a.Conn.Close()
	c.Conn.Close()
	testenv.Eventually(t, brokertest.WaitTime, "every grown buffer to be given back", func() bool { return broker.ReadBuffers(s) == 0 })
}

// Subscriptions are charged their filter plus SubscriptionOverhead: one
// session may not hold more than MaxSubscriptionBytes, all sessions
// together not more than MaxTotalSubscriptionBytes. A filter beyond gets
// 0x97 (3.1.1: 0x80); an UNSUBSCRIBE or the end of a session makes room.
func TestBudgetSubscriptions(t *testing.T) {
	const per = broker.SubscriptionOverhead + 100 // one subscription to a 100-byte filter
	s, addr := brokertest.Start(t, broker.Config{Limits: broker.Limits{
		MaxSubscriptionBytes: 2 * per, MaxTotalSubscriptionBytes: 3 * per}}, nil)
	filter := func(c byte) string { return strings.Repeat(string(c), 100) }
	sub := func(r *brokertest.Raw, pid uint16, f string) packet.Code {
		t.Helper()
		return r.Subscribe(pid, packet.Subscription{Filter: []byte(f), QoS: 1})[0]
	}
	a, _ := brokertest.V5Dial(t, addr, brokertest.V5Connect("a", true))
	if c := sub(a, 1, filter('a')); c != 1 {
		t.Fatalf("first subscription: %#x", byte(c))
	}
	if c := sub(a, 2, filter('b')); c != 1 {
		t.Fatalf("second subscription: %#x", byte(c))
	}
	if c := sub(a, 3, filter('c')); c != packet.QuotaExceeded {
		t.Errorf("third subscription of one session: %#x, want 0x97", byte(c))
	}
	if c := sub(a, 4, filter('a')); c != 1 {
		t.Errorf("the same filter again (replaces, costs nothing): %#x", byte(c))
	}
	b, _ := brokertest.V3Dial(t, addr, "b", true)
	if c := sub(b, 1, filter('d')); c != 1 {
		t.Fatalf("another session's subscription: %#x", byte(c))
	}
	if c := sub(b, 2, filter('e')); c != 0x80 {
		t.Errorf("beyond the total (3.1.1): %#x, want 0x80", byte(c))
	}
	if n := s.Security().Count(seclog.LimitSubscriptions); n != 2 {
		t.Errorf("%d limit_subscriptions events, want 2", n)
	}
	a.Send(&packet.Unsubscribe{PacketID: 5, Filters: [][]byte{[]byte(filter('a'))}})
	if h, _ := a.Read(); h.Type != packet.UNSUBACK {
		t.Fatalf("got packet type %d, want UNSUBACK", h.Type)
	}
	if c := sub(b, 3, filter('e')); c != 1 {
		t.Errorf("after an UNSUBSCRIBE made room: %#x", byte(c))
	}
	a.V3Disconnect()
	testenv.Eventually(t, brokertest.WaitTime, "session a to end", func() bool { return !s.HasSession("a") })
	if c := sub(b, 4, filter('f')); c != packet.QuotaExceeded && c != 0x80 {
		t.Errorf("session b over its own limit: %#x, want 0x80", byte(c))
	}
	c, _ := brokertest.V5Dial(t, addr, brokertest.V5Connect("c", true))
	if c := sub(c, 1, filter('g')); c != 1 {
		t.Errorf("after a session ended and freed its subscriptions: %#x", byte(c))
	}
}

// Slow readers cannot make the broker buffer MaxPendingBytes each: beyond
// 16 KiB a connection, waiting bytes are charged to MaxTotalPendingBytes,
// and a QoS 0 message that finds no room is dropped as for a full socket.
func TestBudgetPendingBytes(t *testing.T) {
	const pool = 256 << 10
	s, addr := brokertest.Start(t, broker.Config{Limits: broker.Limits{MaxTotalPendingBytes: pool}}, nil)
	for _, id := range []string{"slow1", "slow2", "slow3"} {
		r, _ := brokertest.V3Dial(t, addr, id, true)
		r.V3Sub("t", 0)
		// r never reads again: the kernel's buffers fill, then the outbox.
	}
	payload := bytes.Repeat([]byte("x"), 64<<10)
	peak := 0
	for range 300 { // 19 MiB for each subscriber
		if err := s.Publish(&packet.Publish{Topic: []byte("t"), Payload: payload}); err != nil {
			t.Fatal(err)
		}
		peak = max(peak, broker.PendingTotal(s))
	}
	// Each connection: 16 KiB free plus at most one message beyond the
	// pool's last charge; together no more than the pool beside that.
	if limit := pool + 3*(16<<10+64<<10+64); peak > limit {
		t.Errorf("up to %d bytes waited for the sockets, want at most %d", peak, limit)
	}
	if s.Stats.MessagesDropped.Load() == 0 {
		t.Error("no message dropped: the sockets never filled")
	}
}
