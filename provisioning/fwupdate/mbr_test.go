package fwupdate_test

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"edgebroker/provisioning/fwupdate"
)

// TestGokrazyDisk: the partitions come from the disk's MBR (written here
// as image/build writes it: sectors 8192+204800, then two roots of
// 1024000 and /perm) and the running root from the kernel command line.
func TestGokrazyDisk(t *testing.T) {
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk")
	mbr := make([]byte, 512)
	for i, p := range [][2]uint32{{8192, 204800}, {212992, 1024000}, {1236992, 1024000}, {2260992, 1933312}} {
		e := mbr[446+16*i:]
		e[4] = 0x83
		binary.LittleEndian.PutUint32(e[8:], p[0])
		binary.LittleEndian.PutUint32(e[12:], p[1])
	}
	mbr[510], mbr[511] = 0x55, 0xaa
	os.WriteFile(disk, mbr, 0o600)
	cmd := filepath.Join(dir, "cmdline")
	os.WriteFile(cmd, []byte(strings.Replace(cmdline, "-02", "-03", 1)), 0o644)
	d, err := fwupdate.GokrazyDisk(disk, cmd, filepath.Join(dir, "stage"), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := fwupdate.Disk{Path: disk, BootFS: fwupdate.Extent{Start: 8192 * 512, Size: 204800 * 512},
		Roots:  [2]fwupdate.Extent{{Start: 212992 * 512, Size: 1024000 * 512}, {Start: 1236992 * 512, Size: 1024000 * 512}},
		Active: 1, Stage: filepath.Join(dir, "stage")}
	if d.Path != want.Path || d.BootFS != want.BootFS || d.Roots != want.Roots || d.Active != want.Active || d.Stage != want.Stage {
		t.Errorf("GokrazyDisk = %+v, want %+v", *d, want)
	}
	if d.Inactive() != 0 {
		t.Errorf("running partition 3: Inactive() = %d, want 0 (partition 2)", d.Inactive())
	}
	os.WriteFile(disk, make([]byte, 512), 0o600)
	if _, err := fwupdate.GokrazyDisk(disk, cmd, "", nil); err == nil {
		t.Error("a disk without an MBR was accepted")
	}
}
