package benchcompare

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// fsyncWrite is the size of each timed write: a page, about a group
// commit of a few dozen small messages.
const fsyncWrite = 4096

// FsyncTiming is how long one small write and fdatasync take on a disk,
// the floor under a durable acknowledgement.
type FsyncTiming struct {
	Dir     string  `json:"dir"`        // where the file was
	FS      string  `json:"filesystem"` // its file system's type`
	Samples int     `json:"samples"`
	Bytes   int     `json:"write_bytes"`
	P50     float64 `json:"p50_ms"`
	P90     float64 `json:"p90_ms"`
	P99     float64 `json:"p99_ms"`
	Max     float64 `json:"max_ms"`
}

// Median is the median of one write and fdatasync.
func (f *FsyncTiming) Median() time.Duration {
	return time.Duration(f.P50 * float64(time.Millisecond)).Round(time.Microsecond)
}

// MeasureFsync times n writes of 4 KiB, each followed by fdatasync, to a
// temporary file in dir. Like the journal's segments, the file is
// preallocated (fallocate) and written at successive offsets, so each
// fdatasync carries one page and the extent's change from unwritten to
// written, as a journal commit does.
func MeasureFsync(dir string, n int) (*FsyncTiming, error) {
	if n < 1 {
		return nil, fmt.Errorf("benchcompare: %d fsync samples", n)
	}
	f, err := os.CreateTemp(dir, "fsync-")
	if err != nil {
		return nil, fmt.Errorf("benchcompare: fsync timing: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	fd := int(f.Fd())
	if err := unix.Fallocate(fd, 0, 0, int64(n*fsyncWrite)); err != nil {
		return nil, fmt.Errorf("benchcompare: fsync timing: fallocate %s: %w", f.Name(), err)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("benchcompare: fsync timing: %w", err)
	}
	buf := bytes.Repeat([]byte{0xa5}, fsyncWrite)
	ds := make([]time.Duration, n)
	for i := range ds {
		t0 := time.Now()
		if _, err := f.WriteAt(buf, int64(i*fsyncWrite)); err != nil {
			return nil, fmt.Errorf("benchcompare: fsync timing: %w", err)
		}
		if err := unix.Fdatasync(fd); err != nil {
			return nil, fmt.Errorf("benchcompare: fsync timing: fdatasync %s: %w", f.Name(), err)
		}
		ds[i] = time.Since(t0)
	}
	t := fsyncSummary(ds)
	t.Dir, t.FS = dir, fsName(dir)
	return t, nil
}

// fsyncSummary summarizes durations (nearest-rank percentiles, in ms).
func fsyncSummary(ds []time.Duration) *FsyncTiming {
	ds = slices.Clone(ds)
	slices.Sort(ds)
	q := func(p float64) float64 {
		i := max(int(p*float64(len(ds))+0.999999)-1, 0)
		return float64(ds[i]) / float64(time.Millisecond)
	}
	return &FsyncTiming{Samples: len(ds), Bytes: fsyncWrite, P50: q(0.50), P90: q(0.90), P99: q(0.99), Max: q(1)}
}

// fsName names the type of the file system holding dir.
func fsName(dir string) string {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return "unknown file system"
	}
	names := map[int64]string{
		unix.EXT4_SUPER_MAGIC:      "ext4",
		unix.XFS_SUPER_MAGIC:       "xfs",
		unix.BTRFS_SUPER_MAGIC:     "btrfs",
		unix.TMPFS_MAGIC:           "tmpfs",
		unix.OVERLAYFS_SUPER_MAGIC: "overlayfs",
		unix.F2FS_SUPER_MAGIC:      "f2fs",
	}
	if n, ok := names[int64(st.Type)]; ok {
		return n
	}
	return fmt.Sprintf("file system %#x", st.Type)
}
