package main

import (
	"bufio"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"edgebroker/broker/testenv"
	"edgebroker/provisioning/certs/certstest"
)

// startGateway builds and runs the real edgebroker binary on data with
// the status endpoint over TLS on loopback (-status-tls), trusting the
// keys in trust, and returns the status endpoint's address; SIGTERM
// stops it when the test ends.
func startGateway(t *testing.T, data, trust string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "edgebroker")
	if out, err := exec.Command("go", "build", "-o", bin, "edgebroker/appliance/cmd/edgebroker").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-data", data, "-trust", trust, "-loopback", "off", "-port-map", "18883=0",
		"-status", "127.0.0.1:0", "-status-tls")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	found, exited := make(chan string, 1), make(chan error, 1)
	var log strings.Builder // owned by the scanning goroutine until exited
	go func() {
		re := regexp.MustCompile(`serving status" addr=(\S+) tls=true`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("edgebroker: %v\n%s", err, log.String())
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Error("edgebroker did not stop on SIGTERM")
		}
	})
	select {
	case addr := <-found:
		return addr
	case err := <-exited:
		exited <- err
		t.Fatalf("edgebroker exited: %v\n%s", err, log.String())
	case <-time.After(30 * time.Second):
		t.Fatal("edgebroker did not report its status endpoint")
	}
	return ""
}

// TestPush: edgebundle push uploads a bundle packed by edgebundle pack to
// a gateway (the edgebroker binary, -status-tls on loopback) and prints
// its report: the gateway is authenticated by -cacert (its DATA/ca.crt)
// or by -pin (the SHA-256 of its CA certificate, as openssl prints it),
// never by nothing (the system's roots do not know the device's CA) and
// never by a wrong pin; http:// is refused before anything is sent; a
// bundle the gateway refuses (a replay) exits 1 with the reasons.
// README's push commands work as written.
func TestPush(t *testing.T) {
	dir := t.TempDir()
	keyName := filepath.Join(dir, "site")
	expect(t, exitOK, "key id", "keygen", "-o", keyName)
	data := t.TempDir()
	addr := startGateway(t, data, keyName+".pub")
	url := "https://" + addr
	// The CA as a client gets it before the first bundle (DATA/ca.crt, a
	// stick's edgebroker-ca.crt); a bundle without Automatic TLS removes
	// DATA/ca.crt, and the status endpoint keeps its certificate.
	caPEM, err := os.ReadFile(filepath.Join(data, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(caFile, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(caPEM)
	sum := sha256.Sum256(blk.Bytes)
	var pin []string
	for _, b := range sum {
		pin = append(pin, fmt.Sprintf("%02X", b))
	}

	pack := func(serial int) (string, int) {
		port := testenv.FreePort(t)
		cfg := filepath.Join(dir, fmt.Sprintf("cfg%d", serial))
		writeTree(t, cfg, map[string]string{"site.yaml": fmt.Sprintf(`apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata: {name: site}
spec:
  serviceType: ClusterIp
  ports:
  - port: %d
`, port)})
		out := filepath.Join(dir, fmt.Sprintf("b%d.bundle", serial))
		expect(t, exitOK, "wrote", "pack", "-key", keyName+".key", "-serial", fmt.Sprint(serial), "-o", out, cfg)
		return out, port
	}
	b1, p1 := pack(1)

	// Refused before a request is made (bundle 1 applies after them).
	expect(t, exitUsage, "never sent in the clear", "push", "-cacert", caFile, "http://"+addr, b1)
	expect(t, exitFail, "certificate signed by unknown authority", "push", url, b1)
	expect(t, exitFail, "presents no certificate with SHA-256", "push", "-pin", strings.Repeat("ab", 32), url, b1)

	out := expect(t, exitOK, "APPLIED: bundle serial 1", "push", "-cacert", caFile, url, b1)
	if !strings.Contains(out, fmt.Sprintf("site/%d: serving", p1)) {
		t.Errorf("report of bundle 1:\n%s", out)
	}
	out = expect(t, exitFail, "REJECTED: nothing was changed", "push", "-cacert", caFile, url, b1)
	if !strings.Contains(out, "replayed serial: serial 1 is not above 1") || !strings.Contains(out, "the gateway did not apply the bundle: 422") {
		t.Errorf("replayed bundle 1:\n%s", out)
	}

	b2, _ := pack(2)
	out = expect(t, exitOK, `"applied": true`, "push", "-pin", strings.Join(pin, ":"), "-json", url, b2)
	if !strings.Contains(out, `"serial": 2`) || !strings.Contains(out, `"running": "bundle serial 2"`) {
		t.Errorf("JSON report of bundle 2:\n%s", out)
	}

	// README's push commands, each with a new bundle, this gateway and
	// its CA.
	serial, ran := 3, 0
	for _, line := range strings.Split(testenv.ReadmeBlock(t, "### Over the LAN", "```sh"), "\n") {
		line, _, _ = strings.Cut(line, "#")
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "bin/edgebundle" || f[1] != "push" {
			continue
		}
		b, _ := pack(serial)
		args := f[1:]
		for i, arg := range args {
			switch {
			case arg == "edgebroker-ca.crt":
				args[i] = caFile
			case arg == "edgebroker.bundle":
				args[i] = b
			case strings.HasPrefix(arg, "https://"):
				args[i] = url
			case i > 0 && args[i-1] == "-pin":
				args[i] = strings.Join(pin, ":")
			}
		}
		expect(t, exitOK, fmt.Sprintf("APPLIED: bundle serial %d", serial), args...)
		serial++
		ran++
	}
	if ran != 2 {
		t.Errorf("README's LAN block: %d push commands, want 2 (-cacert and -pin)", ran)
	}
}

// TestPushPinNeedsChain: a server presenting the pinned CA's certificate
// (public: anyone can present it) after a leaf that CA did not issue is
// refused before the bundle is sent; the same server with a leaf the CA
// issued is accepted, and so is a pinned leaf.
func TestPushPinNeedsChain(t *testing.T) {
	ca := certstest.Root("device CA", certstest.EC256)
	good := ca.Server("gw", nil, []net.IP{net.IPv4(127, 0, 0, 1)}, certstest.EC256)
	evil := certstest.Root("evil", certstest.EC256).Server("gw", nil, []net.IP{net.IPv4(127, 0, 0, 1)}, certstest.EC256)
	var received atomic.Int32
	serve := func(leaf *certstest.Cert) string {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			received.Add(1)
			io.Copy(io.Discard, r.Body)
			fmt.Fprintln(w, "APPLIED: test")
		}))
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leaf.Cert.Raw, ca.Cert.Raw}, PrivateKey: leaf.Key}}}
		srv.StartTLS()
		t.Cleanup(srv.Close)
		return srv.URL
	}
	file := filepath.Join(t.TempDir(), "b.bundle")
	if err := os.WriteFile(file, []byte("bundle bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	hash := func(c *certstest.Cert) string { s := sha256.Sum256(c.Cert.Raw); return hex.EncodeToString(s[:]) }

	expect(t, exitFail, "does not chain to the pinned one", "push", "-pin", hash(ca), serve(evil), file)
	if n := received.Load(); n != 0 {
		t.Fatalf("%d requests reached the server with a foreign leaf", n)
	}
	expect(t, exitOK, "APPLIED: test", "push", "-pin", hash(ca), serve(good), file)
	expect(t, exitOK, "APPLIED: test", "push", "-pin", hash(evil), serve(evil), file)
}
