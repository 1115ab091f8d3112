package build

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"

	"github.com/diskfs/go-diskfs/partition/mbr"
)

// Partition numbers, as gokrazy names them.
const (
	PartBoot  = 1
	PartRootA = 2
	PartRootB = 3
	PartPerm  = 4
)

// Layout is where the partitions of an image of a given size are, in bytes.
type Layout struct {
	Start, Size [5]int64 // indexed by partition number (1-4)
}

// LayoutFor returns the partition layout of an image of size bytes.
func LayoutFor(size int64) Layout {
	var l Layout
	sectors := [5]int64{0, BootSectors, RootSectors, RootSectors, 0}
	next := int64(FirstSector)
	for n := PartBoot; n <= PartPerm; n++ {
		if n == PartPerm {
			sectors[n] = size/SectorSize - next
		}
		l.Start[n] = next * SectorSize
		l.Size[n] = sectors[n] * SectorSize
		next += sectors[n]
	}
	return l
}

// invalidCHS makes firmware and kernels use the LBA fields.
const (
	chsHead, chsSector, chsCylinder = 0xfe, 0xff, 0xff
)

// writeMBR writes the partition table (p1 FAT and active, as the Pi's
// firmware wants it; p2-p4 Linux) and the disk signature that
// root=PARTUUID=<sig>-02 refers to.
func writeMBR(f *os.File, size int64, sig uint32) error {
	l := LayoutFor(size)
	types := [5]mbr.Type{0, mbr.Fat32LBA, mbr.Linux, mbr.Linux, mbr.Linux}
	var parts []*mbr.Partition
	for n := PartBoot; n <= PartPerm; n++ {
		parts = append(parts, &mbr.Partition{
			Index:         n,
			Bootable:      n == PartBoot,
			Type:          types[n],
			Start:         uint32(l.Start[n] / SectorSize),
			Size:          uint32(l.Size[n] / SectorSize),
			StartHead:     chsHead,
			StartSector:   chsSector,
			StartCylinder: chsCylinder,
			EndHead:       chsHead,
			EndSector:     chsSector,
			EndCylinder:   chsCylinder,
		})
	}
	table := &mbr.Table{Partitions: parts, LogicalSectorSize: SectorSize, PhysicalSectorSize: SectorSize}
	if err := table.Write(f, size); err != nil {
		return fmt.Errorf("build: partition table: %w", err)
	}
	// Disk signature at 440, then two zero bytes: gokrazy's rootdev checks both.
	var b [6]byte
	binary.LittleEndian.PutUint32(b[:4], sig)
	_, err := f.WriteAt(b[:], 440)
	return err
}

// writeSparse copies the file src into f at off, reading only src's data
// (not its holes) and seeking over all-zero blocks, so that the image stays
// sparse. It returns the size of src.
func writeSparse(f *os.File, off int64, src string) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return 0, err
	}
	buf := make([]byte, 1<<16)
	for pos := int64(0); pos < st.Size(); {
		data, err := in.Seek(pos, seekData)
		if err != nil { // ENXIO: only a hole is left
			break
		}
		hole, err := in.Seek(data, seekHole)
		if err != nil {
			return 0, err
		}
		for p := data; p < hole; {
			m, err := in.ReadAt(buf[:min(int64(len(buf)), hole-p)], p)
			if m > 0 && !isZero(buf[:m]) {
				if _, err := f.WriteAt(buf[:m], off+p); err != nil {
					return 0, err
				}
			}
			p += int64(m)
			if err != nil && err != io.EOF {
				return 0, err
			}
			if m == 0 {
				break
			}
		}
		pos = hole
	}
	return st.Size(), nil
}

// assemble writes the image to out: size bytes, partition table, then the
// file system images at their partitions. p2 and p3 both get the root file
// system, so the first update can write either.
func assemble(out string, size int64, sig uint32, boot, root, perm string) error {
	f, err := os.OpenFile(out, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return err
	}
	if err := writeMBR(f, size, sig); err != nil {
		return err
	}
	l := LayoutFor(size)
	for _, p := range []struct {
		n   int
		src string
	}{{PartBoot, boot}, {PartRootA, root}, {PartRootB, root}, {PartPerm, perm}} {
		n, err := writeSparse(f, l.Start[p.n], p.src)
		if err != nil {
			return fmt.Errorf("build: partition %d: %w", p.n, err)
		}
		if n > l.Size[p.n] {
			return fmt.Errorf("build: partition %d: %d bytes do not fit into %d", p.n, n, l.Size[p.n])
		}
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Close()
}
