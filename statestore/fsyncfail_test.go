package statestore

import (
	"errors"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// flakySync is a syncFile whose Sync fails with EIO once armed; when hold
// is set, Sync first reports that it started and waits for hold to close.
type flakySync struct {
	*os.File
	fail    *atomic.Bool
	started chan struct{}
	hold    chan struct{}
}

func (f flakySync) Sync() error {
	if !f.fail.Load() {
		return f.File.Sync()
	}
	if f.hold != nil {
		f.started <- struct{}{}
		<-f.hold
	}
	return &os.PathError{Op: "fsync", Path: f.Name(), Err: syscall.EIO}
}

// TestFsyncFailureFailsClosed: after an fsync failure no reader sees the
// write that never became durable — not a Get waiting for that batch,
// not a later Get, not Each — and the store refuses writes until it is
// opened again.
func TestFsyncFailureFailsClosed(t *testing.T) {
	dir := t.TempDir()
	var fail atomic.Bool
	fs := flakySync{fail: &fail, started: make(chan struct{}, 1), hold: make(chan struct{})}
	s := openTest(t, dir, Options{wrapSync: func(f *os.File) syncFile { fs.File = f; return fs }})
	mustSet(t, s, "k", "durable", SetOptions{})

	fail.Store(true)
	setErr := make(chan error, 1)
	go func() {
		_, err := s.Set([]byte("k"), []byte("lost"), SetOptions{})
		setErr <- err
	}()
	select {
	case <-fs.started: // the batch is in buntdb's memory, its fsync under way
	case <-time.After(5 * time.Second):
		t.Fatal("fsync not reached")
	}
	type result struct {
		v   []byte
		err error
	}
	got := make(chan result, 1)
	go func() {
		v, _, err := s.Get([]byte("k"))
		got <- result{v, err}
	}()
	select {
	case r := <-got:
		t.Fatalf("Get returned %q, %v before the fsync finished", r.v, r.err)
	case <-time.After(50 * time.Millisecond): // it waits for the batch
	}
	close(fs.hold)
	if err := <-setErr; !errors.Is(err, ErrFailed) || !errors.Is(err, syscall.EIO) {
		t.Errorf("Set whose fsync failed: %v, want ErrFailed wrapping EIO", err)
	}
	if r := <-got; !errors.Is(r.err, ErrFailed) {
		t.Errorf("Get waiting for the failed batch: %q, %v; want ErrFailed", r.v, r.err)
	}
	if v, _, err := s.Get([]byte("k")); !errors.Is(err, ErrFailed) {
		t.Errorf("Get after the failure: %q, %v; want ErrFailed", v, err)
	}
	if err := s.Each(func(k, v []byte) bool { return true }); !errors.Is(err, ErrFailed) {
		t.Errorf("Each after the failure: %v, want ErrFailed", err)
	}
	if _, err := s.Set([]byte("other"), []byte("v"), SetOptions{}); !errors.Is(err, ErrFailed) {
		t.Errorf("Set after the failure: %v, want ErrFailed", err)
	}
	if _, err := s.Del([]byte("k"), nil); !errors.Is(err, ErrFailed) {
		t.Errorf("Del after the failure: %v, want ErrFailed", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopened, the store reads the file: the unacknowledged write may
	// be there or not, as after a crash. Here the write(2) succeeded.
	s = openTest(t, dir, Options{})
	if v, _, err := s.Get([]byte("k")); err != nil || string(v) != "lost" && string(v) != "durable" {
		t.Errorf("Get after reopen: %q, %v", v, err)
	}
	mustSet(t, s, "other", "v", SetOptions{})
}
