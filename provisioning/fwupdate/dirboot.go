package fwupdate

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"edgebroker/provisioning/atomicfile"
)

// DirBoot is the Boot of a gokrazy boot FAT mounted at Dir, the Raspberry
// Pi firmware's tryboot way: the default boot reads config.txt and
// cmdline.txt; a boot with the tryboot flag (reboot "0 tryboot") reads
// tryboot.txt instead, which names cmdline.try.txt. The firmware clears
// the flag, so any boot after the trial is a default boot again. The QEMU
// harness (image/qemu) plays the firmware's part: it boots from
// cmdline.try.txt once when tryboot.txt is there, removes it, and adds
// QEMUTrialArg to the kernel command line.
//
// Both command lines name the root partition as root=PARTUUID=<disk
// signature>-02 (slot 0) or -03 (slot 1).
type DirBoot struct {
	// All fields are set at construction and read-only.
	Dir string // the mounted boot file system
	// CmdlinePath is the running kernel's command line; "" means
	// /proc/cmdline.
	CmdlinePath string
	// IsTrial reports whether this boot is a trial; nil means PiTrial
	// (the firmware's device tree flag).
	IsTrial func() (bool, error)
}

// Files DirBoot writes in the boot file system.
const (
	TryConfig  = "tryboot.txt"
	TryCmdline = "cmdline.try.txt"
	// PiRebootArg is the argument of reboot(2) that starts a Pi's tryboot.
	PiRebootArg = "0 tryboot"
	// QEMUTrialArg is what the QEMU harness adds to a trial boot's kernel
	// command line.
	QEMUTrialArg = "edgebroker.tryboot=1"
)

var partuuid = regexp.MustCompile(`root=PARTUUID=([0-9a-fA-F]{8})-0([23])\b`)

// slotOf reads the slot from a kernel command line.
func slotOf(cmdline []byte) (int, error) {
	m := partuuid.FindSubmatch(cmdline)
	if m == nil {
		return 0, fmt.Errorf("no root=PARTUUID=…-02 or -03 in %q", bytes.TrimSpace(cmdline))
	}
	return int(m[2][0] - '2'), nil
}

// withSlot returns cmdline with its root partition set to slot.
func withSlot(cmdline []byte, slot int) []byte {
	return partuuid.ReplaceAll(cmdline, []byte(fmt.Sprintf("root=PARTUUID=${1}-0%d", slot+2)))
}

// State reads the running slot from the kernel's command line, the
// default from cmdline.txt, and the trial flag.
func (d *DirBoot) State() (BootState, error) {
	p := d.CmdlinePath
	if p == "" {
		p = "/proc/cmdline"
	}
	run, err := os.ReadFile(p)
	if err != nil {
		return BootState{}, err
	}
	var st BootState
	if st.Running, err = slotOf(run); err != nil {
		return st, fmt.Errorf("running: %w", err)
	}
	def, err := os.ReadFile(filepath.Join(d.Dir, "cmdline.txt"))
	if err != nil {
		return st, err
	}
	if st.Default, err = slotOf(def); err != nil {
		return st, fmt.Errorf("cmdline.txt: %w", err)
	}
	isTrial := d.IsTrial
	if isTrial == nil {
		isTrial = PiTrial("/")
	}
	st.Trial, err = isTrial()
	return st, err
}

// Try writes cmdline.try.txt for slot and tryboot.txt (config.txt plus a
// line naming it), and points cmdline.txt at the other slot, the one
// running: an update may have just rewritten the boot file system with
// its own cmdline.txt.
func (d *DirBoot) Try(slot int) error {
	cmd, err := os.ReadFile(filepath.Join(d.Dir, "cmdline.txt"))
	if err != nil {
		return err
	}
	if _, err := slotOf(cmd); err != nil {
		return fmt.Errorf("cmdline.txt: %w", err)
	}
	cfg, err := os.ReadFile(filepath.Join(d.Dir, "config.txt"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	try := append(bytes.Clone(cfg), "\n[all]\ncmdline="+TryCmdline+"\n"...)
	for _, f := range []struct {
		name string
		b    []byte
	}{
		{"cmdline.txt", withSlot(cmd, 1-slot)},
		{TryCmdline, withSlot(cmd, slot)},
		{TryConfig, try},
	} {
		if err := atomicfile.WriteFile(filepath.Join(d.Dir, f.name), f.b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Commit points cmdline.txt at slot and removes the trial's files.
func (d *DirBoot) Commit(slot int) error {
	path := filepath.Join(d.Dir, "cmdline.txt")
	cmd, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(path, withSlot(cmd, slot), 0o644); err != nil {
		return err
	}
	for _, name := range []string{TryConfig, TryCmdline} {
		if err := os.Remove(filepath.Join(d.Dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// PiTrial reads the Pi firmware's tryboot flag from the device tree under
// root (/proc/device-tree/chosen/bootloader/tryboot, a big-endian 1);
// a device without it is never on trial.
func PiTrial(root string) func() (bool, error) {
	return func() (bool, error) {
		b, err := os.ReadFile(filepath.Join(root, "proc/device-tree/chosen/bootloader/tryboot"))
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		if err != nil || len(b) != 4 {
			return false, fmt.Errorf("tryboot flag: %d bytes, %v", len(b), err)
		}
		return binary.BigEndian.Uint32(b) == 1, nil
	}
}

// QEMUTrial reports a trial when the kernel command line at path (""
// means /proc/cmdline) carries QEMUTrialArg.
func QEMUTrial(path string) func() (bool, error) {
	if path == "" {
		path = "/proc/cmdline"
	}
	return func() (bool, error) {
		b, err := os.ReadFile(path)
		return slices.Contains(strings.Fields(string(b)), QEMUTrialArg), err
	}
}
