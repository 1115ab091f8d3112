package fwupdate_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"edgebroker/provisioning/fwupdate"
)

// dirBootRig is a boot FAT's files in a folder and the running kernel's
// command line, with the boot loader's rules played by boot().
type dirBootRig struct {
	t       *testing.T
	dir     string
	proc    string // the running kernel's command line
	trial   bool   // this boot is a trial
	reboots int
	mu      sync.Mutex
}

const cmdline = "console=ttyAMA0 root=PARTUUID=743e4ccd-02 init=/gokrazy/init rootwait panic=10\n"

func newDirBootRig(t *testing.T) (*dirBootRig, *fwupdate.FileBoot) {
	t.Helper()
	r := &dirBootRig{t: t, dir: t.TempDir(), proc: filepath.Join(t.TempDir(), "cmdline")}
	os.WriteFile(filepath.Join(r.dir, "cmdline.txt"), []byte(cmdline), 0o644)
	os.WriteFile(filepath.Join(r.dir, "config.txt"), []byte("arm_64bit=1\n"), 0o644)
	r.boot(false)
	return r, &fwupdate.FileBoot{Files: fwupdate.DirFiles(r.dir), CmdlinePath: r.proc, IsTrial: func() (bool, error) { return r.trial, nil }}
}

// boot plays the Pi firmware: with the tryboot flag and a tryboot.txt,
// the kernel gets the command line tryboot.txt names; otherwise
// cmdline.txt's.
func (r *dirBootRig) boot(tryboot bool) {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reboots++
	name := "cmdline.txt"
	r.trial = false
	if cfg, err := os.ReadFile(filepath.Join(r.dir, fwupdate.TryConfig)); tryboot && err == nil {
		for _, l := range strings.Split(string(cfg), "\n") {
			if v, ok := strings.CutPrefix(l, "cmdline="); ok {
				name, r.trial = v, true
			}
		}
	}
	b, err := os.ReadFile(filepath.Join(r.dir, name))
	if err != nil {
		r.t.Fatal(err)
	}
	os.WriteFile(r.proc, b, 0o644)
}

func (r *dirBootRig) state(t *testing.T, b fwupdate.Boot) fwupdate.BootState {
	t.Helper()
	st, err := b.State()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestTrialCommitsWhenHealthy: a trial boot that becomes healthy before
// the deadline commits its slot, at the first healthy check; the next
// normal boot runs the new slot.
func TestTrialCommitsWhenHealthy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, b := newDirBootRig(t)
		if err := b.Try(1); err != nil {
			t.Fatal(err)
		}
		r.boot(true)
		if got, want := r.state(t, b), (fwupdate.BootState{Running: 1, Default: 0, Trial: true}); got != want {
			t.Fatalf("after the trial boot: %+v, want %+v", got, want)
		}
		checks := 0
		tr := &fwupdate.Trial{Boot: b, Deadline: time.Minute, Interval: 5 * time.Second, Log: slog.New(slog.DiscardHandler),
			Healthy: func(context.Context) error {
				if checks++; checks < 4 {
					return errors.New("broker not serving yet")
				}
				return nil
			},
			Reboot: func() error { t.Error("reboot on a healthy trial"); return nil }}
		start := time.Now()
		out, err := tr.Run(t.Context())
		if err != nil || !out.Committed || out.RolledBack {
			t.Fatalf("Run: %+v, %v", out, err)
		}
		if got, want := time.Since(start), 15*time.Second; got != want {
			t.Errorf("committed after %v, want %v (the fourth check)", got, want)
		}
		r.boot(false)
		if got, want := r.state(t, b), (fwupdate.BootState{Running: 1, Default: 1}); got != want {
			t.Errorf("next boot: %+v, want %+v", got, want)
		}
	})
}

// TestTrialRollsBack: a trial boot that is not healthy by the deadline
// reboots at the deadline, with the last health error as the reason,
// and the next boot runs the previous slot; nothing was committed.
func TestTrialRollsBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, b := newDirBootRig(t)
		b.Try(1)
		r.boot(true)
		var rebootAt time.Duration
		start := time.Now()
		tr := &fwupdate.Trial{Boot: b, Deadline: 90 * time.Second, Interval: 10 * time.Second, Log: slog.New(slog.DiscardHandler),
			Healthy: func(context.Context) error { return errors.New("state store does not open") },
			Reboot: func() error {
				rebootAt = time.Since(start)
				r.boot(false)
				return nil
			}}
		out, err := tr.Run(t.Context())
		if !errors.Is(err, fwupdate.ErrRolledBack) || !out.RolledBack || out.Committed || out.Reason != "state store does not open" {
			t.Fatalf("Run: %+v, %v", out, err)
		}
		if rebootAt != 90*time.Second {
			t.Errorf("rebooted after %v, want the 90s deadline", rebootAt)
		}
		if got, want := r.state(t, b), (fwupdate.BootState{Running: 0, Default: 0}); got != want {
			t.Errorf("after the rollback: %+v, want %+v", got, want)
		}
	})
}

// TestNormalBootDecidesNothing: outside a trial, Run neither waits, nor
// commits, nor reboots.
func TestNormalBootDecidesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, b := newDirBootRig(t)
		tr := &fwupdate.Trial{Boot: b, Deadline: time.Minute,
			Healthy: func(context.Context) error { t.Error("health asked on a normal boot"); return nil },
			Reboot:  func() error { t.Error("reboot on a normal boot"); return nil }}
		start := time.Now()
		out, err := tr.Run(t.Context())
		if err != nil || out.Trial || out.Committed || time.Since(start) != 0 {
			t.Errorf("Run: %+v, %v after %v", out, err, time.Since(start))
		}
	})
}

// TestTryKeepsTheRunningDefault: an update rewrote the boot file system
// with the image's cmdline.txt (slot 0) while slot 1 runs; trying slot 0
// must leave slot 1 the default, so a failed trial returns to it.
func TestTryKeepsTheRunningDefault(t *testing.T) {
	r, b := newDirBootRig(t)
	if err := b.Commit(1); err != nil {
		t.Fatal(err)
	}
	r.boot(false)
	os.WriteFile(filepath.Join(r.dir, "cmdline.txt"), []byte(cmdline), 0o644) // the new boot FS
	if err := b.Try(0); err != nil {
		t.Fatal(err)
	}
	r.boot(false) // the trial crashed before it could commit: a default boot
	if got, want := r.state(t, b), (fwupdate.BootState{Running: 1, Default: 1}); got != want {
		t.Errorf("after a failed trial: %+v, want %+v", got, want)
	}
}

func TestQEMUTrial(t *testing.T) {
	p := filepath.Join(t.TempDir(), "cmdline")
	for line, want := range map[string]bool{cmdline: false, "root=PARTUUID=743e4ccd-03 " + fwupdate.QEMUTrialArg + "\n": true} {
		os.WriteFile(p, []byte(line), 0o644)
		if got, err := fwupdate.QEMUTrial(p)(); err != nil || got != want {
			t.Errorf("%q: %v, %v; want %v", line, got, err, want)
		}
	}
}
