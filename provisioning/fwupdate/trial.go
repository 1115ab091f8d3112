package fwupdate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Boot is the boot loader's A/B switch: which root partition (slot 0 or
// 1) boots by default, and a one-shot trial boot of the other.
type Boot interface {
	// State reports the slot running now, the default slot and whether
	// this boot is a trial.
	State() (BootState, error)
	// Try makes the next boot, and only that one, start from slot; a boot
	// after it (a crash, a watchdog reset, a reboot) returns to the
	// default.
	Try(slot int) error
	// Commit makes slot the default.
	Commit(slot int) error
}

// BootState is what Boot.State reports.
type BootState struct {
	Running int  // the slot this boot runs from
	Default int  // the slot a normal boot starts from
	Trial   bool // this boot is a trial (Boot.Try), not yet committed
}

// Trial decides, on every boot, whether a trial boot stays: the new
// system commits itself when Healthy reports the appliance healthy within
// Deadline of Run's start; otherwise it reboots, and the boot loader
// returns to the default slot, the previous system.
type Trial struct {
	// All fields are set at construction and read-only.
	Boot Boot
	// Healthy reports nil when the appliance is healthy (the broker
	// serves, the state store opens, the configuration in force applies).
	Healthy func(ctx context.Context) error
	// Deadline is how long a trial system has to become healthy.
	Deadline time.Duration
	// Interval is how often Healthy is asked; 0: every second.
	Interval time.Duration
	// Reboot restarts the device; after a trial that is the previous
	// system. It may return (the reboot happens later) or not at all.
	Reboot func() error
	Log    *slog.Logger // nil: slog.Default()
}

// TrialOutcome is what Run decided.
type TrialOutcome struct {
	Trial      bool      `json:"trial"`              // this boot was a trial
	Slot       int       `json:"slot"`               // the slot running
	Committed  bool      `json:"committed"`          // the trial became the default
	RolledBack bool      `json:"rolledBack"`         // the trial failed: the device reboots into Default
	Reason     string    `json:"reason,omitempty"`   // why it rolled back: the last health error
	DecidedAt  time.Time `json:"decidedAt,omitzero"` // when
	Healthy    time.Time `json:"healthyAt,omitzero"` // when the trial system became healthy
}

// ErrRolledBack is returned by Run when a trial failed and the device
// reboots into the previous system.
var ErrRolledBack = errors.New("fwupdate: trial boot failed; rebooting into the previous system")

// Run decides the current boot. On a normal boot it returns at once. On a
// trial boot it asks Healthy every Interval: the first nil commits the
// running slot; when Deadline passes first, it calls Reboot and returns
// ErrRolledBack with the last health error. It returns ctx's error if ctx
// ends first, leaving the trial undecided (the next boot returns to the
// default slot).
func (tr *Trial) Run(ctx context.Context) (TrialOutcome, error) {
	st, err := tr.Boot.State()
	if err != nil {
		return TrialOutcome{}, fmt.Errorf("fwupdate: boot state: %w", err)
	}
	out := TrialOutcome{Trial: st.Trial, Slot: st.Running}
	if !st.Trial {
		return out, nil
	}
	log := tr.Log
	if log == nil {
		log = slog.Default()
	}
	interval := tr.Interval
	if interval <= 0 {
		interval = time.Second
	}
	log.Info("firmware: trial boot; waiting for the appliance to be healthy", "slot", st.Running, "deadline", tr.Deadline)
	deadline := time.NewTimer(tr.Deadline)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var lastErr error
	for {
		if lastErr = tr.Healthy(ctx); lastErr == nil {
			out.Healthy = time.Now()
			if err := tr.Boot.Commit(st.Running); err != nil {
				// Not committed: the next boot returns to the default.
				return out, fmt.Errorf("fwupdate: commit slot %d: %w", st.Running, err)
			}
			out.Committed, out.DecidedAt = true, time.Now()
			log.Info("firmware: trial boot healthy; committed", "slot", st.Running)
			return out, nil
		}
		select {
		case <-ctx.Done():
			return out, ctx.Err()
		case <-tick.C:
			continue
		case <-deadline.C:
		}
		out.RolledBack, out.Reason, out.DecidedAt = true, lastErr.Error(), time.Now()
		log.Error("firmware: trial boot not healthy in time; rebooting into the previous system", "slot", st.Running, "default", st.Default, "err", lastErr)
		if err := tr.Reboot(); err != nil {
			return out, fmt.Errorf("%w; reboot: %v", ErrRolledBack, err)
		}
		return out, ErrRolledBack
	}
}
