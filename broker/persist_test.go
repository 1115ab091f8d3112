package broker_test

import (
	"bytes"
	"encoding"
	"encoding/hex"
	"slices"
	"sort"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"edgebroker/broker"
	"edgebroker/broker/brokertest"
	"edgebroker/broker/journal"
	"edgebroker/broker/packet"
	"edgebroker/broker/testenv"
)

// durableBroker is a broker on a journal in a folder, as the appliance
// runs it: start opens the journal and restores it before serving, stop
// closes the broker and then the journal, restart does both. Its session
// and message read what the journal holds now, decoded as a restart
// would restore it.
type durableBroker struct {
	t    testing.TB
	dir  string
	cfg  broker.Config // of every start; Journal is set by start
	port *broker.Port  // nil: brokertest's default
	mem  bool          // serve on an in-memory listener (inside a synctest bubble)

	s    *broker.Server
	j    *journal.Journal
	addr string
	r    *broker.Restorer // what the last start restored
}

// newDurable starts a broker with cfg on a journal in a new folder.
func newDurable(t testing.TB, cfg broker.Config) *durableBroker {
	t.Helper()
	d := &durableBroker{t: t, dir: t.TempDir(), cfg: cfg}
	d.mustStart()
	return d
}

// start opens the journal, restores it and serves; it returns
// RestoreJournal's error (the broker serves anyway, as the appliance's).
func (d *durableBroker) start() error {
	d.t.Helper()
	d.j = openJournal(d.t, d.dir)
	cfg := d.cfg
	cfg.Journal = d.j
	d.s = broker.New(cfg)
	r, err := d.s.RestoreJournal()
	d.r = r
	if d.mem {
		d.addr = brokertest.ServeMem(d.t, d.s, d.port)
	} else {
		d.addr = brokertest.Serve(d.t, d.s, d.port)
	}
	return err
}

func (d *durableBroker) mustStart() {
	d.t.Helper()
	if err := d.start(); err != nil {
		d.t.Fatalf("RestoreJournal: %v", err)
	}
}

// stop closes the broker (its connections end), then the journal.
func (d *durableBroker) stop() {
	d.t.Helper()
	d.s.Close()
	if err := d.j.Close(); err != nil {
		d.t.Fatalf("journal Close: %v", err)
	}
}

func (d *durableBroker) restart() {
	d.t.Helper()
	d.stop()
	d.mustStart()
}

func (d *durableBroker) session(id string) *broker.StoredSession { return journalSession(d.t, d.j, id) }
func (d *durableBroker) message(topic string) *broker.StoredMessage {
	return journalRetained(d.t, d.j, topic)
}

// journalSession returns the session id as j holds it (what a restart
// restores: Inflight has the QoS 2 deliveries with a packet identifier,
// Queue the others), or nil.
func journalSession(t testing.TB, j *journal.Journal, id string) *broker.StoredSession {
	t.Helper()
	var st *broker.StoredSession
	err := j.EachSession(func(js *journal.Session) error {
		if js.ID != id {
			return nil
		}
		var err error
		st, err = broker.DecodeJournalSession(js)
		return err
	})
	if err != nil {
		t.Fatalf("journal: session %q: %v", id, err)
	}
	return st
}

// journalRetained returns the retained message of topic j holds, or nil.
func journalRetained(t testing.TB, j *journal.Journal, topic string) *broker.StoredMessage {
	t.Helper()
	var m *broker.StoredMessage
	err := j.EachRetained(func(r *journal.Retained) error {
		if string(r.Topic) != topic {
			return nil
		}
		m = new(broker.StoredMessage)
		return m.UnmarshalBinary(r.Body)
	})
	if err != nil {
		t.Fatalf("journal: retained %q: %v", topic, err)
	}
	return m
}

// storedRecord writes a StoredMessage as the broker writes a message to
// the journal (journal.Encoder).
type storedRecord struct{ m *broker.StoredMessage }

func (r storedRecord) AppendJournal(b []byte) []byte {
	b, _ = r.m.AppendBinary(b)
	return b
}

// rawRecord is a journal record body written as is.
type rawRecord []byte

func (r rawRecord) AppendJournal(b []byte) []byte { return append(b, r...) }

// seedJournal writes state into the journal in dir as the broker would
// have (no journal may be open on dir): the retained messages, and each
// session's record (without its messages), its deliveries (a packet
// identifier of an in-flight one noted as the broker notes it), and its
// inbound QoS 2 packet identifiers.
func seedJournal(t testing.TB, dir string, retained []broker.StoredMessage, sessions []broker.StoredSession) {
	t.Helper()
	j, err := journal.Open(dir, journal.Options{SegmentSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	for i := range retained {
		if _, err := j.Retain(retained[i].Topic, storedRecord{&retained[i]}); err != nil {
			t.Fatal(err)
		}
	}
	for _, st := range sessions {
		rec := st
		rec.Inflight, rec.Queue, rec.InboundQoS2 = nil, nil, nil
		body, err := rec.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		j.Session(st.ID, body)
		for _, sd := range slices.Concat(st.Inflight, st.Queue) {
			var id uint64
			mid, _, _, err := j.Enqueue(&id, storedRecord{&sd.Message}, st.ID, broker.AppendDeliveryBody(nil, &sd))
			if err != nil {
				t.Fatal(err)
			}
			if sd.PacketID != 0 {
				j.Sent(st.ID, mid, sd.PacketID, sd.Released)
			}
		}
		for _, pid := range st.InboundQoS2 {
			j.InQoS2(st.ID, pid, true)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
}

func retainedPub(topic, payload string, qos byte, pid uint16) *packet.Publish {
	return &packet.Publish{Topic: []byte(topic), Payload: []byte(payload), QoS: qos, PacketID: pid, Retain: true}
}

// TestPersistRetained: setting, replacing and deleting a retained message
// reaches the journal before the PUBACK, with the properties that travel
// and the expiry; a plain publish, deleting what is not there and $SYS/
// topics write nothing. A restart restores what the journal holds.
func TestPersistRetained(t *testing.T) {
	d := newDurable(t, broker.Config{})
	c, _ := brokertest.V5Dial(t, d.addr, brokertest.V5Connect("pub", true))

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
	got := d.message("a/b")
	if got == nil {
		t.Fatal("retained message not in the journal")
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
	if got := d.message("a/b"); got == nil || string(got.Payload) != "two" || !got.Expires.IsZero() {
		t.Errorf("replaced: stored %+v", got)
	}

	seq := d.j.Seq()
	c.V5Pub("a/c", 1, 3, "not retained")
	c.ExpectAck(packet.PUBACK)
	c.Send(retainedPub("a/none", "", 1, 4)) // deletes nothing
	c.ExpectAck(packet.PUBACK)
	c.Send(retainedPub("$SYS/broker/uptime", "1 seconds", 1, 6)) // the broker's own statistics
	c.ExpectAck(packet.PUBACK)
	if n := d.j.Seq() - seq; n != 0 {
		t.Errorf("%d journal records for a plain publish, a delete of nothing and $SYS/, want none", n)
	}
	if got := d.s.Retained(); got != 2 {
		t.Errorf("%d retained messages in memory, want a/b and $SYS/", got)
	}

	c.Send(retainedPub("a/b", "", 1, 5))
	c.ExpectAck(packet.PUBACK)
	if got := d.message("a/b"); got != nil {
		t.Errorf("deleted, but the journal holds %+v", got)
	}
	c.Send(retainedPub("a/kept", "kept", 1, 7))
	c.ExpectAck(packet.PUBACK)

	d.restart()
	if got := d.s.Retained(); got != 1 {
		t.Errorf("%d retained messages after the restart, want a/kept only", got)
	}
	sub, _ := brokertest.V5Dial(t, d.addr, brokertest.V5Connect("sub", true))
	sub.V5Sub(1, packet.Subscription{Filter: []byte("a/#"), QoS: 1}, 1)
	if m := sub.ExpectPublish(); string(m.Topic) != "a/kept" || string(m.Payload) != "kept" || !m.Retain {
		t.Errorf("after the restart: %q %q retain %v, want a/kept", m.Topic, m.Payload, m.Retain)
	}
}

// TestPersistSessionLifecycle: a session with an expiry is in the journal
// from its CONNECT, with its subscriptions once SUBACK and UNSUBACK are
// sent, and with the expiry and time it went offline; its queued messages
// are there with it. A clean start ends it (its messages leave the
// journal), as does resuming with expiry 0; a session without expiry
// never writes to the journal.
func TestPersistSessionLifecycle(t *testing.T) {
	d := newDurable(t, broker.Config{})

	c, _ := brokertest.V5Dial(t, d.addr, brokertest.V5Expiry(brokertest.V5Connect("c", true), 60))
	if s := d.session("c"); s == nil || s.Expiry != 60 || !s.Disconnected.IsZero() || len(s.Subscriptions) != 0 {
		t.Fatalf("after CONNECT: %+v", s)
	}
	c.V5SubID(1, 7, packet.Subscription{Filter: []byte("x/+"), QoS: 2, NoLocal: true, RetainAsPublished: true, RetainHandling: 2})
	c.V5Sub(2, packet.Subscription{Filter: []byte("y"), QoS: 1}, 1)
	want := []broker.StoredSubscription{
		{Filter: "x/+", QoS: 2, NoLocal: true, RetainAsPublished: true, RetainHandling: 2, ID: 7},
		{Filter: "y", QoS: 1},
	}
	if diff := cmp.Diff(want, sortedSubs(d.session("c"))); diff != "" {
		t.Errorf("subscriptions (-want +got):\n%s", diff)
	}
	c.Send(&packet.Unsubscribe{PacketID: 3, Filters: [][]byte{[]byte("y")}})
	if h, _ := c.Read(); h.Type != packet.UNSUBACK {
		t.Fatalf("got packet type %d, want UNSUBACK", h.Type)
	}
	if diff := cmp.Diff(want[:1], sortedSubs(d.session("c"))); diff != "" {
		t.Errorf("after UNSUBSCRIBE (-want +got):\n%s", diff)
	}

	// DISCONNECT changes the expiry; going offline is written with its time.
	dc := &packet.Disconnect{}
	dc.Props.Set(packet.PropSessionExpiry)
	dc.Props.SessionExpiry = 30
	before := time.Now()
	c.Send(dc)
	c.ExpectClosed()
	testenv.Eventually(t, brokertest.WaitTime, "the offline record", func() bool {
		s := d.session("c")
		return s != nil && !s.Disconnected.IsZero()
	})
	if s := d.session("c"); s.Expiry != 30 || s.Disconnected.Before(before.Add(-time.Second)) {
		t.Errorf("offline: expiry %d, disconnected %v (before %v)", s.Expiry, s.Disconnected, before)
	}
	pub, _ := brokertest.V5Dial(t, d.addr, brokertest.V5Connect("pub", true))
	pub.V5Pub("x/1", 1, 1, "queued")
	pub.ExpectAck(packet.PUBACK)
	if s := d.session("c"); len(s.Queue) != 1 || string(s.Queue[0].Message.Payload) != "queued" ||
		!slices.Equal(s.Queue[0].SubIDs, []uint32{7}) {
		t.Errorf("queued for the offline session: %+v", s.Queue)
	}

	// A clean start ends the stored session and starts a new one.
	c, ack := brokertest.V5Dial(t, d.addr, brokertest.V5Expiry(brokertest.V5Connect("c", true), 60))
	if ack.SessionPresent {
		t.Error("session present after clean start")
	}
	if s := d.session("c"); s == nil || len(s.Subscriptions) != 0 || len(s.Queue) != 0 {
		t.Errorf("clean start kept %+v", s)
	}
	if r := d.j.Report(false); r.Messages != 0 {
		t.Errorf("%d messages in the journal after the clean start, want 0", r.Messages)
	}

	// Resuming with expiry 0 makes it a session that is not persisted.
	c.Send(&packet.Disconnect{})
	c.ExpectClosed()
	brokertest.WaitConns(t, d.s, 1)
	c, ack = brokertest.V5Dial(t, d.addr, brokertest.V5Connect("c", false))
	if !ack.SessionPresent {
		t.Error("session not present on resume")
	}
	if s := d.session("c"); s != nil {
		t.Errorf("resumed with expiry 0, the journal still holds %+v", s)
	}
	c.V5Sub(1, packet.Subscription{Filter: []byte("z"), QoS: 1}, 1)
	c.Send(&packet.Disconnect{})
	c.ExpectClosed()
	brokertest.WaitConns(t, d.s, 1)

	seq := d.j.Seq()
	e, _ := brokertest.V5Dial(t, d.addr, brokertest.V5Connect("e", true)) // expiry 0: never written
	e.V5Sub(1, packet.Subscription{Filter: []byte("z"), QoS: 1}, 1)
	pub.V5Pub("z", 1, 2, "for e")
	pub.ExpectAck(packet.PUBACK)
	e.Send(&packet.Disconnect{})
	e.ExpectClosed()
	brokertest.WaitConns(t, d.s, 1)
	if n := d.j.Seq() - seq; n != 0 {
		t.Errorf("a session without expiry wrote %d journal records", n)
	}
	if r := d.j.Report(false); r.Sessions != 0 || r.Messages != 0 {
		t.Errorf("the journal holds %d sessions, %d messages; want none", r.Sessions, r.Messages)
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

// TestPersistRestart runs a broker, stops it, and starts a second one on
// the same journal: retained messages, a 3.1.1 and a 5.0 persistent
// session with their subscriptions, the messages queued for them and
// those in flight all come back. A QoS 2 message past PUBREC gets its
// PUBREL again and one not yet acknowledged is resent with DUP, both with
// their packet identifiers [MQTT-4.4.0-1]; an inbound QoS 2 packet
// identifier awaiting PUBREL is still known, so that a resend of its
// PUBLISH is not routed again [MQTT-4.3.3-10].
func TestPersistRestart(t *testing.T) {
	d := newDurable(t, broker.Config{})

	pub, _ := brokertest.V5Dial(t, d.addr, brokertest.V5Connect("pub", true))
	pub.Send(retainedPub("r/1", "kept", 1, 1))
	pub.ExpectAck(packet.PUBACK)

	v3, _ := brokertest.V3Dial(t, d.addr, "v3", false)
	v3.V3Sub("q/#", 1)
	v3.V3Sub("in/#", 1)
	v5, _ := brokertest.V5Dial(t, d.addr, brokertest.V5Expiry(brokertest.V5Connect("v5", true), 3600))
	v5.V5SubID(1, 9, packet.Subscription{Filter: []byte("q/+"), QoS: 2})
	v3.V3Disconnect()
	brokertest.WaitConns(t, d.s, 2) // v3 detached (its socket closes first): what follows is queued

	pub.V5Pub("q/1", 2, 2, "released")
	pub.ExpectAck(packet.PUBREC)
	released := v5.ExpectPublish()
	v5.Ack(packet.PUBREC, released.PacketID)
	v5.ExpectAck(packet.PUBREL) // QoS 2 past PUBREC, PUBCOMP not sent
	pub.V5Pub("q/2", 2, 3, "unacknowledged")
	pub.ExpectAck(packet.PUBREC)
	unacked := v5.ExpectPublish() // QoS 2, no PUBREC
	pub.V5Pub("q/3", 1, 4, "second")
	pub.ExpectAck(packet.PUBACK)
	second := v5.ExpectPublish()       // QoS 1, no PUBACK
	v5.V5Pub("in/1", 2, 77, "inbound") // routed to v3's queue; PUBREL not sent
	v5.ExpectAck(packet.PUBREC)

	v3s, v5s := d.session("v3"), d.session("v5")
	if v3s == nil || len(v3s.Queue) != 4 || string(v3s.Queue[0].Message.Payload) != "released" ||
		string(v3s.Queue[3].Message.Payload) != "inbound" {
		t.Fatalf("3.1.1 session in the journal: %+v", v3s)
	}
	if v5s == nil || len(v5s.Inflight) != 2 ||
		!v5s.Inflight[0].Released || v5s.Inflight[0].PacketID != released.PacketID ||
		v5s.Inflight[1].Released || v5s.Inflight[1].PacketID != unacked.PacketID ||
		len(v5s.Queue) != 1 || string(v5s.Queue[0].Message.Payload) != "second" ||
		!slices.Equal(v5s.InboundQoS2, []uint16{77}) {
		t.Fatalf("5.0 session in the journal: %+v", v5s)
	}

	d.restart()
	sub, _ := brokertest.V5Dial(t, d.addr, brokertest.V5Connect("sub", true))
	sub.V5Sub(1, packet.Subscription{Filter: []byte("r/#"), QoS: 1}, 1)
	if m := sub.ExpectPublish(); string(m.Payload) != "kept" || !m.Retain {
		t.Errorf("retained after restart: %q retain %v", m.Payload, m.Retain)
	}

	v3, present := brokertest.V3Dial(t, d.addr, "v3", false)
	if !present {
		t.Fatal("3.1.1 session not present after restart")
	}
	v3.V3Expect("q/1", "released", 1) // granted QoS 1
	v3.V3Expect("q/2", "unacknowledged", 1)
	v3.V3Expect("q/3", "second", 1)
	v3.V3Expect("in/1", "inbound", 1)

	v5, ack := brokertest.V5Dial(t, d.addr, brokertest.V5Expiry(brokertest.V5Connect("v5", false), 3600))
	if !ack.SessionPresent {
		t.Fatal("5.0 session not present after restart")
	}
	if a := v5.ExpectAck(packet.PUBREL); a.PacketID != released.PacketID {
		t.Errorf("PUBREL for %d, want %d", a.PacketID, released.PacketID)
	}
	if m := v5.ExpectPublish(); m.PacketID != unacked.PacketID || !m.Dup || m.QoS != 2 || string(m.Payload) != "unacknowledged" ||
		len(m.Props.SubscriptionIDs) != 1 || m.Props.SubscriptionIDs[0] != 9 {
		t.Errorf("resent %+v, want q/2 with DUP and packet id %d", m, unacked.PacketID)
	}
	// A QoS 1 message in flight comes back as a queued one: the journal
	// does not keep QoS 1 packet identifiers.
	if m := v5.ExpectPublish(); m.QoS != 1 || string(m.Payload) != "second" ||
		len(m.Props.SubscriptionIDs) != 1 || m.Props.SubscriptionIDs[0] != 9 {
		t.Errorf("resent %+v, want q/3 (was packet id %d)", m, second.PacketID)
	}
	v5.Send(&packet.Publish{Topic: []byte("in/1"), Payload: []byte("inbound"), QoS: 2, PacketID: 77, Dup: true})
	if a := v5.ExpectAck(packet.PUBREC); a.PacketID != 77 || a.Code != packet.Success {
		t.Errorf("PUBREC for the resent inbound message: %+v", a)
	}
	v5.Ack(packet.PUBREL, 77)
	if a := v5.ExpectAck(packet.PUBCOMP); a.Code != packet.Success {
		t.Errorf("PUBCOMP for the inbound QoS 2 message: code %#x, want 0", byte(a.Code))
	}
	pub, _ = brokertest.V5Dial(t, d.addr, brokertest.V5Connect("pub", true))
	pub.V5Pub("q/4", 1, 1, "after")
	pub.ExpectAck(packet.PUBACK)
	if m := v5.ExpectPublish(); string(m.Payload) != "after" {
		t.Errorf("after restart got %q", m.Payload)
	}
	v3.V3Expect("q/4", "after", 1) // the resent inbound message was not routed again
}

// TestRestoreExpiry: expiry keeps counting while the broker is down. A
// retained or queued message past its expiry and a session past its
// expiry are dropped, from the journal too; the others keep the time
// they had left.
func TestRestoreExpiry(t *testing.T) { synctest.Test(t, testRestoreExpiry) }

// testRestoreExpiry runs in a synctest bubble: the restored session's
// expiry passes on the bubble's clock.
func testRestoreExpiry(t *testing.T) {
	now := time.Now()
	msg := func(topic, payload string, expires time.Time) broker.StoredMessage {
		return broker.StoredMessage{Topic: []byte(topic), Payload: []byte(payload), QoS: 1, Expires: expires}
	}
	sub := []broker.StoredSubscription{{Filter: "q", QoS: 1}}
	d := &durableBroker{t: t, dir: t.TempDir(), mem: true}
	seedJournal(t, d.dir, []broker.StoredMessage{
		msg("r/live", "live", now.Add(10*time.Second)),
		msg("r/dead", "dead", now.Add(-time.Second)),
		msg("r/forever", "forever", time.Time{}),
	}, []broker.StoredSession{
		{ID: "gone", Expiry: 60, Disconnected: now.Add(-61 * time.Second), Subscriptions: sub,
			Queue: []broker.StoredDelivery{{QoS: 1, Message: msg("q", "lost", time.Time{})}}},
		{ID: "left", Expiry: 60, Disconnected: now.Add(-30 * time.Second), Subscriptions: sub,
			Queue: []broker.StoredDelivery{
				{QoS: 1, Message: msg("q", "stale", now.Add(-time.Millisecond))},
				{QoS: 1, Message: msg("q", "fresh", now.Add(20*time.Second))},
			}},
		{ID: "online", Expiry: 2, Subscriptions: sub}, // online when written: its whole expiry from the restart
	})
	d.mustStart()
	if d.r.RetainedLoaded != 2 || d.r.SessionsLoaded != 2 {
		t.Errorf("restored %d retained messages, %d sessions; want 2, 2", d.r.RetainedLoaded, d.r.SessionsLoaded)
	}
	if m := d.message("r/dead"); m != nil {
		t.Errorf("expired retained message still in the journal: %+v", m)
	}
	if s := d.session("gone"); s != nil {
		t.Errorf("expired session still in the journal: %+v", s)
	}
	if s := d.session("left"); s == nil || len(s.Queue) != 1 || string(s.Queue[0].Message.Payload) != "fresh" {
		t.Errorf("session left in the journal: %+v, want only the fresh message", s)
	}
	if s := d.session("online"); s == nil || !s.Disconnected.Equal(now) {
		t.Errorf("session online when written: %+v, want Disconnected at the restart", s)
	}
	if r := d.j.Report(false); r.Messages != 1 {
		t.Errorf("%d messages in the journal, want the fresh one", r.Messages)
	}

	c, _ := brokertest.V5Dial(t, d.addr, brokertest.V5Connect("c", true))
	c.V5Sub(1, packet.Subscription{Filter: []byte("r/+"), QoS: 1}, 1)
	got := map[string]*packet.Publish{}
	for range 2 {
		m := c.ExpectPublish()
		got[string(m.Topic)] = m
		c.Ack(packet.PUBACK, m.PacketID)
	}
	if m := got["r/live"]; m == nil || !m.Props.Has(packet.PropMessageExpiry) || m.Props.MessageExpiry != 10 {
		t.Errorf("r/live: %+v, want expiry 10 s left", m)
	}
	if m := got["r/forever"]; m == nil || m.Props.Has(packet.PropMessageExpiry) {
		t.Errorf("r/forever: %+v", m)
	}
	c.Sync() // nothing else came: r/dead would have come before the PINGRESP

	for _, tc := range []struct {
		id      string
		present bool
	}{{"gone", false}, {"left", true}} {
		r, ack := brokertest.V5Dial(t, d.addr, brokertest.V5Expiry(brokertest.V5Connect(tc.id, false), 60))
		if ack.SessionPresent != tc.present {
			t.Errorf("%s: session present %v, want %v", tc.id, ack.SessionPresent, tc.present)
		}
		if tc.id == "left" {
			m := r.ExpectPublish()
			if string(m.Payload) != "fresh" || m.Props.MessageExpiry != 20 {
				t.Errorf("queued: %q expiry %d, want fresh with 20 s", m.Payload, m.Props.MessageExpiry)
			}
		}
	}
	// "online" got its whole expiry from the restart, then ends: in the
	// journal too.
	time.Sleep(time.Until(now.Add(2*time.Second - time.Nanosecond)))
	synctest.Wait()
	if d.session("online") == nil {
		t.Error("restored session ended before its expiry")
	}
	time.Sleep(time.Nanosecond)
	synctest.Wait()
	if s := d.session("online"); s != nil {
		t.Errorf("restored session still in the journal after its expiry: %+v", s)
	}
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
	if _, err := s.RestoreJournal(); err == nil {
		t.Error("RestoreJournal without a journal: no error")
	}
	s.Close()
}

// TestRestoreJournalRejects: RestoreJournal skips and names what is not
// valid (a topic or filter today's limits refuse, a record that does not
// decode), drops it from the journal, restores the rest, and refuses to
// run twice.
func TestRestoreJournalRejects(t *testing.T) {
	dir := t.TempDir()
	q := []broker.StoredDelivery{{QoS: 1, Message: broker.StoredMessage{Topic: []byte("q"), Payload: []byte("m"), QoS: 1}}}
	seedJournal(t, dir,
		[]broker.StoredMessage{{Topic: []byte("a/+"), Payload: []byte("x")}, {Topic: []byte("ok"), Payload: []byte("x")}},
		[]broker.StoredSession{
			{ID: "bad", Expiry: 60, Subscriptions: []broker.StoredSubscription{{Filter: "a/#/b"}}, Queue: q},
			{ID: "good", Expiry: 60, Subscriptions: []broker.StoredSubscription{{Filter: "q", QoS: 1}}, Queue: q},
		})
	// A session record and a message record that do not decode.
	j := openJournal(t, dir)
	j.Session("junk", []byte{9, 9})
	var id uint64
	if _, _, _, err := j.Enqueue(&id, rawRecord{1, 0xff}, "good", broker.AppendDeliveryBody(nil, &q[0])); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}

	d := &durableBroker{t: t, dir: dir}
	err := d.start()
	if err == nil || !strings.Contains(err.Error(), `"a/+"`) || !strings.Contains(err.Error(), `"a/#/b"`) ||
		!strings.Contains(err.Error(), "session record does not decode") {
		t.Errorf("RestoreJournal: %v, want the bad entries named", err)
	}
	if d.r.RetainedLoaded != 1 || d.r.SessionsLoaded != 1 {
		t.Errorf("restored %d retained messages, %d sessions; want 1, 1", d.r.RetainedLoaded, d.r.SessionsLoaded)
	}
	if r := d.j.Report(true); r.Retained != 1 || r.Sessions != 1 || r.PerSession["good"].Messages != 1 {
		t.Errorf("the journal holds %d retained messages, %d sessions, messages %v; want 1, 1 (good), 1", r.Retained, r.Sessions, r.PerSession)
	}
	if _, err := d.s.RestoreJournal(); err == nil {
		t.Error("second RestoreJournal: no error")
	}
	g, ack := brokertest.V5Dial(t, d.addr, brokertest.V5Expiry(brokertest.V5Connect("good", false), 60))
	if !ack.SessionPresent {
		t.Fatal("the valid session was not restored")
	}
	if m := g.ExpectPublish(); string(m.Payload) != "m" {
		t.Errorf("queued: %q", m.Payload)
	}
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
	{
		ID: "w", Owner: "user:w", Expiry: 60,
		Subscriptions: []broker.StoredSubscription{{Filter: "w/#", QoS: 1}},
		Will:          &broker.StoredWill{Message: roundTripMessages[2], Retain: true, Delay: 30, Expiry: 120},
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
	for _, bad := range []string{
		"04016300ffffffff0f000000000000",                     // version 4
		"03016300ffffffff0f000000000002",                     // will flag 2
		"03016300ffffffff0f00000000000101010201610000000000", // will retain flag 2
	} {
		b, _ := hex.DecodeString(bad)
		var s broker.StoredSession
		if err := s.UnmarshalBinary(b); err == nil {
			t.Errorf("decode session %s: no error", bad)
		}
	}
}

// storedGolden are the saved encodings of roundTripMessages and then
// roundTripSessions (session version 3: with the will): what the journal
// holds must keep loading, so the encoding of these values never changes
// (a new property gets a new flag bit, a new session field a new
// version; these records never have them).
var storedGolden = []string{
	"0101610000000000",
	"0105612f622f63097061796c6f616400ff020000959a97ece39fe7cb17",
	"0101740170010f01106170706c69636174696f6e2f6a736f6e087265706c792f746f0301020302016b0176016b0000",
	"03016300ffffffff0f000000000000",
	"030873656e736f722d3718783530393a434e3d73656e736f722d372c4f3d706c616e74901c8580a8b1e39fe7cb170203612f2b020bffffff7f" +
		"0a2473686172652f672f230100000201010200ffff03020105010203040501740170010f01106170706c69636174696f6e2f6a736f6e0872" +
		"65706c792f746f0301020302016b0176016b0000020000020005612f622f63097061796c6f616400ff020000959a97ece39fe7cb1700000000" +
		"016100000000000207ffff0300",
	// version 3's will: 01, delay 30, expiry 120, retained, then the message without its version byte
	"03017706757365723a773c000103772f23010000000000011e780101740170010f01106170706c69636174696f6e2f6a736f6e087265706c79" +
		"2f746f0301020302016b0176016b0000",
}

// storedGoldenV2 are roundTripSessions[:2] as version 2 wrote them, before
// sessions had a will: they still decode.
var storedGoldenV2 = []string{
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

// TestStoredGoldenV2: session records of version 2 (no will) decode to
// their values.
func TestStoredGoldenV2(t *testing.T) {
	for i, g := range storedGoldenV2 {
		b, err := hex.DecodeString(g)
		if err != nil {
			t.Fatal(err)
		}
		var got broker.StoredSession
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatalf("decode version 2 golden %d: %v", i, err)
		}
		if diff := cmp.Diff(roundTripSessions[i], got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("version 2 golden %d decodes to (-want +got):\n%s", i, diff)
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
