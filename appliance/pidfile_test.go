package appliance_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"edgebroker/appliance"
)

// runOn starts an appliance on dataDir and waits until it serves; stop
// cancels it and returns Run's result.
func runOn(t *testing.T, dataDir string) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- appliance.Run(ctx, appliance.Config{
			DataDir:  dataDir,
			Loopback: "127.0.0.1:0",
			PortMap:  map[int]int{18883: 0},
			Ready:    func([]net.Addr) { close(ready) },
		})
	}()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("Run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("appliance not ready")
	}
	return func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(appliance.ShutdownTimeout + 5*time.Second):
			t.Fatal("Run did not return after cancel")
			return nil
		}
	}
}

// TestPIDFile: the appliance writes its process ID to DATA/edgebroker.pid
// (replacing one a dead process left), a second appliance on the same
// data directory is refused while the first runs, and the file is gone
// after a clean exit.
func TestPIDFile(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	pidPath := filepath.Join(data, appliance.PIDFile)
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	// A stale file: no process holds its lock.
	if err := os.WriteFile(pidPath, []byte("4194303\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	stop := runOn(t, data)
	b, err := os.ReadFile(pidPath)
	if want := strconv.Itoa(os.Getpid()) + "\n"; err != nil || string(b) != want {
		t.Fatalf("%s: got %q, %v; want %q", appliance.PIDFile, b, err, want)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	err = appliance.Run(ctx, appliance.Config{DataDir: data, Loopback: "127.0.0.1:0", PortMap: map[int]int{18883: 0}})
	if !errors.Is(err, appliance.ErrDataDirInUse) {
		t.Fatalf("second appliance on the same data directory: got %v, want ErrDataDirInUse", err)
	}
	if !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
		t.Errorf("the error does not name the running one's pid: %v", err)
	}
	if b, _ := os.ReadFile(pidPath); string(b) != strconv.Itoa(os.Getpid())+"\n" {
		t.Errorf("the refused appliance changed the pid file: %q", b)
	}

	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, err := os.Stat(pidPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s after a clean exit: %v, want it removed", appliance.PIDFile, err)
	}
	// And the directory is free again.
	if err := runOn(t, data)(); err != nil {
		t.Fatalf("Run again: %v", err)
	}
}
