package qemu_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"edgebroker/appliance"
	"edgebroker/image/qemu"
	"edgebroker/provisioning/bundle"
	"edgebroker/provisioning/usb/usbtest"
)

// staticAddr is the address the Device resource gives the emulated NIC,
// in QEMU's user-mode network (10.0.2.0/24, gateway 10.0.2.2, DNS
// 10.0.2.3; DHCP hands out 10.0.2.15).
const staticAddr = "10.0.2.20"

const deviceYAML = `apiVersion: appliance.edgebroker.dev/v1
kind: Device
metadata:
  name: qemu
spec:
  hostname: gw-qemu
  interfaces:
  - name: eth0
    addressing: Static
    address: 10.0.2.20/24
    gateway: 10.0.2.2
    dns: [10.0.2.3]
`

// vmFailed logs what the VM can still tell about a failure: edgebroker's
// log through gokrazy and the serial console's end; it stops the VM.
func vmFailed(t *testing.T, vm *qemu.VM) {
	t.Helper()
	select {
	case <-vm.Done():
	default:
		t.Logf("edgebroker's log:\n%s", serviceLog(vm.Addr(httpPort)))
	}
	vm.Stop()
	b, _ := os.ReadFile(vm.Log)
	t.Logf("serial console (last 6 KiB):\n%s", tail(b, 6<<10))
}

// TestQEMUDevice boots the image with a stick whose bundle carries a
// Device resource, and checks from the host that it took effect on the
// emulated board: MQTT answers through a forward to the static address
// (QEMU delivers it only if the guest has that address), the status page
// shows the settings applied, and the report on the stick names the new
// host name (read from the kernel after the attempt).
func TestQEMUDevice(t *testing.T) {
	if os.Getenv(envRun) != "1" {
		t.Skipf("boots images under QEMU for minutes: set %s=1 (make qemu-test)", envRun)
	}
	for _, tool := range []string{"qemu-system-aarch64", "timeout", "mtype", "mcopy", "mkfs.fat", "mksquashfs", "mkfs.ext4"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: run tools/setup-test-deps", tool)
		}
	}
	dir := t.TempDir()
	key, err := bundle.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "device.img")
	buildImage(t, img, 1700000000, key.Public().(ed25519.PublicKey))
	stick := usbtest.NewFAT32Image(t, map[string][]byte{
		bundle.FileName: packBundle(t, key, 1, map[string]string{"site.yaml": siteListener(bundlePort), "device.yaml": deviceYAML}),
	})
	static := staticAddr + ":1883"
	staticStatus := fmt.Sprintf("%s:%d", staticAddr, statusPort)
	vm, err := qemu.Start(context.Background(), qemu.Options{
		Image:     img,
		Forward:   map[int]int{mqttPort: 0, httpPort: 0, statusPort: 0},
		ForwardTo: map[string]int{static: 0, staticStatus: 0},
		USBStick:  stick,
		Log:       filepath.Join(dir, "boot.log"),
		Timeout:   10 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			vmFailed(t, vm)
		}
		vm.Stop()
	})
	// Up: MQTT answers on the address DHCP gave, or already on the
	// static one. The stick may be applied before the first probe gets
	// through, and the static settings take the DHCP address away.
	start := time.Now()
	addr := waitMQTTAny(t, vm, bootWait, vm.Addr(mqttPort), vm.AddrTo(static))
	t.Logf("MQTT answers at %s %v after starting QEMU", addr, time.Since(start).Round(time.Millisecond))
	waitReport(t, vm, stick, 90*time.Second)

	// The static address, from the host.
	start = time.Now()
	waitMQTTAt(t, vm, vm.AddrTo(static), 60*time.Second)
	t.Logf("MQTT answers on %s (host %s) %v after the report", static, vm.AddrTo(static), time.Since(start).Round(time.Millisecond))
	pubSub(t, vm.AddrTo(static))

	// The status page shows the settings applied (at the static
	// address: the DHCP one is gone).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+vm.AddrTo(staticStatus)+"/status.json", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("status.json: %v", err)
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	var st appliance.Status
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("status.json: %v\n%s", err, b)
	}
	wantSettings := "hostname gw-qemu; eth0: static 10.0.2.20/24 gateway 10.0.2.2 dns 10.0.2.3"
	if d := st.Device; d == nil || !d.Applied || strings.Join(d.Settings, "; ") != wantSettings || d.Error != "" {
		t.Errorf("status.json device: %+v, want applied %q", st.Device, wantSettings)
	}

	// The report, once QEMU has let go of the stick.
	vm.Stop()
	txt, err := stickFile(stick, appliance.ReportFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s:\n%s", appliance.ReportFile, txt)
	for _, want := range []string{"APPLIED: bundle serial 1", "host name gw-qemu", "device Device/qemu (applied): " + wantSettings} {
		if !bytes.Contains(txt, []byte(want)) {
			t.Errorf("%s lacks %q", appliance.ReportFile, want)
		}
	}
}

// waitMQTTAt waits up to d until an MQTT client connects to addr.
func waitMQTTAt(t *testing.T, vm *qemu.VM, addr string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !mqttAnswers(addr) {
		select {
		case <-vm.Done():
			t.Fatalf("QEMU exited while waiting for MQTT at %s: %v", addr, vm.Err())
		case <-time.After(time.Second):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no MQTT at %s within %v", addr, d)
		}
	}
}

// waitMQTTAny waits until MQTT answers at one of addrs and returns it.
func waitMQTTAny(t *testing.T, vm *qemu.VM, d time.Duration, addrs ...string) string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		for _, a := range addrs {
			if mqttAnswers(a) {
				return a
			}
		}
		select {
		case <-vm.Done():
			t.Fatalf("QEMU exited while waiting for MQTT at %v: %v", addrs, vm.Err())
		case <-time.After(time.Second):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no MQTT at %v within %v", addrs, d)
		}
	}
}

// mqttAnswers reports whether an MQTT client connects to addr.
func mqttAnswers(addr string) bool {
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + addr).
		SetClientID("probe").SetConnectTimeout(3 * time.Second).SetAutoReconnect(false))
	tok := c.Connect()
	if tok.WaitTimeout(5*time.Second) && tok.Error() == nil {
		c.Disconnect(0)
		return true
	}
	return false
}
