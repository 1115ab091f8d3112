package usb_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"edgebroker/broker/testenv"
	"edgebroker/provisioning/usb"
)

// TestKernelMounter mounts a real ext4 stick image through a loop device:
// the vfat and exfat attempts fail (this kernel has neither, which also
// exercises the fallback), ext4 mounts read-only with nosuid, nodev and
// noexec, a link out of the stick is not followed, WriteFile makes the
// mount writable only for the write, and Close unmounts. It needs root,
// losetup and mkfs.ext4 (e2fsprogs); FAT is tested in the QEMU VM.
func TestKernelMounter(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "mount(2) needs root")
	}
	if fss, _ := os.ReadFile("/proc/filesystems"); !strings.Contains(string(fss), "\text4\n") {
		testenv.Unavailable(t, "no ext4 in this kernel")
	}
	for _, tool := range []string{"losetup", "mkfs.ext4", "debugfs"} {
		testenv.NeedTool(t, tool)
	}
	tmp := t.TempDir()
	content := filepath.Join(tmp, "content")
	bundle := bytes.Repeat([]byte("bundle "), 10000)
	if err := os.MkdirAll(content, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(content, "bundle.ebb"), bundle, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/hostname", filepath.Join(content, "escape")); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(tmp, "stick.img")
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-d", content, img, "8M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	out, err := exec.Command("losetup", "--find", "--show", img).Output()
	if err != nil {
		testenv.Unavailable(t, "losetup: %v (no loop devices here?)", err)
	}
	loop := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "--detach", loop).Run() })

	dir := filepath.Join(tmp, "mnt")
	dev := usb.Device{Name: filepath.Base(loop), DevPath: loop, Disk: filepath.Base(loop)}
	m, err := usb.KernelMounter{Dir: dir}.Mount(dev)
	if errors.Is(err, syscall.EPERM) {
		testenv.Unavailable(t, "not allowed to mount here (a container without CAP_SYS_ADMIN?): %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}

	closed := false
	defer func() {
		if !closed {
			m.Close()
		}
	}()
	mnts, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil || len(mnts) != 1 {
		t.Fatalf("mount points in %s: %v, %v; want one", dir, mnts, err)
	}
	mnt := mnts[0]
	if opts := mountOptions(t, mnt); !hasAll(opts, "ro", "nosuid", "nodev", "noexec") {
		t.Errorf("mount options of %s: %v, want ro,nosuid,nodev,noexec", mnt, opts)
	}

	got, err := usb.ReadFile(m, "bundle.ebb", 1<<20)
	if err != nil || !bytes.Equal(got, bundle) {
		t.Fatalf("ReadFile(bundle.ebb): %d bytes, %v", len(got), err)
	}
	if _, err := usb.ReadFile(m, "escape", 1<<20); err == nil {
		t.Error("ReadFile(escape): followed a link out of the stick")
	}
	if err := os.WriteFile(filepath.Join(mnt, "direct"), []byte("x"), 0o644); !errors.Is(err, syscall.EROFS) {
		t.Errorf("write into the mount: got %v, want EROFS", err)
	}

	report := []byte("applied: serial 3\n")
	if err := m.WriteFile("report.txt", report); err != nil {
		t.Fatal(err)
	}
	if opts := mountOptions(t, mnt); !hasAll(opts, "ro") {
		t.Errorf("after WriteFile the mount is %v, want ro again", opts)
	}
	if got, err := usb.ReadFile(m, "report.txt", 100); err != nil || !bytes.Equal(got, report) {
		t.Errorf("report read back: %q, %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(mnt, "report.txt.tmp")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file left behind: %v", err)
	}

	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	closed = true
	if _, err := os.Stat(mnt); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("mount point after Close: %v, want it removed", err)
	}
	if opts := mountOptions(t, mnt); opts != nil {
		t.Errorf("still mounted after Close: %v", opts)
	}
	exec.Command("losetup", "--detach", loop).Run()
	out, err = exec.Command("debugfs", "-R", "cat /report.txt", img).Output()
	if err != nil || !bytes.Equal(out, report) {
		t.Errorf("debugfs cat /report.txt: %q, %v; want %q", out, err, report)
	}
}

// TestKernelMounterNoFS: a device without a file system fails with every
// type tried named in the error, and leaves no mount point behind.
func TestKernelMounterNoFS(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "mount(2) needs root")
	}
	testenv.NeedTool(t, "losetup")
	img := filepath.Join(t.TempDir(), "zeros.img")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "--find", "--show", img).Output()
	if err != nil {
		testenv.Unavailable(t, "losetup: %v (no loop devices here?)", err)
	}
	loop := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "--detach", loop).Run() })
	dir := filepath.Join(t.TempDir(), "mnt")
	m, err := usb.KernelMounter{Dir: dir}.Mount(usb.Device{Name: "zeros", DevPath: loop})
	if err == nil {
		m.Close()
		t.Fatal("Mount of zeros: no error")
	}
	if errors.Is(err, syscall.EPERM) {
		testenv.Unavailable(t, "not allowed to mount here: %v", err)
	}
	for _, want := range []string{"no usable file system", "vfat: ", "exfat: ", "ext4: ", loop} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("mount points left in %s: %v", dir, left)
	}
}

// mountOptions returns the options of the mount at dir from
// /proc/self/mountinfo, or nil if nothing is mounted there.
func mountOptions(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 5 && f[4] == dir {
			return strings.Split(f[5], ",")
		}
	}
	return nil
}

func hasAll(have []string, want ...string) bool {
	for _, w := range want {
		found := false
		for _, h := range have {
			found = found || h == w
		}
		if !found {
			return false
		}
	}
	return true
}
