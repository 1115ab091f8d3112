package statestore

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"edgebroker/broker/testenv"
)

// fakeClock is a settable wall clock.
type fakeClock struct{ ms atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ms.Store(1696374425000)
	return c
}
func (c *fakeClock) Now() time.Time          { return time.UnixMilli(c.ms.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ms.Add(d.Milliseconds()) }

// events records change events.
type events struct {
	mu  sync.Mutex
	evs []Event
}

func (e *events) on(ev Event) { e.mu.Lock(); e.evs = append(e.evs, ev); e.mu.Unlock() }
func (e *events) take() []Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	evs := e.evs
	e.evs = nil
	return evs
}

func openTest(t *testing.T, dir string, opts Options) *Store {
	t.Helper()
	if opts.SweepInterval == 0 {
		opts.SweepInterval = time.Hour // tests call Sweep themselves
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustSet(t *testing.T, s *Store, k, v string, opt SetOptions) SetResult {
	t.Helper()
	r, err := s.Set([]byte(k), []byte(v), opt)
	if err != nil {
		t.Fatalf("Set(%q): %v", k, err)
	}
	return r
}

func wantGet(t *testing.T, s *Store, k, want string) {
	t.Helper()
	v, _, err := s.Get([]byte(k))
	if err != nil || string(v) != want {
		t.Errorf("Get(%q) = %q, %v; want %q", k, v, err, want)
	}
}

func wantMissing(t *testing.T, s *Store, k string) {
	t.Helper()
	if v, _, err := s.Get([]byte(k)); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(%q) = %q, %v; want ErrNotFound", k, v, err)
	}
}

func TestConditions(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	for _, tt := range []struct {
		name    string
		cond    Condition
		value   string
		applied bool
		after   string
	}{
		{"NX on new key", NX, "v1", true, "v1"},
		{"NX again", NX, "v2", false, "v1"},
		{"NEX different value", NEX, "v2", false, "v1"},
		{"NEX same value", NEX, "v1", true, "v1"},
		{"plain set", None, "v3", true, "v3"},
	} {
		before, _, _ := s.Get([]byte("k"))
		_, beforeVer, _ := s.Get([]byte("k"))
		r := mustSet(t, s, "k", tt.value, SetOptions{Condition: tt.cond})
		if r.Applied != tt.applied {
			t.Errorf("%s: Applied = %v, want %v", tt.name, r.Applied, tt.applied)
		}
		if !r.Applied && r.Version != beforeVer {
			t.Errorf("%s: skipped SET version %v, want current %v (value %q)", tt.name, r.Version, beforeVer, before)
		}
		wantGet(t, s, "k", tt.after)
	}
	if r := mustSet(t, s, "fresh", "x", SetOptions{Condition: NEX}); !r.Applied {
		t.Errorf("NEX on absent key not applied")
	}
}

func TestVersionsAndBinary(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{Now: newFakeClock().Now})
	key, val := []byte{0, 1, '\r', '\n', 0xff}, []byte("a\r\n$3\r\n\x00")
	ts := HLC{Wall: 1696374425000, Node: "Client1"}
	r, err := s.Set(key, val, SetOptions{Timestamp: ts})
	if err != nil {
		t.Fatal(err)
	}
	if want := (HLC{1696374425000, 1, "StateStore"}); r.Version != want {
		t.Errorf("Set version %v, want %v", r.Version, want)
	}
	v, ver, err := s.Get(key)
	if err != nil || !bytes.Equal(v, val) || ver != r.Version {
		t.Errorf("Get = %q %v %v; want %q %v", v, ver, err, val, r.Version)
	}
	if _, err := s.Set(nil, val, SetOptions{}); !errors.Is(err, ErrEmptyKey) {
		t.Errorf("empty key: %v", err)
	}
	if _, err := s.Set([]byte("k"), nil, SetOptions{Timestamp: HLC{Wall: ts.Wall + 120000}}); !errors.Is(err, ErrTimestampFuture) {
		t.Errorf("future __ts: %v", err)
	}
}

func TestVDelDel(t *testing.T) {
	ev := &events{}
	s := openTest(t, t.TempDir(), Options{OnChange: ev.on})
	mustSet(t, s, "k", "v", SetOptions{})
	for _, tt := range []struct {
		vdel  bool
		value string
		want  int
	}{
		{true, "wrong", -1},
		{true, "v", 1},
		{true, "v", 0},
		{false, "", 0},
	} {
		var n int
		var err error
		if tt.vdel {
			n, err = s.VDel([]byte("k"), []byte(tt.value), nil)
		} else {
			n, err = s.Del([]byte("k"), nil)
		}
		if err != nil || n != tt.want {
			t.Errorf("vdel=%v %q: got %d, %v; want %d", tt.vdel, tt.value, n, err, tt.want)
		}
	}
	mustSet(t, s, "k2", "v", SetOptions{})
	if n, err := s.Del([]byte("k2"), nil); n != 1 || err != nil {
		t.Errorf("Del = %d, %v", n, err)
	}
	var kinds []EventKind
	for _, e := range ev.take() {
		kinds = append(kinds, e.Kind)
	}
	want := []EventKind{EventSet, EventDelete, EventSet, EventDelete}
	if len(kinds) != len(want) {
		t.Fatalf("events %v, want %v", kinds, want)
	}
	for i := range want {
		if kinds[i] != want[i] {
			t.Errorf("event %d: %v, want %v", i, kinds[i], want[i])
		}
	}
}

func TestFencing(t *testing.T) {
	clk := newFakeClock()
	s := openTest(t, t.TempDir(), Options{Now: clk.Now})
	now := clk.ms.Load()
	tok := func(wall int64, ctr uint64) *HLC { return &HLC{Wall: wall, Counter: ctr, Node: "S"} }
	mustSet(t, s, "lock", "owner", SetOptions{Condition: NEX, PX: time.Minute})
	for _, tt := range []struct {
		name string
		op   string // set, del, vdel
		ft   *HLC
		err  error
	}{
		{"first set stores token", "set", tok(now, 5), nil},
		{"missing token", "set", nil, ErrFencingRequired},
		{"lower token", "set", tok(now, 4), ErrFencingLower},
		{"equal token", "set", tok(now, 5), nil},
		{"higher token raises", "set", tok(now, 7), nil},
		{"now lower", "set", tok(now, 6), ErrFencingLower},
		{"future token", "set", tok(now+61000, 0), ErrFencingFuture},
		{"del without token", "del", nil, ErrFencingRequired},
		{"vdel lower", "vdel", tok(now, 1), ErrFencingLower},
		{"del ok", "del", tok(now, 7), nil},
		{"set after delete needs none", "set", nil, nil},
	} {
		var err error
		switch tt.op {
		case "set":
			_, err = s.Set([]byte("res"), []byte("x"), SetOptions{Fencing: tt.ft})
		case "del":
			_, err = s.Del([]byte("res"), tt.ft)
		case "vdel":
			_, err = s.VDel([]byte("res"), []byte("x"), tt.ft)
		}
		if !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
			t.Errorf("%s: err %v, want %v", tt.name, err, tt.err)
		}
	}
	if txt, ok := ProtocolText(ErrFencingLower); !ok || txt != "the request fencing token is a lower version than the fencing token protecting the resource" {
		t.Errorf("ProtocolText = %q, %v", txt, ok)
	}
}

func TestQuota(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{MaxKeys: 2, MaxBytes: 20})
	mustSet(t, s, "a", "1", SetOptions{})
	mustSet(t, s, "b", "1", SetOptions{})
	if _, err := s.Set([]byte("c"), []byte("1"), SetOptions{}); !errors.Is(err, ErrQuotaExceeded) {
		t.Errorf("3rd key: %v, want ErrQuotaExceeded", err)
	}
	mustSet(t, s, "a", "12345678", SetOptions{}) // overwrite is fine: 9+2 bytes
	if _, err := s.Set([]byte("b"), []byte("123456789012"), SetOptions{}); !errors.Is(err, ErrQuotaExceeded) {
		t.Errorf("bytes: %v, want ErrQuotaExceeded", err)
	}
	if n, _ := s.Del([]byte("b"), nil); n != 1 {
		t.Fatal("Del b failed")
	}
	mustSet(t, s, "c", "1", SetOptions{})
	if k, b := s.Usage(); k != 2 || b != 11 {
		t.Errorf("Usage: %d keys, %d bytes; want 2 keys (a, c), 11 bytes", k, b)
	}
}

func TestExpiryPersistsAcrossReopen(t *testing.T) {
	clk := newFakeClock()
	dir := t.TempDir()
	ev := &events{}
	s := openTest(t, dir, Options{Now: clk.Now, OnChange: ev.on})
	mustSet(t, s, "short", "v", SetOptions{PX: 1500 * time.Millisecond})
	mustSet(t, s, "long", "v", SetOptions{PX: 10 * time.Second})
	mustSet(t, s, "cleared", "v", SetOptions{PX: time.Second})
	mustSet(t, s, "cleared", "v2", SetOptions{}) // SET without PX removes expiry
	ev.take()

	clk.Advance(1499 * time.Millisecond)
	wantGet(t, s, "short", "v")
	clk.Advance(time.Millisecond)
	wantMissing(t, s, "short") // gone for Get before the sweeper ran
	if err := s.Sweep(); err != nil {
		t.Fatal(err)
	}
	if evs := ev.take(); len(evs) != 1 || string(evs[0].Key) != "short" || evs[0].Kind != EventDelete {
		t.Errorf("sweep events: %+v", evs)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	clk.Advance(20 * time.Second) // "long" expires while the store is down
	s = openTest(t, dir, Options{Now: clk.Now, OnChange: ev.on})
	wantMissing(t, s, "long")
	wantGet(t, s, "cleared", "v2")
	if err := s.Sweep(); err != nil {
		t.Fatal(err)
	}
	if evs := ev.take(); len(evs) != 1 || string(evs[0].Key) != "long" || evs[0].Kind != EventDelete {
		t.Errorf("events after reopen: %+v", evs)
	}
}

func TestSweeperRuns(t *testing.T) {
	ev := &events{}
	s := openTest(t, t.TempDir(), Options{OnChange: ev.on, SweepInterval: 10 * time.Millisecond})
	mustSet(t, s, "k", "v", SetOptions{PX: 20 * time.Millisecond})
	testenv.Eventually(t, 5*time.Second, "a delete event from the sweeper", func() bool {
		return slices.ContainsFunc(ev.take(), func(e Event) bool { return e.Kind == EventDelete && string(e.Key) == "k" })
	})
}

func TestSecondOpenLocked(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: err %v, want ErrLocked", err)
	}
	s.Close()
	if _, err := s.Set([]byte("k"), nil, SetOptions{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Set after Close: %v, want ErrClosed", err)
	}
	if _, _, err := s.Get([]byte("k")); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close: %v, want ErrClosed", err)
	}
	s2, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	s2.Close()
}

func TestCompactKeepsData(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	for i := range 200 {
		mustSet(t, s, "k", string(rune('a'+i%26)), SetOptions{})
	}
	mustSet(t, s, "px", "v", SetOptions{PX: time.Hour})
	size := func() int64 {
		fi, err := os.Stat(filepath.Join(dir, DBFile))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	before := size()
	if err := s.Compact(); err != nil {
		t.Fatal(err)
	}
	if after := size(); after >= before/10 {
		t.Errorf("file size %d after Compact, %d before", after, before)
	}
	wantGet(t, s, "k", string(rune('a'+199%26)))
	mustSet(t, s, "after", "x", SetOptions{})
	s.Close()
	s = openTest(t, dir, Options{})
	wantGet(t, s, "after", "x")
	wantGet(t, s, "px", "v")
	if rec, note := s.Recovered(); rec {
		t.Errorf("unexpected recovery: %s", note)
	}
}

func TestVersionsIncreaseAcrossReopen(t *testing.T) {
	clk := newFakeClock()
	dir := t.TempDir()
	s := openTest(t, dir, Options{Now: clk.Now})
	r1 := mustSet(t, s, "k", "v", SetOptions{})
	s.Close()
	clk.Advance(-time.Hour) // wall clock stepped back while down
	s = openTest(t, dir, Options{Now: clk.Now})
	if r2 := mustSet(t, s, "k", "v2", SetOptions{}); r2.Version.Compare(r1.Version) <= 0 {
		t.Errorf("version after reopen %v, not above %v", r2.Version, r1.Version)
	}
}

func TestAutoCompact(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{CompactMinSize: 4096})
	v := strings.Repeat("x", 100)
	for range 600 { // > 2×256 batches of one write each
		mustSet(t, s, "k", v, SetOptions{})
	}
	fi, err := os.Stat(filepath.Join(dir, DBFile))
	if err != nil {
		t.Fatal(err)
	}
	// 600 records are ~90 KB; after compaction at batch 512 at most ~90 remain.
	if fi.Size() > 20000 {
		t.Errorf("file is %d bytes: no automatic compaction", fi.Size())
	}
	wantGet(t, s, "k", v)
}
