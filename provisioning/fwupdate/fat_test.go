package fwupdate_test

import (
	"cmp"
	"errors"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"edgebroker/broker/testenv"
	"edgebroker/provisioning/firmware"
	"edgebroker/provisioning/fwupdate"
)

// fatImage makes a FAT16 file system with one FAT, as image/build makes
// the boot partition (mkfs.fat, mcopy), at offset 64 KiB of a disk
// image, holding files; it returns the disk's path and the extent.
func fatImage(t *testing.T, files map[string]string) (string, fwupdate.Extent) {
	t.Helper()
	testenv.NeedTool(t, "mkfs.fat")
	testenv.NeedTool(t, "mcopy")
	dir := t.TempDir()
	fsImg := filepath.Join(dir, "boot.fat")
	run := func(name string, args ...string) {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %q: %v\n%s", name, args, err, out)
		}
	}
	f, _ := os.Create(fsImg)
	f.Truncate(16 << 20)
	f.Close()
	run("mkfs.fat", "-F", "16", "-f", "1", "-S", "512", "-n", "GOKRAZY", fsImg)
	// In the order image/build copies them: the control files first.
	names := slices.SortedFunc(maps.Keys(files), func(a, b string) int {
		rank := func(n string) int {
			if i := slices.Index(firmware.BootControlFiles, n); i >= 0 {
				return i
			}
			return len(firmware.BootControlFiles)
		}
		return cmp.Or(cmp.Compare(rank(a), rank(b)), strings.Compare(a, b))
	})
	for _, name := range names {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(files[name]), 0o644)
		run("mcopy", "-i", fsImg, p, "::/"+name)
	}
	b, err := os.ReadFile(fsImg)
	if err != nil {
		t.Fatal(err)
	}
	disk := filepath.Join(dir, "disk.img")
	ext := fwupdate.Extent{Start: 64 << 10, Size: int64(len(b))}
	d := make([]byte, ext.Start+ext.Size)
	copy(d[ext.Start:], b)
	os.WriteFile(disk, d, 0o644)
	return disk, ext
}

// mtype reads a file of the FAT at ext in disk with mtools: what the
// kernel's or the Pi firmware's FAT reader would see.
func mtype(t *testing.T, disk string, ext fwupdate.Extent, name string) string {
	t.Helper()
	testenv.NeedTool(t, "mtype")
	b, _ := os.ReadFile(disk)
	p := filepath.Join(t.TempDir(), "fs")
	os.WriteFile(p, b[ext.Start:ext.Start+ext.Size], 0o644)
	cmd := exec.Command("mtype", "-i", p, "::/"+name)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("mtype %s: %v\n%s", name, err, out)
	}
	if fsck, err := exec.LookPath("fsck.vfat"); err == nil {
		if out, err := exec.Command(fsck, "-n", p).CombinedOutput(); err != nil {
			t.Errorf("fsck.vfat -n: %v\n%s", err, out)
		}
	}
	return string(out)
}

// TestFATBoot: trial and commit rewrite the files of a real FAT16 boot
// file system in place, without mounting it, and mtools reads what was
// written; the image's padded cmdline.txt keeps its size.
func TestFATBoot(t *testing.T) {
	padded := strings.TrimSuffix(cmdline, "\n") + strings.Repeat(" ", 64)
	disk, ext := fatImage(t, map[string]string{"cmdline.txt": padded, "cmdtry.txt": padded, "config.txt": "arm_64bit=1\n",
		"tryboot.txt": "arm_64bit=1\n[all]\ncmdline=cmdtry.txt\n"})
	files := &fwupdate.FATFiles{Path: disk, Extent: ext}
	proc := filepath.Join(t.TempDir(), "cmdline")
	os.WriteFile(proc, []byte(cmdline), 0o644)
	b := &fwupdate.FileBoot{Files: files, CmdlinePath: proc, IsTrial: func() (bool, error) { return false, nil }}
	if err := b.Try(1); err != nil {
		t.Fatal(err)
	}
	if got := mtype(t, disk, ext, "cmdtry.txt"); !strings.Contains(got, "root=PARTUUID=743e4ccd-03 ") || len(got) != len(padded) {
		t.Errorf("cmdtry.txt after Try(1): %q", got)
	}
	if got := mtype(t, disk, ext, "cmdline.txt"); !strings.Contains(got, "root=PARTUUID=743e4ccd-02 ") {
		t.Errorf("cmdline.txt after Try(1): %q", got)
	}
	if err := b.Commit(1); err != nil {
		t.Fatal(err)
	}
	if got := mtype(t, disk, ext, "cmdline.txt"); !strings.Contains(got, "root=PARTUUID=743e4ccd-03 ") || len(got) != len(padded) {
		t.Errorf("cmdline.txt after Commit(1): %q", got)
	}
	// Growing a file within its cluster updates its size.
	long := strings.Repeat("x", 1500)
	if err := files.WriteFile("config.txt", []byte(long)); err != nil {
		t.Fatal(err)
	}
	if got := mtype(t, disk, ext, "config.txt"); got != long {
		t.Errorf("config.txt grown: %d bytes, want %d", len(got), len(long))
	}
	if err := files.WriteFile("absent.txt", nil); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := files.ReadFile("cmdline.try.txt"); err == nil {
		t.Error("a name that is not 8.3 was found")
	}
}
