package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDataRequiredOffGokrazy: on a host (no /gokrazy/init) the binary
// without -data exits non-zero before doing anything, saying -data DIR is
// required, instead of creating /perm/edgebroker and serving.
func TestDataRequiredOffGokrazy(t *testing.T) {
	if defaultDataDir(gokrazyInit) != "" {
		t.Fatalf("%s exists: this test runs on a host, not on gokrazy", gokrazyInit)
	}
	_, permErr := os.Stat("/perm")
	for _, args := range [][]string{{"-loopback", "off"}, {"-data", "", "-loopback", "off"}} {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // a broker that serves instead is killed
		defer cancel()
		cmd := exec.CommandContext(ctx, testBinary(t), args...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		err := cmd.Run()
		if ee := (*exec.ExitError)(nil); !errors.As(err, &ee) || ee.ExitCode() == 0 {
			t.Fatalf("%q: got %v, want a non-zero exit; stderr:\n%s", args, err, stderr.String())
		}
		if !strings.Contains(stderr.String(), "-data DIR is required") {
			t.Errorf("%q: stderr does not say -data DIR is required:\n%s", args, stderr.String())
		}
	}
	if _, err := os.Stat("/perm"); errors.Is(permErr, os.ErrNotExist) && !errors.Is(err, os.ErrNotExist) {
		t.Error("the binary created /perm")
	}
}

// TestDefaultDataDirOnGokrazy: where gokrazy's init exists, -data defaults
// to /perm/edgebroker as before.
func TestDefaultDataDirOnGokrazy(t *testing.T) {
	init := filepath.Join(t.TempDir(), "init")
	if got := defaultDataDir(init); got != "" {
		t.Errorf("without %s: default %q, want none", init, got)
	}
	if err := os.WriteFile(init, []byte("\x7fELF"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got := defaultDataDir(init); got != "/perm/edgebroker" {
		t.Errorf("with %s: default %q, want /perm/edgebroker", init, got)
	}
}

// TestPIDFileBinary: the binary's DATA/edgebroker.pid names its own
// process (what README's kill -HUP $(cat DATA/edgebroker.pid) signals), a
// second binary on the same -data exits non-zero saying the directory is
// in use, and a clean exit removes the file.
func TestPIDFileBinary(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	_, cmd, exited := runBinary(t, "-data", data)
	pidPath := filepath.Join(data, "edgebroker.pid")
	b, err := os.ReadFile(pidPath)
	if want := strconv.Itoa(cmd.Process.Pid) + "\n"; err != nil || string(b) != want {
		t.Fatalf("%s: got %q, %v; want %q", pidPath, b, err, want)
	}

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	second := exec.CommandContext(ctx, testBinary(t), "-data", data, "-loopback", "off", "-port-map", "18883=0")
	var stderr strings.Builder
	second.Stderr = &stderr
	err = second.Run()
	if ee := (*exec.ExitError)(nil); !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("second binary on the same -data: got %v, want a non-zero exit; stderr:\n%s", err, stderr.String())
	}
	if want := "in use by another edgebroker (pid " + strconv.Itoa(cmd.Process.Pid); !strings.Contains(stderr.String(), want) {
		t.Errorf("second binary's stderr lacks %q:\n%s", want, stderr.String())
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit within 30 s of SIGTERM")
	}
	if _, err := os.Stat(pidPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s after a clean exit: %v, want it removed", pidPath, err)
	}
}
