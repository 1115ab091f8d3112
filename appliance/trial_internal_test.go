package appliance

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"edgebroker/broker/testenv"
	"edgebroker/provisioning/fwupdate"
)

// TestProbesPassed: the trial's health is "every probe has run and
// passed": not before the first probes, and not once the state store
// fails.
func TestProbesPassed(t *testing.T) {
	wd, ss := testWatchdog(t, slog.New(slog.DiscardHandler))
	if err := probesPassed(wd); err == nil || !strings.Contains(err.Error(), "not probed yet") {
		t.Errorf("before any probe: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- wd.Run(ctx) }()
	defer func() { cancel(); <-done }()
	testenv.Eventually(t, 10*time.Second, "every probe passed", func() bool { return probesPassed(wd) == nil })
	ss.close()
	testenv.Eventually(t, 10*time.Second, "the state store's failure shows", func() bool {
		err := probesPassed(wd)
		return err != nil && strings.HasPrefix(err.Error(), "statestore: ")
	})
}

// TestTrialCommitsOnceServing: an appliance started on a trial boot
// commits the running slot once its probes pass, and Status says so.
func TestTrialCommitsOnceServing(t *testing.T) {
	fastHealth(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "cmdline.txt"), []byte("root=PARTUUID=743e4ccd-02 init=/gokrazy/init\n"), 0o644)
	proc := filepath.Join(t.TempDir(), "cmdline")
	os.WriteFile(proc, []byte("root=PARTUUID=743e4ccd-03 init=/gokrazy/init "+fwupdate.QEMUTrialArg+"\n"), 0o644)
	boot := &fwupdate.FileBoot{Files: fwupdate.DirFiles(dir), CmdlinePath: proc, IsTrial: fwupdate.QEMUTrial(proc)}
	started := make(chan *Appliance, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{DataDir: t.TempDir(), Loopback: "off", Listen: []string{"127.0.0.1:0"}, BoardRoot: t.TempDir(),
			Logger: slog.New(slog.NewTextHandler(t.Output(), nil)), Started: func(a *Appliance) { started <- a },
			Trial: &fwupdate.Trial{Boot: boot, Deadline: time.Minute, Interval: 20 * time.Millisecond,
				Reboot: func() error { t.Error("reboot on a healthy trial"); return nil }}})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	var a *Appliance
	select {
	case a = <-started:
	case err := <-done:
		done <- nil // for the deferred wait
		t.Fatalf("Run: %v", err)
	}
	testenv.Eventually(t, 20*time.Second, "the trial decided", func() bool { return a.Status().Boot != nil })
	if b := a.Status().Boot; !b.Trial || !b.Committed || b.Slot != 1 {
		t.Errorf("Status().Boot = %+v, want slot 1 committed", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "cmdline.txt")); !strings.Contains(string(b), "-03 ") {
		t.Errorf("cmdline.txt = %q, want partition 3", b)
	}
}
