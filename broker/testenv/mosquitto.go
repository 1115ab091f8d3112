package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Mosquitto is a real mosquitto broker on a loopback port, for tests that
// need an upstream or reference broker. It keeps its sessions in a
// folder of the test (persistence true) across Stop and Start.
type Mosquitto struct {
	Addr string // host:port it listens on

	t    testing.TB
	bin  string
	conf string
	cmd  *exec.Cmd
}

// StartMosquitto starts mosquitto (NeedTool) with anonymous access and
// persistence in a temporary folder; it is stopped when the test ends.
func StartMosquitto(t testing.TB) *Mosquitto {
	t.Helper()
	return startMosquitto(t, nil)
}

// StartMosquittoConf is StartMosquitto with more configuration lines
// (a bridge's connection block, say) after its listener.
func StartMosquittoConf(t testing.TB, extra string) *Mosquitto {
	t.Helper()
	return startMosquitto(t, func(string) string { return extra })
}

// StartMosquittoTLS is StartMosquitto with a TLS listener that requires a
// client certificate: caPEM verifies clients, certPEM and keyPEM are the
// server's (for 127.0.0.1).
func StartMosquittoTLS(t testing.TB, caPEM, certPEM, keyPEM []byte) *Mosquitto {
	t.Helper()
	return startMosquitto(t, func(dir string) string {
		files := map[string][]byte{"ca.pem": caPEM, "cert.pem": certPEM, "key.pem": keyPEM}
		for name, b := range files {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return fmt.Sprintf("cafile %[1]s/ca.pem\ncertfile %[1]s/cert.pem\nkeyfile %[1]s/key.pem\nrequire_certificate true\n", dir)
	})
}

// startMosquitto starts mosquitto; listener, if set, gives more lines for
// its listener (written in dir).
func startMosquitto(t testing.TB, listener func(dir string) string) *Mosquitto {
	t.Helper()
	bin := NeedTool(t, "mosquitto")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := t.TempDir()
	conf := filepath.Join(dir, "mosquitto.conf")
	// user root: started as root, mosquitto would otherwise switch to
	// the user mosquitto, which cannot write the test's folder.
	text := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/\nuser root\nmax_queued_messages 100000\n", port, dir)
	if listener != nil {
		text += listener(dir)
	}
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	m := &Mosquitto{Addr: fmt.Sprintf("127.0.0.1:%d", port), t: t, bin: bin, conf: conf}
	m.Start()
	t.Cleanup(m.Stop)
	return m
}

// Start starts mosquitto (again) and waits until it accepts connections.
func (m *Mosquitto) Start() {
	m.t.Helper()
	m.cmd = exec.Command(m.bin, "-c", m.conf)
	if err := m.cmd.Start(); err != nil {
		m.t.Fatal(err)
	}
	Eventually(m.t, 10*time.Second, "mosquitto to listen", func() bool {
		c, err := net.Dial("tcp", m.Addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// Stop ends mosquitto with SIGTERM: it saves its sessions first.
func (m *Mosquitto) Stop() {
	if m.cmd != nil && m.cmd.Process != nil {
		m.cmd.Process.Signal(syscall.SIGTERM)
		m.cmd.Wait()
		m.cmd = nil
	}
}
