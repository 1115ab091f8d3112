package uring

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

func open(t *testing.T) *Syncer {
	t.Helper()
	s, err := Open()
	if err != nil {
		// The build machines and gokrazy's kernels have io_uring; a
		// missing one is the journal's fallback, not a reason to pass.
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestSync writes and syncs a real file, many times and from several
// goroutines at once (chains queue on the one ring), with more writes in
// one Sync than one chain holds; the file then has every byte.
func TestSync(t *testing.T) {
	s := open(t)
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const goroutines, rounds, per = 4, 20, maxChain + 3
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for r := range rounds {
				ws := make([]Write, per)
				for k := range ws {
					off := (g*rounds+r)*per + k
					ws[k] = Write{Buf: []byte{byte(off), byte(off >> 8)}, Off: int64(2 * off)}
				}
				if err := s.Sync(int(f.Fd()), ws); err != nil {
					t.Errorf("Sync: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	got, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2*goroutines*rounds*per {
		t.Fatalf("file has %d bytes, want %d", len(got), 2*goroutines*rounds*per)
	}
	for off := range goroutines * rounds * per {
		if got[2*off] != byte(off) || got[2*off+1] != byte(off>>8) {
			t.Fatalf("bytes at %d = %x, want %x", 2*off, got[2*off:2*off+2], []byte{byte(off), byte(off >> 8)})
		}
	}
	if err := s.Sync(int(f.Fd()), nil); err != nil {
		t.Fatalf("Sync with no writes: %v", err)
	}
}

// TestDatasyncError: the kernel's error for the operation comes back as
// an errno, and the ring stays usable.
func TestDatasyncError(t *testing.T) {
	s := open(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	err = s.Sync(int(w.Fd()), nil) // a pipe cannot be synced
	if !errors.Is(err, unix.EINVAL) {
		t.Fatalf("Sync(pipe) = %v, want EINVAL", err)
	}
	err = s.Sync(1<<20, []Write{{Buf: []byte("x")}}) // no such descriptor
	if !errors.Is(err, unix.EBADF) {
		t.Fatalf("Sync(bad fd) = %v, want EBADF", err)
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ro, err := os.Open(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	// A write the file refuses fails the Sync; the sync linked after it
	// is cancelled, and its completion consumed.
	err = s.Sync(int(ro.Fd()), []Write{{Buf: []byte("a")}, {Buf: []byte("b"), Off: 1}})
	if !errors.Is(err, unix.EBADF) || !strings.HasPrefix(err.Error(), "write") {
		t.Fatalf("Sync(read-only) = %v, want write: EBADF", err)
	}
	if err := s.Sync(int(f.Fd()), []Write{{Buf: []byte("ok")}}); err != nil {
		t.Fatalf("Sync after errors: %v", err)
	}
}

func TestClose(t *testing.T) {
	s := open(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.Sync(0, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Sync after Close = %v, want ErrClosed", err)
	}
}
