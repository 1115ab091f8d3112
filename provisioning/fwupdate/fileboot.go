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

// FileBoot is the Boot of a gokrazy boot file system, the Raspberry Pi
// firmware's tryboot way: a default boot reads config.txt and
// cmdline.txt; a boot with the tryboot flag (reboot "0 tryboot") reads
// tryboot.txt instead, which names cmdtry.txt as its command line. The
// firmware clears the flag, so any boot after the trial is a default boot
// again. The QEMU harness (image/qemu) is to play the firmware's part: boot
// from cmdtry.txt once when asked, adding QEMUTrialArg to the kernel
// command line.
//
// Both command lines name the root partition as root=PARTUUID=<disk
// signature>-02 (slot 0) or -03 (slot 1). The image carries tryboot.txt
// and cmdtry.txt (padded, so FATFiles can rewrite them in place).
type FileBoot struct {
	// All fields are set at construction and read-only.
	Files BootFiles // the boot file system: FATFiles on a device, DirFiles in tests
	// CmdlinePath is the running kernel's command line; "" means
	// /proc/cmdline.
	CmdlinePath string
	// IsTrial reports whether this boot is a trial; nil means PiTrial("/")
	// (the firmware's device tree flag).
	IsTrial func() (bool, error)
	// Arm makes Try also arm the trial on the disk, with TryArmedLine in
	// tryboot.txt, for a boot loader that gets no reboot argument: the
	// QEMU harness boots cmdtry.txt once when it finds the line, and
	// removes it.
	Arm bool
}

// Files FileBoot reads and writes in the boot file system (8.3 names).
const (
	Cmdline    = "cmdline.txt"
	TryConfig  = "tryboot.txt"
	TryCmdline = "cmdtry.txt"
	// TryConfigLine is the line of tryboot.txt that names TryCmdline.
	TryConfigLine = "cmdline=" + TryCmdline
	// PiRebootArg is the argument of reboot(2) that starts a Pi's tryboot.
	PiRebootArg = "0 tryboot"
	// QEMUTrialArg is what the QEMU harness adds to a trial boot's kernel
	// command line.
	QEMUTrialArg = "edgebroker.tryboot=1"
	// TryArmedLine in tryboot.txt asks the QEMU harness for one trial boot
	// (FileBoot.Arm); a comment to the Pi firmware.
	TryArmedLine = "# edgebroker: tryboot armed"
)

// DirFiles are the files of a boot file system mounted (or copied) at a
// folder.
type DirFiles string

// ReadFile reads dir/name.
func (d DirFiles) ReadFile(name string) ([]byte, error) {
	return os.ReadFile(filepath.Join(string(d), name))
}

// WriteFile replaces dir/name (temporary file, fsync, rename).
func (d DirFiles) WriteFile(name string, b []byte) error {
	return atomicfile.WriteFile(filepath.Join(string(d), name), b, 0o644)
}

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
func (d *FileBoot) State() (BootState, error) {
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
	def, err := d.Files.ReadFile(Cmdline)
	if err != nil {
		return st, err
	}
	if st.Default, err = slotOf(def); err != nil {
		return st, fmt.Errorf("%s: %w", Cmdline, err)
	}
	isTrial := d.IsTrial
	if isTrial == nil {
		isTrial = PiTrial("/")
	}
	st.Trial, err = isTrial()
	return st, err
}

// Try arms a trial of slot in the boot file system: ArmIn(d.Files, slot).
func (d *FileBoot) Try(slot int) error { return d.ArmIn(d.Files, slot) }

// ArmIn prepares a trial boot of slot in the boot file system files (the
// device's, or a staged copy before it is installed): it points
// cmdtry.txt at slot, and cmdline.txt at the other slot, the one running
// (a new boot file system comes with the image's own cmdline.txt); it
// writes tryboot.txt (config.txt and TryConfigLine) only when it does not
// name cmdtry.txt yet, and with Arm, TryArmedLine last.
func (d *FileBoot) ArmIn(files BootFiles, slot int) error {
	cmd, err := files.ReadFile(Cmdline)
	if err != nil {
		return err
	}
	if _, err := slotOf(cmd); err != nil {
		return fmt.Errorf("%s: %w", Cmdline, err)
	}
	tc, err := files.ReadFile(TryConfig)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if !slices.Contains(strings.Fields(string(tc)), TryConfigLine) {
		cfg, err := files.ReadFile("config.txt")
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		tc = append(bytes.Clone(cfg), "\n[all]\n"+TryConfigLine+"\n"...)
		if err := files.WriteFile(TryConfig, tc); err != nil {
			return err
		}
	}
	if err := files.WriteFile(TryCmdline, withSlot(cmd, slot)); err != nil {
		return err
	}
	if err := files.WriteFile(Cmdline, withSlot(cmd, 1-slot)); err != nil {
		return err
	}
	if d.Arm && !bytes.Contains(tc, []byte(TryArmedLine)) {
		// Last: armed only once both command lines are in place.
		return files.WriteFile(TryConfig, append(bytes.TrimRight(tc, " "), TryArmedLine+"\n"...))
	}
	return nil
}

// Commit points cmdline.txt at slot. The trial's files stay: only a
// tryboot reads them.
func (d *FileBoot) Commit(slot int) error {
	cmd, err := d.Files.ReadFile(Cmdline)
	if err != nil {
		return err
	}
	return d.Files.WriteFile(Cmdline, withSlot(cmd, slot))
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
