package qemu_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"edgebroker/image/build"
	"edgebroker/image/qemu"
	"edgebroker/image/update"
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

func buildImage(t *testing.T, out string, epoch int64) *build.Result {
	t.Helper()
	start := time.Now()
	res, err := build.Build(context.Background(), build.Config{
		Target:   build.TargetQEMU,
		MainDir:  mainDir(),
		CacheDir: os.Getenv(envCache),
		Hostname: "edgebroker-qemu",
		Password: password,
		// A plain anonymous MQTT port on every interface, for the test
		// (instead of the default loopback port, which has the same number).
		Flags:    []string{"-listen", "0.0.0.0:1883", "-loopback", "off"},
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
// forwarded port. The serial log is printed when the test fails.
func boot(t *testing.T, img, log, usbStick string) *qemu.VM {
	t.Helper()
	vm, err := qemu.Start(context.Background(), qemu.Options{
		Image:    img,
		Forward:  map[int]int{1883: 0, 80: 0},
		USBStick: usbStick,
		Log:      log,
		Timeout:  10 * time.Minute,
	})
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
	start := time.Now()
	deadline := start.Add(bootWait)
	for {
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + vm.Addr(1883)).
			SetClientID("probe").SetConnectTimeout(3 * time.Second).SetAutoReconnect(false))
		tok := c.Connect()
		if tok.WaitTimeout(5*time.Second) && tok.Error() == nil {
			c.Disconnect(0)
			break
		}
		select {
		case <-vm.Done():
			t.Fatalf("QEMU exited during boot: %v", vm.Err())
		case <-time.After(time.Second):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no MQTT on %s within %v of starting QEMU", vm.Addr(1883), bootWait)
		}
	}
	t.Logf("MQTT answers %v after starting QEMU (pid %d)", time.Since(start).Round(time.Millisecond), vm.PID())
	return vm
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func TestQEMU(t *testing.T) {
	if os.Getenv(envRun) != "1" {
		t.Skipf("boots images under QEMU for minutes: set %s=1 (make qemu-test)", envRun)
	}
	for _, tool := range []string{"qemu-system-aarch64", "timeout", "mtype", "mcopy", "mkfs.fat", "mksquashfs", "mkfs.ext4"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: run tools/setup-test-deps", tool)
		}
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "a.img")
	const epochA, epochB = 1700000000, 1700086400
	buildImage(t, img, epochA)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	vm := boot(t, img, filepath.Join(dir, "boot1.log"), "")
	pubSub(t, vm.Addr(1883))
	ssSet(t, ctx, vm.Addr(1883), "qemu-key", "kept across reboots")
	dev := &update.Device{BaseURL: "http://" + vm.Addr(80), Password: password}
	wantBuilt(t, ctx, dev, epochA)

	// Reboot through gokrazy: SIGTERM to edgebroker, /perm unmounted.
	if err := dev.Reboot(ctx); err != nil {
		t.Fatal(err)
	}
	if err := vm.Wait(150 * time.Second); err != nil {
		t.Fatal(err)
	}
	vm = boot(t, img, filepath.Join(dir, "boot2.log"), "")
	ssGet(t, ctx, vm.Addr(1883), "qemu-key", "kept across reboots")

	// Update to image B over gokrazy's HTTP protocol; it boots from p3.
	imgB := filepath.Join(dir, "b.img")
	buildImage(t, imgB, epochB)
	parts, err := update.ReadImage(imgB)
	if err != nil {
		t.Fatal(err)
	}
	dev = &update.Device{BaseURL: "http://" + vm.Addr(80), Password: password}
	if err := update.Push(ctx, dev, parts, true, testWriter{t}); err != nil {
		t.Fatal(err)
	}
	if err := vm.Wait(150 * time.Second); err != nil {
		t.Fatal(err)
	}
	if cl := cmdline(t, img); !strings.Contains(cl, "root="+build.RootPARTUUID(build.DiskSignature("edgebroker-qemu"), 3)) {
		t.Fatalf("after the update, cmdline.txt = %q; want root on partition 3", cl)
	}
	// This boot also has a USB stick: the kernel must see it as a disk.
	stick := filepath.Join(dir, "stick.img")
	if err := os.WriteFile(stick, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(stick, 64<<20); err != nil {
		t.Fatal(err)
	}
	vm = boot(t, img, filepath.Join(dir, "boot3.log"), stick)
	waitLog(t, vm, regexp.MustCompile(`\[sd[a-z]\] Attached SCSI (removable )?disk`), 30*time.Second)
	dev = &update.Device{BaseURL: "http://" + vm.Addr(80), Password: password}
	wantBuilt(t, ctx, dev, epochB)
	ssGet(t, ctx, vm.Addr(1883), "qemu-key", "kept across reboots")
	pubSub(t, vm.Addr(1883))
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
