package broker_test

import (
	"bytes"
	"context"
	"encoding"
	"encoding/hex"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"edgebroker/broker"
	"edgebroker/broker/brokertest"
	"edgebroker/broker/packet"
	"edgebroker/broker/testenv"
)

// memPersister is a Persister that keeps the last state per key in memory
// and logs every call, as a durable one would after its flush.
type memPersister struct {
	mu       sync.Mutex
	retained map[string]*broker.StoredMessage
	sessions map[string]*broker.StoredSession
	calls    []string // "R topic", "R- topic", "S id", "S- id"
}

func newMemPersister() *memPersister {
	return &memPersister{retained: map[string]*broker.StoredMessage{}, sessions: map[string]*broker.StoredSession{}}
}

func (p *memPersister) RetainedChanged(topic string, m *broker.StoredMessage) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if m == nil {
		delete(p.retained, topic)
		p.calls = append(p.calls, "R- "+topic)
		return
	}
	p.retained[topic] = m
	p.calls = append(p.calls, "R "+topic)
}

func (p *memPersister) SessionChanged(id string, s *broker.StoredSession) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s == nil {
		delete(p.sessions, id)
		p.calls = append(p.calls, "S- "+id)
		return
	}
	p.sessions[id] = s
	p.calls = append(p.calls, "S "+id)
}

// takeCalls returns the calls so far and forgets them.
func (p *memPersister) takeCalls() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.calls
	p.calls = nil
	return c
}

func (p *memPersister) session(id string) *broker.StoredSession {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sessions[id]
}

func (p *memPersister) message(topic string) *broker.StoredMessage {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.retained[topic]
}

// contents returns what Restore gets after a restart.
func (p *memPersister) contents() ([]broker.StoredMessage, []broker.StoredSession) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var rs []broker.StoredMessage
	for _, m := range p.retained {
		rs = append(rs, *m)
	}
	var ss []broker.StoredSession
	for _, s := range p.sessions {
		ss = append(ss, *s)
	}
	return rs, ss
}

// startPersisting runs a broker with persister p on a loopback port,
// restoring p's contents first when restore is set.
func startPersisting(t *testing.T, p *memPersister, restore bool, lim ...broker.Limits) (*broker.Server, string) {
	t.Helper()
	cfg := broker.Config{Persister: p}
	if len(lim) > 0 {
		cfg.Limits = lim[0]
	}
	s := broker.New(cfg)
	if restore {
		rs, ss := p.contents()
		if err := s.Restore(rs, ss); err != nil {
			t.Fatalf("Restore: %v", err)
		}
	}
	return s, brokertest.Serve(t, s, &broker.Port{Name: "default"})
}

func shutdown(t *testing.T, s *broker.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), brokertest.WaitTime)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

func retainedPub(topic, payload string, qos byte, pid uint16) *packet.Publish {
	return &packet.Publish{Topic: []byte(topic), Payload: []byte(payload), QoS: qos, PacketID: pid, Retain: true}
}

// TestPersistRetained: setting, replacing and deleting a retained message
// is reported, with the properties that travel and the expiry; a plain
// publish, deleting what is not there and $SYS/ topics are not.
func TestPersistRetained(t *testing.T) {
	p := newMemPersister()
	_, addr := startPersisting(t, p, false)
	c, _ := brokertest.V5Dial(t, addr, brokertest.V5Connect("pub", true))

	start := time.Now()
	m := retainedPub("a/b", "one", 1, 1)
	m.Props.Set(packet.PropContentType)
	m.Props.ContentType = []byte("text/plain")
	m.Props.Set(packet.PropPayloadFormat)
	m.Props.PayloadFormat = 1
	m.Props.Set(packet.PropMessageExpiry)
	m.Props.MessageExpiry = 100
	m.Props.User = []packet.UserProperty{{Key: []byte("k"), Value: []byte("v")}}
	c.Send(m)
	c.ExpectAck(packet.PUBACK)
	got := p.message("a/b")
	if got == nil {
		t.Fatal("retained message not reported")
	}
	if string(got.Payload) != "one" || got.QoS != 1 || string(got.Props.ContentType) != "text/plain" ||
		!got.Props.Has(packet.PropPayloadFormat) || got.Props.PayloadFormat != 1 ||
		len(got.Props.User) != 1 || string(got.Props.User[0].Value) != "v" {
		t.Errorf("stored %+v", got)
	}
	if d := got.Expires.Sub(start); d < 99*time.Second || d > 101*time.Second {
		t.Errorf("Expires %v after the publish, want 100 s", d)
	}

	c.Send(retainedPub("a/b", "two", 1, 2))
	c.ExpectAck(packet.PUBACK)
	if got := p.message("a/b"); string(got.Payload) != "two" || !got.Expires.IsZero() {
		t.Errorf("replaced: stored %q expires %v", got.Payload, got.Expires)
	}
	c.V5Pub("a/c", 1, 3, "not retained")
	c.ExpectAck(packet.PUBACK)
	c.Send(retainedPub("a/none", "", 1, 4)) // deletes nothing
	c.ExpectAck(packet.PUBACK)
	c.Send(retainedPub("a/b", "", 1, 5))
	c.ExpectAck(packet.PUBACK)
	c.Send(retainedPub("$SYS/broker/uptime", "1 seconds", 1, 6)) // the broker's own statistics
	c.ExpectAck(packet.PUBACK)
	if diff := cmp.Diff([]string{"R a/b", "R a/b", "R- a/b"}, p.takeCalls()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
}

// TestPersistSessionLifecycle: a session with an expiry is reported when
// it is created, subscribes, unsubscribes and goes offline, and nil when a
// clean start or expiry 0 ends it; a session without expiry never is.
func TestPersistSessionLifecycle(t *testing.T) {
	p := newMemPersister()
	_, addr := startPersisting(t, p, false)

	c, _ := brokertest.V5Dial(t, addr, brokertest.V5Expiry(brokertest.V5Connect("c", true), 60))
	if s := p.session("c"); s == nil || s.Expiry != 60 || !s.Disconnected.IsZero() || len(s.Subscriptions) != 0 {
		t.Fatalf("after CONNECT: %+v", s)
	}
	c.V5SubID(1, 7, packet.Subscription{Filter: []byte("x/+"), QoS: 2, NoLocal: true, RetainAsPublished: true, RetainHandling: 2})
	c.V5Sub(2, packet.Subscription{Filter: []byte("y"), QoS: 1}, 1)
	want := []broker.StoredSubscription{
		{Filter: "x/+", QoS: 2, NoLocal: true, RetainAsPublished: true, RetainHandling: 2, ID: 7},
		{Filter: "y", QoS: 1},
	}
	if diff := cmp.Diff(want, sortedSubs(p.session("c"))); diff != "" {
		t.Errorf("subscriptions (-want +got):\n%s", diff)
	}
	c.Send(&packet.Unsubscribe{PacketID: 3, Filters: [][]byte{[]byte("y")}})
	if h, _ := c.Read(); h.Type != packet.UNSUBACK {
		t.Fatalf("got packet type %d, want UNSUBACK", h.Type)
	}
	if diff := cmp.Diff(want[:1], sortedSubs(p.session("c"))); diff != "" {
		t.Errorf("after UNSUBSCRIBE (-want +got):\n%s", diff)
	}

	// DISCONNECT changes the expiry; going offline is reported with its time.
	d := &packet.Disconnect{}
	d.Props.Set(packet.PropSessionExpiry)
	d.Props.SessionExpiry = 30
	before := time.Now()
	c.Send(d)
	c.ExpectClosed()
	testenv.Eventually(t, brokertest.WaitTime, "offline report", func() bool {
		s := p.session("c")
		return s != nil && !s.Disconnected.IsZero()
	})
	if s := p.session("c"); s.Expiry != 30 || s.Disconnected.Before(before.Add(-time.Second)) {
		t.Errorf("offline: expiry %d, disconnected %v (before %v)", s.Expiry, s.Disconnected, before)
	}
	calls := p.takeCalls()
	if n := len(calls); n != 5 || slices.ContainsFunc(calls, func(c string) bool { return c != "S c" }) {
		t.Errorf("calls %q, want 5 × S c", calls)
	}

	// A clean start ends the stored session and starts a new one.
	c, ack := brokertest.V5Dial(t, addr, brokertest.V5Expiry(brokertest.V5Connect("c", true), 60))
	if ack.SessionPresent {
		t.Error("session present after clean start")
	}
	if diff := cmp.Diff([]string{"S- c", "S c"}, p.takeCalls()); diff != "" {
		t.Errorf("clean start calls (-want +got):\n%s", diff)
	}
	if s := p.session("c"); len(s.Subscriptions) != 0 {
		t.Errorf("clean start kept %v", s.Subscriptions)
	}
	// Resuming with expiry 0 makes it a session that is not persisted.
	c.Send(&packet.Disconnect{})
	c.ExpectClosed()
	testenv.Eventually(t, brokertest.WaitTime, "offline report", func() bool { return len(p.takeCalls()) == 1 })
	c, ack = brokertest.V5Dial(t, addr, brokertest.V5Connect("c", false))
	if !ack.SessionPresent {
		t.Error("session not present on resume")
	}
	c.V5Sub(1, packet.Subscription{Filter: []byte("z"), QoS: 1}, 1)
	c.Send(&packet.Disconnect{})
	c.ExpectClosed()
	e, _ := brokertest.V5Dial(t, addr, brokertest.V5Connect("e", true)) // expiry 0: never reported
	e.V5Sub(1, packet.Subscription{Filter: []byte("z"), QoS: 1}, 1)
	e.Send(&packet.Disconnect{})
	e.ExpectClosed()
	if diff := cmp.Diff([]string{"S- c"}, p.takeCalls()); diff != "" {
		t.Errorf("expiry 0 calls (-want +got):\n%s", diff)
	}
}

func sortedSubs(s *broker.StoredSession) []broker.StoredSubscription {
	if s == nil {
		return nil
	}
	subs := slices.Clone(s.Subscriptions)
	sort.Slice(subs, func(i, j int) bool { return subs[i].Filter < subs[j].Filter })
	return subs
}

// TestPersistRestart runs a broker, stops it, and starts a second one from
// what the first reported: retained messages, a 3.1.1 and a 5.0 persistent
// session with their subscriptions, the messages queued for them and an
// unacknowledged one in flight all come back.
func TestPersistRestart(t *testing.T) {
	p := newMemPersister()
	s1, addr := startPersisting(t, p, false)

	pub, _ := brokertest.V5Dial(t, addr, brokertest.V5Connect("pub", true))
	pub.Send(retainedPub("r/1", "kept", 1, 1))
	pub.ExpectAck(packet.PUBACK)

	v3, _ := brokertest.V3Dial(t, addr, "v3", false)
	v3.V3Sub("q/#", 1)
	v5, _ := brokertest.V5Dial(t, addr, brokertest.V5Expiry(brokertest.V5Connect("v5", true), 3600))
	v5.V5SubID(1, 9, packet.Subscription{Filter: []byte("q/+"), QoS: 2})
	v3.V3Disconnect()
	brokertest.WaitConns(t, s1, 2) // v3 detached (its socket closes first): what follows is queued

	pub.V5Pub("q/1", 2, 2, "queued")
	pub.ExpectAck(packet.PUBREC)
	inflight := v5.ExpectPublish()
	v5.Ack(packet.PUBREC, inflight.PacketID)
	v5.ExpectAck(packet.PUBREL) // QoS 2 past PUBREC, PUBCOMP not sent
	pub.V5Pub("q/2", 1, 3, "second")
	pub.ExpectAck(packet.PUBACK)
	second := v5.ExpectPublish()       // not acknowledged: in flight at shutdown
	v5.V5Pub("in/2", 2, 77, "inbound") // PUBREL not sent
	v5.ExpectAck(packet.PUBREC)

	shutdown(t, s1)
	v3s, v5s := p.session("v3"), p.session("v5")
	if v3s == nil || len(v3s.Queue) != 2 || string(v3s.Queue[0].Message.Payload) != "queued" {
		t.Fatalf("3.1.1 session saved as %+v", v3s)
	}
	if v5s == nil || len(v5s.Inflight) != 2 || !v5s.Inflight[0].Released || v5s.Inflight[1].PacketID != second.PacketID ||
		!slices.Equal(v5s.InboundQoS2, []uint16{77}) {
		t.Fatalf("5.0 session saved as %+v", v5s)
	}

	_, addr = startPersisting(t, p, true)
	sub, _ := brokertest.V5Dial(t, addr, brokertest.V5Connect("sub", true))
	sub.V5Sub(1, packet.Subscription{Filter: []byte("r/#"), QoS: 1}, 1)
	if m := sub.ExpectPublish(); string(m.Payload) != "kept" || !m.Retain {
		t.Errorf("retained after restart: %q retain %v", m.Payload, m.Retain)
	}

	v3, present := brokertest.V3Dial(t, addr, "v3", false)
	if !present {
		t.Fatal("3.1.1 session not present after restart")
	}
	v3.V3Expect("q/1", "queued", 1) // granted QoS 1
	v3.V3Expect("q/2", "second", 1)

	v5, ack := brokertest.V5Dial(t, addr, brokertest.V5Expiry(brokertest.V5Connect("v5", false), 3600))
	if !ack.SessionPresent {
		t.Fatal("5.0 session not present after restart")
	}
	// [MQTT-4.4.0-1]: the PUBREL, then the unacknowledged PUBLISH with DUP.
	if a := v5.ExpectAck(packet.PUBREL); a.PacketID != inflight.PacketID {
		t.Errorf("PUBREL for %d, want %d", a.PacketID, inflight.PacketID)
	}
	if m := v5.ExpectPublish(); m.PacketID != second.PacketID || !m.Dup || string(m.Payload) != "second" ||
		len(m.Props.SubscriptionIDs) != 1 || m.Props.SubscriptionIDs[0] != 9 {
		t.Errorf("resent %+v", m)
	}
	v5.Ack(packet.PUBREL, 77)
	if a := v5.ExpectAck(packet.PUBCOMP); a.Code != packet.Success {
		t.Errorf("PUBCOMP for the inbound QoS 2 message: code %#x, want 0", byte(a.Code))
	}
	pub, _ = brokertest.V5Dial(t, addr, brokertest.V5Connect("pub", true))
	pub.V5Pub("q/3", 1, 1, "after")
	pub.ExpectAck(packet.PUBACK)
	if m := v5.ExpectPublish(); string(m.Payload) != "after" {
		t.Errorf("after restart got %q", m.Payload)
	}
	v3.V3Expect("q/3", "after", 1)
}

// TestRestoreExpiry: expiry keeps counting while the broker is down. A
// retained or queued message past its expiry and a session past its
// expiry are dropped (and reported deleted); the others keep the time
// they had left.
func TestRestoreExpiry(t *testing.T) { synctest.Test(t, testRestoreExpiry) }

// testRestoreExpiry runs in a synctest bubble: the restored session's
// expiry passes on the bubble's clock.
func testRestoreExpiry(t *testing.T) {
	now := time.Now()
	msg := func(topic, payload string, expires time.Time) broker.StoredMessage {
		return broker.StoredMessage{Topic: []byte(topic), Payload: []byte(payload), QoS: 1, Expires: expires}
	}
	p := newMemPersister()
	for _, m := range []broker.StoredMessage{
		msg("r/live", "live", now.Add(10*time.Second)),
		msg("r/dead", "dead", now.Add(-time.Second)),
		msg("r/forever", "forever", time.Time{}),
	} {
		p.retained[string(m.Topic)] = &m
	}
	sub := []broker.StoredSubscription{{Filter: "q", QoS: 1}}
	for _, s := range []broker.StoredSession{
		{ID: "gone", Expiry: 60, Disconnected: now.Add(-61 * time.Second), Subscriptions: sub},
		{ID: "left", Expiry: 60, Disconnected: now.Add(-30 * time.Second), Subscriptions: sub,
			Queue: []broker.StoredDelivery{
				{QoS: 1, Message: msg("q", "stale", now.Add(-time.Millisecond))},
				{QoS: 1, Message: msg("q", "fresh", now.Add(20*time.Second))},
			}},
		{ID: "online", Expiry: 2, Subscriptions: sub}, // online when saved: its whole expiry from the restart
	} {
		p.sessions[s.ID] = &s
	}
	s := broker.New(broker.Config{Persister: p})
	rs, ss := p.contents()
	if err := s.Restore(rs, ss); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	addr := brokertest.ServeMem(t, s, nil)
	calls := p.takeCalls()
	slices.Sort(calls)
	if diff := cmp.Diff([]string{"R- r/dead", "S online", "S- gone"}, calls); diff != "" {
		t.Errorf("Restore calls (-want +got):\n%s", diff)
	}
	if s := p.session("online"); s == nil || s.Disconnected.Before(now) {
		t.Errorf("session online when saved: restored as %+v, want Disconnected from the restart", s)
	}

	c, _ := brokertest.V5Dial(t, addr, brokertest.V5Connect("c", true))
	c.V5Sub(1, packet.Subscription{Filter: []byte("r/+"), QoS: 1}, 1)
	got := map[string]*packet.Publish{}
	for range 2 {
		m := c.ExpectPublish()
		got[string(m.Topic)] = m
		c.Ack(packet.PUBACK, m.PacketID)
	}
	if m := got["r/live"]; m == nil || !m.Props.Has(packet.PropMessageExpiry) || m.Props.MessageExpiry > 10 || m.Props.MessageExpiry < 8 {
		t.Errorf("r/live: %+v, want expiry 8..10 s left", m)
	}
	if m := got["r/forever"]; m == nil || m.Props.Has(packet.PropMessageExpiry) {
		t.Errorf("r/forever: %+v", m)
	}
	c.ExpectSilence(50 * time.Millisecond)

	for _, tc := range []struct {
		id      string
		present bool
	}{{"gone", false}, {"left", true}} {
		r, ack := brokertest.V5Dial(t, addr, brokertest.V5Expiry(brokertest.V5Connect(tc.id, false), 60))
		if ack.SessionPresent != tc.present {
			t.Errorf("%s: session present %v, want %v", tc.id, ack.SessionPresent, tc.present)
		}
		if tc.id == "left" {
			m := r.ExpectPublish()
			if string(m.Payload) != "fresh" || m.Props.MessageExpiry > 20 || m.Props.MessageExpiry < 18 {
				t.Errorf("queued: %q expiry %d, want fresh with 18..20 s", m.Payload, m.Props.MessageExpiry)
			}
		}
	}
	// "online" got its whole expiry from the restart, then ends.
	testenv.Eventually(t, brokertest.WaitTime, "restored session expiry", func() bool { return p.session("online") == nil })
}

// TestRestoreRejects: Restore skips and names what is not valid, restores
// the rest, and refuses to run on a server already in use.
func TestRestoreRejects(t *testing.T) {
	s := broker.New(broker.Config{})
	err := s.Restore(
		[]broker.StoredMessage{{Topic: []byte("a/+"), Payload: []byte("x")}, {Topic: []byte("ok"), Payload: []byte("x")}},
		[]broker.StoredSession{{ID: "bad", Expiry: 60, Subscriptions: []broker.StoredSubscription{{Filter: "a/#/b"}}}, {ID: "good", Expiry: 60}},
	)
	if err == nil || !strings.Contains(err.Error(), `"a/+"`) || !strings.Contains(err.Error(), `"a/#/b"`) {
		t.Errorf("Restore: %v, want both bad entries named", err)
	}
	if got := s.Retained(); got != 1 {
		t.Errorf("%d retained messages restored, want 1", got)
	}
	if err := s.Restore(nil, nil); err == nil {
		t.Error("second Restore on a server with sessions: no error")
	}
	s.Close()
}

var roundTripMessages = []broker.StoredMessage{
	{Topic: []byte("a"), QoS: 0},
	{Topic: []byte("a/b/c"), Payload: []byte("payload\x00\xff"), QoS: 2, Expires: time.Unix(1700000000, 123456789)},
	func() broker.StoredMessage {
		m := broker.StoredMessage{Topic: []byte("t"), Payload: []byte("p"), QoS: 1}
		for _, id := range []byte{packet.PropPayloadFormat, packet.PropContentType, packet.PropResponseTopic, packet.PropCorrelationData} {
			m.Props.Set(id)
		}
		m.Props.PayloadFormat = 1
		m.Props.ContentType = []byte("application/json")
		m.Props.ResponseTopic = []byte("reply/to")
		m.Props.CorrelationData = []byte{1, 2, 3}
		m.Props.User = []packet.UserProperty{{Key: []byte("k"), Value: []byte("v")}, {Key: []byte("k"), Value: nil}}
		return m
	}(),
}

var roundTripSessions = []broker.StoredSession{
	{ID: "c", Expiry: 0xFFFFFFFF},
	{
		ID: "sensor-7", Owner: "x509:CN=sensor-7,O=plant", Expiry: 3600, Disconnected: time.Unix(1700000000, 5),
		Subscriptions: []broker.StoredSubscription{
			{Filter: "a/+", QoS: 2, NoLocal: true, RetainAsPublished: true, RetainHandling: 2, ID: 268435455},
			{Filter: "$share/g/#", QoS: 1},
		},
		Inflight: []broker.StoredDelivery{
			{PacketID: 1, Released: true, QoS: 2},
			{PacketID: 65535, QoS: 1, Retain: true, SubIDs: []uint32{1, 2, 3, 4, 5}, Message: roundTripMessages[2]},
		},
		Queue:       []broker.StoredDelivery{{QoS: 2, Message: roundTripMessages[1]}, {Message: roundTripMessages[0]}},
		InboundQoS2: []uint16{7, 65535},
	},
}

// TestStoredRoundTrip: decoding what was encoded gives back the value.
func TestStoredRoundTrip(t *testing.T) {
	opts := cmpopts.EquateEmpty()
	for _, m := range roundTripMessages {
		b, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var got broker.StoredMessage
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatalf("decode %q: %v", m.Topic, err)
		}
		if diff := cmp.Diff(m, got, opts); diff != "" {
			t.Errorf("message %q (-want +got):\n%s", m.Topic, diff)
		}
	}
	for _, s := range roundTripSessions {
		b, err := s.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var got broker.StoredSession
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatalf("decode %q: %v", s.ID, err)
		}
		if diff := cmp.Diff(s, got, opts); diff != "" {
			t.Errorf("session %q (-want +got):\n%s", s.ID, diff)
		}
		// Every truncation is an error, never a panic or a partial value.
		for i := range len(b) {
			if err := got.UnmarshalBinary(b[:i]); err == nil {
				t.Errorf("session %q cut at %d of %d bytes: no error", s.ID, i, len(b))
			}
		}
	}
	for _, bad := range [][]byte{nil, {2}, {1, 1, 'a', 0, 3, 0, 0, 0}, {1, 1, 'a', 0, 0, 0x10, 0, 0}, {1, 1, 'a', 0, 0, 0, 0, 0, 0}} {
		var m broker.StoredMessage
		if err := m.UnmarshalBinary(bad); err == nil {
			t.Errorf("decode % x: no error", bad)
		}
	}
}

// storedGolden are the saved encodings of roundTripMessages and then
// roundTripSessions, as the broker wrote them before the travelling
// properties became one table: what a store holds must keep loading, so
// the encoding of these values never changes (a new property gets a new
// flag bit; these records never have it set).
var storedGolden = []string{
	"0101610000000000",
	"0105612f622f63097061796c6f616400ff020000959a97ece39fe7cb17",
	"0101740170010f01106170706c69636174696f6e2f6a736f6e087265706c792f746f0301020302016b0176016b0000",
	"02016300ffffffff0f0000000000",
	"020873656e736f722d3718783530393a434e3d73656e736f722d372c4f3d706c616e74901c8580a8b1e39fe7cb170203612f2b020bffffff7f" +
		"0a2473686172652f672f230100000201010200ffff03020105010203040501740170010f01106170706c69636174696f6e2f6a736f6e0872" +
		"65706c792f746f0301020302016b0176016b0000020000020005612f622f63097061796c6f616400ff020000959a97ece39fe7cb1700000000" +
		"016100000000000207ffff03",
}

// TestStoredGolden: the values encode to exactly the saved bytes, and the
// saved bytes decode to the values.
func TestStoredGolden(t *testing.T) {
	opts := cmpopts.EquateEmpty()
	values := make([]encoding.BinaryMarshaler, 0, len(storedGolden))
	for i := range roundTripMessages {
		values = append(values, &roundTripMessages[i])
	}
	for i := range roundTripSessions {
		values = append(values, &roundTripSessions[i])
	}
	if len(values) != len(storedGolden) {
		t.Fatalf("%d values, %d golden encodings", len(values), len(storedGolden))
	}
	for i, v := range values {
		want, err := hex.DecodeString(storedGolden[i])
		if err != nil {
			t.Fatal(err)
		}
		got, err := v.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("value %d encodes to\n%x, want\n%x", i, got, want)
		}
		var back encoding.BinaryUnmarshaler = new(broker.StoredMessage)
		if _, ok := v.(*broker.StoredSession); ok {
			back = new(broker.StoredSession)
		}
		if err := back.UnmarshalBinary(want); err != nil {
			t.Fatalf("decode golden %d: %v", i, err)
		}
		if diff := cmp.Diff(v, back, opts); diff != "" {
			t.Errorf("golden %d decodes to (-want +got):\n%s", i, diff)
		}
	}
}

// FuzzStoredMessage: any input decodes or fails cleanly, and what decodes
// encodes to bytes that decode to the same value and re-encode the same.
func FuzzStoredMessage(f *testing.F) {
	for _, m := range roundTripMessages {
		b, _ := m.MarshalBinary()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m broker.StoredMessage
		if m.UnmarshalBinary(b) != nil {
			return
		}
		enc, _ := m.MarshalBinary()
		var again broker.StoredMessage
		if err := again.UnmarshalBinary(enc); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if diff := cmp.Diff(m, again, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
		if enc2, _ := again.MarshalBinary(); string(enc2) != string(enc) {
			t.Fatal("encoding not stable")
		}
	})
}

// FuzzStoredSession is FuzzStoredMessage for sessions.
func FuzzStoredSession(f *testing.F) {
	for _, s := range roundTripSessions {
		b, _ := s.MarshalBinary()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var s broker.StoredSession
		if s.UnmarshalBinary(b) != nil {
			return
		}
		enc, _ := s.MarshalBinary()
		var again broker.StoredSession
		if err := again.UnmarshalBinary(enc); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if diff := cmp.Diff(s, again, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
		if enc2, _ := again.MarshalBinary(); string(enc2) != string(enc) {
			t.Fatal("encoding not stable")
		}
	})
}
