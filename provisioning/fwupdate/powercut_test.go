package fwupdate_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"edgebroker/provisioning/firmware"
	"edgebroker/provisioning/fwupdate"
)

// TestSwitchPowerCut cuts the power before each write an update makes
// (the root, the staged boot file system, the boot partition) and looks
// at what the disk would boot then. The device runs partition 3 (slot
// 1); the update goes to partition 2, and its boot file system, as built,
// has a cmdline.txt naming partition 2. At every cut:
//   - cmdline.txt reads, and a default boot starts the running partition
//     3, never the new one (which has not passed a trial);
//   - when a trial is armed and names partition 2, partition 2 holds the
//     whole new root;
//   - outside the copy of the boot partition (before its first changed
//     block, after its last), the boot file system is whole (fsck.vfat)
//     and holds the old system's files or the new one's.
//
// Inside the copy the FAT may be torn (gokrazy has one boot partition;
// see Disk.Switch): the kernel may not boot, but the control files sit in
// the same clusters in both images (firmware.BootControlFiles), so
// cmdline.txt still names the running root. Switching in the old order
// (copy the new boot file system, then arm the trial) fails the first
// check at the cut after the copy.
func TestSwitchPowerCut(t *testing.T) {
	running := strings.Replace(cmdline, "-02", "-03", 1)
	pad := func(s string) string { return strings.TrimSuffix(s, "\n") + strings.Repeat(" ", 64) }
	bootFiles := func(version, cmd string) map[string]string {
		return map[string]string{"cmdline.txt": pad(cmd), "cmdtry.txt": pad(cmd), "config.txt": "arm_64bit=1\n",
			"tryboot.txt": "arm_64bit=1\n[all]\ncmdline=cmdtry.txt\n" + strings.Repeat(" ", 64), "version.txt": version}
	}
	oldDisk, bootExt := fatImage(t, bootFiles("old", running))
	newDisk, _ := fatImage(t, bootFiles("new", cmdline))
	nb, _ := os.ReadFile(newDisk)
	newBoot := nb[bootExt.Start : bootExt.Start+bootExt.Size]
	rootA := fwupdate.Extent{Start: bootExt.Start + bootExt.Size, Size: 256 << 10}
	rootB := fwupdate.Extent{Start: rootA.Start + rootA.Size, Size: 256 << 10}
	pristine, _ := os.ReadFile(oldDisk)
	pristine = append(pristine, bytes.Repeat([]byte("old root "), int(rootA.Size+rootB.Size)/9+1)[:rootA.Size+rootB.Size]...)
	for i, e := range []fwupdate.Extent{bootExt, rootA, rootB} {
		ent := pristine[446+16*i:]
		ent[4] = 0x83
		binary.LittleEndian.PutUint32(ent[8:], uint32(e.Start/512))
		binary.LittleEndian.PutUint32(ent[12:], uint32(e.Size/512))
	}
	pristine[510], pristine[511] = 0x55, 0xaa

	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	root := bytes.Repeat([]byte("hsqs new root "), 15000)
	upd := signedUpdate(t, firmware.Manifest{Version: "1.1", Board: "qemu", Root: firmware.PartOf(root), Boot: firmware.PartOf(newBoot)}, key, root, newBoot)

	var bootWrites []int // the numbers of the writes install made to the boot partition
	// install runs the update on a fresh copy of the disk, the power cut
	// before write number cut (-1: never), and returns the disk and the
	// number of writes made.
	install := func(cut int) (string, int) {
		t.Helper()
		dir := t.TempDir()
		disk, proc := filepath.Join(dir, "vda"), filepath.Join(dir, "cmdline")
		os.WriteFile(disk, pristine, 0o600)
		os.WriteFile(proc, []byte(running), 0o644)
		boot := &fwupdate.FileBoot{Files: &fwupdate.FATFiles{Path: disk, Extent: bootExt}, CmdlinePath: proc,
			IsTrial: func() (bool, error) { return false, nil }, Arm: true}
		target, err := fwupdate.GokrazyDisk(disk, proc, filepath.Join(dir, "boot.staged"),
			func(staged fwupdate.BootFiles, slot int) error { return boot.ArmIn(staged, slot) })
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		bootWrites = bootWrites[:0]
		fwupdate.SetTestWrite(t, func(path string, off int64, _ []byte) error {
			if n == cut {
				return errors.New("power cut")
			}
			if path == disk && off >= bootExt.Start && off < bootExt.Start+bootExt.Size {
				bootWrites = append(bootWrites, n)
			}
			n++
			return nil
		})
		rc := &fwupdate.Receiver{Target: target, Policy: func() firmware.Policy {
			return firmware.Policy{Trust: []ed25519.PublicKey{pub}, Board: "qemu", Running: "1.0", Now: time.Now(), MaxRoot: rootA.Size, MaxBoot: bootExt.Size}
		}}
		a := rc.Install(bytes.NewReader(upd), "test")
		if a.Installed != (cut < 0) {
			t.Fatalf("cut before write %d: %v", cut, a)
		}
		return disk, n
	}

	disk, writes := install(-1)
	if got := mtype(t, disk, bootExt, "version.txt"); got != "new" {
		t.Fatalf("after the update the boot partition holds %q", got)
	}
	if len(bootWrites) == 0 {
		t.Fatal("the update wrote nothing to the boot partition")
	}
	first, last := bootWrites[0], bootWrites[len(bootWrites)-1]
	for cut := 0; cut <= writes; cut++ {
		c := cut
		if cut == writes {
			c = -1 // every write made: the update is installed
		}
		disk, _ := install(c)
		files := &fwupdate.FATFiles{Path: disk, Extent: bootExt}
		def, err := files.ReadFile(fwupdate.Cmdline)
		if err != nil {
			t.Fatalf("cut before write %d of %d: the default boot finds no %s: %v", cut, writes, fwupdate.Cmdline, err)
		}
		if !bytes.Contains(def, []byte("-03 ")) {
			t.Fatalf("cut before write %d of %d: a default boot starts %q, not the running partition 3 (the new system, untried)", cut, writes, bytes.TrimSpace(def))
		}
		if cut <= first || cut > last {
			if v := mtype(t, disk, bootExt, "version.txt"); v != "old" && v != "new" {
				t.Fatalf("cut before write %d of %d (outside the copy, writes %d to %d): version.txt = %q", cut, writes, first, last, v)
			}
		}
		tc, _ := files.ReadFile(fwupdate.TryConfig)
		try, _ := files.ReadFile(fwupdate.TryCmdline)
		if bytes.Contains(tc, []byte(fwupdate.TryArmedLine)) && bytes.Contains(try, []byte("-02 ")) {
			d, _ := os.ReadFile(disk)
			if !bytes.Equal(d[rootA.Start:rootA.Start+int64(len(root))], root) {
				t.Fatalf("cut before write %d of %d: a trial of partition 2 is armed before its root is written", cut, writes)
			}
		} else if cut == writes {
			t.Fatalf("the installed update armed no trial of partition 2: tryboot.txt %q, cmdtry.txt %q", tc, try)
		}
	}
	t.Logf("%d cuts, each left a default boot into the running system; %d of them inside the copy of the boot partition (%d changed blocks)", writes+1, last-first, len(bootWrites))
}
