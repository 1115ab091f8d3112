package qemu_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"edgebroker/appliance"
	"edgebroker/broker/testenv"
	"edgebroker/image/build"
	"edgebroker/image/qemu"
	"edgebroker/image/update"
	"edgebroker/provisioning/bundle"
	"edgebroker/provisioning/firmware"
	"edgebroker/provisioning/usb/usbtest"
)

// TestQEMUSignedUpdate: images built with the defaults (the status
// endpoint over TLS, no gokrazy password) take no update on gokrazy's
// port; a signed update (mkimage sign's format) sent to edgebroker's
// receiver over TLS is installed into partition 3, the device reboots
// into a trial of it, commits it once healthy, and keeps /perm; a signed
// update whose edgebroker cannot start (a broken -config baked in) rolls
// back by itself to the previous version, which then says why, and
// refuses that build when it is sent again; a signed update from a FAT32
// stick applies (its report written back to the stick) and commits.
func TestQEMUSignedUpdate(t *testing.T) {
	if os.Getenv(envRun) != "1" {
		t.Skipf("boots images under QEMU for minutes: set %s=1 (make qemu-test)", envRun)
	}
	dir := t.TempDir()
	key, err := bundle.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	trusted := key.Public().(ed25519.PublicKey)
	const epochA, epochB, epochC, epochD = 1700000000, 1700086400, 1700172800, 1700259200
	img := filepath.Join(dir, "a.img")
	// The image's defaults: the status endpoint, where updates arrive,
	// serves TLS; gokrazy has no password.
	buildImageAs(t, img, epochA, trusted, "")
	signed := func(epoch int64, flags ...string) []byte {
		t.Helper()
		out := filepath.Join(dir, fmt.Sprintf("%d.img", epoch))
		buildImageAs(t, out, epoch, trusted, "", flags...)
		parts, err := update.ReadImage(out)
		if err != nil {
			t.Fatal(err)
		}
		h, err := parts.Sign(firmware.Manifest{Version: build.VersionOf(time.Unix(epoch, 0)), Built: time.Unix(epoch, 0), Board: "qemu"}, key)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		parts.WriteUpdate(&b, h)
		return b.Bytes()
	}
	updB := signed(epochB)
	updC := signed(epochC, "-config", "/nonexistent/edgebroker.yaml")
	updD := signed(epochD)
	vA, vB, vC, vD := build.VersionOf(time.Unix(epochA, 0)), build.VersionOf(time.Unix(epochB, 0)), build.VersionOf(time.Unix(epochC, 0)), build.VersionOf(time.Unix(epochD, 0))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()

	vm := boot(t, img, filepath.Join(dir, "boot1.log"), "")
	if fw := status(t, vm).Firmware; fw == nil || fw.Running != vA {
		t.Fatalf("image A's firmware status: %+v, want running %s", fw, vA)
	}
	ssSet(t, ctx, vm.Addr(mqttPort), "fw-key", "kept across updates")
	// gokrazy's own update protocol is not on the LAN: its port takes no
	// update, with the build's password or any other.
	parts, err := update.ReadImage(img)
	if err != nil {
		t.Fatal(err)
	}
	legacy := &update.Device{BaseURL: "http://" + vm.Addr(httpPort), Password: password, Client: &http.Client{Timeout: 30 * time.Second}}
	if err := update.Push(ctx, legacy, parts, false, testWriter{t}); err == nil {
		t.Fatal("gokrazy's port took an update")
	} else {
		t.Logf("gokrazy's update protocol on port %d: %v", httpPort, err)
	}

	// B over the network: installed, then the device reboots (QEMU ends).
	put(t, vm, updB, "")
	if err := vm.Wait(150 * time.Second); err != nil {
		t.Fatal(err)
	}
	// The harness boots the armed trial: B on partition 3, which commits
	// itself once its probes pass.
	vm = boot(t, img, filepath.Join(dir, "boot2.log"), "")
	var st appliance.Status
	testenv.Eventually(t, 90*time.Second, "B's trial committed", func() bool {
		var err error
		st, err = readStatus(vm)
		return err == nil && st.Boot != nil && st.Boot.Committed
	})
	if fw := st.Firmware; fw.Running != vB || fw.Other != vA || st.Boot.Slot != 1 {
		t.Errorf("after B's trial: firmware %+v, boot %+v; want %s running from partition 3 over %s", fw, st.Boot, vB, vA)
	}
	if cl := cmdline(t, img); !strings.Contains(cl, "-03 ") {
		t.Errorf("cmdline.txt after the commit = %q, want partition 3", cl)
	}
	ssGet(t, ctx, vm.Addr(mqttPort), "fw-key", "kept across updates")
	put(t, vm, updB, firmware.ReasonNotNewer) // replayed

	// C cannot start: its trial rolls back by itself, and B, back on
	// partition 3, says why.
	put(t, vm, updC, "")
	if err := vm.Wait(150 * time.Second); err != nil {
		t.Fatal(err)
	}
	trialC := start(t, img, filepath.Join(dir, "boot3.log"), "")
	if err := trialC.Wait(150 * time.Second); err != nil {
		t.Fatalf("C's trial did not reboot by itself: %v", err)
	}
	vm = boot(t, img, filepath.Join(dir, "boot4.log"), "")
	st = status(t, vm)
	if fw := st.Firmware; fw.Running != vB || fw.Other != vC || fw.Trial == nil || !fw.Trial.RolledBack ||
		!strings.Contains(fw.Trial.Reason, "did not start") {
		t.Errorf("after C's failed trial: %+v (trial %+v); want %s running, %s rolled back", fw, fw.Trial, vB, vC)
	}
	ssGet(t, ctx, vm.Addr(mqttPort), "fw-key", "kept across updates")
	put(t, vm, updC, firmware.ReasonRolledBack) // the build that failed its trial, again

	// D from a FAT32 stick (an update does not fit the usual 64 MiB
	// stick): installed from the stick, the report written back to it,
	// then the device reboots into D's trial (partition 2), which commits.
	stick := usbtest.NewFAT32ImageSize(t, (int64(len(updD))>>20+65)<<20, map[string][]byte{firmware.FileName: updD})
	vm.Stop() // B's power off: what the state store acknowledged is on /perm
	fromStick := start(t, img, filepath.Join(dir, "boot5.log"), stick)
	if err := fromStick.Wait(300 * time.Second); err != nil {
		t.Fatalf("no reboot after the stick's update: %v", err)
	}
	if rep, err := stickFile(stick, appliance.FirmwareReportFile); err != nil || !strings.Contains(string(rep), "Installed version "+vD) {
		t.Fatalf("the stick's firmware report: %q, %v; want D installed", rep, err)
	}
	vm = boot(t, img, filepath.Join(dir, "boot6.log"), "")
	testenv.Eventually(t, 90*time.Second, "D's trial committed", func() bool {
		var err error
		st, err = readStatus(vm)
		return err == nil && st.Boot != nil && st.Boot.Committed
	})
	if fw := st.Firmware; fw.Running != vD || fw.Other != vB || st.Boot.Slot != 0 {
		t.Errorf("after D's trial: firmware %+v, boot %+v; want %s running from partition 2 over %s", fw, st.Boot, vD, vB)
	}
	ssGet(t, ctx, vm.Addr(mqttPort), "fw-key", "kept across updates")
}

// put sends an update to the device's receiver over TLS, as mkimage
// update does (update.PushSigned, the device's certificate pinned: the
// test reaches it through a forwarded loopback port, not by its names),
// and checks that it is installed, or refused with the reason want.
func put(t *testing.T, vm *qemu.VM, upd []byte, want firmware.Reason) {
	t.Helper()
	addr := vm.Addr(statusPort)
	var pin []byte
	testenv.Eventually(t, 60*time.Second, "the status endpoint's TLS certificate", func() bool {
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) // only to learn the pin
		if err != nil {
			return false
		}
		defer c.Close()
		sum := sha256.Sum256(c.ConnectionState().PeerCertificates[0].Raw)
		pin = sum[:]
		return true
	})
	o, err := update.PushSigned(context.Background(), &update.SecureDevice{BaseURL: "https://" + addr, Fingerprint: pin, Timeout: 5 * time.Minute},
		bytes.NewReader(upd), int64(len(upd)))
	switch {
	case want == "" && err != nil:
		t.Fatalf("update over TLS: %v", err)
	case want != "" && (o == nil || o.Installed || o.Reason != string(want)):
		t.Fatalf("update over TLS: %+v, %v; want refused (%s)", o, err, want)
	}
	t.Logf("update over TLS: %+v", o)
}

func status(t *testing.T, vm *qemu.VM) appliance.Status {
	t.Helper()
	st, err := readStatus(vm)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func readStatus(vm *qemu.VM) (appliance.Status, error) {
	var st appliance.Status
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // reading status, not trusting it
	resp, err := c.Get("https://" + vm.Addr(statusPort) + "/status.json")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// start boots without waiting for MQTT (a system that cannot serve, or
// one that reboots at once), with the stick image usbStick attached
// unless it is "".
func start(t *testing.T, img, log, usbStick string) *qemu.VM {
	t.Helper()
	vm, err := qemu.Start(context.Background(), qemu.Options{Image: img, Forward: map[int]int{mqttPort: 0, statusPort: 0}, USBStick: usbStick, Log: log, Timeout: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		vm.Stop()
		if t.Failed() {
			b, _ := os.ReadFile(log)
			t.Logf("serial console %s (last 6 KiB):\n%s", log, tail(b, 6<<10))
		}
	})
	return vm
}
