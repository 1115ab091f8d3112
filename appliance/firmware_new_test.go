package appliance_test

import (
	"crypto/ed25519"
	"encoding/binary"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"edgebroker/appliance"
)

// TestNewFirmware: the receiver of a gokrazy device takes its partitions
// from the disk's MBR and its running root from the kernel command line,
// and reports the baked-in version and board; a version that does not
// parse or a disk without partitions is refused at start.
func TestNewFirmware(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "proc"), 0o755)
	os.WriteFile(filepath.Join(root, "proc", "cmdline"), []byte("console=ttyAMA0 root=PARTUUID=743e4ccd-02 init=/gokrazy/init\n"), 0o644)
	disk := filepath.Join(t.TempDir(), "vda")
	mbr := make([]byte, 512)
	for i, p := range [][2]uint32{{8192, 2048}, {10240, 4096}, {14336, 4096}} {
		binary.LittleEndian.PutUint32(mbr[446+16*i+8:], p[0])
		binary.LittleEndian.PutUint32(mbr[446+16*i+12:], p[1])
	}
	mbr[510], mbr[511] = 0x55, 0xaa
	os.WriteFile(disk, mbr, 0o600)
	pub, _, _ := ed25519.GenerateKey(nil)
	log := slog.New(slog.DiscardHandler)
	fc := appliance.FirmwareConfig{Version: "20261203.101500", Board: "qemu", Disk: disk, Root: root}
	rc, boot, err := appliance.NewFirmware(fc, t.TempDir(), func() []ed25519.PublicKey { return []ed25519.PublicKey{pub} }, log)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := boot.State(); err == nil {
		t.Errorf("boot state without a boot file system: %+v", st)
	}
	if st := rc.Status(); st.Running != fc.Version || st.Board != "qemu" || st.Other != "" {
		t.Errorf("Status() = %+v", st)
	}
	if p := rc.Policy(); p.MaxRoot != 4096*512 || p.MaxBoot != 2048*512 || len(p.Trust) != 1 {
		t.Errorf("Policy() = %+v", p)
	}
	for name, bad := range map[string]appliance.FirmwareConfig{
		"version": {Version: "v1", Board: "qemu", Disk: disk, Root: root},
		"disk":    {Version: "1", Board: "qemu", Disk: filepath.Join(t.TempDir(), "none"), Root: root},
		"board":   {Version: "1", Board: "x86", Root: root},
	} {
		if _, _, err := appliance.NewFirmware(bad, t.TempDir(), func() []ed25519.PublicKey { return nil }, log); err == nil {
			t.Errorf("bad %s accepted", name)
		}
	}
}

// TestSinceBoot: a trial's deadline counts from the boot (/proc/uptime),
// so an edgebroker that keeps restarting cannot keep a trial going.
func TestSinceBoot(t *testing.T) {
	root := t.TempDir()
	if got := appliance.SinceBoot(5*time.Minute, root); got != 5*time.Minute {
		t.Errorf("without /proc/uptime: %v, want all of it", got)
	}
	os.MkdirAll(filepath.Join(root, "proc"), 0o755)
	for uptime, want := range map[string]time.Duration{"100.50 180.00\n": 5*time.Minute - 100500*time.Millisecond, "301.00 9.00\n": 0} {
		os.WriteFile(filepath.Join(root, "proc", "uptime"), []byte(uptime), 0o644)
		if got := appliance.SinceBoot(5*time.Minute, root); got != want {
			t.Errorf("uptime %q: %v, want %v", uptime, got, want)
		}
	}
}
