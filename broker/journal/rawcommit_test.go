package journal

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// commitAs appends a message for session s and commits it on the test's
// goroutine as if the last commit had taken last (rawCommitLimit
// decides from it), holding cmu so that the committer goroutine cannot
// commit it first.
func commitAs(t *testing.T, j *Journal, last time.Duration, msg, s string) {
	t.Helper()
	j.cmu.Lock()
	defer j.cmu.Unlock()
	j.lastCommit = last
	var id uint64
	seq := mustEnq(t, j, &id, msg, s)
	j.commitOnce()
	if j.durable.Load() < seq {
		t.Fatalf("%s: not durable after the commit", msg)
	}
}

// TestRawCommitRule: after a fast commit the next one makes raw system
// calls, after a slow one blocking calls, and after that blocking one
// (fast on this disk) raw again; what either wrote is read back after a
// reopen.
func TestRawCommitRule(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 { // a one-CPU machine: raw commits need two Ps
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	}
	dir := t.TempDir()
	j := open(t, dir, Options{SegmentSize: 1 << 20})
	j.Wait(j.Session("s", nil))
	raw0, fs0 := j.Stats.RawCommits.Load(), j.Stats.Fsyncs.Load()

	commitAs(t, j, 2*rawCommitLimit, "slow disk", "s")
	if got := j.Stats.RawCommits.Load() - raw0; got != 0 {
		t.Errorf("after a slow commit: %d raw commits, want 0", got)
	}
	commitAs(t, j, rawCommitLimit/10, "fast disk", "s")
	if got := j.Stats.RawCommits.Load() - raw0; got != 1 {
		t.Errorf("after a fast commit: %d raw commits, want 1", got)
	}
	if got := j.Stats.Fsyncs.Load() - fs0; got != 2 {
		t.Errorf("%d fsyncs, want 2", got)
	}
	// The commit just made on this disk decides the next.
	j.cmu.Lock()
	last := j.lastCommit
	j.cmu.Unlock()
	if last <= 0 || last >= rawCommitLimit {
		t.Logf("last commit took %v: the next is not raw", last)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}

	j = open(t, dir, Options{SegmentSize: 1 << 20})
	defer j.Close()
	d := sessions(t, j)["s"].Deliveries
	if len(d) != 2 || string(d[0].Message) != "slow disk" || string(d[1].Message) != "fast disk" {
		t.Fatalf("after reopen: %+v", d)
	}
}

// TestRawCallClosedSegment: a raw call on a segment whose file was
// closed fails instead of reaching whatever file or socket now has its
// descriptor number.
func TestRawCallClosedSegment(t *testing.T) {
	j := open(t, t.TempDir(), Options{SegmentSize: 1 << 20})
	defer j.Close()
	f, err := os.Create(filepath.Join(t.TempDir(), "seg"))
	if err != nil {
		t.Fatal(err)
	}
	s := &segment{f: f}
	j.cmu.Lock()
	defer j.cmu.Unlock()
	if err := j.pwrite(s, []byte("before"), 0, true); err != nil {
		t.Fatalf("raw write to an open segment: %v", err)
	}
	if err := j.fdatasync(s, true); err != nil {
		t.Fatalf("raw fdatasync of an open segment: %v", err)
	}
	f.Close()
	// Take the descriptor number the segment had.
	g, err := os.Create(filepath.Join(t.TempDir(), "other"))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := j.pwrite(s, []byte("after"), 0, true); !errors.Is(err, os.ErrClosed) {
		t.Errorf("raw write to a closed segment: %v, want os.ErrClosed", err)
	}
	if err := j.fdatasync(s, true); !errors.Is(err, os.ErrClosed) {
		t.Errorf("raw fdatasync of a closed segment: %v, want os.ErrClosed", err)
	}
	if b, _ := os.ReadFile(g.Name()); len(b) != 0 {
		t.Errorf("the file that reused the descriptor got %q", b)
	}
}

// TestNoRawCommitsOnOneP: with a single P every commit makes blocking
// calls, however fast the disk.
func TestNoRawCommitsOnOneP(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	j := open(t, t.TempDir(), Options{SegmentSize: 1 << 20})
	defer j.Close()
	j.Wait(j.Session("s", nil))
	raw0 := j.Stats.RawCommits.Load()
	commitAs(t, j, 0, "fast disk, one P", "s")
	if got := j.Stats.RawCommits.Load() - raw0; got != 0 {
		t.Errorf("%d raw commits with GOMAXPROCS 1, want 0", got)
	}
}
