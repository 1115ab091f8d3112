// Package usbtest provides what tests need to exercise USB provisioning on
// a host whose kernel cannot mount FAT: real FAT32 disk images built and
// read in user space (go-diskfs), a usb.Mounter over them, a stick that is
// pulled in the middle of a read, and fake sysfs trees for usb.Scan and
// usb.Watch.
//
// Import it from _test.go files only.
package usbtest

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"testing"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/partition/mbr"

	"edgebroker/provisioning/usb"
)

// Image geometry of NewFAT32Image: an MBR with one FAT32 (LBA, type 0x0c)
// partition starting at sector 2048 (1 MiB, as fdisk and Windows place
// it) and filling the rest of a 64 MiB sparse file.
const (
	ImageSize      = 64 << 20
	PartitionStart = 2048 // sectors
	Label          = "EDGESTICK"
)

// NewFAT32Image writes a partitioned FAT32 stick image into t.TempDir()
// holding files (fs.FS-style paths; "dir/x" makes dir) and returns its
// path. Files are written in sorted order, so images are reproducible
// apart from timestamps.
//
// go-diskfs writes the files; two of its quirks that fsck.vfat would
// flag (a cluster kept by an empty file, ".." naming cluster 2 for the
// root) are corrected on disk afterwards, so fsck.vfat finds nothing.
func NewFAT32Image(t testing.TB, files map[string][]byte) string {
	t.Helper()
	return NewFAT32ImageSize(t, ImageSize, files)
}

// NewFAT32ImageSize is NewFAT32Image with an image of size bytes (a
// multiple of 1 MiB, at least ImageSize): a stick for files larger than
// NewFAT32Image's fits, such as a firmware update.
func NewFAT32ImageSize(t testing.TB, size int64, files map[string][]byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "stick.img")
	if err := writeImage(p, size, files); err != nil {
		t.Fatalf("usbtest: NewFAT32Image: %v", err)
	}
	return p
}

func writeImage(p string, size int64, files map[string][]byte) error {
	if size < ImageSize || size%(1<<20) != 0 {
		return fmt.Errorf("image size %d: want a multiple of 1 MiB of at least %d", size, ImageSize)
	}
	d, err := diskfs.Create(p, size, diskfs.SectorSize512)
	if err != nil {
		return err
	}
	defer d.Close()
	table := &mbr.Table{
		LogicalSectorSize:  512,
		PhysicalSectorSize: 512,
		Partitions: []*mbr.Partition{{
			Index: 1,
			Type:  mbr.Fat32LBA,
			Start: PartitionStart,
			Size:  uint32(size/512 - PartitionStart),
		}},
	}
	if err := d.Partition(table); err != nil {
		return fmt.Errorf("partition: %w", err)
	}
	fsys, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: 1, FSType: filesystem.TypeFat32, VolumeLabel: Label})
	if err != nil {
		return fmt.Errorf("mkfs: %w", err)
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if dir := path.Dir(name); dir != "." {
			if err := fsys.Mkdir(dir); err != nil {
				return fmt.Errorf("mkdir %s: %w", dir, err)
			}
		}
		if err := writeFAT(fsys, name, files[name]); err != nil {
			return err
		}
	}
	return fixup(fsys)
}

// writeFAT creates or replaces one file on a go-diskfs file system.
func writeFAT(fsys filesystem.FileSystem, name string, data []byte) error {
	f, err := fsys.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// ImageDevice describes partition 1 of the image at img as the device a
// scan would find for a stick in the first USB port. Mount it with a
// Mounter (which opens DevPath when Images has no entry for the disk).
func ImageDevice(img string) usb.Device {
	return usb.Device{
		Name:      "sda1",
		DevPath:   img,
		Disk:      "sda",
		Partition: 1,
		Size:      (ImageSize/512 - PartitionStart) * 512,
		Model:     "usbtest image",
		USB:       true,
	}
}
