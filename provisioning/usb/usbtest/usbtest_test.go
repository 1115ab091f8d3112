package usbtest_test

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"edgebroker/broker/testenv"
	"edgebroker/provisioning/usb"
	"edgebroker/provisioning/usb/usbtest"
)

// files has sizes around cluster and sector boundaries, a directory and
// a long mixed-case name, so reads that stop at the wrong place show.
var files = map[string][]byte{
	"bundle.ebb":           bytes.Repeat([]byte("0123456789abcdef"), 5000), // 80000 bytes: many clusters, not a multiple
	"README.txt":           []byte("plug me into an edgebroker gateway\n"),
	"certs/ca.crt":         []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
	"certs/Server-Key.pem": bytes.Repeat([]byte{0xa5}, 4097),
	"empty":                {},
}

func mount(t *testing.T, img string) usb.Medium {
	t.Helper()
	m, err := (&usbtest.Mounter{}).Mount(usbtest.ImageDevice(img))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func TestImageReadBack(t *testing.T) {
	img := usbtest.NewFAT32Image(t, files)
	m := mount(t, img)
	for name, want := range files {
		got, err := usb.ReadFile(m, name, 1<<20)
		if err != nil {
			t.Fatalf("ReadFile(%s): %v", name, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("ReadFile(%s): got %d bytes, want %d (content differs: %v)", name, len(got), len(want), len(got) == len(want))
		}
	}
	// vfat is case-insensitive.
	if got, err := usb.ReadFile(m, "readme.TXT", 100); err != nil || string(got) != string(files["README.txt"]) {
		t.Errorf("ReadFile(readme.TXT): %q, %v", got, err)
	}
	if _, err := usb.ReadFile(m, "nope.ebb", 100); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadFile(nope.ebb): got %v, want fs.ErrNotExist", err)
	}
	if _, err := usb.ReadFile(m, "nodir/x", 100); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadFile(nodir/x): got %v, want fs.ErrNotExist", err)
	}
	if _, err := usb.ReadFile(m, "bundle.ebb", 79999); !errors.Is(err, usb.ErrTooLarge) {
		t.Errorf("ReadFile(bundle.ebb, 79999): got %v, want ErrTooLarge", err)
	}
	if _, err := usb.ReadFile(m, "../etc/passwd", 100); err == nil {
		t.Error("ReadFile(../etc/passwd): no error")
	}
}

// TestImageFS checks the Medium's FS against io/fs's own conformance test
// (Open, ReadDir, Stat, reads of every size, seeks not required).
func TestImageFS(t *testing.T) {
	m := mount(t, usbtest.NewFAT32Image(t, files))
	if err := fstest.TestFS(m.FS(), "bundle.ebb", "README.txt", "certs/ca.crt", "certs/Server-Key.pem", "empty"); err != nil {
		t.Fatal(err)
	}
}

// TestImageTools checks the image with tools that share no code with
// go-diskfs: sfdisk reads the partition table, mtools lists and reads the
// files, fsck.vfat checks the file system.
func TestImageTools(t *testing.T) {
	img := usbtest.NewFAT32Image(t, files)
	t.Run("sfdisk", func(t *testing.T) {
		out := run(t, "sfdisk", "--dump", img)
		if !strings.Contains(out, "start=        2048") || !strings.Contains(out, "type=c") {
			t.Errorf("sfdisk --dump: want one type c partition at 2048:\n%s", out)
		}
	})
	t.Run("mtools", func(t *testing.T) {
		out := run(t, "mdir", "-/", "-b", "-i", img+"@@1M", "::")
		for _, want := range []string{"::/bundle.ebb", "::/README.txt", "::/certs/ca.crt", "::/certs/Server-Key.pem"} {
			if !strings.Contains(out, want) {
				t.Errorf("mdir: %s missing:\n%s", want, out)
			}
		}
		if got := run(t, "mtype", "-i", img+"@@1M", "::/bundle.ebb"); got != string(files["bundle.ebb"]) {
			t.Errorf("mtype bundle.ebb: got %d bytes, want %d", len(got), len(files["bundle.ebb"]))
		}
	})
	t.Run("fsck.vfat", func(t *testing.T) {
		fsck(t, img) // a subdirectory and an empty file included
		nested := usbtest.NewFAT32Image(t, map[string][]byte{"a/b/c/deep.txt": []byte("deep"), "a/b/empty": nil, "a/x": []byte("x")})
		fsck(t, nested)
		if got := run(t, "mtype", "-i", nested+"@@1M", "::/a/b/c/deep.txt"); got != "deep" {
			t.Errorf("mtype a/b/c/deep.txt: %q", got)
		}
	})
}

// TestWriteFile writes a report (new file, then a shorter replacement) and
// reads it back with mtools and through a fresh mount.
func TestWriteFile(t *testing.T) {
	img := usbtest.NewFAT32Image(t, files)
	rootOnly := usbtest.NewFAT32Image(t, map[string][]byte{"bundle.ebb": files["bundle.ebb"]})
	m, err := (&usbtest.Mounter{}).Mount(usbtest.ImageDevice(img))
	if err != nil {
		t.Fatal(err)
	}
	long := bytes.Repeat([]byte("rejected: bad signature\n"), 1000)
	short := []byte("applied: serial 7\n")
	if err := m.WriteFile("edgebroker-report.txt", long); err != nil {
		t.Fatal(err)
	}
	if err := m.WriteFile("EDGEBROKER-REPORT.TXT", short); err != nil { // same file on FAT
		t.Fatal(err)
	}
	if err := m.WriteFile("certs/ca-bundle.pem", files["certs/ca.crt"]); err != nil {
		t.Fatal(err)
	}
	if err := m.WriteFile("ca.pem", files["certs/ca.crt"]); err != nil {
		t.Fatal(err)
	}
	if err := m.WriteFile("nodir/report.txt", short); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("WriteFile(nodir/report.txt): got %v, want fs.ErrNotExist", err)
	}
	for _, bad := range []string{"../x", "/abs", ".", ""} {
		if err := m.WriteFile(bad, short); err == nil {
			t.Errorf("WriteFile(%q): no error", bad)
		}
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.WriteFile("late.txt", short); err == nil {
		t.Error("WriteFile after Close: no error")
	}

	if got := run(t, "mtype", "-i", img+"@@1M", "::/edgebroker-report.txt"); got != string(short) {
		t.Errorf("mtype report: got %q, want %q", got, short)
	}
	if got := run(t, "mtype", "-i", img+"@@1M", "::/certs/ca-bundle.pem"); got != string(files["certs/ca.crt"]) {
		t.Errorf("mtype certs/ca-bundle.pem: got %q", got)
	}
	if got := run(t, "mtype", "-i", img+"@@1M", "::/ca.pem"); got != string(files["certs/ca.crt"]) {
		t.Errorf("mtype ca.pem: got %q", got)
	}
	fsck(t, img)

	// Writing a report into a stick that holds just a bundle (the real
	// case), then emptying it, leaves a file system fsck.vfat accepts.
	m = mount(t, rootOnly)
	for _, data := range [][]byte{long, short, nil, short} {
		if err := m.WriteFile("edgebroker-report.txt", data); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.WriteFile("empty-report.txt", nil); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	fsck(t, rootOnly)
	if got := run(t, "mtype", "-i", rootOnly+"@@1M", "::/edgebroker-report.txt"); got != string(short) {
		t.Errorf("mtype report: got %q, want %q", got, short)
	}

	m2 := mount(t, img)
	if got, err := usb.ReadFile(m2, "edgebroker-report.txt", 1<<20); err != nil || !bytes.Equal(got, short) {
		t.Errorf("report after remount: %q, %v", got, err)
	}
	if got, err := usb.ReadFile(m2, "bundle.ebb", 1<<20); err != nil || !bytes.Equal(got, files["bundle.ebb"]) {
		t.Errorf("bundle.ebb after writes: %d bytes, %v", len(got), err)
	}
}

// TestPullAfter: a stick pulled mid-read gives the bytes up to the pull,
// then I/O errors for every read, open and write.
func TestPullAfter(t *testing.T) {
	img := usbtest.NewFAT32Image(t, files)
	mounter := &usbtest.Mounter{PullAfter: 30000}
	m, err := mounter.Mount(usbtest.ImageDevice(img))
	if err != nil {
		t.Fatal(err)
	}
	if now, total := mounter.Mounted(); now != 1 || total != 1 {
		t.Errorf("Mounted: %d now, %d total; want 1, 1", now, total)
	}
	if got, err := usb.ReadFile(m, "README.txt", 100); err != nil || !bytes.Equal(got, files["README.txt"]) {
		t.Fatalf("ReadFile(README.txt) before the pull: %q, %v", got, err)
	}
	_, err = usb.ReadFile(m, "bundle.ebb", 1<<20)
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("ReadFile(bundle.ebb) across the pull: got %v, want EIO", err)
	}
	f, err := m.FS().Open("README.txt")
	if !errors.Is(err, syscall.EIO) {
		t.Errorf("Open after the pull: got %v, want EIO", err)
	}
	if f != nil {
		f.Close()
	}
	if err := m.WriteFile("report.txt", []byte("x")); !errors.Is(err, syscall.EIO) {
		t.Errorf("WriteFile after the pull: got %v, want EIO", err)
	}
	m.Close()
	if now, total := mounter.Mounted(); now != 0 || total != 1 {
		t.Errorf("Mounted after Close: %d now, %d total; want 0, 1", now, total)
	}

	// Exactly how many bytes arrive before the error.
	m = usbtest.PullAfter(mount(t, img), 1000)
	f, err = m.FS().Open("bundle.ebb")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := io.ReadAll(f)
	if len(got) != 1000 || !errors.Is(err, syscall.EIO) {
		t.Errorf("ReadAll across the pull: %d bytes, %v; want 1000, EIO", len(got), err)
	}
	if !bytes.Equal(got, files["bundle.ebb"][:1000]) {
		t.Error("bytes before the pull differ from the file")
	}
}

// TestAddStick presents an image through a fake sysfs tree: Scan finds it
// and the Mounter, told which image backs the disk, mounts what Scan found.
func TestAddStick(t *testing.T) {
	img := usbtest.NewFAT32Image(t, files)
	root := t.TempDir()
	usbtest.AddStick(t, root, "sda", img)
	devs, err := usb.Scan(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 1 || devs[0].Name != "sda1" || devs[0].Size != usbtest.ImageDevice(img).Size || devs[0].DevPath != filepath.Join(root, "dev/sda1") {
		t.Fatalf("Scan: got %+v", devs)
	}
	m, err := (&usbtest.Mounter{Images: map[string]string{"sda": img}}).Mount(devs[0])
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if got, err := usb.ReadFile(m, "README.txt", 100); err != nil || !bytes.Equal(got, files["README.txt"]) {
		t.Errorf("ReadFile: %q, %v", got, err)
	}
}

// TestReadFile reads a file back from an image, and nothing for a name
// it does not hold.
func TestReadFile(t *testing.T) {
	img := usbtest.NewFAT32Image(t, files)
	if got, err := usbtest.ReadFile(img, "README.txt"); err != nil || !bytes.Equal(got, files["README.txt"]) {
		t.Errorf("ReadFile(README.txt): %q, %v", got, err)
	}
	if _, err := usbtest.ReadFile(img, "none.txt"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadFile(none.txt): %v, want fs.ErrNotExist", err)
	}
}

func TestMountNotFAT(t *testing.T) {
	p := filepath.Join(t.TempDir(), "zero.img")
	if err := os.WriteFile(p, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	dev := usbtest.ImageDevice(p)
	dev.Partition = 0
	if _, err := (&usbtest.Mounter{}).Mount(dev); err == nil || !strings.Contains(err.Error(), "no usable file system") {
		t.Errorf("Mount(zeros): got %v, want no usable file system", err)
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(testenv.NeedTool(t, name), args...)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr)
	}
	return string(out)
}

// fsck copies the partition out of the image (fsck.vfat has no offset
// option) and checks it read-only.
func fsck(t *testing.T, img string) {
	t.Helper()
	testenv.NeedTool(t, "fsck.vfat")
	src, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	part := filepath.Join(t.TempDir(), "part.img")
	dst, err := os.Create(part)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, io.NewSectionReader(src, usbtest.PartitionStart*512, usbtest.ImageSize-usbtest.PartitionStart*512)); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("fsck.vfat", "-n", "-v", part).CombinedOutput()
	if err != nil {
		t.Fatalf("fsck.vfat -n: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "32 bit entries") {
		t.Errorf("fsck.vfat: not a FAT32 file system:\n%s", out)
	}
}

// TestWatchStick is the device's path end to end: the watcher sees a
// stick arrive in the fake tree, the Mounter mounts what it reports, the
// bundle is read, and unplugging is reported.
func TestWatchStick(t *testing.T) {
	img := usbtest.NewFAT32Image(t, files)
	root := t.TempDir()
	usbtest.AddDisk(t, root, usbtest.Disk{Name: "mmcblk0", Bus: usbtest.MMC, Sectors: 1 << 20, Partitions: []int64{1 << 19}})
	none := make(chan usb.Uevent)
	close(none)
	events := (&usb.Watcher{Root: root, Interval: 10 * time.Millisecond, Uevents: none}).Watch(t.Context())
	usbtest.AddStick(t, root, "sda", img)
	var ev usb.Event
	select {
	case ev = <-events:
	case <-time.After(5 * time.Second):
		t.Fatal("stick not reported within 5 s")
	}
	if ev.Op != usb.Add || ev.Device.Name != "sda1" {
		t.Fatalf("event: %v %+v, want add sda1", ev.Op, ev.Device)
	}
	mounter := &usbtest.Mounter{Images: map[string]string{"sda": img}}
	m, err := mounter.Mount(ev.Device)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := usb.ReadFile(m, "bundle.ebb", 1<<20); err != nil || !bytes.Equal(got, files["bundle.ebb"]) {
		t.Errorf("ReadFile(bundle.ebb): %d bytes, %v", len(got), err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	usbtest.RemoveDisk(t, root, "sda")
	select {
	case ev = <-events:
	case <-time.After(5 * time.Second):
		t.Fatal("removal not reported within 5 s")
	}
	if ev.Op != usb.Remove || ev.Device.Name != "sda1" {
		t.Fatalf("event: %v %+v, want remove sda1", ev.Op, ev.Device)
	}
}

// TestReadsStopAtEOF: 700-byte reads of a 1000-byte file give exactly the
// file (go-diskfs alone gives 1024 bytes: the rest of the last cluster).
func TestReadsStopAtEOF(t *testing.T) {
	want := bytes.Repeat([]byte("0123456789"), 100)
	m := mount(t, usbtest.NewFAT32Image(t, map[string][]byte{"b": want}))
	f, err := m.FS().Open("b")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 700)
	var got []byte
	for range 10 {
		n, err := f.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, want) {
		t.Errorf("700-byte reads: got %d bytes, want the %d of the file", len(got), len(want))
	}
}
