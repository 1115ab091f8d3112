package qemu_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"edgebroker/appliance"
	"edgebroker/broker/testenv"
	"edgebroker/image/build"
	"edgebroker/image/qemu"
	"edgebroker/image/update"
	"edgebroker/provisioning/bundle"
	"edgebroker/provisioning/usb/usbtest"
	"edgebroker/tools/ssclient"
)

// The QEMU test boots real images and takes minutes: it runs only with
// EDGEBROKER_QEMU_TEST=1 (make qemu-test). EDGEBROKER_IMAGE_CACHE names a
// cache directory for the image file systems (default: none).
const (
	envRun   = "EDGEBROKER_QEMU_TEST"
	envCache = "EDGEBROKER_IMAGE_CACHE"
	password = "qemu-test-password"
	bootWait = 120 * time.Second

	// Guest ports: the plain port of -listen, gokrazy's web interface,
	// edgebroker's status page (the image's default -status :8080), and
	// the port the USB bundle adds.
	mqttPort   = 1883
	httpPort   = 80
	statusPort = 8080
	bundlePort = 2883
)

// mainDir is the edgebroker module the image is built from:
// EDGEBROKER_IMAGE_MAIN (e.g. a `git archive` export), else this checkout.
func mainDir() string {
	if d := os.Getenv("EDGEBROKER_IMAGE_MAIN"); d != "" {
		return d
	}
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// buildImage builds a QEMU image whose edgebroker trusts the provisioning
// public key trusted (so it runs with -trust … -usb) and serves its status
// page on the default :8080 over plain HTTP (-status-tls=false); the test
// drives it through gokrazy's web interface, opened to the LAN with the
// development password.
func buildImage(t *testing.T, out string, epoch int64, trusted ed25519.PublicKey, extraFlags ...string) *build.Result {
	t.Helper()
	return buildImageAs(t, out, epoch, trusted, password, append([]string{"-status-tls=false"}, extraFlags...)...)
}

// buildImageAs builds a QEMU image as buildImage does, with gokrazy's
// password pw ("": none, the default) and the image's default status
// endpoint (TLS) unless extraFlags say otherwise.
func buildImageAs(t *testing.T, out string, epoch int64, trusted ed25519.PublicKey, pw string, extraFlags ...string) *build.Result {
	t.Helper()
	start := time.Now()
	res, err := build.Build(context.Background(), build.Config{
		Target:      build.TargetQEMU,
		MainDir:     mainDir(),
		CacheDir:    os.Getenv(envCache),
		Hostname:    "edgebroker-qemu",
		Password:    pw,
		TrustedKeys: [][]byte{bundle.MarshalPublicKey(trusted)},
		// A plain anonymous MQTT port on every interface, for the test
		// (instead of the default loopback port, which has the same number).
		Flags:    append([]string{"-listen", "0.0.0.0:1883", "-loopback", "off"}, extraFlags...),
		Epoch:    time.Unix(epoch, 0),
		Progress: testWriter{t},
	}, out)
	if err != nil {
		t.Fatalf("building %s: %v", out, err)
	}
	t.Logf("built %s in %v (sha256 %s)", out, time.Since(start).Round(time.Millisecond), res.SHA256)
	return res
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// boot starts the VM and waits until edgebroker answers MQTT through the
// forwarded port. When the test fails, edgebroker's recent log (from
// gokrazy's web interface, while the VM runs) and the serial console are
// printed.
func boot(t *testing.T, img, log, usbStick string) *qemu.VM {
	t.Helper()
	vm, err := qemu.Start(context.Background(), qemu.Options{
		Image:    img,
		Forward:  map[int]int{mqttPort: 0, httpPort: 0, statusPort: 0, bundlePort: 0},
		USBStick: usbStick,
		Log:      log,
		Timeout:  10 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			select {
			case <-vm.Done():
			default:
				t.Logf("edgebroker's log (gokrazy /status?path=/user/edgebroker):\n%s", serviceLog(vm.Addr(httpPort)))
			}
		}
		vm.Stop()
		if t.Failed() {
			b, _ := os.ReadFile(log)
			t.Logf("serial console %s (last 6 KiB):\n%s", log, tail(b, 6<<10))
		}
	})
	start := time.Now()
	waitMQTT(t, vm, mqttPort, bootWait)
	t.Logf("MQTT answers %v after starting QEMU (pid %d)", time.Since(start).Round(time.Millisecond), vm.PID())
	return vm
}

// waitMQTT waits up to d until an MQTT client connects through the host
// port forwarded to guest port p.
func waitMQTT(t *testing.T, vm *qemu.VM, p int, d time.Duration) {
	t.Helper()
	if err := tryMQTT(vm, p, d); err != nil {
		t.Fatal(err)
	}
}

// tryMQTT is waitMQTT that returns what went wrong.
func tryMQTT(vm *qemu.VM, p int, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + vm.Addr(p)).
			SetClientID("probe").SetConnectTimeout(3 * time.Second).SetAutoReconnect(false))
		tok := c.Connect()
		if tok.WaitTimeout(5*time.Second) && tok.Error() == nil {
			c.Disconnect(0)
			return nil
		}
		select {
		case <-vm.Done():
			return fmt.Errorf("QEMU exited while waiting for MQTT on guest port %d: %v", p, vm.Err())
		case <-time.After(time.Second):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no MQTT on guest port %d (%s) within %v", p, vm.Addr(p), d)
		}
	}
}

// serviceLog is the last lines edgebroker wrote, as gokrazy's status page
// for the service shows them (tags stripped), or why they are unavailable.
func serviceLog(addr string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/status?path=/user/edgebroker", nil)
	req.SetBasicAuth("gokrazy", password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	text := html.UnescapeString(regexp.MustCompile(`<[^>]*>`).ReplaceAllString(string(b), ""))
	var lines []string
	for _, l := range strings.Split(text, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return string(tail([]byte(strings.Join(lines, "\n")), 8<<10))
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// TestQEMU boots the image and checks it from the host: MQTT through a
// forwarded port; a USB stick with a bundle signed by the image's trusted
// key adds a port (the kernel mounts the stick's FAT32) and gets its report;
// the status page lists both; after a reboot, without the stick, the
// bundle's configuration and a state store key are still there; an update
// over gokrazy's HTTP protocol boots from the other root partition and
// keeps them.
func TestQEMU(t *testing.T) {
	if os.Getenv(envRun) != "1" {
		t.Skipf("boots images under QEMU for minutes: set %s=1 (make qemu-test)", envRun)
	}
	for _, tool := range []string{"qemu-system-aarch64", "timeout", "mtype", "mcopy", "mkfs.fat", "mksquashfs", "mkfs.ext4", "fsck.vfat"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: run tools/setup-test-deps", tool)
		}
	}
	dir := t.TempDir()
	key, err := bundle.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	trusted := key.Public().(ed25519.PublicKey)
	img := filepath.Join(dir, "a.img")
	const epochA, epochB = 1700000000, 1700086400
	buildImage(t, img, epochA, trusted)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	// First boot, with a stick holding a bundle signed by the trusted key
	// that adds a plain MQTT port on every interface.
	stick := usbtest.NewFAT32Image(t, map[string][]byte{
		bundle.FileName: packBundle(t, key, 1, map[string]string{"site.yaml": siteListener(bundlePort)}),
	})
	vm := boot(t, img, filepath.Join(dir, "boot1.log"), stick)
	pubSub(t, vm.Addr(mqttPort))
	start := time.Now()
	waitMQTT(t, vm, bundlePort, 60*time.Second)
	t.Logf("the bundle's port %d answers %v after the default port", bundlePort, time.Since(start).Round(time.Millisecond))
	pubSub(t, vm.Addr(bundlePort))
	wantStatus(t, ctx, vm.Addr(statusPort))
	// The report is written after the bundle is applied: wait for it
	// before the reboot (which ends edgebroker), reading the image
	// without writing.
	waitReport(t, vm, stick, 30*time.Second)
	fatMessages(t, vm.Log)
	ssSet(t, ctx, vm.Addr(mqttPort), "qemu-key", "kept across reboots")
	dev := &update.Device{BaseURL: "http://" + vm.Addr(httpPort), Password: password}
	wantBuilt(t, ctx, dev, epochA)

	// Reboot through gokrazy: SIGTERM to edgebroker, /perm unmounted.
	if err := dev.Reboot(ctx); err != nil {
		t.Fatal(err)
	}
	if err := vm.Wait(150 * time.Second); err != nil {
		t.Fatal(err)
	}
	// What the gateway wrote back to the stick, now that QEMU has let go
	// of it.
	wantReport(t, stick)

	// Second boot, without the stick: the bundle's configuration and the
	// state store key are still there.
	vm = boot(t, img, filepath.Join(dir, "boot2.log"), "")
	ssGet(t, ctx, vm.Addr(mqttPort), "qemu-key", "kept across reboots")
	waitMQTT(t, vm, bundlePort, 30*time.Second)
	pubSub(t, vm.Addr(bundlePort))

	// A power cut: QEMU is killed while a host client publishes QoS 1 to
	// a persistent session; after the next boot every acknowledged
	// message arrives.
	acked := powerCut(t, vm)
	vm = boot(t, img, filepath.Join(dir, "boot2b.log"), "")
	wantAcked(t, vm.Addr(mqttPort), acked)

	// Update to image B over gokrazy's HTTP protocol; it boots from p3.
	imgB := filepath.Join(dir, "b.img")
	buildImage(t, imgB, epochB, trusted)
	parts, err := update.ReadImage(imgB)
	if err != nil {
		t.Fatal(err)
	}
	dev = &update.Device{BaseURL: "http://" + vm.Addr(httpPort), Password: password}
	if err := update.Push(ctx, dev, parts, true, testWriter{t}); err != nil {
		t.Fatal(err)
	}
	if err := vm.Wait(150 * time.Second); err != nil {
		t.Fatal(err)
	}
	if cl := cmdline(t, img); !strings.Contains(cl, "root="+build.RootPARTUUID(build.DiskSignature("edgebroker-qemu"), 3)) {
		t.Fatalf("after the update, cmdline.txt = %q; want root on partition 3", cl)
	}
	// This boot has a blank stick (no partition table): the kernel sees it
	// as a disk, and edgebroker skips it.
	blank := filepath.Join(dir, "blank.img")
	if err := os.WriteFile(blank, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(blank, 64<<20); err != nil {
		t.Fatal(err)
	}
	vm = boot(t, img, filepath.Join(dir, "boot3.log"), blank)
	waitLog(t, vm, regexp.MustCompile(`\[sd[a-z]\] Attached SCSI (removable )?disk`), 30*time.Second)
	dev = &update.Device{BaseURL: "http://" + vm.Addr(httpPort), Password: password}
	wantBuilt(t, ctx, dev, epochB)
	ssGet(t, ctx, vm.Addr(mqttPort), "qemu-key", "kept across reboots")
	pubSub(t, vm.Addr(mqttPort))
	waitMQTT(t, vm, bundlePort, 30*time.Second)
}

// siteListener is the bundle's configuration: one plain MQTT port on every
// interface (LoadBalancer), so that QEMU's port forward reaches it.
func siteListener(port int) string {
	return fmt.Sprintf(`apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: site
spec:
  serviceType: LoadBalancer
  ports:
  - port: %d
    protocol: Mqtt
`, port)
}

// packBundle signs files (path → content) as a bundle with the given
// serial, valid for a day.
func packBundle(t *testing.T, key ed25519.PrivateKey, serial uint64, files map[string]string) []byte {
	t.Helper()
	fsys := fstest.MapFS{}
	for name, body := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(body), Mode: 0o644}
	}
	var b bytes.Buffer
	if _, err := bundle.Pack(&b, fsys, bundle.PackOptions{Key: key, Serial: serial, Expires: time.Now().Add(24 * time.Hour)}); err != nil {
		t.Fatalf("pack: %v", err)
	}
	return b.Bytes()
}

// wantStatus reads edgebroker's status.json once: it lists the bundle's
// listener serving and bundle serial 1 applied.
func wantStatus(t *testing.T, ctx context.Context, addr string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/status.json", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("status page: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var st appliance.Status
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /status.json: %s\n%s", resp.Status, b)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("status.json: %v\n%s", err, b)
	}
	serving := false
	for _, p := range st.Ports {
		serving = serving || p.Listener == "site" && p.Port == bundlePort && p.Serving
	}
	h := st.Provisioning.History
	if !serving || st.Provisioning.Serial != 1 || len(h) == 0 || !h[0].Applied || h[0].Serial != 1 || h[0].KeyID == "" {
		t.Fatalf("status.json: want listener site port %d serving and bundle serial 1 applied; got\n%s", bundlePort, b)
	}
}

// stickFile reads name from the first partition of the stick image, in
// user space and without writing.
func stickFile(img, name string) ([]byte, error) {
	med, err := new(usbtest.Mounter).Mount(usbtest.ImageDevice(img))
	if err != nil {
		return nil, err
	}
	defer med.Close()
	return fs.ReadFile(med.FS(), name)
}

// waitReport waits until the stick image (attached to the running VM)
// holds a report naming the applied bundle. The guest writes it, syncs and
// unmounts; reads in between may see a half-written directory, so errors
// are retried until d has passed.
func waitReport(t *testing.T, vm *qemu.VM, img string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	var last string
	for {
		b, err := stickFile(img, appliance.ReportFile)
		if err == nil && bytes.Contains(b, []byte("APPLIED")) {
			return
		}
		last = fmt.Sprintf("%v %q", err, b)
		if time.Now().After(deadline) {
			t.Fatalf("no report on the stick within %v: %s", d, last)
		}
		select {
		case <-vm.Done():
			t.Fatalf("QEMU exited while waiting for the report: %v", vm.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// wantReport checks what the gateway wrote to the stick, after QEMU has
// exited: the report (text and JSON) and the CA certificates, on a FAT32
// file system fsck.vfat finds clean; the bundle is still there.
func wantReport(t *testing.T, img string) {
	t.Helper()
	txt, err := stickFile(img, appliance.ReportFile)
	if err != nil {
		t.Fatalf("report on the stick: %v", err)
	}
	t.Logf("%s on the stick:\n%s", appliance.ReportFile, txt)
	for _, want := range []string{"APPLIED: bundle serial 1", fmt.Sprintf("site/%d: serving", bundlePort), "running: bundle serial 1"} {
		if !bytes.Contains(txt, []byte(want)) {
			t.Errorf("%s lacks %q", appliance.ReportFile, want)
		}
	}
	js, err := stickFile(img, appliance.ReportJSONFile)
	var rep appliance.Report
	if err == nil {
		err = json.Unmarshal(js, &rep)
	}
	if err != nil || !rep.Result.Applied || rep.Result.Serial != 1 {
		t.Errorf("%s: applied %v, serial %d, %v", appliance.ReportJSONFile, rep.Result.Applied, rep.Result.Serial, err)
	}
	// The bundle's port is plain: no certificate from an on-device CA, so
	// no CA file (a stale one would mislead).
	if rep.CA {
		t.Errorf("%s says it brings %s; no port uses an on-device CA", appliance.ReportJSONFile, appliance.ReportCAFile)
	}
	if _, err := stickFile(img, appliance.ReportCAFile); err == nil {
		t.Errorf("%s on the stick, though no port uses an on-device CA", appliance.ReportCAFile)
	}
	if _, err := stickFile(img, bundle.FileName); err != nil {
		t.Errorf("the bundle is gone from the stick: %v", err)
	}
	fsckStick(t, img)
}

// fsckStick checks the stick's FAT32 read-only: the guest's kernel wrote it
// and must have left it clean (fsck.vfat has no offset option, so the
// partition is copied out first).
func fsckStick(t *testing.T, img string) {
	t.Helper()
	src, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	part := filepath.Join(t.TempDir(), "stick-part1.img")
	dst, err := os.Create(part)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(dst, io.NewSectionReader(src, usbtest.PartitionStart*512, usbtest.ImageSize-usbtest.PartitionStart*512))
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("fsck.vfat", "-n", part).CombinedOutput(); err != nil {
		t.Errorf("fsck.vfat -n on the stick after the gateway wrote to it: %v\n%s", err, out)
	}
}

// fatMessages fails the test on the kernel's FAT errors in the serial
// console (a mount option the kernel lacks, a corrupt file system) and
// logs its other messages about the stick.
func fatMessages(t *testing.T, log string) {
	t.Helper()
	b, _ := os.ReadFile(log)
	stick := regexp.MustCompile(`FAT-fs|vfat|\bsd[a-z]|usb-storage`)
	for _, l := range strings.Split(string(b), "\n") {
		if !stick.MatchString(l) {
			continue
		}
		l = strings.TrimSpace(l)
		if strings.Contains(strings.ToLower(l), "error") || strings.Contains(l, "Unrecognized") || strings.Contains(l, "corrupt") {
			t.Errorf("serial console: %s", l)
		} else {
			t.Logf("serial console: %s", l)
		}
	}
}

// waitLog waits until the serial console shows a line matching re.
func waitLog(t *testing.T, vm *qemu.VM, re *regexp.Regexp, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		b, _ := os.ReadFile(vm.Log)
		if re.Match(b) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("serial console shows no %q within %v", re, d)
		}
		select {
		case <-vm.Done():
			t.Fatalf("QEMU exited while waiting for %q: %v", re, vm.Err())
		case <-tick.C:
		}
	}
}

// pubSub subscribes and publishes through the broker in the VM.
func pubSub(t *testing.T, addr string) {
	t.Helper()
	opts := func(id string) *mqtt.ClientOptions {
		return mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).
			SetConnectTimeout(5 * time.Second).SetAutoReconnect(false)
	}
	wait := func(tok mqtt.Token, what string) {
		t.Helper()
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("%s: %v (or no answer within 10 s)", what, tok.Error())
		}
	}
	sub := mqtt.NewClient(opts("qemu-sub"))
	wait(sub.Connect(), "subscriber connect")
	defer sub.Disconnect(0)
	got := make(chan string, 1)
	wait(sub.Subscribe("qemu/test/#", 1, func(_ mqtt.Client, m mqtt.Message) {
		select {
		case got <- m.Topic() + " " + string(m.Payload()):
		default:
		}
	}), "subscribe")
	pub := mqtt.NewClient(opts("qemu-pub"))
	wait(pub.Connect(), "publisher connect")
	defer pub.Disconnect(0)
	wait(pub.Publish("qemu/test/hello", 1, false, "from the host"), "publish")
	select {
	case m := <-got:
		if m != "qemu/test/hello from the host" {
			t.Fatalf("received %q", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("published message not delivered within 10 s")
	}
}

func ssDial(t *testing.T, ctx context.Context, addr string) *ssclient.Client {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	p, _ := strconv.Atoi(port)
	cl, err := ssclient.Dial(ctx, ssclient.Config{Host: host, Port: uint16(p), ConnectTimeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("state store client: %v", err)
	}
	return cl
}

func ssSet(t *testing.T, ctx context.Context, addr, key, val string) {
	t.Helper()
	cl := ssDial(t, ctx, addr)
	defer cl.Close()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := cl.Store.Set(cctx, []byte(key), []byte(val)); err != nil {
		t.Fatalf("state store SET %s: %v", key, err)
	}
}

func ssGet(t *testing.T, ctx context.Context, addr, key, want string) {
	t.Helper()
	cl := ssDial(t, ctx, addr)
	defer cl.Close()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res, err := cl.Store.Get(cctx, []byte(key))
	if err != nil {
		t.Fatalf("state store GET %s: %v", key, err)
	}
	if string(res.Value) != want {
		t.Fatalf("state store %s = %q; want %q", key, res.Value, want)
	}
}

// wantBuilt checks gokrazy's status page names the build timestamp of the
// running root file system.
func wantBuilt(t *testing.T, ctx context.Context, dev *update.Device, epoch int64) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, dev.BaseURL+"/", nil)
	req.SetBasicAuth("gokrazy", dev.Password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	want := time.Unix(epoch, 0).UTC().Format(time.RFC3339)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), want) {
		t.Fatalf("status page: %s, want it to name build %s", resp.Status, want)
	}
}

func cmdline(t *testing.T, img string) string {
	t.Helper()
	l := build.LayoutFor(build.DefaultSize)
	cmd := exec.Command("mtype", "-i", fmt.Sprintf("%s@@%d", img, l.Start[build.PartBoot]), "::/cmdline.txt")
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestStartErrors(t *testing.T) {
	if _, err := qemu.Start(context.Background(), qemu.Options{Image: "x.img"}); err == nil || !strings.Contains(err.Error(), "required") {
		t.Errorf("no log: %v", err)
	}
	_, err := qemu.Start(context.Background(), qemu.Options{Image: filepath.Join(t.TempDir(), "missing.img"), Log: filepath.Join(t.TempDir(), "log")})
	if err == nil || !strings.Contains(err.Error(), "missing.img") {
		t.Errorf("missing image: %v", err)
	}
}

// powerCut subscribes a persistent session (3.1.1, clean session false),
// lets it go offline, publishes numbered QoS 1 messages to it, kills QEMU
// while publishing, and returns the payloads that were acknowledged.
func powerCut(t *testing.T, vm *qemu.VM) map[string]bool {
	t.Helper()
	addr := vm.Addr(mqttPort)
	opts := func(id string, clean bool) *mqtt.ClientOptions {
		return mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetCleanSession(clean).
			SetConnectTimeout(5 * time.Second).SetAutoReconnect(false)
	}
	sub := mqtt.NewClient(opts("qemu-keeper", false))
	if tok := sub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber connect: %v", tok.Error())
	}
	if tok := sub.Subscribe("qemu/cut/#", 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	sub.Disconnect(100)
	pub := mqtt.NewClient(opts("qemu-cutter", true))
	if tok := pub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publisher connect: %v", tok.Error())
	}
	defer pub.Disconnect(0)
	var mu sync.Mutex
	acked := map[string]bool{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			p := strconv.Itoa(i)
			tok := pub.Publish("qemu/cut/n", 1, false, p)
			if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				return
			}
			mu.Lock()
			acked[p] = true
			mu.Unlock()
		}
	}()
	testenv.Eventually(t, 60*time.Second, "200 acknowledged messages", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 200
	})
	vm.PowerCut()
	pub.Disconnect(0)
	<-done
	mu.Lock()
	defer mu.Unlock()
	t.Logf("power cut after %d acknowledged messages", len(acked))
	return maps.Clone(acked)
}

// wantAcked reconnects the persistent session and requires every
// acknowledged message.
func wantAcked(t *testing.T, addr string, acked map[string]bool) {
	t.Helper()
	got := make(chan string, len(acked)+1000)
	sub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("qemu-keeper").
		SetCleanSession(false).SetConnectTimeout(5 * time.Second).SetAutoReconnect(false).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { got <- string(m.Payload()) }))
	if tok := sub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber connect after the cut: %v", tok.Error())
	}
	defer sub.Disconnect(0)
	missing := maps.Clone(acked)
	deadline := time.After(60 * time.Second)
	for len(missing) > 0 {
		select {
		case p := <-got:
			delete(missing, p)
		case <-deadline:
			t.Fatalf("after the power cut, %d of %d acknowledged messages did not arrive", len(missing), len(acked))
		}
	}
}
