package appliance_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"edgebroker/appliance"
	"edgebroker/board/netconf"
	"edgebroker/broker/testenv"
	"edgebroker/provisioning/bundle"
	"edgebroker/provisioning/usb"
	"edgebroker/provisioning/usb/usbtest"
)

// deviceYAML is a Device resource with spec (indented by 2).
func deviceYAML(spec string) string {
	return "apiVersion: appliance.edgebroker.dev/v1\nkind: Device\nmetadata:\n  name: site\nspec:\n" + spec
}

const (
	dhcpSpec   = "  hostname: gw-a\n  interfaces:\n  - name: eth0\n"
	staticSpec = "  hostname: gw-b\n  interfaces:\n  - name: eth0\n    addressing: Static\n    address: 10.0.2.20/24\n    gateway: 10.0.2.2\n    dns: [10.0.2.3]\n"
)

// recordingApplier stands in for netconf.Gokrazy, which needs gokrazy:
// it records the settings it is asked to apply.
type recordingApplier struct {
	mu      sync.Mutex
	applied []netconf.Settings
}

func (r *recordingApplier) Apply(_ context.Context, s netconf.Settings) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.applied = append(r.applied, s)
	return nil
}

func (r *recordingApplier) hostnames() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var h []string
	for _, s := range r.applied {
		h = append(h, s.Hostname)
	}
	return strings.Join(h, ",")
}

// boardWithNet is a board root whose network interfaces are names.
func boardWithNet(t *testing.T, names ...string) string {
	root := t.TempDir()
	for _, n := range names {
		if err := os.MkdirAll(filepath.Join(root, "sys", "class", "net", n), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// TestDeviceSettingsFromUSB: on the device (an Applier set), a stick's
// bundle with device settings is applied; one with an interface the
// board does not have is rejected; one whose static address leaves the
// gateway unreachable for the window is taken back (the previous
// settings applied again, the bundle rolled back), and the report on the
// stick says so.
func TestDeviceSettingsFromUSB(t *testing.T) {
	key, err := bundle.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	rec := new(recordingApplier)
	var probes sync.Map // gateway → probes made
	sysRoot := t.TempDir()
	mounter := &usbtest.Mounter{Images: map[string]string{}}
	a, _, stop := launch(t, appliance.Config{
		DataDir: t.TempDir(), Loopback: "off", PortMap: map[int]int{18883: 0}, Listen: []string{"127.0.0.1:0"},
		Trust: []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}, BoardRoot: boardWithNet(t, "lo", "eth0"),
		USB: &appliance.USBConfig{Root: sysRoot, Mounter: mounter, Uevents: make(chan usb.Uevent), Interval: 20 * time.Millisecond},
		Device: &appliance.DeviceConfig{
			Applier: rec,
			// Nobody answers for 10.0.2.2.
			Probe: func(_ context.Context, iface string, gw netip.Addr) error {
				n, _ := probes.LoadOrStore(gw, new(int))
				*n.(*int)++
				return errors.New("no ARP answer")
			},
			Window: 300 * time.Millisecond, Interval: 20 * time.Millisecond,
		},
	})
	defer stop()

	disk := 'a'
	plug := func(serial uint64, spec string) string {
		t.Helper()
		b := packBundle(t, key, serial, map[string]string{"site.yaml": siteListener(testenv.FreePort(t)), "device.yaml": deviceYAML(spec)}, nil)
		name := "sd" + string(disk)
		disk++
		img := usbtest.NewFAT32Image(t, map[string][]byte{bundle.FileName: b})
		mounter.Images[name] = img
		_, before := mounter.Mounted()
		usbtest.AddStick(t, sysRoot, name, img)
		// Handled once the stick, mounted for the bundle and the report,
		// is unmounted again.
		testenv.Eventually(t, 20*time.Second, "the stick handled", func() bool {
			now, total := mounter.Mounted()
			return total > before && now == 0
		})
		return img
	}

	// Bundle 1: a host name and DHCP, applied.
	img := plug(1, dhcpSpec)
	if a.Status().Provisioning.Serial != 1 {
		t.Fatalf("bundle 1 not applied: %+v", a.Status().Provisioning.History[0])
	}
	if got, want := rec.hostnames(), "gw-a"; got != want {
		t.Errorf("applied %s, want %s", got, want)
	}
	d := a.Status().Device
	if d == nil || !d.Applied || d.Resource != "Device/site" || strings.Join(d.Settings, "; ") != "hostname gw-a; eth0: DHCP" {
		t.Errorf("device status %+v", d)
	}
	if rep := readStick(t, img, appliance.ReportFile); !strings.Contains(rep, "APPLIED: bundle serial 1") || !strings.Contains(rep, "device Device/site (applied): hostname gw-a; eth0: DHCP") {
		t.Errorf("report for bundle 1:\n%s", rep)
	}

	// Bundle 2: an interface this board does not have, rejected before
	// anything is applied.
	img = plug(2, "  interfaces:\n  - name: eth7\n")
	if rep := readStick(t, img, appliance.ReportFile); !strings.Contains(rep, "REJECTED") ||
		!strings.Contains(rep, `device.yaml:7: Device/site: spec.interfaces[0].name: "eth7": no such interface on this device (it has eth0, lo)`) {
		t.Errorf("report for an unknown interface:\n%s", rep)
	}
	if got, want := rec.hostnames(), "gw-a"; got != want {
		t.Errorf("applied %s, want %s (nothing more)", got, want)
	}

	// Bundle 2 again: a static address whose gateway never answers. It is
	// applied, probed for the window, taken back, and the bundle rolled
	// back (which applies bundle 1's settings once more).
	start := time.Now()
	img = plug(2, staticSpec)
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("rolled back after %v, before the window", d)
	}
	h := a.Status().Provisioning.History[0]
	if h.Applied || !h.RolledBack || a.Status().Provisioning.Serial != 1 {
		t.Errorf("bundle 2: %+v, serial %d; want rolled back to 1", h, a.Status().Provisioning.Serial)
	}
	if n, ok := probes.Load(netip.MustParseAddr("10.0.2.2")); !ok || *n.(*int) < 2 {
		t.Errorf("the gateway was not probed repeatedly")
	}
	if got, want := rec.hostnames(), "gw-a,gw-b,gw-a,gw-a"; got != want {
		t.Errorf("applied %s, want %s (bundle 1, bundle 2, taken back, bundle 1 again)", got, want)
	}
	rep := readStick(t, img, appliance.ReportFile)
	for _, want := range []string{
		"ROLLED BACK: bundle serial 2",
		"eth0: no route to the gateway 10.0.2.2 for 300ms",
		"the previous settings are back",
		"device Device/site (applied): hostname gw-a; eth0: DHCP",
	} {
		if !strings.Contains(rep, want) {
			t.Errorf("report for a lost gateway lacks %q:\n%s", want, rep)
		}
	}
}

// TestDeviceSettingsOnHost: without an Applier (a host, not gokrazy) a
// bundle's device settings are validated and shown, not applied; a bad
// address is rejected with the field and the value.
func TestDeviceSettingsOnHost(t *testing.T) {
	key, err := bundle.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	a, _, stop := launch(t, appliance.Config{
		DataDir: t.TempDir(), Loopback: "off", PortMap: map[int]int{18883: 0}, Listen: []string{"127.0.0.1:0"},
		Trust: []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}, BoardRoot: t.TempDir(), StatusAddr: "127.0.0.1:0",
	})
	defer stop()
	bad := packBundle(t, key, 1, map[string]string{"site.yaml": siteListener(testenv.FreePort(t)),
		"device.yaml": deviceYAML("  interfaces:\n  - name: eth0\n    addressing: Static\n    address: 10.0.0.300/24\n")}, nil)
	res := a.Install(t.Context(), bad)
	if want := `device.yaml:9: Device/site: spec.interfaces[0].address: "10.0.0.300/24" is not an IP prefix`; res.Applied || !strings.Contains(strings.Join(res.Reasons, "\n"), want) {
		t.Errorf("Install: applied %v, reasons:\n%s\nwant %s", res.Applied, strings.Join(res.Reasons, "\n"), want)
	}
	// An interface the host does not have is no error here: the host's
	// interfaces are not the device's.
	good := packBundle(t, key, 2, map[string]string{"site.yaml": siteListener(testenv.FreePort(t)),
		"device.yaml": deviceYAML(staticSpec + "  ntpServers: [10.0.2.3]\n")}, nil)
	if res := a.Install(t.Context(), good); !res.Applied {
		t.Fatalf("Install: %v", res.Reasons)
	}
	d := a.Status().Device
	want := "device Device/site (shown, not applied: not running on gokrazy): hostname gw-b; eth0: static 10.0.2.20/24 gateway 10.0.2.2 dns 10.0.2.3; ntp 10.0.2.3"
	if d == nil || d.Applied || d.String() != want {
		t.Errorf("device status:\n%v\nwant\n%s", d, want)
	}
	if !strings.Contains(a.Status().String(), want) {
		t.Errorf("Status.String lacks the device:\n%s", a.Status())
	}
	page := get(t, "http://"+a.StatusAddr().String()+"/")
	if !strings.Contains(page, "Device/site: shown, not applied") || !strings.Contains(page, "<li>eth0: static 10.0.2.20/24 gateway 10.0.2.2 dns 10.0.2.3</li>") {
		t.Errorf("status page lacks the device settings:\n%s", page)
	}
}

// hostnameApplier stands in for netconf.Gokrazy's host name: it sets the
// kernel's host name where board.Identify reads it below root
// (proc/sys/kernel/hostname), the image's ("edgebroker") for none.
type hostnameApplier struct{ root string }

func (h hostnameApplier) Apply(_ context.Context, s netconf.Settings) error {
	name := s.Hostname
	if name == "" {
		name = "edgebroker"
	}
	return os.WriteFile(filepath.Join(h.root, "proc", "sys", "kernel", "hostname"), []byte(name+"\n"), 0o644)
}

// TestDeviceSettingsFromLAN: the report of an upload (POST /bundle)
// names the device by the host name in force after the bundle: the one
// its Device resource gave, for the upload that renamed the device and
// for those after it.
func TestDeviceSettingsFromLAN(t *testing.T) {
	key, err := bundle.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	root, data := boardWithNet(t, "lo", "eth0"), t.TempDir()
	os.MkdirAll(filepath.Join(root, "proc", "sys", "kernel"), 0o755)
	os.WriteFile(filepath.Join(root, "proc", "sys", "kernel", "hostname"), []byte("edgebroker\n"), 0o644)
	a, _, stop := launch(t, appliance.Config{
		DataDir: data, Loopback: "off", PortMap: map[int]int{18883: 0},
		Trust: []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}, BoardRoot: root,
		StatusAddr: "127.0.0.1:0", StatusTLS: true,
		Device: &appliance.DeviceConfig{Applier: hostnameApplier{root}},
	})
	defer stop()
	up := newUploader(t, a, data)

	b := packBundle(t, key, 1, map[string]string{"site.yaml": siteListener(testenv.FreePort(t)), "device.yaml": deviceYAML(dhcpSpec)}, nil)
	code, rep := up.post(b, false)
	if code != http.StatusOK || !rep.Result.Applied {
		t.Fatalf("bundle 1: %d, %+v", code, rep.Result)
	}
	if got, want := rep.Device.Hostname, "gw-a"; got != want {
		t.Errorf("the report of the bundle that renamed the device names it %q, want %q", got, want)
	}
	// The same bundle again: refused (its serial is not above the last),
	// and reported under the device's new name.
	code, rep = up.post(b, false)
	if code != http.StatusUnprocessableEntity || rep.Device.Hostname != "gw-a" {
		t.Errorf("bundle 1 again: %d, host name %q; want %d, gw-a", code, rep.Device.Hostname, http.StatusUnprocessableEntity)
	}
}

// TestBundleUploadAnswersAfterGuard: an upload whose Device settings
// lose their gateway is answered once the guard decided (the settings
// taken back, the bundle refused), even when that took longer than
// the time a report has to be written (shortened here below the guard's
// window, as the guard's 60 s is above the device's write budget).
func TestBundleUploadAnswersAfterGuard(t *testing.T) {
	key, err := bundle.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	const window = time.Second
	appliance.SetUploadWriteTimeout(t, window/4)
	data := t.TempDir()
	a, _, stop := launch(t, appliance.Config{
		DataDir: data, Loopback: "off", PortMap: map[int]int{18883: 0},
		Trust: []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}, BoardRoot: boardWithNet(t, "lo", "eth0"),
		StatusAddr: "127.0.0.1:0", StatusTLS: true,
		Device: &appliance.DeviceConfig{
			Applier: new(recordingApplier),
			Probe: func(context.Context, string, netip.Addr) error {
				return errors.New("no ARP answer") // nobody answers for 10.0.2.2
			},
			Window: window, Interval: 50 * time.Millisecond,
		},
	})
	defer stop()
	up := newUploader(t, a, data)

	start := time.Now()
	code, rep := up.post(packBundle(t, key, 1, map[string]string{"site.yaml": siteListener(testenv.FreePort(t)), "device.yaml": deviceYAML(staticSpec)}, nil), false)
	if d := time.Since(start); d < window {
		t.Errorf("answered after %v, before the guard's window of %v", d, window)
	}
	reasons := strings.Join(rep.Result.Reasons, "\n")
	if code != http.StatusUnprocessableEntity || rep.Result.Applied || !strings.Contains(reasons, "eth0: no route to the gateway 10.0.2.2 for 1s") {
		t.Errorf("a lost gateway: %d, applied %v, reasons:\n%s", code, rep.Result.Applied, reasons)
	}
}
