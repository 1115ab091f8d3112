// Package usb finds USB mass-storage sticks and gives read-only access to
// their files, without udev.
//
// Everything is read below a root directory ("/" on the device), so tests
// run against a fake sysfs tree: Scan lists the partitions of USB or
// removable disks from root/sys/block, Watch reports arrivals and removals
// (kernel uevents over netlink, polling when the socket cannot be opened),
// and a Mounter turns a Device into a Medium whose files are read through
// an fs.FS. The kernel implementation mounts read-only; a Medium is made
// writable only for the moment it takes to write a report back.
package usb

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// SectorSize is the unit of sysfs "size" and "start" files: always 512
// bytes, whatever the device's logical block size.
const SectorSize = 512

// Device is one partition of a stick, or the whole disk when the stick
// carries a file system without a partition table ("superfloppy").
type Device struct {
	Name      string // kernel name: "sda1" (or "sda" for a whole disk)
	DevPath   string // device node below root: "/dev/sda1"
	Disk      string // the disk it is on: "sda"
	Partition int    // partition number; 0 for a whole disk
	Size      int64  // bytes
	Model     string // vendor and model of the disk, as the kernel reports them ("SanDisk Cruzer Blade"); may be empty
	USB       bool   // the disk hangs off a USB bus (not just removable)
}

// ignored lists kernel name prefixes of block devices that are never sticks
// even when they claim to be removable (optical drives) or are virtual.
var ignored = []string{"loop", "ram", "zram", "sr", "md", "dm-", "nbd", "mtdblock"}

// Scan lists the partitions of the USB or removable disks below
// root/sys/block, ordered by disk then partition number. A disk without
// partitions is listed as one whole-disk Device; disks without a medium
// (size 0, as an empty card reader) are left out. A disk that vanishes
// while it is being read is skipped, not an error.
func Scan(root string) ([]Device, error) {
	block := filepath.Join(root, "sys", "block")
	entries, err := os.ReadDir(block)
	if err != nil {
		return nil, fmt.Errorf("usb: scan: %w", err)
	}
	var devs []Device
	for _, e := range entries {
		devs = append(devs, scanDisk(root, e.Name())...)
	}
	sort.Slice(devs, func(i, j int) bool {
		if devs[i].Disk != devs[j].Disk {
			return devs[i].Disk < devs[j].Disk
		}
		return devs[i].Partition < devs[j].Partition
	})
	return devs, nil
}

// scanDisk returns the devices of one disk, or nil if it is not a stick.
func scanDisk(root, disk string) []Device {
	for _, p := range ignored {
		if strings.HasPrefix(disk, p) {
			return nil
		}
	}
	dir := filepath.Join(root, "sys", "block", disk)
	usb := viaUSB(dir)
	if !usb && readString(filepath.Join(dir, "removable")) != "1" {
		return nil
	}
	sectors, err := readInt(filepath.Join(dir, "size"))
	if err != nil || sectors == 0 {
		return nil
	}
	model := strings.Join(strings.Fields(readString(filepath.Join(dir, "device", "vendor"))+" "+readString(filepath.Join(dir, "device", "model"))), " ")
	parts, err := partitions(dir, disk)
	if err != nil {
		return nil
	}
	mk := func(name string, n int, size int64) Device {
		return Device{
			Name:      name,
			DevPath:   filepath.Join(root, "dev", name),
			Disk:      disk,
			Partition: n,
			Size:      size,
			Model:     model,
			USB:       usb,
		}
	}
	if len(parts) == 0 {
		return []Device{mk(disk, 0, sectors*SectorSize)}
	}
	devs := make([]Device, 0, len(parts))
	for _, p := range parts {
		devs = append(devs, mk(p.name, p.n, p.sectors*SectorSize))
	}
	return devs
}

type partition struct {
	name    string
	n       int
	sectors int64
}

// partitions lists the subdirectories of a disk's sysfs directory that have
// a "partition" file (sda1, sda2, ...; mmcblk0p1 style names too).
func partitions(dir, disk string) ([]partition, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var parts []partition
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), disk) {
			continue
		}
		pdir := filepath.Join(dir, e.Name())
		n, err := readInt(filepath.Join(pdir, "partition"))
		if err != nil {
			continue // not a partition (or gone)
		}
		sectors, err := readInt(filepath.Join(pdir, "size"))
		if err != nil || sectors <= 2 {
			continue // 0: gone; an extended partition shows as 1 or 2 sectors
		}
		parts = append(parts, partition{e.Name(), int(n), sectors})
	}
	return parts, nil
}

// viaUSB reports whether the disk's "device" link resolves to a path that
// goes through a USB host controller (".../usb2/2-1/2-1:1.0/host0/...").
func viaUSB(dir string) bool {
	p, err := filepath.EvalSymlinks(filepath.Join(dir, "device"))
	if err != nil {
		return false
	}
	for _, c := range strings.Split(filepath.ToSlash(p), "/") {
		if strings.HasPrefix(c, "usb") && len(c) > 3 && c[3] >= '0' && c[3] <= '9' {
			return true
		}
	}
	return false
}

// readString returns the trimmed content of a small sysfs file, or "".
func readString(path string) string {
	b, err := readSmall(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func readInt(path string) (int64, error) {
	b, err := readSmall(path)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("usb: %s: %w", path, err)
	}
	if n < 0 {
		return 0, fmt.Errorf("usb: %s: negative value %d", path, n)
	}
	return n, nil
}

// readSmall reads at most 4 KiB (one sysfs page) of a file.
func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 4096))
}
