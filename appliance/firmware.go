package appliance

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"edgebroker/board/watchdog"
	"edgebroker/broker/seclog"
	"edgebroker/provisioning/apply"
	"edgebroker/provisioning/firmware"
	"edgebroker/provisioning/fwupdate"
)

// FirmwareDir is the firmware receiver's folder under Config.DataDir: the
// staged boot file system and the receiver's state.
const FirmwareDir = "firmware"

// FirmwareConfig says how a gokrazy device takes signed firmware updates.
type FirmwareConfig struct {
	Version string // the running image's version (mkimage bakes it in)
	Board   string // the image's target: "rpi" or "qemu"
	// Disk is the whole disk the device boots from; "" means
	// /dev/mmcblk0 on "rpi" and /dev/vda on "qemu".
	Disk string
	// Root is where /proc is ("" means "/"): the kernel command line and,
	// on a Pi, the firmware's tryboot flag.
	Root string
}

// NewFirmware builds the receiver of a gokrazy device's firmware updates:
// the root partition that is not running and the boot partition of
// fc.Disk, read from its MBR, are written; the trial boot is prepared in
// the new boot file system in place (fwupdate.FileBoot on FATFiles).
// Updates must be signed by a key trust returns (TrustedKeys). The
// FileBoot it returns is the Boot of Config.Trial.
func NewFirmware(fc FirmwareConfig, dataDir string, trust func() []ed25519.PublicKey, log *slog.Logger) (*fwupdate.Receiver, *fwupdate.FileBoot, error) {
	rc, boot, err := newFirmware(fc, dataDir, trust, log)
	if err != nil {
		return nil, nil, fmt.Errorf("appliance: firmware: %w", err)
	}
	return rc, boot, nil
}

func newFirmware(fc FirmwareConfig, dataDir string, trust func() []ed25519.PublicKey, log *slog.Logger) (*fwupdate.Receiver, *fwupdate.FileBoot, error) {
	if _, err := firmware.ParseVersion(fc.Version); err != nil {
		return nil, nil, err
	}
	disk, root := fc.Disk, fc.Root
	if root == "" {
		root = "/"
	}
	isTrial := fwupdate.PiTrial(root)
	cmdline := filepath.Join(root, "proc", "cmdline")
	switch {
	case fc.Board == "rpi" && disk == "":
		disk = "/dev/mmcblk0"
	case fc.Board == "qemu":
		isTrial = fwupdate.QEMUTrial(cmdline)
		if disk == "" {
			disk = "/dev/vda"
		}
	case disk == "":
		return nil, nil, fmt.Errorf("board %q: name its disk", fc.Board)
	}
	dir := filepath.Join(dataDir, FirmwareDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	var boot *fwupdate.FileBoot
	target, err := fwupdate.GokrazyDisk(disk, cmdline, filepath.Join(dir, "boot.staged"),
		func(staged fwupdate.BootFiles, slot int) error { return boot.ArmIn(staged, slot) })
	if err != nil {
		return nil, nil, err
	}
	boot = &fwupdate.FileBoot{Files: &fwupdate.FATFiles{Path: disk, Extent: target.BootFS}, CmdlinePath: cmdline, IsTrial: isTrial,
		Arm: fc.Board == "qemu"}
	return &fwupdate.Receiver{
		Target: target,
		Policy: func() firmware.Policy {
			return firmware.Policy{Trust: trust(), Board: fc.Board, Running: fc.Version, Now: time.Now(),
				MaxRoot: target.Roots[target.Inactive()].Size, MaxBoot: target.BootFS.Size}
		},
		Log:       log.With("subsystem", "firmware"),
		StateFile: filepath.Join(dir, "state.json"),
		BootState: boot.State, // no update while a trial is not committed
	}, boot, nil
}

// TrustedKeys returns the keys provisioning trusts now under dataDir,
// read from its store at each call: the baked-in ones plus those bundles
// enrolled, minus those retired. Firmware is signed with the same keys.
func TrustedKeys(dataDir string, baked []ed25519.PublicKey) func() []ed25519.PublicKey {
	s := &apply.Store{Dir: filepath.Join(dataDir, ProvisioningDir), Trust: baked} // read only: Trusted
	return func() []ed25519.PublicKey { return s.Trusted() }
}

// firmwareRefused logs a firmware update refused over the LAN as a
// security event: the address, the version and key it claimed, the
// reason; nothing it carried (seclog.FirmwareRefused).
func (a *Appliance) firmwareRefused(at fwupdate.Attempt) {
	sec := a.srv.Security()
	if sec.Allow(seclog.FirmwareRefused) {
		sec.Log(seclog.FirmwareRefused, "appliance: firmware update refused", "remote", at.From,
			"version", at.Version, "key", at.KeyID, "reason", string(at.Reason), "detail", at.Detail)
	}
}

// decideTrial runs Config.Trial with the watchdog's probes as its health
// and keeps the outcome for Status.
func (a *Appliance) decideTrial(ctx context.Context, wd *watchdog.Watchdog) {
	tr := *a.cfg.Trial
	tr.Healthy = func(context.Context) error { return probesPassed(wd) }
	if tr.Log == nil {
		tr.Log = a.log.With("subsystem", "firmware")
	}
	out, err := tr.Run(ctx)
	if err != nil && !errors.Is(err, fwupdate.ErrRolledBack) && ctx.Err() == nil {
		a.log.Error("firmware: trial boot", "err", err)
	}
	a.mu.Lock()
	a.trial = &out
	a.mu.Unlock()
	if out.Trial && a.cfg.Firmware != nil && (out.Committed || out.RolledBack) {
		a.cfg.Firmware.RecordTrial(out) // kept on /perm: the previous system shows why it runs again
	}
}

// probesPassed is nil once every health probe has run and its last run
// passed.
func probesPassed(wd *watchdog.Watchdog) error {
	for _, s := range wd.Status() {
		switch {
		case s.Kind != "probe":
		case s.Last.IsZero():
			return fmt.Errorf("%s: not probed yet", s.Name)
		case s.LastErr != "":
			return fmt.Errorf("%s: %s", s.Name, s.LastErr)
		}
	}
	return nil
}

// SinceBoot returns what is left of d since the machine booted, by the
// kernel's clock under root (/proc/uptime); d when it cannot be read.
func SinceBoot(d time.Duration, root string) time.Duration {
	b, err := os.ReadFile(filepath.Join(root, "proc", "uptime"))
	if err != nil {
		return d
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return d
	}
	up, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return d
	}
	return max(d-time.Duration(up*float64(time.Second)), 0)
}

// StartFailed is the outcome of a trial boot whose appliance did not
// start: rolled back, with Run's error as the reason.
func StartFailed(slot int, err error) fwupdate.TrialOutcome {
	return fwupdate.TrialOutcome{Trial: true, Slot: slot, RolledBack: true, Reason: "the appliance did not start: " + err.Error(), DecidedAt: time.Now()}
}
