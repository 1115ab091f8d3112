package appliance_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"edgebroker/appliance"
	"edgebroker/broker/testenv"
	"edgebroker/provisioning/bundle"
	"edgebroker/provisioning/usb"
	"edgebroker/provisioning/usb/usbtest"
	"edgebroker/tools/ssclient"
)

// siteListener is a bundle's configuration: one plain loopback port.
func siteListener(port int) string {
	return fmt.Sprintf(`apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: site
spec:
  serviceType: ClusterIp
  ports:
  - port: %d
    protocol: Mqtt
`, port)
}

// packBundle signs files (path → content) as a bundle.
func packBundle(t *testing.T, key ed25519.PrivateKey, serial uint64, files map[string]string, mod func(*bundle.PackOptions)) []byte {
	t.Helper()
	fsys := fstest.MapFS{}
	for name, body := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(body), Mode: 0o644}
	}
	opts := bundle.PackOptions{Key: key, Serial: serial, Expires: time.Now().Add(24 * time.Hour)}
	if mod != nil {
		mod(&opts)
	}
	var b bytes.Buffer
	if _, err := bundle.Pack(&b, fsys, opts); err != nil {
		t.Fatalf("pack: %v", err)
	}
	return b.Bytes()
}

// answers reports whether an MQTT client can connect on 127.0.0.1:port.
func answers(port int) bool {
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://127.0.0.1:" + strconv.Itoa(port)).SetClientID("probe").
		SetAutoReconnect(false).SetConnectTimeout(3 * time.Second))
	tok := c.Connect()
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		return false
	}
	c.Disconnect(0)
	return true
}

// rewriteTar rewrites every entry of a bundle through f.
func rewriteTar(t *testing.T, data []byte, f func(name string, body []byte) (string, []byte)) []byte {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(data))
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		h.Name, body = f(h.Name, body)
		h.Size = int64(len(body))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(body)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// get fetches a URL's body.
func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// switchMounter lets a test change how the next stick reads.
type switchMounter struct {
	m atomic.Pointer[usbtest.Mounter]
}

func (s *switchMounter) Mount(d usb.Device) (usb.Medium, error) { return s.m.Load().Mount(d) }

// TestProvisioningFromUSB: a stick with a signed bundle (a real FAT32
// image, read through the detection interface) changes what the broker
// serves and gets a report; bad bundles are rejected with their reason
// while the running configuration and the state store stay as they were;
// a bundle whose port cannot bind is rolled back; a pulled stick changes
// nothing; after a restart the gateway runs the last bundle applied.
func TestProvisioningFromUSB(t *testing.T) {
	key, err := bundle.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pub := key.Public().(ed25519.PublicKey)
	sysRoot, data := t.TempDir(), t.TempDir()
	mounter := new(switchMounter)
	mounter.m.Store(&usbtest.Mounter{Images: map[string]string{}})
	run := func() (*appliance.Appliance, int, func()) {
		a, addrs, stop := launch(t, appliance.Config{
			DataDir: data, Loopback: "off", PortMap: map[int]int{18883: 0}, Listen: []string{"127.0.0.1:0"},
			Trust: []ed25519.PublicKey{pub}, BoardRoot: t.TempDir(), StatusAddr: "127.0.0.1:0",
			USB: &appliance.USBConfig{Root: sysRoot, Mounter: mounter, Uevents: make(chan usb.Uevent), Interval: 20 * time.Millisecond},
		})
		return a, addrs[len(addrs)-1].(*net.TCPAddr).Port, stop
	}
	a, anon, stop := run()
	defer func() { stop() }()

	// A state store key that no bundle may lose.
	ctx, cancelCtx := context.WithTimeout(context.Background(), time.Minute)
	defer cancelCtx()
	ss, err := ssclient.Dial(ctx, ssclient.Config{Host: "127.0.0.1", Port: uint16(anon)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ss.Store.Set(ctx, []byte("site/keep"), []byte("me")); err != nil {
		t.Fatal(err)
	}
	ss.Close()
	keyKept := func() {
		t.Helper()
		ss, err := ssclient.Dial(ctx, ssclient.Config{Host: "127.0.0.1", Port: uint16(anon)})
		if err != nil {
			t.Fatal(err)
		}
		defer ss.Close()
		res, err := ss.Store.Get(ctx, []byte("site/keep"))
		if err != nil || string(res.Value) != "me" {
			t.Fatalf("state store key after bundles: %q, %v", res.Value, err)
		}
	}

	// Plug in a stick whose bundle adds port p1.
	p1 := testenv.FreePort(t)
	stick := func(name string, files map[string][]byte) string {
		img := usbtest.NewFAT32Image(t, files)
		m := mounter.m.Load()
		m.Images[name] = img
		usbtest.AddStick(t, sysRoot, name, img)
		return img
	}
	history := func() int { return len(a.Status().Provisioning.History) }
	good := packBundle(t, key, 1, map[string]string{"site.yaml": siteListener(p1)}, nil)
	img := stick("sda", map[string][]byte{bundle.FileName: good})
	testenv.Eventually(t, 20*time.Second, "bundle 1 applied", func() bool { return a.Status().Provisioning.Serial == 1 })
	if !answers(p1) {
		t.Fatalf("the bundle's port %d does not answer; status:\n%s", p1, a.Status())
	}
	if h := a.Status().Provisioning.History; len(h) != 1 || !h[0].Applied || h[0].Serial != 1 {
		t.Errorf("provisioning history in status: %+v", h)
	}
	if page := get(t, "http://"+a.StatusAddr().String()+"/"); !strings.Contains(page, "Bundle serial 1 is in force.") || !strings.Contains(page, "<td>applied</td>") {
		t.Errorf("status page after bundle 1:\n%s", page)
	}
	if c := a.Status().Certificates; len(c) != 0 {
		t.Errorf("certificates of the replaced default still managed: %+v", c)
	}
	if rep := readStick(t, img, appliance.ReportFile); !strings.Contains(rep, "APPLIED: bundle serial 1") || !strings.Contains(rep, fmt.Sprintf("site/%d: serving", p1)) {
		t.Errorf("report on the stick:\n%s", rep)
	}
	var rep appliance.Report
	if err := json.Unmarshal([]byte(readStick(t, img, appliance.ReportJSONFile)), &rep); err != nil || !rep.Result.Applied {
		t.Errorf("JSON report: %+v, %v", rep.Result, err)
	}
	usbtest.RemoveDisk(t, sysRoot, "sda")

	// A stick with a bundle signed by an unknown key.
	other, _ := bundle.GenerateKey()
	img = stick("sdb", map[string][]byte{bundle.FileName: packBundle(t, other, 2, map[string]string{"site.yaml": siteListener(testenv.FreePort(t))}, nil)})
	testenv.Eventually(t, 20*time.Second, "untrusted bundle handled", func() bool { return history() == 2 })
	if rep := readStick(t, img, appliance.ReportFile); !strings.Contains(rep, "REJECTED") || !strings.Contains(rep, "untrusted key") {
		t.Errorf("report for an untrusted bundle:\n%s", rep)
	}
	usbtest.RemoveDisk(t, sysRoot, "sdb")

	// A stick pulled while the bundle is read.
	mounter.m.Store(&usbtest.Mounter{Images: map[string]string{}, PullAfter: 512})
	stick("sdc", map[string][]byte{bundle.FileName: packBundle(t, key, 2, map[string]string{"site.yaml": siteListener(testenv.FreePort(t))}, nil)})
	testenv.Eventually(t, 20*time.Second, "pulled stick handled", func() bool { return history() == 3 })
	if h := a.Status().Provisioning.History[0]; h.Applied || !strings.Contains(strings.Join(h.Reasons, ""), "input/output error") || a.Status().Provisioning.Serial != 1 {
		t.Errorf("pulled stick: %+v, serial %d", h, a.Status().Provisioning.Serial)
	}
	usbtest.RemoveDisk(t, sysRoot, "sdc")

	// Bad bundles straight through Install: each with its reason.
	big := strings.Repeat("x", 5<<20)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, tt := range []struct {
		name, want string
		data       []byte
		rolledBack bool
	}{
		{"replayed serial", "serial 1", packBundle(t, key, 1, map[string]string{"site.yaml": siteListener(testenv.FreePort(t))}, nil), false},
		{"expired", "expired", packBundle(t, key, 3, map[string]string{"site.yaml": siteListener(testenv.FreePort(t))}, func(o *bundle.PackOptions) {
			o.Created, o.Expires = time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour)
		}), false},
		{"unknown kind", "Frobnicator", packBundle(t, key, 3, map[string]string{"site.yaml": "apiVersion: v1\nkind: Frobnicator\nmetadata:\n  name: x\n"}, nil), false},
		{"invalid field", "spec.ports[0].port", packBundle(t, key, 3, map[string]string{"site.yaml": siteListener(70000)}, nil), false},
		{"truncated", "truncated", good[:len(good)-700], false},
		{"oversize", "too large: secrets/big/blob", packBundle(t, key, 3, map[string]string{"site.yaml": siteListener(testenv.FreePort(t)), "secrets/big/blob": big}, func(o *bundle.PackOptions) {
			o.Limits = bundle.Limits{MaxTotal: 64 << 20, MaxFileSize: 64 << 20}
		}), false},
		{"bad signature", "signature", rewriteTar(t, packBundle(t, key, 3, map[string]string{"site.yaml": siteListener(testenv.FreePort(t))}, nil), func(name string, body []byte) (string, []byte) {
			if name == "manifest.sig" {
				body = bytes.Clone(body)
				body[0] ^= 1
			}
			return name, body
		}), false},
		{"path traversal", "unsafe path: \"../../etc/passwd\"", rewriteTar(t, packBundle(t, key, 3, map[string]string{"site.yaml": siteListener(testenv.FreePort(t))}, nil), func(name string, body []byte) (string, []byte) {
			if strings.HasSuffix(name, "site.yaml") {
				name = "config/../../etc/passwd"
			}
			return name, body
		}), false},
		{"for another device", "device", packBundle(t, key, 3, map[string]string{"site.yaml": siteListener(testenv.FreePort(t))}, func(o *bundle.PackOptions) {
			o.Device = &bundle.Device{Serial: "10000000deadbeef"}
		}), false},
		{"port cannot bind: rolled back", "could not come up", packBundle(t, key, 3, map[string]string{"site.yaml": siteListener(taken.Addr().(*net.TCPAddr).Port)}, nil), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := a.Install(ctx, tt.data)
			if res.Applied || res.RolledBack != tt.rolledBack || !strings.Contains(strings.Join(res.Reasons, "\n"), tt.want) {
				t.Errorf("Install: applied %v, rolled back %v, err %v, reasons:\n%s\nwant %q", res.Applied, res.RolledBack, res.Err, strings.Join(res.Reasons, "\n"), tt.want)
			}
			if st := a.Status(); st.Provisioning.Serial != 1 {
				t.Errorf("serial now %d, want 1", st.Provisioning.Serial)
			}
			if !answers(p1) {
				t.Errorf("bundle 1's port stopped answering; status:\n%s", a.Status())
			}
		})
	}
	keyKept()

	// A restart runs the last bundle applied.
	stop()
	a, anon, stop = run()
	if !answers(p1) {
		t.Fatalf("after a restart, bundle 1's port does not answer; status:\n%s", a.Status())
	}
	keyKept()
}

// TestUSBWatchingShown: with -usb the appliance logs that it watches for
// sticks, and its status (Status, status.json, the status page) says so;
// without -usb the page says that sticks are not watched.
func TestUSBWatchingShown(t *testing.T) {
	key, err := bundle.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	logs := new(testenv.SyncBuffer)
	sysRoot := t.TempDir()
	a, _, stop := launch(t, appliance.Config{
		DataDir: t.TempDir(), Loopback: "off", PortMap: map[int]int{18883: 0}, Logger: slog.New(slog.NewTextHandler(logs, nil)),
		Trust: []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}, BoardRoot: t.TempDir(), StatusAddr: "127.0.0.1:0",
		USB: &appliance.USBConfig{Root: sysRoot, Mounter: &usbtest.Mounter{}, Uevents: make(chan usb.Uevent), Interval: time.Hour},
	})
	defer stop()
	want := "watching for USB sticks with " + bundle.FileName
	testenv.Eventually(t, 10*time.Second, "the watcher started", func() bool { return strings.Contains(a.Status().Provisioning.USB, want) })
	if l := logs.String(); !strings.Contains(l, "provisioning: "+want) || !strings.Contains(l, "rescanned every 1h0m0s") {
		t.Errorf("log does not say that USB sticks are watched:\n%s", l)
	}
	base := "http://" + a.StatusAddr().String()
	if body := get(t, base+"/status.json"); !strings.Contains(body, `"usb": "`+want) {
		t.Errorf("status.json: no usb field:\n%s", body)
	}
	if body := get(t, base+"/"); !strings.Contains(body, "Provisioning is "+want) {
		t.Errorf("status page does not say that USB sticks are watched:\n%s", body)
	}
	stop()

	b, _, stop2 := launch(t, appliance.Config{DataDir: t.TempDir(), Loopback: "off", PortMap: map[int]int{18883: 0}, StatusAddr: "127.0.0.1:0"})
	defer stop2()
	if u := b.Status().Provisioning.USB; u != "" {
		t.Errorf("without -usb: Provisioning.USB %q", u)
	}
	if body := get(t, "http://"+b.StatusAddr().String()+"/"); !strings.Contains(body, "USB sticks are not watched (no -usb).") {
		t.Errorf("status page without -usb:\n%s", body)
	}
}

// readStick waits (bounded) until the stick image img holds name, which
// the appliance writes back after it read the stick, and returns it. The
// file is created empty and then written, so an empty one is not there
// yet.
func readStick(t *testing.T, img, name string) string {
	t.Helper()
	var out []byte
	testenv.Eventually(t, 20*time.Second, name+" on the stick", func() bool {
		var err error
		out, err = usbtest.ReadFile(img, name)
		return err == nil && len(out) > 0
	})
	return string(out)
}
