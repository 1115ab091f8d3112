package appliance_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"edgebroker/appliance"
	"edgebroker/broker/testenv"
	"edgebroker/provisioning/bundle"
	"edgebroker/provisioning/firmware"
	"edgebroker/provisioning/fwupdate"
	"edgebroker/provisioning/usb"
	"edgebroker/provisioning/usb/usbtest"
)

// TestFirmwareUpdate: the appliance takes a signed firmware update at
// /update/firmware on its status endpoint and from a USB stick beside
// (or without) a bundle, writes the report back to the stick, trusts the
// keys bundles enrol, refuses a downgrade with its reason, and shows the versions and the last attempt
// in status.json, the status page and /metrics.
func TestFirmwareUpdate(t *testing.T) {
	key, err := bundle.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pub := key.Public().(ed25519.PublicKey)
	dir, data := t.TempDir(), t.TempDir()
	trusted := appliance.TrustedKeys(data, []ed25519.PublicKey{pub})
	disk := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(disk, make([]byte, 3<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	rc := &fwupdate.Receiver{
		Target: &fwupdate.Disk{Path: disk, BootFS: fwupdate.Extent{Start: 0, Size: 1 << 20},
			Roots: [2]fwupdate.Extent{{Start: 1 << 20, Size: 1 << 20}, {Start: 2 << 20, Size: 1 << 20}},
			Stage: filepath.Join(dir, "boot.staged"),
			Arm:   func(fwupdate.BootFiles, int) error { return nil }},
		Policy: func() firmware.Policy {
			return firmware.Policy{Trust: trusted(), Board: "qemu", Running: "1.0", Now: time.Now(), MaxRoot: 1 << 20, MaxBoot: 1 << 20}
		},
		StateFile: filepath.Join(dir, "firmware.json"),
	}
	sysRoot := t.TempDir()
	mounter := &usbtest.Mounter{Images: map[string]string{}}
	a, _, stop := launch(t, appliance.Config{
		DataDir: data, Loopback: "off", Listen: []string{"127.0.0.1:0"}, Trust: []ed25519.PublicKey{pub},
		BoardRoot: t.TempDir(), StatusAddr: "127.0.0.1:0", Firmware: rc,
		USB: &appliance.USBConfig{Root: sysRoot, Mounter: mounter, Uevents: make(chan usb.Uevent), Interval: 20 * time.Millisecond},
	})
	defer stop()
	rc.Log = nil
	base := "http://" + a.StatusAddr().String()
	update := func(version string, key ed25519.PrivateKey) []byte {
		root, boot := bytes.Repeat([]byte("root "+version), 5000), bytes.Repeat([]byte("boot "+version), 2000)
		h, err := firmware.Sign(firmware.Manifest{Version: version, Board: "qemu", Root: firmware.PartOf(root), Boot: firmware.PartOf(boot)}, key)
		if err != nil {
			t.Fatal(err)
		}
		return bytes.Join([][]byte{h, root, boot}, nil)
	}

	// Over the network.
	req, _ := http.NewRequest(http.MethodPut, base+"/update/firmware", bytes.NewReader(update("1.1", key)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT /update/firmware: %s", resp.Status)
	}
	var st appliance.Status
	if err := json.Unmarshal([]byte(get(t, base+"/status.json")), &st); err != nil {
		t.Fatal(err)
	}
	if fw := st.Firmware; fw == nil || fw.Running != "1.0" || fw.Other != "1.1" || fw.Last == nil || !fw.Last.Installed {
		t.Errorf("status.json firmware: %+v", fw)
	}
	if m := get(t, base+"/metrics"); !strings.Contains(m, `edgebroker_firmware_info{running="1.0",other="1.1",board="qemu"} 1`) ||
		!strings.Contains(m, `edgebroker_firmware_last_attempt_timestamp_seconds{version="1.1",outcome="installed",reason=""}`) {
		t.Errorf("metrics lack the firmware:\n%s", m)
	}

	// A refusal over the network is a security event.
	tampered := update("1.3", key)
	tampered[len(tampered)-1] ^= 1
	req, _ = http.NewRequest(http.MethodPut, base+"/update/firmware", bytes.NewReader(tampered))
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("PUT a tampered update: %s", resp.Status)
	}
	if m := get(t, base+"/metrics"); !strings.Contains(m, `edgebroker_security_events_total{event="firmware_refused"} 1`) {
		t.Errorf("the refused firmware upload is not a security event:\n%s", m)
	}

	// From a stick: a downgrade, refused with its reason on the stick.
	img := usbtest.NewFAT32Image(t, map[string][]byte{firmware.FileName: update("0.9", key)})
	mounter.Images["sda"] = img
	usbtest.AddStick(t, sysRoot, "sda", img)
	if rep := readStick(t, img, appliance.FirmwareReportFile); !strings.Contains(rep, "Refused 0.9 from usb: downgrade") {
		t.Errorf("report of a downgrade:\n%s", rep)
	}
	if page := get(t, base+"/"); !strings.Contains(page, "Running version 1.0 (board qemu)") || !strings.Contains(page, "refused 0.9 from usb: downgrade") {
		t.Errorf("status page:\n%s", page)
	}
	usbtest.RemoveDisk(t, sysRoot, "sda")

	// A newer one from a stick, signed by a key the bundle beside it
	// enrols: the bundle first, then the update.
	key2, _ := bundle.GenerateKey()
	img = usbtest.NewFAT32Image(t, map[string][]byte{firmware.FileName: update("1.2", key2),
		bundle.FileName: packBundle(t, key, 1, map[string]string{"site.yaml": siteListener(testenv.FreePort(t))}, func(o *bundle.PackOptions) {
			o.Enrol = []ed25519.PublicKey{key2.Public().(ed25519.PublicKey)}
		})})
	mounter.Images["sdb"] = img
	usbtest.AddStick(t, sysRoot, "sdb", img)
	if rep := readStick(t, img, appliance.FirmwareReportFile); !strings.Contains(rep, "Installed version 1.2") {
		t.Errorf("report of an update:\n%s", rep)
	}
	if rep := readStick(t, img, appliance.ReportFile); !strings.Contains(rep, "APPLIED: bundle serial 1") {
		t.Errorf("bundle report beside the update:\n%s", rep)
	}
	if fw := a.Status().Firmware; fw.Other != "1.2" {
		t.Errorf("after the stick: %+v", fw)
	}

	// A trial that rolled back (as the trial system records it before
	// its reboot) shows on the previous system's page.
	rc.RecordTrial(fwupdate.TrialOutcome{Trial: true, Slot: 1, RolledBack: true, Reason: "statestore: closed", DecidedAt: time.Now()})
	if page := get(t, base+"/"); !strings.Contains(page, "Last trial boot (partition 1): rolled back") || !strings.Contains(page, "statestore: closed") {
		t.Errorf("status page lacks the rolled back trial:\n%s", page)
	}
}
