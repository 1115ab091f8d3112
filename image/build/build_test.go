package build

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"edgebroker/broker/testenv"
	"edgebroker/provisioning/firmware"
	"edgebroker/provisioning/fwupdate"
)

// mainDir is the root of the edgebroker module.
func mainDir(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func testConfig(t *testing.T, target Target) Config {
	return Config{
		Target:      target,
		MainDir:     mainDir(t),
		Hostname:    "edgebroker-test",
		Password:    "test-password",
		HTTPPort:    8080,
		StatusAddr:  "127.0.0.1:9100",
		Flags:       []string{"-listen", "0.0.0.0:1883"},
		Env:         []string{"EDGEBROKER_TEST=1"},
		Files:       map[string][]byte{"/etc/edgebroker/trusted.pub": []byte("key\n")},
		TrustedKeys: [][]byte{[]byte("provisioning key\n")},
		Epoch:       time.Unix(1700000000, 0),
	}
}

var buildMu sync.Mutex // one image build at a time: they share the Go build cache

func mustBuild(t *testing.T, c Config, out string) *Result {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	var log bytes.Buffer
	c.Progress = &log
	res, err := Build(context.Background(), c, out)
	if err != nil {
		t.Fatalf("Build: %v\nprogress:\n%s", err, log.String())
	}
	for _, want := range []string{"[1/6] pinned modules", "[6/6] sha256", "root.squashfs"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("progress output lacks %q:\n%s", want, log.String())
		}
	}
	return res
}

// TestRPiImage builds a Raspberry Pi image twice (once without a cache, once
// filling a cache) and once more from the cache, and checks the three are
// the same bytes and that independent tools accept the partition table and
// file systems.
func TestRPiImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds three 2 GiB images (-short)")
	}
	for _, tool := range []string{"mkfs.fat", "mcopy", "mksquashfs", "mkfs.ext4", "sfdisk", "fsck.vfat", "unsquashfs", "e2fsck", "mtype"} {
		testenv.NeedTool(t, tool)
	}
	dir := t.TempDir()
	c := testConfig(t, TargetRPi)
	a := mustBuild(t, c, filepath.Join(dir, "a.img"))
	c.CacheDir = filepath.Join(dir, "cache")
	b := mustBuild(t, c, filepath.Join(dir, "b.img"))
	cached := mustBuild(t, c, filepath.Join(dir, "c.img"))
	if a.SHA256 != b.SHA256 || b.SHA256 != cached.SHA256 {
		t.Errorf("same inputs, different images: %s (no cache), %s (filling cache), %s (cached)", a.SHA256, b.SHA256, cached.SHA256)
	}
	if a.Cached || b.Cached || !cached.Cached {
		t.Errorf("Cached = %v, %v, %v; want false, false, true", a.Cached, b.Cached, cached.Cached)
	}
	img := a.Path
	sig := DiskSignature("edgebroker-test")

	t.Run("sfdisk", func(t *testing.T) {
		out := tool(t, "sfdisk", "-d", img)
		if !strings.Contains(out, "label: dos") || !strings.Contains(out, "label-id: 0x"+hex32(sig)) {
			t.Errorf("sfdisk -d: want an MBR with label-id 0x%s:\n%s", hex32(sig), out)
		}
		want := []string{
			`start=\s*8192, size=\s*204800, type=c, bootable`,
			`start=\s*212992, size=\s*1024000, type=83`,
			`start=\s*1236992, size=\s*1024000, type=83`,
			`start=\s*2260992, size=\s*1933312, type=83`,
		}
		for i, w := range want {
			if !regexp.MustCompile(`img` + string(rune('1'+i)) + ` : ` + w).MatchString(out) {
				t.Errorf("partition %d: want %q in\n%s", i+1, w, out)
			}
		}
	})

	l := LayoutFor(DefaultSize)
	t.Run("boot", func(t *testing.T) {
		boot := extract(t, img, PartBoot)
		tool(t, "fsck.vfat", "-n", boot)
		for _, f := range []string{"vmlinuz", "bcm2711-rpi-4-b.dtb", "bcm2710-rpi-3-b.dtb", "bcm2710-rpi-zero-2-w.dtb", "start4.elf", "fixup4.dat", "bootcode.bin", "pieeprom.upd", "pieeprom.sig", "recovery.bin", "overlays/disable-bt.dtbo"} {
			tool(t, "mdir", "-b", "-i", boot, "::/"+f)
		}
		cmd := tool(t, "mtype", "-i", boot, "::/cmdline.txt")
		if !strings.Contains(cmd, "root=PARTUUID="+hex32(sig)+"-02 ") || !strings.Contains(cmd, "init=/gokrazy/init") {
			t.Errorf("cmdline.txt = %q; want root=PARTUUID=%s-02 and init=/gokrazy/init", cmd, hex32(sig))
		}
		if strings.TrimRight(cmd, " ") != a.Cmdline || !strings.HasSuffix(cmd, strings.Repeat(" ", cmdlinePad)) {
			t.Errorf("cmdline.txt = %q; want %q and %d spaces of padding", cmd, a.Cmdline, cmdlinePad)
		}
		if cfg := tool(t, "mtype", "-i", boot, "::/config.txt"); !strings.Contains(cfg, "enable_uart=1") || !strings.Contains(cfg, "kernel=vmlinuz") {
			t.Errorf("config.txt = %q; want enable_uart=1 and kernel=vmlinuz", cfg)
		}
		wantControlClusters(t, boot)
		// gokrazy's updater reads this FAT with its own reader: FAT16, one FAT.
		f, err := os.ReadFile(boot)
		if err != nil {
			t.Fatal(err)
		}
		if nfats := f[16]; nfats != 1 || string(f[54:62]) != "FAT16   " {
			t.Errorf("boot file system: %d FATs, type %q; want 1 FAT, FAT16", nfats, f[54:62])
		}
	})

	t.Run("root", func(t *testing.T) {
		for _, n := range []int{PartRootA, PartRootB} {
			out := tool(t, "unsquashfs", "-o", itoa(l.Start[n]), "-l", img)
			for _, f := range []string{"/gokrazy/init", "/gokrazy/dhcp", "/gokrazy/ntp", "/gokrazy/randomd", "/gokrazy/heartbeat", "/user/edgebroker",
				"/etc/hostname", "/etc/gokr-pw.txt", "/etc/http-port.txt", "/etc/ssl/certs/ca-certificates.crt", "/etc/resolv.conf",
				"/etc/edgebroker/trusted.pub", "/perm", "/proc", "/sys", "/dev", "/tmp", "/run"} {
				if !strings.Contains(out, "squashfs-root"+f+"\n") {
					t.Errorf("p%d lacks %s:\n%s", n, f, out)
				}
			}
		}
		x := filepath.Join(t.TempDir(), "x")
		tool(t, "unsquashfs", "-o", itoa(l.Start[PartRootA]), "-d", x, img, "gokrazy/init", "user/edgebroker", "etc")
		for _, f := range []string{"gokrazy/init", "user/edgebroker"} {
			e, err := elf.Open(filepath.Join(x, f))
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if e.Machine != elf.EM_AARCH64 || e.Class != elf.ELFCLASS64 {
				t.Errorf("%s: %v %v; want an arm64 ELF", f, e.Machine, e.Class)
			}
			e.Close()
		}
		for f, want := range map[string]string{"etc/hostname": "edgebroker-test", "etc/gokr-pw.txt": "test-password", "etc/http-port.txt": "8080", "etc/edgebroker/trusted.pub": "key\n", "etc/edgebroker/trusted-keys-0.pub": "provisioning key\n"} {
			if b, err := os.ReadFile(filepath.Join(x, f)); err != nil || string(b) != want {
				t.Errorf("%s = %q, %v; want %q", f, b, err, want)
			}
		}
		// The flags and environment are compiled into the init.
		initBin, err := os.ReadFile(filepath.Join(x, "gokrazy/init"))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"/user/edgebroker", "/perm/edgebroker", "0.0.0.0:1883", "EDGEBROKER_TEST=1", "/etc/edgebroker/trusted-keys-0.pub", "-usb", "127.0.0.1:9100"} {
			if !bytes.Contains(initBin, []byte(want)) {
				t.Errorf("/gokrazy/init does not contain %q", want)
			}
		}
	})

	t.Run("perm", func(t *testing.T) {
		perm := extract(t, img, PartPerm)
		tool(t, "e2fsck", "-n", "-f", perm)
		if out := tool(t, "dumpe2fs", "-h", perm); !strings.Contains(out, "Filesystem volume name:   perm") {
			t.Errorf("dumpe2fs: want volume name perm:\n%s", out)
		}
	})

	t.Run("signature", func(t *testing.T) {
		f, err := os.ReadFile(img)
		if err != nil {
			t.Fatal(err)
		}
		if got := binary.LittleEndian.Uint32(f[440:]); got != sig || f[444] != 0 || f[445] != 0 || f[510] != 0x55 || f[511] != 0xaa {
			t.Errorf("MBR: signature %08x, trailer % x, boot signature % x; want %08x, 00 00, 55 aa", got, f[444:446], f[510:512], sig)
		}
	})
}

// TestQEMUImage builds the QEMU variant: kernel.arm64 and no Pi firmware.
func TestQEMUImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 2 GiB image (-short)")
	}
	for _, tool := range []string{"mkfs.fat", "mcopy", "mksquashfs", "mkfs.ext4", "fsck.vfat", "mtype", "unsquashfs"} {
		testenv.NeedTool(t, tool)
	}
	dir := t.TempDir()
	c := testConfig(t, TargetQEMU)
	c.Password, c.HTTPPort = "", 0 // the default: no gokrazy password
	res := mustBuild(t, c, filepath.Join(dir, "q.img"))
	// Without a password file gokrazy serves its web interface (and its
	// unsigned update protocol) on its Unix socket only: nothing on the
	// LAN takes an update but edgebroker's signed one, which the status
	// endpoint serves over TLS.
	x := filepath.Join(t.TempDir(), "x")
	tool(t, "unsquashfs", "-o", itoa(LayoutFor(DefaultSize).Start[PartRootA]), "-d", x, res.Path, "gokrazy/init", "etc")
	if _, err := os.Stat(filepath.Join(x, "etc/gokr-pw.txt")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("/etc/gokr-pw.txt in an image built without a password: %v", err)
	}
	if initBin, err := os.ReadFile(filepath.Join(x, "gokrazy/init")); err != nil || !bytes.Contains(initBin, []byte("-status-tls")) {
		t.Errorf("/gokrazy/init does not start edgebroker with -status-tls (%v)", err)
	}
	boot := extract(t, res.Path, PartBoot)
	tool(t, "fsck.vfat", "-n", boot)
	wantControlClusters(t, boot)
	tool(t, "mdir", "-b", "-i", boot, "::/vmlinuz")
	if out, err := exec.Command("mdir", "-b", "-i", boot, "::/start4.elf").CombinedOutput(); err == nil {
		t.Errorf("QEMU image has Pi firmware: %s", out)
	}
	if !strings.Contains(res.Cmdline, "console=ttyAMA0,115200") {
		t.Errorf("cmdline %q: want the QEMU serial console", res.Cmdline)
	}
	// The trial boot's files are there, and the device's FileBoot rewrites
	// them in place: trying slot 1 points cmdtry.txt at partition 3.
	if try, cmd := tool(t, "mtype", "-i", boot, "::/cmdtry.txt"), tool(t, "mtype", "-i", boot, "::/cmdline.txt"); try != cmd {
		t.Errorf("cmdtry.txt = %q, want cmdline.txt's %q", try, cmd)
	}
	if tb := tool(t, "mtype", "-i", boot, "::/tryboot.txt"); !strings.HasSuffix(tb, "\n[all]\ncmdline="+fwupdate.TryCmdline+"\n") {
		t.Errorf("tryboot.txt = %q, want config.txt and a line naming %s", tb, fwupdate.TryCmdline)
	}
	st, _ := os.Stat(boot)
	proc := filepath.Join(t.TempDir(), "cmdline")
	os.WriteFile(proc, []byte(res.Cmdline), 0o644)
	fb := &fwupdate.FileBoot{Files: &fwupdate.FATFiles{Path: boot, Extent: fwupdate.Extent{Size: st.Size()}}, CmdlinePath: proc,
		IsTrial: func() (bool, error) { return false, nil }}
	if err := fb.Try(1); err != nil {
		t.Fatal(err)
	}
	if try := tool(t, "mtype", "-i", boot, "::/cmdtry.txt"); !strings.Contains(try, "-03 ") {
		t.Errorf("cmdtry.txt after Try(1) = %q, want partition 3", try)
	}
	tool(t, "fsck.vfat", "-n", boot)
	dirs, err := moduleDirs(context.Background(), filepath.Join(mainDir(t), "image", "pins"), modKernelARM64)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(dirs[modKernelARM64], "vmlinuz"))
	if err != nil {
		t.Fatal(err)
	}
	got := filepath.Join(t.TempDir(), "vmlinuz")
	tool(t, "mcopy", "-i", boot, "::/vmlinuz", got)
	if b, err := os.ReadFile(got); err != nil || !bytes.Equal(b, want) {
		t.Errorf("vmlinuz in the image differs from kernel.arm64's (%d vs %d bytes, %v)", len(b), len(want), err)
	}
}

// wantControlClusters checks that the files that choose what boots come
// first in the boot file system, one cluster each, so every image holds
// them in the same clusters (a device's update rewrites the boot
// partition in place: firmware.BootControlFiles).
func wantControlClusters(t *testing.T, boot string) {
	t.Helper()
	testenv.NeedTool(t, "mshowfat")
	for i, name := range firmware.BootControlFiles {
		if got, want := strings.TrimSpace(tool(t, "mshowfat", "-i", boot, "::/"+name)), fmt.Sprintf("::/%s <%d>", name, i+2); got != want {
			t.Errorf("mshowfat %s = %q, want %q", name, got, want)
		}
	}
}

func tool(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// extract copies partition n of img into a sparse file.
func extract(t *testing.T, img string, n int) string {
	t.Helper()
	l := LayoutFor(DefaultSize)
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := filepath.Join(t.TempDir(), "p"+itoa(int64(n)))
	o, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if err := o.Truncate(l.Size[n]); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<16)
	for off := int64(0); off < l.Size[n]; off += int64(len(buf)) {
		if _, err := f.ReadAt(buf, l.Start[n]+off); err != nil {
			t.Fatal(err)
		}
		if !isZero(buf) {
			if _, err := o.WriteAt(buf, off); err != nil {
				t.Fatal(err)
			}
		}
	}
	return out
}

func hex32(v uint32) string { return fmt.Sprintf("%08x", v) }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
