package brokerstate

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"edgebroker/broker"
	"edgebroker/broker/packet"
	"edgebroker/broker/testenv"
	"edgebroker/statestore"
)

const waitTime = 5 * time.Second

func open(t *testing.T, dir string, opts Options) *Store {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func closeStore(t *testing.T, s *Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func load(t *testing.T, s *Store) ([]broker.StoredMessage, []broker.StoredSession) {
	t.Helper()
	rs, ss, err := s.Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	slices.SortFunc(rs, func(a, b broker.StoredMessage) int { return strings.Compare(string(a.Topic), string(b.Topic)) })
	slices.SortFunc(ss, func(a, b broker.StoredSession) int { return strings.Compare(a.ID, b.ID) })
	return rs, ss
}

func msg(topic, payload string) *broker.StoredMessage {
	return &broker.StoredMessage{Topic: []byte(topic), Payload: []byte(payload), QoS: 1}
}

// TestReopenKeepsEverything: what was reported and not deleted is loaded
// by the next Open, and Close is what makes it so (the interval is never
// reached).
func TestReopenKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{FlushInterval: time.Hour})
	rich := msg("a/rich", "p")
	rich.Props.Set(packet.PropContentType)
	rich.Props.ContentType = []byte("text/plain")
	rich.Props.User = []packet.UserProperty{{Key: []byte("k"), Value: []byte("v")}}
	rich.Expires = time.Now().Add(time.Hour).Round(0)
	s.RetainedChanged("a/rich", rich)
	s.RetainedChanged("a/plain", msg("a/plain", "x"))
	s.RetainedChanged("a/gone", msg("a/gone", "x"))
	s.RetainedChanged("a/gone", nil)
	sess := &broker.StoredSession{ID: "c1", Owner: "user:alice", Expiry: 3600, Disconnected: time.Unix(1700000000, 0),
		Subscriptions: []broker.StoredSubscription{{Filter: "a/#", QoS: 1, ID: 3}},
		Queue:         []broker.StoredDelivery{{QoS: 1, Message: *msg("a/x", "queued")}}}
	s.SessionChanged("c1", sess)
	s.SessionChanged("c2", &broker.StoredSession{ID: "c2", Expiry: 60})
	s.SessionChanged("c2", nil)
	if n := s.writes.Load(); n != 0 {
		t.Fatalf("%d keys written before the interval", n)
	}
	closeStore(t, s)

	s = open(t, dir, Options{})
	defer closeStore(t, s)
	rs, ss := load(t, s)
	want := []broker.StoredMessage{*msg("a/plain", "x"), *rich}
	if diff := cmp.Diff(want, rs, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("retained (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]broker.StoredSession{*sess}, ss, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("sessions (-want +got):\n%s", diff)
	}
}

// TestCoalescing: many changes to a few keys become one write per key in
// one batch.
func TestCoalescing(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{FlushInterval: time.Hour})
	for i := range 1000 {
		s.RetainedChanged("t", msg("t", string(rune('a'+i%26))))
		s.SessionChanged("c", &broker.StoredSession{ID: "c", Expiry: uint32(i + 1)})
	}
	closeStore(t, s)
	if w, b := s.writes.Load(), s.batches.Load(); w != 2 || b != 1 {
		t.Errorf("%d writes in %d batches, want 2 in 1", w, b)
	}
	s = open(t, dir, Options{})
	defer closeStore(t, s)
	rs, ss := load(t, s)
	if len(rs) != 1 || string(rs[0].Payload) != string(rune('a'+999%26)) || len(ss) != 1 || ss[0].Expiry != 1000 {
		t.Errorf("loaded %+v %+v, want the last changes", rs, ss)
	}
}

// TestFlushTriggers: changes are written after FlushInterval, or at once
// when MaxPending keys changed.
func TestFlushTriggers(t *testing.T) {
	t.Run("interval", func(t *testing.T) {
		s := open(t, t.TempDir(), Options{FlushInterval: 10 * time.Millisecond})
		defer closeStore(t, s)
		s.RetainedChanged("t", msg("t", "x"))
		testenv.Eventually(t, waitTime, "the write", func() bool { return s.writes.Load() == 1 })
		if rs, _ := load(t, s); len(rs) != 1 {
			t.Errorf("after the interval: %d retained, want 1", len(rs))
		}
	})
	t.Run("pending", func(t *testing.T) {
		s := open(t, t.TempDir(), Options{FlushInterval: time.Hour, MaxPending: 10})
		defer closeStore(t, s)
		for i := range 10 {
			s.SessionChanged(string(rune('a'+i)), &broker.StoredSession{ID: string(rune('a' + i)), Expiry: 1})
		}
		testenv.Eventually(t, waitTime, "the write", func() bool { return s.writes.Load() == 10 })
		if _, ss := load(t, s); len(ss) != 10 {
			t.Errorf("%d sessions durable, want 10", len(ss))
		}
	})
}

// TestRetainedExpiry: a retained message expires in the store with its
// message expiry; one already expired when written is deleted.
func TestRetainedExpiry(t *testing.T) {
	dir := t.TempDir()
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	s := open(t, dir, Options{FlushInterval: time.Hour, Now: clock})
	soon := msg("soon", "x")
	soon.Expires = clock().Add(time.Second)
	s.RetainedChanged("soon", soon)
	s.RetainedChanged("old", msg("old", "x"))
	closeStore(t, s)

	s = open(t, dir, Options{FlushInterval: time.Hour, Now: clock})
	past := msg("old", "y")
	past.Expires = clock().Add(-time.Millisecond)
	s.RetainedChanged("old", past) // replaced by an expired one: deleted
	closeStore(t, s)

	now.Add(int64(2 * time.Second))
	s = open(t, dir, Options{Now: clock})
	defer closeStore(t, s)
	if rs, _ := load(t, s); len(rs) != 0 {
		t.Errorf("loaded %d expired retained messages", len(rs))
	}
}

// TestLoadDropsBadRecords: a record that does not decode, or sits under
// the wrong key, is skipped and deleted; the rest loads.
func TestLoadDropsBadRecords(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{FlushInterval: time.Hour})
	ok, _ := msg("ok", "x").MarshalBinary()
	other, _ := msg("other", "x").MarshalBinary()
	if err := s.st.Batch([]statestore.Write{
		{Key: []byte("rok"), Value: ok},
		{Key: []byte("rbad"), Value: []byte{9, 9}},
		{Key: []byte("rwrong"), Value: other},
		{Key: []byte("?"), Value: []byte{1}},
	}); err != nil {
		t.Fatal(err)
	}
	if rs, _ := load(t, s); len(rs) != 1 || string(rs[0].Topic) != "ok" {
		t.Errorf("loaded %+v, want only ok", rs)
	}
	closeStore(t, s)
	s = open(t, dir, Options{})
	defer closeStore(t, s)
	n := 0
	s.st.Each(func(k, v []byte) bool { n++; return true })
	if n != 1 {
		t.Errorf("%d records after Load dropped the bad ones, want 1", n)
	}
}

// TestBrokerImport: what the store holds restores into a broker (the
// appliance imports it into the journal once).
func TestBrokerImport(t *testing.T) {
	dir := t.TempDir()
	st := open(t, dir, Options{})
	st.RetainedChanged("r/1", msg("r/1", "kept"))
	st.SessionChanged("c", &broker.StoredSession{ID: "c", Expiry: 60, Subscriptions: []broker.StoredSubscription{{Filter: "q", QoS: 1}}})
	closeStore(t, st)

	st = open(t, dir, Options{})
	defer closeStore(t, st)
	rs, ss := load(t, st)
	b := broker.New(broker.Config{})
	defer b.Close()
	if err := b.Restore(rs, ss); err != nil {
		t.Fatal(err)
	}
	if b.Retained() != 1 || !b.HasSession("c") {
		t.Errorf("after the import: %d retained, session c present %v", b.Retained(), b.HasSession("c"))
	}
}

// TestConcurrentChanges: changes recorded while the writer flushes are
// neither lost nor reordered: each key ends with its last change.
func TestConcurrentChanges(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{FlushInterval: time.Millisecond, MaxPending: 8})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 500 {
				id := fmt.Sprintf("g%d-%d", g, i%10)
				s.SessionChanged(id, &broker.StoredSession{ID: id, Expiry: uint32(i + 1)})
			}
		})
	}
	wg.Wait()
	closeStore(t, s)
	s = open(t, dir, Options{})
	defer closeStore(t, s)
	_, ss := load(t, s)
	if len(ss) != 40 {
		t.Fatalf("%d sessions, want 40", len(ss))
	}
	for _, x := range ss {
		var g, k int
		fmt.Sscanf(x.ID, "g%d-%d", &g, &k)
		if want := uint32(490 + k + 1); x.Expiry != want {
			t.Errorf("%s: expiry %d, want %d (its last change)", x.ID, x.Expiry, want)
		}
	}
}
