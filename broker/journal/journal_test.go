package journal

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"edgebroker/broker/testenv"
)

type raw []byte

func (r raw) AppendJournal(b []byte) []byte { return append(b, r...) }

func open(t *testing.T, dir string, o Options) *Journal {
	t.Helper()
	j, err := Open(dir, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return j
}

func sessions(t *testing.T, j *Journal) map[string]Session {
	t.Helper()
	got := map[string]Session{}
	err := j.EachSession(func(s *Session) error {
		c := Session{ID: s.ID, Body: bytes.Clone(s.Body), InQoS2: s.InQoS2}
		for _, d := range s.Deliveries {
			c.Deliveries = append(c.Deliveries, Delivery{ID: d.ID, Body: bytes.Clone(d.Body), Message: bytes.Clone(d.Message),
				PacketID: d.PacketID, Released: d.Released})
		}
		got[s.ID] = c
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// openSlowFast opens a journal with two sessions: "slow", whose messages
// stay, and "fast", whose messages the tests retire at once.
func openSlowFast(t *testing.T, dir string, seg, maxBytes int64) *Journal {
	t.Helper()
	j := open(t, dir, Options{SegmentSize: seg, MaxBytes: maxBytes})
	j.Session("slow", []byte("S"))
	j.Session("fast", []byte("F"))
	return j
}

func mustEnq(t *testing.T, j *Journal, id *uint64, msg, session string) uint64 {
	t.Helper()
	_, _, seq, err := j.Enqueue(id, raw(msg), session, []byte{1})
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	return seq
}

// TestReplay: what was appended and made durable comes back after a
// reopen: sessions, deliveries in order with their packet identifiers,
// retained messages; what was acknowledged, ended or deleted does not.
func TestReplay(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir, Options{SegmentSize: 64 << 10})
	j.Session("a", []byte("A1"))
	j.Session("b", []byte("B1"))
	j.Session("gone", []byte("G"))
	var m1, m2, m3 uint64
	mustEnq(t, j, &m1, "one", "a")
	mustEnq(t, j, &m1, "one", "b") // the same message: one record
	mustEnq(t, j, &m2, "two", "a")
	mustEnq(t, j, &m3, "three", "gone")
	j.Sent("a", m1, 7, false)
	j.Sent("a", m1, 7, true)
	j.Ack("b", m1)
	j.End("gone")
	j.Session("a", []byte("A2"))
	j.InQoS2("a", 9, true)
	j.InQoS2("a", 10, true)
	j.InQoS2("a", 10, false)
	if _, err := j.Retain([]byte("r/1"), raw("R1")); err != nil {
		t.Fatal(err)
	}
	j.Retain([]byte("r/2"), raw("R2"))
	j.Retain([]byte("r/2"), nil)
	if err := j.Wait(j.Seq()); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}

	j = open(t, dir, Options{SegmentSize: 64 << 10})
	defer j.Close()
	got := sessions(t, j)
	if len(got) != 2 || string(got["a"].Body) != "A2" || string(got["b"].Body) != "B1" {
		t.Fatalf("sessions %+v", got)
	}
	a := got["a"]
	if len(a.Deliveries) != 2 || string(a.Deliveries[0].Message) != "one" || string(a.Deliveries[1].Message) != "two" ||
		a.Deliveries[0].PacketID != 7 || !a.Deliveries[0].Released || a.Deliveries[1].PacketID != 0 {
		t.Errorf("a's deliveries %+v", a.Deliveries)
	}
	if len(a.InQoS2) != 1 || a.InQoS2[0] != 9 {
		t.Errorf("a's inbound QoS 2 %v, want [9]", a.InQoS2)
	}
	if len(got["b"].Deliveries) != 0 {
		t.Errorf("b's acknowledged delivery came back: %+v", got["b"].Deliveries)
	}
	var ret []string
	j.EachRetained(func(r *Retained) error { ret = append(ret, string(r.Topic)+"="+string(r.Body)); return nil })
	if fmt.Sprint(ret) != "[r/1=R1]" {
		t.Errorf("retained %v", ret)
	}
	if r := j.Report(false); r.Messages != 2 {
		t.Errorf("%d live messages, want 2", r.Messages)
	}
}

// TestTornTail: a record cut short by a power cut is repaired at Open,
// everything before it stays, and a copy of the damaged segment is kept.
func TestTornTail(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir, Options{SegmentSize: 64 << 10})
	j.Session("s", []byte("S"))
	var ids [10]uint64
	for i := range ids {
		mustEnq(t, j, &ids[i], fmt.Sprintf("m%d", i), "s")
	}
	j.Wait(j.Seq())
	var last uint64
	mustEnq(t, j, &last, "the torn one", "s")
	j.Wait(j.Seq())
	j.mu.Lock()
	seg, end := j.segs[len(j.segs)-1], j.segs[len(j.segs)-1].end
	j.mu.Unlock()
	j.Close()
	// Tear the last record: keep its header and half of it.
	f, err := os.OpenFile(seg.f.Name(), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	tail := make([]byte, 20)
	f.ReadAt(tail, end-20)
	for i := range tail[10:] {
		tail[10+i] ^= 0xFF
	}
	f.WriteAt(tail, end-20)
	f.Close()

	j = open(t, dir, Options{SegmentSize: 64 << 10})
	got := sessions(t, j)["s"]
	if len(got.Deliveries) != 10 {
		t.Fatalf("%d deliveries after the tear, want the 10 before it", len(got.Deliveries))
	}
	for i, d := range got.Deliveries {
		if string(d.Message) != fmt.Sprintf("m%d", i) {
			t.Errorf("delivery %d: %q", i, d.Message)
		}
	}
	copies, _ := os.ReadDir(filepath.Join(dir, DamagedDir))
	if len(copies) != 1 {
		t.Errorf("%d copies of the damaged segment, want 1", len(copies))
	}
	// Appending goes on after the repaired end.
	var after uint64
	mustEnq(t, j, &after, "after", "s")
	j.Wait(j.Seq())
	j.Close()
	j = open(t, dir, Options{SegmentSize: 64 << 10})
	defer j.Close()
	if got := sessions(t, j)["s"]; len(got.Deliveries) != 11 || string(got.Deliveries[10].Message) != "after" {
		t.Errorf("after the repair: %d deliveries", len(got.Deliveries))
	}
	if copies, _ := os.ReadDir(filepath.Join(dir, DamagedDir)); len(copies) != 1 {
		t.Errorf("a clean reopen made another copy: %d", len(copies))
	}
}

// TestCompaction: a steady stream of messages retired after delivery
// keeps the log within a few segments, a long-lived message is copied
// forward (not lost) when its segment is reclaimed, and the bytes
// written stay within 2× of what was appended.
func TestCompaction(t *testing.T) {
	dir := t.TempDir()
	const seg = 64 << 10
	j := openSlowFast(t, dir, seg, 16*seg)
	var keep uint64
	mustEnq(t, j, &keep, "kept for a long time", "slow")
	payload := string(bytes.Repeat([]byte("x"), 1000))
	for i := range 2000 {
		var id uint64
		mustEnq(t, j, &id, payload, "fast")
		j.Ack("fast", id)
		if err := j.Wait(j.Seq()); err != nil { // as a publisher awaits its PUBACK
			t.Fatalf("message %d: %v", i, err)
		}
	}
	j.Wait(j.Seq())
	waitFor(t, func() bool { return j.Report(false).Segments <= 4 })
	r := j.Report(false)
	if r.Compacted > r.Appended {
		t.Errorf("compaction wrote %d bytes for %d appended: amplification above 2×", r.Compacted, r.Appended)
	}
	if j.Stats.SegmentsDeleted.Load() < 20 {
		t.Errorf("%d segments reclaimed", j.Stats.SegmentsDeleted.Load())
	}
	j.Close()
	j = open(t, dir, Options{SegmentSize: seg, MaxBytes: 16 * seg})
	defer j.Close()
	got := sessions(t, j)
	if d := got["slow"].Deliveries; len(d) != 1 || string(d[0].Message) != "kept for a long time" {
		t.Errorf("the long-lived message after compaction: %+v", d)
	}
	if len(got["fast"].Deliveries) != 0 {
		t.Errorf("%d retired messages came back", len(got["fast"].Deliveries))
	}
}

// TestBudget: beyond MaxBytes messages are refused with ErrFull; retiring
// them makes room again.
func TestBudget(t *testing.T) {
	dir := t.TempDir()
	const seg = 64 << 10
	j := open(t, dir, Options{SegmentSize: seg, MaxBytes: 4 * seg})
	defer j.Close()
	j.Session("s", []byte("S"))
	payload := raw(bytes.Repeat([]byte("x"), 1000))
	var ids []uint64
	var err error
	for range 1000 {
		var id uint64
		if _, _, _, err = j.Enqueue(&id, payload, "s", nil); err != nil {
			break
		}
		ids = append(ids, id)
		j.Wait(j.Seq())
	}
	if err != ErrFull {
		t.Fatalf("after %d messages: %v, want ErrFull", len(ids), err)
	}
	if n := len(ids); n < 150 || n > 4*seg/1000 {
		t.Errorf("%d messages of 1 KB fit a budget of %d bytes", n, 4*seg)
	}
	for _, id := range ids {
		j.Ack("s", id)
	}
	j.Wait(j.Seq())
	waitFor(t, func() bool {
		var id uint64
		_, _, _, err := j.Enqueue(&id, payload, "s", nil)
		return err == nil
	})
}

// TestGroupCommit: concurrent appenders share fsyncs.
func TestGroupCommit(t *testing.T) {
	j := open(t, t.TempDir(), Options{SegmentSize: 1 << 20})
	defer j.Close()
	j.Session("s", nil)
	var wg sync.WaitGroup
	const writers, each = 32, 50
	for range writers {
		wg.Go(func() {
			for range each {
				var id uint64
				_, _, seq, err := j.Enqueue(&id, raw("m"), "s", nil)
				if err != nil {
					t.Error(err)
					return
				}
				if err := j.Wait(seq); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if f := j.Stats.Fsyncs.Load(); f >= writers*each {
		t.Errorf("%d fsyncs for %d commits: no group commit", f, writers*each)
	}
}

// waiterFunc is a Waiter.
type waiterFunc func(seq uint64, err error)

func (f waiterFunc) Durable(seq uint64, err error) { f(seq, err) }

// TestCommitOnCallersGoroutine: what EnqueueDeferred appends is made
// durable by the appender's own Commit, its waiters told before Commit
// returns, when no commit runs; concurrent appenders that find a commit
// running hand theirs to the committer, and nothing is left behind.
func TestCommitOnCallersGoroutine(t *testing.T) {
	j := open(t, t.TempDir(), Options{SegmentSize: 1 << 20})
	defer j.Close()
	j.Wait(j.Session("s", nil))
	// Alone, an appender commits on its own goroutine: its waiter is
	// told before Commit returns (unless the committer happened to be
	// busy with a leftover wake-up: then it commits, a little later).
	const rounds = 100
	inline := 0
	fsyncs := j.Stats.Fsyncs.Load()
	for range rounds {
		var id uint64
		_, _, seq, err := j.EnqueueDeferred(&id, raw("m"), "s", nil)
		if err != nil {
			t.Fatal(err)
		}
		var told atomic.Uint64
		j.NotifyDeferred(seq, waiterFunc(func(d uint64, err error) {
			if err != nil {
				t.Error(err)
			}
			told.Store(d)
		}))
		j.Commit()
		if told.Load() >= seq {
			inline++
		} else {
			waitFor(t, func() bool { return told.Load() >= seq })
		}
	}
	if inline < rounds/2 {
		t.Errorf("%d of %d commits on the appender's goroutine", inline, rounds)
	}
	if f := j.Stats.Fsyncs.Load() - fsyncs; f > rounds+rounds/10 {
		t.Errorf("%d fsyncs for %d commits", f, rounds)
	}

	var wg sync.WaitGroup
	const writers, each = 16, 50
	for range writers {
		wg.Go(func() {
			for range each {
				var id uint64
				_, _, seq, err := j.EnqueueDeferred(&id, raw("m"), "s", nil)
				if err != nil {
					t.Error(err)
					return
				}
				done := make(chan error, 1)
				j.NotifyDeferred(seq, waiterFunc(func(_ uint64, err error) { done <- err }))
				j.Commit()
				select {
				case err := <-done:
					if err != nil {
						t.Error(err)
					}
				case <-time.After(10 * time.Second):
					t.Error("a deferred record was never committed")
					return
				}
			}
		})
	}
	wg.Wait()
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, "the journal", cond)
}

// TestLoadAndMaxDeliveries: Load reads a session's deliveries in queue
// order from a place on, within a count and byte limit; MaxDeliveries
// bounds what the journal indexes.
func TestLoadAndMaxDeliveries(t *testing.T) {
	j := open(t, t.TempDir(), Options{SegmentSize: 1 << 20, MaxDeliveries: 10})
	defer j.Close()
	j.Session("s", nil)
	var places []uint64
	for i := range 10 {
		var id uint64
		_, dseq, _, err := j.Enqueue(&id, raw(fmt.Sprint(i)), "s", nil)
		if err != nil {
			t.Fatal(err)
		}
		places = append(places, dseq)
	}
	var id uint64
	if _, _, _, err := j.Enqueue(&id, raw("over"), "s", nil); err != ErrFull {
		t.Errorf("the 11th delivery: %v, want ErrFull", err)
	}
	ds, err := j.Load("s", places[3], 4, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range ds {
		got = append(got, string(d.Message))
	}
	if fmt.Sprint(got) != "[3 4 5 6]" {
		t.Errorf("Load from the 4th, 4 of them: %v", got)
	}
	if ds, _ := j.Load("s", places[3], 10, 1); len(ds) != 1 {
		t.Errorf("Load within 1 byte: %d deliveries, want the first anyway", len(ds))
	}
	j.Ack("s", ds[0].ID)
	if ds, _ := j.Load("s", places[3], 1, 1<<20); len(ds) != 1 || string(ds[0].Message) != "4" {
		t.Errorf("after retiring the 4th, Load from it: %+v", ds)
	}
	if _, _, _, err := j.Enqueue(&id, raw("room again"), "s", nil); err != nil {
		t.Errorf("after a retire: %v", err)
	}
}

// TestAckLater: an acknowledgement appended with AckLater costs no commit
// of its own: it waits for the next one another record asks for, or
// laterDelay; then it is durable, and a reopen no longer holds the
// delivery.
func TestAckLater(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		j := open(t, dir, Options{SegmentSize: 64 << 10})
		j.Session("s", []byte("S"))
		var m1, m2 uint64
		mustEnq(t, j, &m1, "one", "s")
		if err := j.Wait(mustEnq(t, j, &m2, "two", "s")); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		f0 := j.Stats.Fsyncs.Load()
		seq := j.AckLater("s", m1)
		synctest.Wait()
		if got := j.Stats.Fsyncs.Load(); got != f0 || j.Durable() >= seq {
			t.Fatalf("after AckLater: %d fsyncs (want %d), durable %d (seq %d): it committed at once", got, f0, j.Durable(), seq)
		}
		time.Sleep(laterDelay)
		synctest.Wait()
		if got := j.Stats.Fsyncs.Load(); got != f0+1 || j.Durable() < seq {
			t.Fatalf("laterDelay after AckLater: %d fsyncs (want %d), durable %d (seq %d)", got, f0+1, j.Durable(), seq)
		}
		// Another record's commit takes a later acknowledgement along.
		seq = j.AckLater("s", m2)
		if err := j.Wait(j.Session("s", []byte("S2"))); err != nil {
			t.Fatal(err)
		}
		if j.Durable() < seq {
			t.Fatalf("durable %d < %d after the next commit", j.Durable(), seq)
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
	})
	j := open(t, dir, Options{SegmentSize: 64 << 10})
	defer j.Close()
	if s := sessions(t, j)["s"]; len(s.Deliveries) != 0 || string(s.Body) != "S2" {
		t.Fatalf("after reopen: %+v", s)
	}
}

// TestSessionBytes: a session's bytes count its delivery records and the
// message records they refer to, go down as deliveries are retired, and
// come back the same after a reopen.
func TestSessionBytes(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir, Options{SegmentSize: 64 << 10})
	j.Session("a", []byte("A"))
	j.Session("b", []byte("B"))
	var m1, m2 uint64
	mustEnq(t, j, &m1, "one", "a")
	mustEnq(t, j, &m1, "one", "b") // shared: counted for both
	if err := j.Wait(mustEnq(t, j, &m2, "two-two", "a")); err != nil {
		t.Fatal(err)
	}
	a, b := j.SessionBytes("a"), j.SessionBytes("b")
	// Record sizes: header 8 + kind 1; a message record adds its id (8);
	// a delivery record its id (8), the session (uvarint length + name)
	// and its body (1).
	msg := func(body string) int64 { return 8 + 1 + 8 + int64(len(body)) }
	enq := func(session string) int64 { return 8 + 1 + 8 + 1 + int64(len(session)) + 1 }
	if want := msg("one") + msg("two-two") + 2*enq("a"); a != want {
		t.Errorf("a: %d bytes, want %d", a, want)
	}
	if want := msg("one") + enq("b"); b != want {
		t.Errorf("b: %d bytes, want %d", b, want)
	}
	if r := j.Report(true); r.PerSession["a"].Bytes != a {
		t.Errorf("Report: %+v", r.PerSession["a"])
	}
	j.Close()
	j = open(t, dir, Options{SegmentSize: 64 << 10})
	defer j.Close()
	if got := j.SessionBytes("a"); got != a {
		t.Errorf("after reopen: a %d bytes, want %d", got, a)
	}
	j.Ack("a", m1)
	j.AckLater("a", m2)
	if got := j.SessionBytes("a"); got != 0 {
		t.Errorf("after its acks: a %d bytes", got)
	}
	if got := j.SessionBytes("b"); got != b {
		t.Errorf("b changed with a's acks: %d, want %d", got, b)
	}
}

// TestCommitReusesChunks: a commit hands its chunk buffers to the next
// batch, so a message's records cost no buffer growth: the bytes
// allocated per message stay far below one record's (each batch growing
// its buffer from nothing cost about 750 bytes per 80-byte message).
func TestCommitReusesChunks(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	j := open(t, t.TempDir(), Options{SegmentSize: 16 << 20})
	defer j.Close()
	j.Wait(j.Session("s", nil))
	msg := raw(make([]byte, 80))
	cycle := func() {
		var ids [16]uint64
		for i := range ids {
			if _, _, _, err := j.EnqueueDeferred(&ids[i], msg, "s", []byte{0, 1}); err != nil {
				t.Fatal(err)
			}
		}
		j.Commit()
		for _, id := range ids {
			j.AckLater("s", id)
		}
	}
	for range 50 {
		cycle()
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const cycles = 200
	for range cycles {
		cycle()
	}
	runtime.ReadMemStats(&after)
	if per := float64(after.TotalAlloc-before.TotalAlloc) / (cycles * 16); per > 300 {
		t.Errorf("%.0f bytes allocated per message", per)
	}
}

// TestCompactionChunks: compaction reads a segment a chunk at a time
// (scanChunk) and still copies every live record: ones that cross a
// chunk's end and one larger than a chunk.
func TestCompactionChunks(t *testing.T) {
	dir := t.TempDir()
	const seg = 1 << 20
	j := openSlowFast(t, dir, seg, 16*seg)
	var want []string
	dead := string(bytes.Repeat([]byte("d"), 997)) // records of odd sizes cross chunk ends
	for i := range 4000 {
		if i%500 == 7 {
			keep := fmt.Sprintf("kept %d %s", i, bytes.Repeat([]byte("k"), i))
			if i == 1007 {
				keep += string(bytes.Repeat([]byte("L"), scanChunk+1000)) // larger than a chunk
			}
			var id uint64
			mustEnq(t, j, &id, keep, "slow")
			want = append(want, keep)
		}
		var id uint64
		mustEnq(t, j, &id, dead, "fast")
		j.Ack("fast", id)
		if err := j.Wait(j.Seq()); err != nil { // as a publisher awaits its PUBACK
			t.Fatalf("message %d: %v", i, err)
		}
	}
	waitFor(t, func() bool { return j.Report(false).Segments <= 4 })
	if r := j.Report(false); r.Compacted == 0 {
		t.Fatalf("nothing copied: %+v", r)
	}
	j.Close()
	j = open(t, dir, Options{SegmentSize: seg, MaxBytes: 16 * seg})
	defer j.Close()
	d := sessions(t, j)["slow"].Deliveries
	if len(d) != len(want) {
		t.Fatalf("%d live messages after compaction, want %d", len(d), len(want))
	}
	for i := range d {
		if string(d[i].Message) != want[i] {
			t.Errorf("message %d: %.40q, want %.40q", i, d[i].Message, want[i])
		}
	}
}

// TestCompactionMemory: copying a segment's live records, and replaying
// the log, read a segment a chunk at a time: a 4 MiB segment costs well
// under 1 MiB of memory (both read it whole).
func TestCompactionMemory(t *testing.T) {
	const seg = 4 << 20
	j := openSlowFast(t, t.TempDir(), seg, 64*seg)
	defer j.Close()
	dead := string(bytes.Repeat([]byte("d"), 4000))
	for i := 0; j.Report(false).Segments < 2; i++ {
		var id uint64
		if i%100 == 0 {
			mustEnq(t, j, &id, "kept", "slow")
			continue
		}
		mustEnq(t, j, &id, dead, "fast")
		j.Ack("fast", id)
		if err := j.Wait(j.Seq()); err != nil {
			t.Fatal(err)
		}
	}
	j.mu.Lock()
	head := j.segs[0]
	j.mu.Unlock()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if !j.copyLive(head) {
		t.Fatal("copyLive failed")
	}
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
		t.Errorf("copying a %d-byte segment allocated %d bytes", head.end, got)
	}
	if j.Report(false).Compacted == 0 {
		t.Error("nothing copied")
	}

	// Replay reads the segments the same way.
	dir := j.dir
	j.Close()
	runtime.ReadMemStats(&before)
	j = open(t, dir, Options{SegmentSize: seg, MaxBytes: 64 * seg})
	runtime.ReadMemStats(&after)
	defer j.Close()
	if got := after.TotalAlloc - before.TotalAlloc; got > 2<<20 {
		t.Errorf("replaying 2 segments of %d bytes allocated %d bytes", seg, got)
	}
	if d := sessions(t, j)["slow"].Deliveries; len(d) == 0 || string(d[0].Message) != "kept" {
		t.Errorf("after replay: %d deliveries", len(d))
	}
}
