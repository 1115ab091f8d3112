package statestore

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// each collects what Each reports.
func each(t *testing.T, s *Store) map[string]string {
	t.Helper()
	got := map[string]string{}
	if err := s.Each(func(k, v []byte) bool { got[string(k)] = string(v); return true }); err != nil {
		t.Fatalf("Each: %v", err)
	}
	return got
}

// TestBatch: a Batch is one transaction and one fsync, later writes to a
// key win, deletes apply, and everything is there after a reopen.
func TestBatch(t *testing.T) {
	dir := t.TempDir()
	clock := newFakeClock()
	// OnChange runs on the committer: it can read which commit it is in.
	var s *Store
	commits := map[int]int{} // commit number → events
	s, err := Open(dir, Options{Now: clock.Now, SweepInterval: time.Hour, OnChange: func(Event) { commits[s.batches]++ }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Set([]byte("old"), []byte("x"), SetOptions{}); err != nil {
		t.Fatal(err)
	}
	clear(commits)
	var ws []Write
	for i := range 1000 {
		ws = append(ws, Write{Key: fmt.Appendf(nil, "k%03d", i%100), Value: fmt.Appendf(nil, "v%d", i)})
	}
	ws = append(ws, Write{Key: []byte("old"), Delete: true}, Write{Key: []byte("absent"), Delete: true},
		Write{Key: []byte("brief"), Value: []byte("b"), PX: time.Second})
	if err := s.Batch(ws); err != nil {
		t.Fatalf("Batch: %v", err)
	}
	got := each(t, s)
	if len(got) != 101 || got["k007"] != "v907" || got["brief"] != "b" || got["old"] != "" {
		t.Errorf("after Batch: %d keys, k007=%q brief=%q old=%q", len(got), got["k007"], got["brief"], got["old"])
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if len(commits) != 1 { // 1000 sets, 1 delete, 1 set with PX
		t.Errorf("the Batch took %d commits (events per commit %v), want 1", len(commits), commits)
	}
	if err := s.Batch(ws); !errors.Is(err, ErrClosed) {
		t.Errorf("Batch after Close: %v, want ErrClosed", err)
	}

	clock.Advance(2 * time.Second)
	s = openTest(t, dir, Options{Now: clock.Now})
	want := map[string]string{}
	for i := 900; i < 1000; i++ {
		want[fmt.Sprintf("k%03d", i%100)] = fmt.Sprintf("v%d", i)
	}
	if diff := cmp.Diff(want, each(t, s)); diff != "" { // "brief" expired
		t.Errorf("after reopen (-want +got):\n%s", diff)
	}
	n := 0
	s.Each(func(k, v []byte) bool { n++; return n < 3 })
	if n != 3 {
		t.Errorf("Each went on after false: %d calls", n)
	}
	if err := s.Batch([]Write{{Key: nil}}); !errors.Is(err, ErrEmptyKey) {
		t.Errorf("empty key: %v", err)
	}
}

// TestBatchQuota: a write over the quota fails with ErrQuotaExceeded; the
// others in the batch apply.
func TestBatchQuota(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{MaxKeys: 2})
	err := s.Batch([]Write{{Key: []byte("a"), Value: []byte("1")}, {Key: []byte("b"), Value: []byte("2")}, {Key: []byte("c"), Value: []byte("3")}})
	if !errors.Is(err, ErrQuotaExceeded) {
		t.Errorf("Batch: %v, want ErrQuotaExceeded", err)
	}
	if diff := cmp.Diff(map[string]string{"a": "1", "b": "2"}, each(t, s)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
