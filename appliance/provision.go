package appliance

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"edgebroker/appliance/config"
	"edgebroker/board"
	"edgebroker/board/led"
	"edgebroker/provisioning/apply"
	"edgebroker/provisioning/bundle"
	"edgebroker/provisioning/firmware"
	"edgebroker/provisioning/fwupdate"
	"edgebroker/provisioning/usb"
)

// ProvisioningDir is the provisioning store's folder under Config.DataDir:
// the applied configurations (current and previous), the serial, the
// enrolled keys and the history of attempts.
const ProvisioningDir = "provisioning"

// Files the appliance writes back to a stick that carried a bundle.
const (
	ReportFile     = "edgebroker-report.txt"  // for people
	ReportJSONFile = "edgebroker-report.json" // for programs
	ReportCAFile   = "edgebroker-ca.crt"      // the CA certificates clients need (DATA/ca.crt)
	// The outcome of a firmware update (firmware.FileName) on the stick.
	FirmwareReportFile     = "edgebroker-firmware-report.txt"
	FirmwareReportJSONFile = "edgebroker-firmware-report.json"
)

// USBConfig turns on provisioning from USB sticks (SPEC §7).
type USBConfig struct {
	Root     string            // where /sys and /dev are; "" means "/"
	Mounter  usb.Mounter       // nil: the kernel's, mounting below /tmp/edgebroker-usb
	Uevents  <-chan usb.Uevent // nil: the kernel's uevent socket (tests inject their own)
	Interval time.Duration     // polling period; 0: usb.DefaultInterval
}

// Report is what the appliance writes back to the stick (as JSON, and as
// text for people).
type Report struct {
	Device  board.Identity `json:"device"`
	Result  apply.Result   `json:"result"`
	Status  Status         `json:"status"`  // listeners and certificates after the attempt
	Running string         `json:"running"` // the configuration the gateway runs now
	// CA says whether the report brings edgebroker-ca.crt: some port's
	// certificate comes from an on-device CA (DATA/ca.crt exists).
	CA bool `json:"ca"`
}

// newProvisioning opens the provisioning store. The configuration a
// bundle brings is validated like -config, then by check (what the board
// can carry out), and applied through the same live reload; a bundle
// whose configuration cannot come up (a port that cannot bind, a static
// address that loses its gateway) is rolled back.
func newProvisioning(dataDir string, trust []ed25519.PublicKey, id board.Identity,
	check func(*config.Set) error, applyDir func(ctx context.Context, dir string) error) *apply.Store {
	return &apply.Store{
		Dir:    filepath.Join(dataDir, ProvisioningDir),
		Trust:  trust,
		Device: bundle.Device{Serial: id.Serial, Model: id.Model},
		Validate: func(fsys fs.FS) error {
			set, err := config.Load(fsys)
			if err != nil {
				return err
			}
			if err := set.Validate(); err != nil {
				return err
			}
			return check(set)
		},
		Apply: applyDir,
	}
}

// whyBundle is applyConfig's why for a bundle's configuration.
const whyBundle = "bundle"

// applyBundle makes the configuration of a bundle, in dir, the running
// one, Device settings included; from then on Reload (SIGHUP) re-reads
// dir. Config.ConfigPath stays as the caller gave it.
func (a *Appliance) applyBundle(ctx context.Context, dir string) error {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	set, err := loadConfig(dir, a.log)
	if err != nil {
		return err
	}
	return a.applyWithDevice(ctx, dir, set, whyBundle)
}

// Install applies a bundle (read whole from data) and returns the result,
// as plugging in a stick with it does.
func (a *Appliance) Install(ctx context.Context, data []byte) apply.Result {
	res := a.prov.Install(ctx, bytes.NewReader(data))
	serial := a.prov.LastSerial() // recorded once Install returns; asked before reloadMu (see bundleSerial)
	a.reloadMu.Lock()
	a.bundleSerial = serial
	a.announce()
	a.reloadMu.Unlock()
	if res.Applied {
		a.log.Info("bundle applied", "serial", res.Serial, "key", res.KeyID)
	} else {
		a.log.Warn("bundle rejected", "serial", res.Serial, "rolledBack", res.RolledBack, "reasons", strings.Join(res.Reasons, "; "))
	}
	return res
}

// watchUSB applies the bundle of every stick plugged in, until ctx ends.
func (a *Appliance) watchUSB(ctx context.Context, uc *USBConfig, status *led.LED) error {
	root := uc.Root
	if root == "" {
		root = "/"
	}
	m := uc.Mounter
	if m == nil {
		m = usb.KernelMounter{Dir: "/tmp/edgebroker-usb"}
	}
	w := &usb.Watcher{Root: root, Interval: uc.Interval, Uevents: uc.Uevents, Logger: a.log.With("subsystem", "usb")}
	interval := uc.Interval
	if interval <= 0 {
		interval = usb.DefaultInterval
	}
	watching := fmt.Sprintf("watching for USB sticks with %s (disks in %s, rescanned every %v)",
		bundle.FileName, filepath.Join(root, "sys", "block"), interval)
	a.log.Info("provisioning: "+watching, "subsystem", "usb", "trusted_keys", len(a.cfg.Trust))
	a.mu.Lock()
	a.usb = watching
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.usb = ""
		a.mu.Unlock()
	}()
	done := map[string]bool{} // disks handled since they were plugged in
	for ev := range w.Watch(ctx) {
		d := ev.Device
		if ev.Op == usb.Remove {
			if d.Partition == 0 || !stillPresent(root, d.Disk) {
				delete(done, d.Disk)
			}
			continue
		}
		if done[d.Disk] {
			continue
		}
		if a.fromStick(ctx, m, d, status) {
			done[d.Disk] = true
		}
	}
	return nil
}

func stillPresent(root, disk string) bool {
	_, err := os.Stat(filepath.Join(root, "sys", "block", disk))
	return err == nil
}

// fromStick looks for a bundle on one partition and applies it. It
// reports whether the partition had one.
func (a *Appliance) fromStick(ctx context.Context, m usb.Mounter, d usb.Device, status *led.LED) bool {
	log := a.log.With("subsystem", "usb", "device", d.DevPath)
	med, err := m.Mount(d)
	if err != nil {
		log.Info("stick not readable; skipped", "err", err)
		return false
	}
	defer func() {
		if err := med.Close(); err != nil {
			log.Warn("unmount", "err", err)
		}
	}()
	_, err = fs.Stat(med.FS(), bundle.FileName)
	hasBundle := err == nil
	hasFirmware := false
	if a.cfg.Firmware != nil {
		_, err = fs.Stat(med.FS(), firmware.FileName)
		hasFirmware = err == nil
	}
	if !hasBundle && !hasFirmware {
		log.Info("no bundle on this stick", "want", bundle.FileName)
		return false
	}
	if hasFirmware {
		defer a.firmwareFromStick(ctx, med, status, log)
	}
	if !hasBundle {
		return true
	}
	status.Show(ctx, led.Working)
	res := a.installFrom(ctx, med, bundle.FileName)
	if res.Applied {
		status.Show(ctx, led.Success)
	} else {
		status.Show(ctx, led.Failure)
	}
	if err := a.writeReport(med, &Report{Device: a.identity(), Result: res, Status: a.Status(), Running: a.running()}); err != nil {
		log.Warn("report not written to the stick", "err", err)
	}
	return true
}

// identity is this board's identity with the host name in force now,
// for a report: a Device resource may have changed it since the start
// (a.id), the bundle being reported on included.
func (a *Appliance) identity() board.Identity {
	id := a.id
	id.Hostname = board.Identify(a.boardRoot).Hostname
	return id
}

// firmwareFromStick installs the signed firmware update on the stick (a
// bundle beside it is applied first) and writes its report back.
func (a *Appliance) firmwareFromStick(ctx context.Context, med usb.Medium, status *led.LED, log *slog.Logger) {
	status.Show(ctx, led.Working)
	var att fwupdate.Attempt
	f, err := med.FS().Open(firmware.FileName)
	if err != nil {
		att = fwupdate.Attempt{Time: time.Now(), From: "usb", Reason: firmware.ReasonTruncated, Detail: "reading " + firmware.FileName + ": " + err.Error()}
	} else {
		att = a.cfg.Firmware.Install(f, "usb")
		f.Close()
	}
	if att.Installed {
		status.Show(ctx, led.Success)
	} else {
		status.Show(ctx, led.Failure)
	}
	js, _ := json.MarshalIndent(att, "", "  ")
	text := fmt.Sprintf("edgebroker firmware update report, %s\n\n%s\n", att.Time.UTC().Format(time.RFC3339), strings.ToUpper(att.String()[:1])+att.String()[1:])
	for _, w := range []struct {
		name string
		b    []byte
	}{{FirmwareReportJSONFile, append(js, '\n')}, {FirmwareReportFile, []byte(text)}} {
		if err := med.WriteFile(w.name, w.b); err != nil {
			log.Warn("firmware report not written to the stick", "file", w.name, "err", err)
			return
		}
	}
}

// installFrom reads the bundle name from med, bounded, and applies it;
// one that cannot be read (pulled mid-read, too large) is recorded in
// the history as rejected.
func (a *Appliance) installFrom(ctx context.Context, med usb.Medium, name string) apply.Result {
	data, err := usb.ReadFile(med, name, maxBundleFile())
	if err == nil {
		return a.Install(ctx, data)
	}
	if errors.Is(err, usb.ErrTooLarge) {
		size := int64(-1)
		if fi, serr := fs.Stat(med.FS(), name); serr == nil && fi.Size() > maxBundleFile() {
			size = fi.Size()
		}
		return a.notRead(errBundleTooLarge(size))
	}
	return a.notRead(fmt.Errorf("reading %s: %w", name, err))
}

// maxBundleFile is the most bytes of a bundle file the appliance reads,
// from a stick or over the LAN (POST /bundle): the bundle's size limit
// and room for the archive's headers. A longer file is refused before
// it is read.
func maxBundleFile() int64 {
	lim := bundle.DefaultLimits()
	return lim.MaxTotal + lim.MaxTotal/4
}

// errBundleTooLarge is why a bundle file longer than maxBundleFile is
// refused, from a stick or over the LAN: the same words from both. size
// is the file's length, or -1 when only "more than the limit" is known.
func errBundleTooLarge(size int64) error {
	if size < 0 {
		return fmt.Errorf("%w: the bundle file is more than %d bytes, the limit", bundle.ErrOversize, maxBundleFile())
	}
	return fmt.Errorf("%w: the bundle file is %d bytes, more than %d, the limit", bundle.ErrOversize, size, maxBundleFile())
}

// notRead records in the history, and returns, the rejection of a bundle
// that could not be read (err says why).
func (a *Appliance) notRead(err error) apply.Result {
	res := apply.Result{Time: time.Now(), Reasons: []string{err.Error()}, Err: err}
	a.log.Warn("bundle not read", "err", err)
	if err := a.prov.Record(res); err != nil {
		a.log.Warn("provisioning history", "err", err)
	}
	return res
}

// writeReport writes the report back to the stick: text, JSON and the
// CA certificates clients need. It stops at the first file it cannot
// write.
func (a *Appliance) writeReport(med usb.Medium, rep *Report) error {
	ca, err := os.ReadFile(filepath.Join(a.cfg.DataDir, CAFile))
	rep.CA = err == nil
	files := map[string][]byte{ReportJSONFile: rep.JSON(), ReportFile: []byte(rep.String())}
	if rep.CA {
		files[ReportCAFile] = ca
	}
	for _, name := range []string{ReportCAFile, ReportJSONFile, ReportFile} {
		if b, ok := files[name]; ok {
			if err := med.WriteFile(name, b); err != nil {
				return fmt.Errorf("appliance: report %s: %w", name, err)
			}
		}
	}
	return nil
}

// running names the configuration in force.
func (a *Appliance) running() string {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	if a.path == "" {
		return "the embedded default"
	}
	if dir, ok := a.prov.Current(); ok && dir == a.path {
		return fmt.Sprintf("bundle serial %d", a.prov.LastSerial())
	}
	return a.path
}

// JSON is the report for programs (edgebroker-report.json).
func (r Report) JSON() []byte {
	js, _ := json.MarshalIndent(r, "", "  ")
	return append(js, '\n')
}

// String is the report for people.
func (r Report) String() string {
	var b strings.Builder
	res := r.Result
	fmt.Fprintf(&b, "edgebroker provisioning report, %s\n", res.Time.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "device: %s, serial %s, host name %s\n\n", orUnknown(r.Device.Model), orUnknown(r.Device.Serial), orUnknown(r.Device.Hostname))
	switch {
	case res.Applied:
		fmt.Fprintf(&b, "APPLIED: bundle serial %d (signed by key %s)\n", res.Serial, res.KeyID)
	case res.RolledBack:
		fmt.Fprintf(&b, "ROLLED BACK: bundle serial %d was applied but could not come up; the previous configuration is back\n", res.Serial)
	default:
		fmt.Fprintf(&b, "REJECTED: nothing was changed\n")
	}
	for _, why := range res.Reasons {
		fmt.Fprintf(&b, "  - %s\n", why)
	}
	fmt.Fprintf(&b, "\nrunning: %s\n\nlisteners:\n", r.Running)
	for _, line := range strings.Split(strings.TrimRight(r.Status.String(), "\n"), "\n") {
		fmt.Fprintf(&b, "  %s\n", line)
	}
	if r.CA {
		fmt.Fprintf(&b, "\nClients of Automatic TLS ports trust %s (also served by the status page as /ca.crt).\n", ReportCAFile)
	} else {
		fmt.Fprintf(&b, "\nNo port has a certificate from an on-device CA: no %s.\n", ReportCAFile)
	}
	return b.String()
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
