package usbtest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path"

	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/filesystem/fat12"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
)

// fixup corrects, on disk, the two places where go-diskfs v1.9.4 writes
// FAT32 structures fsck.vfat rejects:
//
//   - the ".." entry of a directory in the root names cluster 2 (the
//     root's cluster) where the FAT specification says 0;
//   - an empty file keeps one cluster; it must have none.
//
// go-diskfs's in-memory state no longer matches the disk afterwards: the
// caller must reopen the file system before using it again.
func fixup(fsys filesystem.FileSystem) error {
	fat, ok := fsys.(*fat32.FileSystem)
	if !ok {
		return nil
	}
	g, err := readGeometry(fat)
	if err != nil {
		return err
	}
	return g.walk(".", []uint32{g.rootCluster}, true)
}

type geometry struct {
	fat *fat32.FileSystem
	rw  interface {
		WriteAt([]byte, int64) (int, error)
	}
	fatStart    int64 // byte offset of the first FAT, from the disk start
	fatBytes    int64
	numFATs     int
	rootCluster uint32
}

func readGeometry(fat *fat32.FileSystem) (*geometry, error) {
	rw, err := fat.Backend().Writable()
	if err != nil {
		return nil, err
	}
	bs := make([]byte, 512)
	if _, err := fat.Backend().ReadAt(bs, fat.Start()); err != nil {
		return nil, fmt.Errorf("boot sector: %w", err)
	}
	bps := int64(binary.LittleEndian.Uint16(bs[11:]))
	return &geometry{
		fat:         fat,
		rw:          rw,
		fatStart:    fat.Start() + int64(binary.LittleEndian.Uint16(bs[14:]))*bps,
		fatBytes:    int64(binary.LittleEndian.Uint32(bs[36:])) * bps,
		numFATs:     int(bs[16]),
		rootCluster: binary.LittleEndian.Uint32(bs[44:]),
	}, nil
}

func (g *geometry) clusterOffset(c uint32) int64 {
	return g.fat.Start() + int64(g.fat.DataStart()) + int64(c-2)*int64(g.fat.BytesPerCluster())
}

// walk fixes the entries of directory dir, whose clusters are dirChain.
func (g *geometry) walk(dir string, dirChain []uint32, isRoot bool) error {
	entries, err := g.fat.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := path.Join(dir, e.Name())
		if e.IsDir() {
			chain, err := g.chain(p)
			if err != nil {
				return err
			}
			if isRoot && len(chain) > 0 {
				if err := g.fixDotDot(chain[0]); err != nil {
					return fmt.Errorf("%s: %w", p, err)
				}
			}
			if err := g.walk(p, chain, false); err != nil {
				return err
			}
			continue
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		if info.Size() != 0 {
			continue
		}
		chain, err := g.chain(p)
		if err != nil {
			continue // go-diskfs refuses start cluster 0: nothing to fix
		}
		if len(chain) > 0 && chain[0] >= 2 {
			if err := g.fixEmpty(dirChain, chain); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
		}
	}
	return nil
}

func (g *geometry) chain(p string) ([]uint32, error) {
	f, err := g.fat.OpenFile(p, os.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ff, ok := f.(*fat12.File)
	if !ok {
		return nil, fmt.Errorf("%s: unexpected file type %T", p, f)
	}
	return ff.GetClusterChain()
}

// fixDotDot points the ".." entry (the second one) of the directory at
// cluster c to cluster 0, meaning the root.
func (g *geometry) fixDotDot(c uint32) error {
	off := g.clusterOffset(c) + 32
	ent := make([]byte, 32)
	if _, err := g.fat.Backend().ReadAt(ent, off); err != nil {
		return err
	}
	if !bytes.Equal(ent[:11], []byte("..         ")) {
		return fmt.Errorf("second entry of cluster %d is %q, want %q", c, ent[:11], "..")
	}
	setCluster(ent, 0)
	_, err := g.rw.WriteAt(ent, off)
	return err
}

// fixEmpty finds the entry of an empty file (starting at chain[0]) in its
// directory, sets its first cluster to 0 and frees chain in every FAT.
func (g *geometry) fixEmpty(dirChain, chain []uint32) error {
	bpc := g.fat.BytesPerCluster()
	buf := make([]byte, bpc)
	for _, dc := range dirChain {
		off := g.clusterOffset(dc)
		if _, err := g.fat.Backend().ReadAt(buf, off); err != nil {
			return err
		}
		for i := 0; i+32 <= bpc; i += 32 {
			ent := buf[i : i+32]
			if ent[0] == 0 {
				break // end of directory
			}
			if ent[0] == 0xe5 || ent[11] == 0x0f || cluster(ent) != chain[0] {
				continue // deleted, long-name part, or another file
			}
			setCluster(ent, 0)
			if _, err := g.rw.WriteAt(ent, off+int64(i)); err != nil {
				return err
			}
			return g.free(chain)
		}
	}
	return fmt.Errorf("no directory entry starts at cluster %d", chain[0])
}

func (g *geometry) free(chain []uint32) error {
	zero := make([]byte, 4)
	for n := range g.numFATs {
		for _, c := range chain {
			if _, err := g.rw.WriteAt(zero, g.fatStart+int64(n)*g.fatBytes+int64(c)*4); err != nil {
				return err
			}
		}
	}
	return nil
}

func cluster(ent []byte) uint32 {
	return uint32(binary.LittleEndian.Uint16(ent[20:]))<<16 | uint32(binary.LittleEndian.Uint16(ent[26:]))
}

func setCluster(ent []byte, c uint32) {
	binary.LittleEndian.PutUint16(ent[20:], uint16(c>>16))
	binary.LittleEndian.PutUint16(ent[26:], uint16(c))
}
