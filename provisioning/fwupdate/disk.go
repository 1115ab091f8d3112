package fwupdate

import (
	"bytes"
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
	// Arm prepares, in the staged boot file system (staged), a trial boot
	// of Roots[slot] whose default boot stays on the running root: on a
	// gokrazy boot file system, FileBoot.ArmIn. Switch calls it before it
	// writes anything to the boot partition.
	Arm func(staged BootFiles, slot int) error
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

// Switch installs the staged boot file system, in an order that leaves
// the device bootable into a safe system whenever the power is cut:
//
//  1. the trial is armed in the staged copy on /perm (Arm): its default
//     command line names the running root, the trial's the new one; the
//     boot partition is untouched;
//  2. the staged copy is written into the boot partition, only the blocks
//     that differ, then synced: from here a default boot still starts the
//     running root, and only a trial boot starts the new one;
//  3. the staged copy is removed.
//
// The new root is the default only when the trial commits (Boot.Commit,
// one rewrite of cmdline.txt in place). What no order can close is step
// 2 itself: gokrazy has one boot partition, and a power cut while its
// changed blocks are written can leave it torn (a kernel half old, half
// new). Writing only the changed blocks keeps that window short, and the
// files that choose what boots are in the same clusters in every image
// (firmware.BootControlFiles), so even a torn copy holds each of them
// old or new: a default boot never names the untried root.
func (d *Disk) Switch(m firmware.Manifest) error {
	fi, err := os.Stat(d.Stage)
	if err != nil {
		return err
	}
	if fi.Size() > d.BootFS.Size {
		return fmt.Errorf("fwupdate: the staged boot file system (%d bytes) is larger than the boot partition", fi.Size())
	}
	if err := d.Arm(&FATFiles{Path: d.Stage, Extent: Extent{Size: fi.Size()}}, d.Inactive()); err != nil {
		return fmt.Errorf("arming the trial in the staged boot file system: %w", err)
	}
	if err := d.copyBoot(); err != nil {
		return err
	}
	os.Remove(d.Stage)
	return nil
}

// copyBlock is the unit copyBoot compares and writes.
const copyBlock = 4096

// copyBoot writes the staged boot file system into the boot partition,
// the blocks that differ only, and syncs.
func (d *Disk) copyBoot() error {
	src, err := os.Open(d.Stage)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(d.Path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer dst.Close()
	want, have := make([]byte, copyBlock), make([]byte, copyBlock)
	for off := int64(0); ; off += copyBlock {
		n, err := io.ReadFull(src, want)
		switch {
		case err == io.EOF:
			return dst.Sync()
		case err != nil && err != io.ErrUnexpectedEOF:
			return err
		}
		if _, err := dst.ReadAt(have[:n], d.BootFS.Start+off); err != nil {
			return err
		}
		if !bytes.Equal(want[:n], have[:n]) {
			if err := writeAt(dst, want[:n], d.BootFS.Start+off); err != nil {
				return err
			}
		}
		if err == io.ErrUnexpectedEOF {
			break
		}
	}
	return dst.Sync()
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
	return &extentWriter{f: f, w: io.NewOffsetWriter(f, e.Start), off: e.Start, left: e.Size}, nil
}

// extentWriter writes into one extent of a disk.
type extentWriter struct {
	f    *os.File
	w    *io.OffsetWriter
	off  int64 // where the next write goes on the disk
	left int64 // bytes still free in the extent
}

// writeAt writes b at off in f.
func writeAt(f *os.File, b []byte, off int64) error {
	if testWrite != nil {
		if err := testWrite(f.Name(), off, b); err != nil {
			return err
		}
	}
	_, err := f.WriteAt(b, off)
	return err
}

// testWrite, set by tests only (export_test.go), sees every write to a
// disk before it is made (the extent writer's after it) and can cut the
// power: an error drops the write and fails it.
var testWrite func(path string, off int64, b []byte) error

func (e *extentWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > e.left {
		return 0, fmt.Errorf("fwupdate: write past the end of the partition")
	}
	if testWrite != nil {
		if err := testWrite(e.f.Name(), e.off, p); err != nil {
			return 0, err
		}
	}
	n, err := e.w.Write(p)
	e.left -= int64(n)
	e.off += int64(n)
	return n, err
}

func (e *extentWriter) Sync() error  { return e.f.Sync() }
func (e *extentWriter) Close() error { return e.f.Close() }
