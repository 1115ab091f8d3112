package fwupdate

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// BootFiles reads and replaces the small files of a boot file system.
type BootFiles interface {
	ReadFile(name string) ([]byte, error)
	// WriteFile replaces name's content durably.
	WriteFile(name string, b []byte) error
}

// FATFiles are the files in the root folder of a FAT16 or FAT32 file
// system on a disk, read and rewritten in place without mounting it, the
// way gokrazy's updater rewrites cmdline.txt: each file must exist, have
// an 8.3 name and fit in one cluster, and keeps its cluster. A shorter
// content is padded with spaces to the old size (which boot loaders read
// as white space), so a shrinking write is one write; a longer one writes
// the data, then the new size.
type FATFiles struct {
	Path   string // the disk (or an image file)
	Extent Extent // the FAT file system's place on it
}

// fatGeometry is what the boot sector says about where things are.
type fatGeometry struct {
	cluster  int64 // bytes per cluster
	rootDir  int64 // offset of the root folder in the file system
	rootLen  int64 // its length in bytes
	dataArea int64 // offset of cluster 2
}

func (g fatGeometry) clusterOffset(n uint32) int64 { return g.dataArea + int64(n-2)*g.cluster }

// geometry reads the boot sector.
func (f *FATFiles) geometry(disk *os.File) (fatGeometry, error) {
	var bs [512]byte
	if _, err := disk.ReadAt(bs[:], f.Extent.Start); err != nil {
		return fatGeometry{}, err
	}
	le16 := func(o int) int64 { return int64(binary.LittleEndian.Uint16(bs[o:])) }
	bps, spc, reserved, nfats, rootEnt := le16(11), int64(bs[13]), le16(14), int64(bs[16]), le16(17)
	fatSz := le16(22)
	if bs[510] != 0x55 || bs[511] != 0xaa || bps < 512 || spc == 0 || nfats == 0 {
		return fatGeometry{}, errors.New("fwupdate: not a FAT file system")
	}
	g := fatGeometry{cluster: bps * spc}
	if fatSz == 0 { // FAT32: the root folder is a cluster chain; its first cluster is enough here
		fatSz = int64(binary.LittleEndian.Uint32(bs[36:]))
		g.dataArea = (reserved + nfats*fatSz) * bps
		g.rootDir, g.rootLen = g.clusterOffset(binary.LittleEndian.Uint32(bs[44:])), g.cluster
		return g, nil
	}
	g.rootDir, g.rootLen = (reserved+nfats*fatSz)*bps, rootEnt*32
	g.dataArea = g.rootDir + (rootEnt*32+bps-1)/bps*bps
	return g, nil
}

// shortName returns the 11-byte 8.3 directory name of name.
func shortName(name string) (string, error) {
	base, ext, _ := strings.Cut(strings.ToUpper(name), ".")
	if base == "" || len(base) > 8 || len(ext) > 3 || strings.ContainsAny(base+ext, ". /") {
		return "", fmt.Errorf("fwupdate: %q is not an 8.3 name", name)
	}
	return fmt.Sprintf("%-8s%-3s", base, ext), nil
}

// entry finds name in the root folder: the directory entry's offset in
// the file system, the file's first cluster and its size.
func (f *FATFiles) entry(disk *os.File, g fatGeometry, name string) (off int64, cluster uint32, size int64, err error) {
	want, err := shortName(name)
	if err != nil {
		return 0, 0, 0, err
	}
	dir := make([]byte, g.rootLen)
	if _, err := disk.ReadAt(dir, f.Extent.Start+g.rootDir); err != nil {
		return 0, 0, 0, err
	}
	for i := 0; i+32 <= len(dir); i += 32 {
		e := dir[i : i+32]
		switch {
		case e[0] == 0:
			i = len(dir) // end of the folder
		case e[0] == 0xe5 || e[11] == 0x0f || e[11]&0x18 != 0: // deleted, long name, folder or label
		case string(e[:11]) == want:
			cluster = uint32(binary.LittleEndian.Uint16(e[26:])) | uint32(binary.LittleEndian.Uint16(e[20:]))<<16
			size = int64(binary.LittleEndian.Uint32(e[28:]))
			if cluster < 2 || size > g.cluster {
				return 0, 0, 0, fmt.Errorf("fwupdate: boot file %s: cluster %d, %d bytes: not within one cluster", name, cluster, size)
			}
			return g.rootDir + int64(i), cluster, size, nil
		}
	}
	return 0, 0, 0, fmt.Errorf("fwupdate: boot file %s: %w", name, fs.ErrNotExist)
}

// ReadFile returns name's content.
func (f *FATFiles) ReadFile(name string) ([]byte, error) {
	disk, err := os.Open(f.Path)
	if err != nil {
		return nil, err
	}
	defer disk.Close()
	g, err := f.geometry(disk)
	if err != nil {
		return nil, err
	}
	_, cl, size, err := f.entry(disk, g, name)
	if err != nil {
		return nil, err
	}
	b := make([]byte, size)
	_, err = disk.ReadAt(b, f.Extent.Start+g.clusterOffset(cl))
	return b, err
}

// WriteFile replaces name's content in place and syncs.
func (f *FATFiles) WriteFile(name string, b []byte) error {
	disk, err := os.OpenFile(f.Path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer disk.Close()
	g, err := f.geometry(disk)
	if err != nil {
		return err
	}
	off, cl, size, err := f.entry(disk, g, name)
	if err != nil {
		return err
	}
	if int64(len(b)) > g.cluster {
		return fmt.Errorf("fwupdate: boot file %s: %d bytes do not fit its cluster of %d", name, len(b), g.cluster)
	}
	if pad := size - int64(len(b)); pad > 0 {
		b = append(bytes.Clone(b), bytes.Repeat([]byte{' '}, int(pad))...)
	}
	if err := writeAt(disk, b, f.Extent.Start+g.clusterOffset(cl)); err != nil {
		return err
	}
	if int64(len(b)) > size {
		if err := disk.Sync(); err != nil {
			return err
		}
		var n [4]byte
		binary.LittleEndian.PutUint32(n[:], uint32(len(b)))
		if err := writeAt(disk, n[:], f.Extent.Start+off+28); err != nil {
			return err
		}
	}
	return disk.Sync()
}
