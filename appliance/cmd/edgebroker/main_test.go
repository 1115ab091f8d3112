package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"edgebroker/broker/testenv"
)

// runBinary builds and starts bin/edgebroker with a -listen port and
// returns that port's address and the process.
func runBinary(t *testing.T, args ...string) (addr string, cmd *exec.Cmd, exited chan error) {
	t.Helper()
	bin := testBinary(t)
	args = append([]string{"-data", filepath.Join(t.TempDir(), "data"), "-loopback", "off", "-port-map", "18883=0", "-listen", "127.0.0.1:0"}, args...)
	cmd = exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited = make(chan error, 1)
	found := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`serving MQTT" addr=(\S+) port=-listen`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				select { // the first port; never block the binary's stderr
				case found <- m[1]:
				default:
				}
			}
		}
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() { cmd.Process.Kill() })
	select {
	case addr = <-found:
	case err := <-exited:
		t.Fatalf("edgebroker exited: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("edgebroker did not report its port")
	}
	return addr, cmd, exited
}

// TestMosquittoClients replays the README's commands: mosquitto_pub to the
// binary is delivered to mosquitto_sub for 3.1.1 and 5.0, QoS 0, 1 and 2,
// and retained messages reach a later subscriber.
func TestMosquittoClients(t *testing.T) {
	pub, sub, stdbuf := testenv.NeedTool(t, "mosquitto_pub"), testenv.NeedTool(t, "mosquitto_sub"), testenv.NeedTool(t, "stdbuf")
	addr, cmd, exited := runBinary(t)
	host, port := splitHostPort(t, addr)
	mqtt := func(ctx context.Context, tool string, args ...string) *exec.Cmd {
		return exec.CommandContext(ctx, tool, append([]string{"-h", host, "-p", port}, args...)...)
	}
	for _, v := range []string{"mqttv311", "mqttv5"} {
		for _, q := range []string{"0", "1", "2"} {
			t.Run(v+"/qos"+q, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				topic := fmt.Sprintf("test/%s/%s", v, q)
				// -C 1 exits after one message; the sub's "subscribed" output
				// (-d) tells us when to publish.
				// stdbuf: line-buffered stdout, so the SUBACK line arrives now.
				s := exec.CommandContext(ctx, stdbuf, "-oL", sub, "-h", host, "-p", port, "-V", v, "-q", q, "-t", topic, "-C", "1", "-d")
				out, _ := s.StdoutPipe()
				if err := s.Start(); err != nil {
					t.Fatal(err)
				}
				sc := bufio.NewScanner(out)
				for sc.Scan() && !regexp.MustCompile(`SUBACK`).MatchString(sc.Text()) {
				}
				if b, err := mqtt(ctx, pub, "-V", v, "-q", q, "-t", topic, "-m", "hi "+v).CombinedOutput(); err != nil {
					t.Fatalf("mosquitto_pub: %v\n%s", err, b)
				}
				want, got, gotQoS := "hi "+v, false, false
				var lines []string
				for sc.Scan() {
					lines = append(lines, sc.Text())
					got = got || sc.Text() == want // the payload on a line of its own
					gotQoS = gotQoS || strings.Contains(sc.Text(), "received PUBLISH (d0, q"+q+",")
				}
				if err := s.Wait(); err != nil {
					t.Fatalf("mosquitto_sub: %v", err)
				}
				if !got {
					t.Errorf("mosquitto_sub did not print %q; it printed %q", want, lines)
				}
				if !gotQoS {
					t.Errorf("no PUBLISH at QoS %s in %q", q, lines)
				}
			})
		}
	}
	t.Run("retained", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if b, err := mqtt(ctx, pub, "-q", "1", "-r", "-t", "test/retained", "-m", "kept").CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_pub -r: %v\n%s", err, b)
		}
		for _, v := range []string{"mqttv311", "mqttv5"} {
			b, err := mqtt(ctx, sub, "-V", v, "-t", "test/#", "-C", "1", "-F", "%t %p %r").Output()
			if err != nil {
				t.Fatalf("mosquitto_sub: %v", err)
			}
			if got, want := string(b), "test/retained kept 1\n"; got != want {
				t.Errorf("%s: got %q, want %q", v, got, want)
			}
		}
	})

	// SIGTERM: a clean exit within the shutdown budget.
	t0 := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
		if d := time.Since(t0); d > 10*time.Second {
			t.Errorf("shutdown took %v", d)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no exit within 15 s of SIGTERM")
	}
}

func TestBadConfigExitsNonZero(t *testing.T) {
	bin := testBinary(t)
	out, err := exec.Command(bin, "-data", t.TempDir(), "-loopback", "off", "-port-map", "18883=0", "-listen", "bad address").CombinedOutput()
	if err == nil {
		t.Fatalf("exit 0 with a bad -listen; output:\n%s", out)
	}
	if !regexp.MustCompile(`bad address`).Match(out) {
		t.Errorf("stderr does not name the bad address:\n%s", out)
	}
}

// TestBadConfigFileExitsNonZero: a -config that does not validate makes
// the binary exit non-zero before serving, with every error on stderr
// naming file:line.
func TestBadConfigFileExitsNonZero(t *testing.T) {
	bin := testBinary(t)
	dir := t.TempDir()
	bad := `apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: lb
spec:
  serviceType: LoadBalancer
  ports:
  - port: 70000
    authorizationRef: nobody
`
	if err := os.WriteFile(filepath.Join(dir, "listeners.yaml"), []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-data", t.TempDir(), "-config", dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ee := (*exec.ExitError)(nil); !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("got %v, want a non-zero exit; stderr:\n%s", err, stderr.String())
	}
	for _, want := range []string{
		"listeners.yaml:8: BrokerListener/lb: spec.ports[0].port: 70000 is not a port number",
		"listeners.yaml:9: BrokerListener/lb: spec.ports[0].authorizationRef: authorization needs authentication",
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr does not contain %q:\n%s", want, stderr.String())
		}
	}
	if strings.Contains(stderr.String(), "serving MQTT") {
		t.Errorf("served before rejecting the configuration:\n%s", stderr.String())
	}
}

func splitHostPort(t *testing.T, addr string) (string, string) {
	re := regexp.MustCompile(`^(.*):(\d+)$`)
	m := re.FindStringSubmatch(addr)
	if m == nil {
		t.Fatalf("bad address %q", addr)
	}
	return m[1], m[2]
}

// TestSIGHUPReloads: SIGHUP re-reads -config; a port added to the file
// starts answering without a restart.
func TestSIGHUPReloads(t *testing.T) {
	p1, p2 := testenv.FreePort(t), testenv.FreePort(t)
	dir := t.TempDir()
	write := func(ports ...int) {
		y := "apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: BrokerListener\nmetadata:\n  name: local\nspec:\n  serviceType: ClusterIp\n  ports:\n"
		for _, p := range ports {
			y += fmt.Sprintf("  - port: %d\n", p)
		}
		if err := os.WriteFile(filepath.Join(dir, "listener.yaml"), []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(p1)
	_, cmd, _ := runBinary(t, "-config", dir)
	addr2 := fmt.Sprintf("127.0.0.1:%d", p2)
	if c, err := net.Dial("tcp", addr2); err == nil {
		c.Close()
		t.Fatalf("port %d answers before it is configured", p2)
	}
	write(p1, p2)
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// Polling a port: there is no event to await.
	if err := testenv.Poll(10*time.Second, nil, func() error {
		c, err := net.Dial("tcp", addr2)
		if err == nil {
			c.Close()
		}
		return err
	}); err != nil {
		t.Fatalf("port %d not served 10 s after SIGHUP: %v", p2, err)
	}
}
