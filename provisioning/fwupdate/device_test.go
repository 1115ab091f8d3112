package fwupdate_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"edgebroker/provisioning/firmware"
	"edgebroker/provisioning/fwupdate"
)

// TestDeviceUpdate: the device's whole path in user space, on a disk image
// laid out like a gokrazy disk (MBR; a FAT16 boot file system made with
// mkfs.fat; two roots) running partition 2. A signed update whose boot
// file system is a new FAT16 is written to partition 3 and the boot
// partition, and the trial boot is prepared in the new FAT in place:
// cmdtry.txt names partition 3, cmdline.txt still partition 2. Then the
// trial boot, healthy, commits partition 3.
func TestDeviceUpdate(t *testing.T) {
	padded := strings.TrimSuffix(cmdline, "\n") + strings.Repeat(" ", 64)
	bootFiles := func(version string) map[string]string {
		return map[string]string{"cmdline.txt": padded, "cmdtry.txt": padded, "config.txt": "arm_64bit=1\n",
			"tryboot.txt": "arm_64bit=1\n[all]\ncmdline=cmdtry.txt\n", "version.txt": version}
	}
	oldDisk, bootExt := fatImage(t, bootFiles("old"))
	newDisk, _ := fatImage(t, bootFiles("new"))
	nb, _ := os.ReadFile(newDisk)
	newBoot := nb[bootExt.Start : bootExt.Start+bootExt.Size]

	// The disk: MBR, boot at bootExt, root A and root B of 1 MiB each.
	const sector = 512
	rootA := fwupdate.Extent{Start: bootExt.Start + bootExt.Size, Size: 1 << 20}
	rootB := fwupdate.Extent{Start: rootA.Start + rootA.Size, Size: 1 << 20}
	d, _ := os.ReadFile(oldDisk)
	d = append(d, make([]byte, rootA.Size+rootB.Size)...)
	for i, e := range []fwupdate.Extent{bootExt, rootA, rootB} {
		ent := d[446+16*i:]
		ent[4] = 0x83
		binary.LittleEndian.PutUint32(ent[8:], uint32(e.Start/sector))
		binary.LittleEndian.PutUint32(ent[12:], uint32(e.Size/sector))
	}
	d[510], d[511] = 0x55, 0xaa
	dir := t.TempDir()
	disk := filepath.Join(dir, "mmcblk0")
	os.WriteFile(disk, d, 0o600)
	proc := filepath.Join(dir, "cmdline")
	os.WriteFile(proc, []byte(cmdline), 0o644) // running partition 2

	trial := false
	boot := &fwupdate.FileBoot{Files: &fwupdate.FATFiles{Path: disk, Extent: bootExt}, CmdlinePath: proc,
		IsTrial: func() (bool, error) { return trial, nil }}
	target, err := fwupdate.GokrazyDisk(disk, proc, filepath.Join(dir, "boot.staged"),
		func(staged fwupdate.BootFiles, slot int) error { return boot.ArmIn(staged, slot) })
	if err != nil {
		t.Fatal(err)
	}
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	rc := &fwupdate.Receiver{Target: target, Policy: func() firmware.Policy {
		return firmware.Policy{Trust: []ed25519.PublicKey{pub}, Board: "rpi", Running: "1.0", Now: time.Now(), MaxRoot: rootB.Size, MaxBoot: bootExt.Size}
	}}
	root := bytes.Repeat([]byte("hsqs new root "), 10000)
	upd := signedUpdate(t, firmware.Manifest{Version: "1.1", Board: "rpi", Root: firmware.PartOf(root), Boot: firmware.PartOf(newBoot)}, key, root, newBoot)
	if a := rc.Install(bytes.NewReader(upd), "test"); !a.Installed {
		t.Fatal(a)
	}
	if got := mtype(t, disk, bootExt, "version.txt"); got != "new" {
		t.Errorf("boot partition holds version %q, want the update's", got)
	}
	if got := mtype(t, disk, bootExt, "cmdtry.txt"); !strings.Contains(got, "-03 ") {
		t.Errorf("cmdtry.txt = %q, want partition 3", got)
	}
	if got := mtype(t, disk, bootExt, "cmdline.txt"); !strings.Contains(got, "-02 ") {
		t.Errorf("cmdline.txt = %q, want partition 2 (the default until the trial commits)", got)
	}
	b, _ := os.ReadFile(disk)
	if !bytes.Equal(b[rootB.Start:rootB.Start+int64(len(root))], root) {
		t.Error("partition 3 does not hold the new root")
	}

	// The trial boot: the firmware booted cmdtry.txt; healthy, it commits.
	tb, _ := boot.Files.ReadFile(fwupdate.TryCmdline)
	os.WriteFile(proc, tb, 0o644)
	trial = true
	tr := &fwupdate.Trial{Boot: boot, Deadline: time.Minute, Log: slog.New(slog.DiscardHandler),
		Healthy: func(context.Context) error { return nil },
		Reboot:  func() error { t.Error("reboot on a healthy trial"); return nil }}
	if out, err := tr.Run(t.Context()); err != nil || !out.Committed || out.Slot != 1 {
		t.Fatalf("trial: %+v, %v", out, err)
	}
	if got := mtype(t, disk, bootExt, "cmdline.txt"); !strings.Contains(got, "-03 ") {
		t.Errorf("cmdline.txt after the commit = %q, want partition 3", got)
	}
}
