package appliance

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"edgebroker/provisioning/usb"
)

// goroutineIDs returns the stacks of every goroutine running code of this
// module, by goroutine id. Goroutines of the test framework and the
// runtime are not counted (no frame of theirs names edgebroker).
func goroutineIDs() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[string]string{}
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		head, _, _ := bytes.Cut(g, []byte(" ["))
		if bytes.Contains(g, []byte("edgebroker/")) {
			out[string(head)] = string(g)
		}
	}
	return out
}

// checkNoGoroutineLeft fails t if goroutines not in before (other than
// the caller's own) are still running once a bounded wait for them to
// finish has passed.
func checkNoGoroutineLeft(t *testing.T, before map[string]string) {
	t.Helper()
	self := func() string {
		b := make([]byte, 64)
		b = b[:runtime.Stack(b, false)]
		head, _, _ := bytes.Cut(b, []byte(" ["))
		return string(head)
	}()
	var left []string
	for deadline := time.Now().Add(10 * time.Second); ; {
		left = left[:0]
		for id, st := range goroutineIDs() {
			if _, old := before[id]; !old && id != self {
				left = append(left, st)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // polling the runtime: no event tells when a goroutine ended
	}
	t.Errorf("%d goroutines left behind:\n\n%s", len(left), strings.Join(left, "\n\n"))
}

// busyAddr returns a loopback address something else listens on for the
// test's duration.
func busyAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

// freeAddr returns a loopback address nothing listens on (just now).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// leakConfig runs the embedded default with its plain loopback port on
// loopback (returned), its TLS port on any free port, a -listen port, the
// status endpoint and -acme-tls port on loopback, and the USB watcher.
func leakConfig(t *testing.T) (Config, string) {
	loop := freeAddr(t)
	return Config{
		DataDir:      filepath.Join(t.TempDir(), "data"),
		Loopback:     loop,
		PortMap:      map[int]int{18883: 0},
		Listen:       []string{"127.0.0.1:0"},
		StatusAddr:   "127.0.0.1:0",
		StatusTLS:    true, // the TLS server has more to stop than the plain one
		ACMETLSAddr:  "127.0.0.1:0",
		ACMEHTTPAddr: "127.0.0.1:0",
		SysInterval:  time.Hour,
		USB:          &USBConfig{Root: t.TempDir(), Uevents: make(chan usb.Uevent)}, // no stick: the watcher and LED run idle
		BoardRoot:    t.TempDir(),
		Logger:       slog.New(slog.NewTextHandler(t.Output(), nil)),
	}, loop
}

// TestRunLeavesNoGoroutine: Run returning, after a shutdown or with an
// error from any start step that can fail once something runs, leaves no
// goroutine of the appliance behind and no port bound.
func TestRunLeavesNoGoroutine(t *testing.T) {
	t.Run("shutdown", func(t *testing.T) {
		cfg, loop := leakConfig(t)
		before := goroutineIDs()
		ctx, cancel := context.WithCancel(t.Context())
		started := make(chan struct{})
		cfg.Started = func(*Appliance) { close(started) }
		done := make(chan error, 1)
		go func() { done <- Run(ctx, cfg) }()
		select {
		case <-started:
		case err := <-done:
			t.Fatalf("Run: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("appliance did not start")
		}
		if c, err := net.DialTimeout("tcp", loop, 5*time.Second); err != nil {
			t.Fatalf("loopback port not served: %v", err)
		} else {
			c.Close()
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Run after shutdown: %v", err)
			}
		case <-time.After(ShutdownTimeout + 10*time.Second):
			t.Fatal("Run did not return after cancel")
		}
		checkNoGoroutineLeft(t, before)
		refused(t, loop)
	})
	fails := []struct {
		name  string
		setup func(t *testing.T, cfg *Config)
	}{
		{"listen port taken", func(t *testing.T, cfg *Config) { cfg.Listen = []string{busyAddr(t)} }},
		{"status port taken", func(t *testing.T, cfg *Config) { cfg.StatusAddr = busyAddr(t) }},
		{"acme-tls port taken", func(t *testing.T, cfg *Config) { cfg.ACMETLSAddr = busyAddr(t) }},
		{"configured port taken", func(t *testing.T, cfg *Config) {
			addr := busyAddr(t)
			_, port, _ := net.SplitHostPort(addr)
			var n int
			for _, c := range port {
				n = n*10 + int(c-'0')
			}
			cfg.PortMap = map[int]int{18883: n}
		}},
		{"state store unusable", func(t *testing.T, cfg *Config) { blockDir(t, cfg.DataDir, StateStoreDir) }},
		{"journal unusable", func(t *testing.T, cfg *Config) { blockDir(t, cfg.DataDir, JournalDir) }},
	}
	for _, tt := range fails {
		t.Run(tt.name, func(t *testing.T) {
			cfg, loop := leakConfig(t)
			tt.setup(t, &cfg)
			before := goroutineIDs()
			err := Run(t.Context(), cfg)
			if err == nil {
				t.Fatal("Run succeeded")
			}
			t.Logf("Run: %v", err)
			checkNoGoroutineLeft(t, before)
			refused(t, loop)
		})
	}
}

// blockDir puts a file where the store folder name under dataDir belongs.
func blockDir(t *testing.T, dataDir, name string) {
	t.Helper()
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, name), []byte("not a folder"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// refused fails t if addr still accepts connections.
func refused(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after Run returned", addr)
		return
	}
	var op *net.OpError
	if !errors.As(err, &op) {
		t.Errorf("dial %s: %v", addr, err)
	}
}
