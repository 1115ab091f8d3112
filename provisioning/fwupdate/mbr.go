package fwupdate

import (
	"encoding/binary"
	"fmt"
	"os"
)

// ReadMBR returns the extents of the four primary partitions in the MBR
// of the disk at path (an empty entry has a zero Extent).
func ReadMBR(path string) ([4]Extent, error) {
	var parts [4]Extent
	f, err := os.Open(path)
	if err != nil {
		return parts, err
	}
	defer f.Close()
	var mbr [512]byte
	if _, err := f.ReadAt(mbr[:], 0); err != nil {
		return parts, fmt.Errorf("fwupdate: %s: MBR: %w", path, err)
	}
	if mbr[510] != 0x55 || mbr[511] != 0xaa {
		return parts, fmt.Errorf("fwupdate: %s: no MBR partition table", path)
	}
	for i := range parts {
		e := mbr[446+16*i:]
		start, n := binary.LittleEndian.Uint32(e[8:]), binary.LittleEndian.Uint32(e[12:])
		parts[i] = Extent{Start: int64(start) * 512, Size: int64(n) * 512}
	}
	return parts, nil
}

// GokrazyDisk returns the Target of the gokrazy disk at path (partition
// 1 boot, 2 and 3 root A and B), the running root read from the kernel
// command line at cmdlinePath ("" means /proc/cmdline), staging the boot
// file system in stage; arm is Disk.Arm.
func GokrazyDisk(path, cmdlinePath, stage string, arm func(staged BootFiles, slot int) error) (*Disk, error) {
	parts, err := ReadMBR(path)
	if err != nil {
		return nil, err
	}
	for i := range 3 {
		if parts[i].Size == 0 {
			return nil, fmt.Errorf("fwupdate: %s: partition %d is missing", path, i+1)
		}
	}
	if cmdlinePath == "" {
		cmdlinePath = "/proc/cmdline"
	}
	cmd, err := os.ReadFile(cmdlinePath)
	if err != nil {
		return nil, err
	}
	active, err := slotOf(cmd)
	if err != nil {
		return nil, fmt.Errorf("fwupdate: the running root: %w", err)
	}
	return &Disk{Path: path, BootFS: parts[0], Roots: [2]Extent{parts[1], parts[2]}, Active: active, Stage: stage, Arm: arm}, nil
}
