package fwupdate

import (
	"errors"
	"fmt"
	"io"
	"os"

	"edgebroker/provisioning/firmware"
)

// Extent is a partition's place on the disk, in bytes.
type Extent struct{ Start, Size int64 }

// Disk is the Target of a gokrazy disk: one boot partition and two root
// partitions on a whole-disk device (/dev/mmcblk0 on a Pi, /dev/vda under
// QEMU) or, in tests, an image file.
type Disk struct {
	// All fields are set at construction and read-only.
	Path   string    // the whole disk
	BootFS Extent    // the boot FAT
	Roots  [2]Extent // root A and root B
	Active int       // index into Roots of the running root
	Stage  string    // file the boot file system is staged in (on /perm)
	// Trial points the next boot, on trial, at Roots[slot] (the Boot
	// interface of the rollback logic); called by Switch after the boot
	// file system is in place.
	Trial func(slot int, m firmware.Manifest) error
}

// Inactive returns the index into Roots of the partition updates write.
func (d *Disk) Inactive() int { return 1 - d.Active }

// Root opens the inactive root partition for writing.
func (d *Disk) Root() (WriteSyncCloser, error) {
	return d.openExtent(d.Roots[d.Inactive()])
}

// Boot opens the staging file.
func (d *Disk) Boot() (WriteSyncCloser, error) {
	return os.OpenFile(d.Stage, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
}

// Switch copies the staged boot file system into the boot partition and
// calls Trial with the inactive root.
func (d *Disk) Switch(m firmware.Manifest) error {
	src, err := os.Open(d.Stage)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := d.openExtent(d.BootFS)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	if err := dst.Sync(); err != nil {
		dst.Close()
		return err
	}
	if err := dst.Close(); err != nil {
		return err
	}
	os.Remove(d.Stage)
	return d.Trial(d.Inactive(), m)
}

// badMark is how much of the inactive root Discard zeroes: the SquashFS
// superblock and more, so no boot can mount what is left there.
const badMark = 4096

// Discard zeroes the start of the inactive root partition and removes the
// staged boot file system.
func (d *Disk) Discard() error {
	w, err := d.openExtent(d.Roots[d.Inactive()])
	if err != nil {
		return err
	}
	_, err = w.Write(make([]byte, badMark))
	err = errors.Join(err, w.Sync(), w.Close())
	if rerr := os.Remove(d.Stage); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		err = errors.Join(err, rerr)
	}
	return err
}

// openExtent opens the disk for writing e from its start; writes past its
// end fail.
func (d *Disk) openExtent(e Extent) (WriteSyncCloser, error) {
	f, err := os.OpenFile(d.Path, os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	return &extentWriter{f: f, w: io.NewOffsetWriter(f, e.Start), left: e.Size}, nil
}

// extentWriter writes into one extent of a disk.
type extentWriter struct {
	f    *os.File
	w    *io.OffsetWriter
	left int64 // bytes still free in the extent
}

func (e *extentWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > e.left {
		return 0, fmt.Errorf("fwupdate: write past the end of the partition")
	}
	n, err := e.w.Write(p)
	e.left -= int64(n)
	return n, err
}

func (e *extentWriter) Sync() error  { return e.f.Sync() }
func (e *extentWriter) Close() error { return e.f.Close() }
