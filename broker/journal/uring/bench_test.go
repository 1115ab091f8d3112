package uring

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkCommit is one journal commit of a small record: a write and a
// fdatasync, through the ring and with the ordinary system calls.
func BenchmarkCommit(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "f"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := unix.Fallocate(int(f.Fd()), 0, 0, 64<<20); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 200)
	b.Run("ring", func(b *testing.B) {
		s, err := Open()
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		ws := []Write{{Buf: buf}}
		for i := 0; b.Loop(); i++ {
			ws[0].Off = int64(i%100000) * 200
			if err := s.Sync(int(f.Fd()), ws); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("syscalls", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := f.WriteAt(buf, int64(i%100000)*200); err != nil {
				b.Fatal(err)
			}
			if err := unix.Fdatasync(int(f.Fd())); err != nil {
				b.Fatal(err)
			}
		}
	})
}
