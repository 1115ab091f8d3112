// Package fwupdate is the device's side of a firmware update: it takes a
// signed update (provisioning/firmware) from an HTTP PUT or a USB stick,
// checks it against the device's policy before writing anything, streams
// the root file system into the inactive root partition and the boot file
// system into a staging place while hashing both, and switches only when
// both match the signed manifest. A refused or broken update switches
// nothing and leaves the inactive partition marked bad.
//
// There is no update password. The authority is the signature: only an
// update signed by a trusted key, for this board and newer than the
// running version, is installed, so a recorded upload is worth nothing
// (a replay is "not newer"). The device proves who it is with its TLS
// certificate (the server that mounts the Handler serves TLS); the host's
// mkimage update checks it against DATA/ca.crt or a pinned fingerprint.
//
// Beyond the signature, the receiver refuses every update while the
// running system is a trial not yet committed (the other partition holds
// its fallback), and a build that failed its trial here before. Over HTTP
// a LAN client without a key is bounded: refusals per source address
// (MaxRefusals per RefusalWindow, then 429 unread) and the upload's Pace.
// Disk.Switch orders its writes so that a power cut never leaves a
// default boot into an untried system.
package fwupdate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"edgebroker/provisioning/atomicfile"
	"edgebroker/provisioning/firmware"
)

// Target is where an update is written: the device's A/B storage.
// Receiver calls Root, then Boot, then Switch or Discard, from one
// goroutine, one update at a time.
type Target interface {
	// Root opens the root partition that is not running, for writing from
	// its start.
	Root() (WriteSyncCloser, error)
	// Boot opens a staging place for the boot file system; Switch installs
	// what was written there.
	Boot() (WriteSyncCloser, error)
	// Switch makes the next boot try the new system: it installs the
	// staged boot file system and points the next (trial) boot at the
	// partition Root wrote. It is called only after both file systems
	// matched the signed manifest, with that manifest.
	Switch(m firmware.Manifest) error
	// Discard marks the inactive root partition as holding no usable
	// system and drops the staged boot file system. Nothing was switched.
	Discard() error
}

// WriteSyncCloser is a partition or file being written.
type WriteSyncCloser interface {
	io.Writer
	Sync() error
	Close() error
}

// Attempt is the outcome of one update.
type Attempt struct {
	Time      time.Time       `json:"time"`
	From      string          `json:"from"`              // the peer's address, or "usb"
	Version   string          `json:"version,omitempty"` // the update's version, once its header is read
	Board     string          `json:"board,omitempty"`
	KeyID     string          `json:"keyId,omitempty"`
	Installed bool            `json:"installed"` // written, verified and switched: the next boot tries it
	Reason    firmware.Reason `json:"reason,omitempty"`
	Detail    string          `json:"detail,omitempty"` // why it was refused
}

func (a Attempt) String() string {
	if a.Installed {
		return fmt.Sprintf("installed version %s (board %s, key %s) from %s; the next boot tries it", a.Version, a.Board, a.KeyID, a.From)
	}
	v := a.Version
	if v == "" {
		v = "unknown version"
	}
	return fmt.Sprintf("refused %s from %s: %s: %s", v, a.From, string(a.Reason), a.Detail)
}

// Receiver installs updates into Target. Its Handler serves them over
// HTTP; Install is the one path for every source.
type Receiver struct {
	// Target, Policy and Log are set at construction and read-only.
	Target Target
	// Policy returns what the device accepts now (trust, board, running
	// version, clock, partition sizes); it is called once per update.
	Policy func() firmware.Policy
	Log    *slog.Logger // nil: slog.Default()
	// StateFile, if set, keeps what the inactive partition holds and the
	// last attempt across restarts and reboots (on /perm).
	StateFile string
	// Installed, if set, is called after an update was installed and
	// recorded (to reboot into the trial). It must not block: the HTTP
	// answer waits for it.
	Installed func(Attempt)
	// BootState, if set, reports the boot loader's state (Boot.State):
	// while the running system is a trial not yet committed, the other
	// partition holds the system a rollback returns to, and every update
	// is refused (firmware.ReasonTrial). nil: never on trial.
	BootState func() (BootState, error)
	// Refused, if set, is told about each update refused over HTTP
	// (Handler), for the security log; the Attempt holds no secret.
	Refused func(Attempt)
	// Pace bounds how slowly an update may be uploaded (Handler); nil:
	// DefaultPace.
	Pace *Pace

	limits refusalLimits // refusals per source address (Handler)

	busy    sync.Mutex             // held by the one Install in progress (TryLock)
	pending atomic.Pointer[string] // the version installed and not yet restarted into; nil: none

	mu     sync.Mutex // guards the fields below
	loaded bool       // saved was read from StateFile
	saved  saved
}

// saved is StateFile's content.
type saved struct {
	// Installed is the version last written to the inactive partition and
	// switched to, over the version Over that ran then; "" after an
	// update that was refused while writing (the partition is marked bad).
	Installed string `json:"installed,omitempty"`
	// Built is Installed's build time (its signed manifest's).
	Built time.Time     `json:"built,omitzero"`
	Over  string        `json:"over,omitempty"`
	Last  *Attempt      `json:"last,omitempty"`
	Trial *TrialOutcome `json:"trial,omitempty"`
	// RolledBack are the builds that failed their trial boot here, the
	// latest last (at most maxRolledBack): sent again, they are refused.
	RolledBack []RolledBack `json:"rolledBack,omitempty"`
}

// RolledBack is a build that failed its trial boot on this device.
type RolledBack struct {
	Version string `json:"version"`
	// Built is the build's time; a build of the same version built
	// later is a new build and is tried. When the build time is not
	// known, it is when the rollback was decided.
	Built time.Time `json:"built"`
}

// maxRolledBack bounds saved.RolledBack: the oldest are forgotten (a
// version older than the running one is refused as a downgrade anyway).
const maxRolledBack = 16

// Status is what the receiver shows: the versions of both root
// partitions and the last attempt.
type Status struct {
	Running string `json:"running"` // the version running
	Board   string `json:"board"`
	// Other is the version in the other root partition, "" when unknown
	// or marked bad.
	Other string   `json:"other"`
	Last  *Attempt `json:"lastAttempt,omitempty"`
	// Trial is the last trial boot's decision (RecordTrial): committed,
	// or rolled back and why. It survives the reboot into the previous
	// system.
	Trial *TrialOutcome `json:"lastTrial,omitempty"`
}

// Status returns the receiver's status.
func (rc *Receiver) Status() Status {
	p := rc.Policy()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.loadLocked()
	st := Status{Running: p.Running, Board: p.Board, Last: rc.saved.Last, Trial: rc.saved.Trial}
	switch sv := rc.saved; {
	case sv.Installed == "":
	case sv.Installed == p.Running: // the update runs: the previous one is in the other partition
		st.Other = sv.Over
	default: // written, not running: a trial to come, or one that rolled back
		st.Other = sv.Installed
	}
	return st
}

// Last returns the latest attempt, if any.
func (rc *Receiver) Last() (Attempt, bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.loadLocked()
	if rc.saved.Last == nil {
		return Attempt{}, false
	}
	return *rc.saved.Last, true
}

// loadLocked reads StateFile once; a missing or unreadable file is an
// empty state (logged when unreadable).
func (rc *Receiver) loadLocked() {
	if rc.loaded || rc.StateFile == "" {
		return
	}
	rc.loaded = true
	b, err := os.ReadFile(rc.StateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err == nil {
		err = json.Unmarshal(b, &rc.saved)
	}
	if err != nil {
		rc.log().Warn("firmware update state unreadable; starting empty", "file", rc.StateFile, "err", err)
		rc.saved = saved{}
	}
}

func (rc *Receiver) log() *slog.Logger {
	if rc.Log != nil {
		return rc.Log
	}
	return slog.Default()
}

// Install reads an update from r (from names its source for the record)
// and installs it, or refuses it with its reason. Its signed header is
// read and checked before anything else, so a client that sends nothing
// valid never holds the one install slot; then it refuses at once with
// firmware.ReasonBusy while another update is being installed, or once
// one was installed and the device has not restarted into it yet.
func (rc *Receiver) Install(r io.Reader, from string) Attempt {
	a := Attempt{Time: time.Now(), From: from}
	p := rc.Policy()
	var m firmware.Manifest
	s, err := firmware.ReadHeader(r)
	if err == nil {
		m = s.Manifest
		a.Version, a.Board, a.KeyID = m.Version, m.Board, m.KeyID
		err = s.Verify(p)
	}
	if err == nil {
		err = rc.allowed(m)
	}
	wrote := false
	switch {
	case err != nil: // nothing written
	case !newerThanPending(m.Version, rc.pending.Load()):
		err = &firmware.Refusal{Reason: firmware.ReasonBusy, Detail: "version " + m.Version + " is installed already; the device restarts into it"}
	case !rc.busy.TryLock():
		err = &firmware.Refusal{Reason: firmware.ReasonBusy, Detail: "another update is being received"}
	default:
		wrote, err = rc.install(r, m)
		rc.busy.Unlock()
	}
	a.Installed = err == nil
	if err != nil {
		a.Reason, a.Detail = firmware.ReasonOf(err), err.Error()
		var ref *firmware.Refusal
		if errors.As(err, &ref) {
			a.Detail = ref.Detail
		}
		if a.Reason == "" {
			a.Reason = firmware.ReasonWrite
		}
	}
	return rc.record(a, m.Built, p.Running, wrote)
}

// allowed checks what the signature cannot: that the running system is
// not an uncommitted trial (its fallback is in the partition an update
// writes) and that m is not a build that rolled back here before.
func (rc *Receiver) allowed(m firmware.Manifest) error {
	if rc.BootState != nil {
		st, err := rc.BootState()
		if err != nil {
			return &firmware.Refusal{Reason: firmware.ReasonTrial, Detail: "boot state unknown (" + err.Error() + "); the other partition may hold the fallback"}
		}
		if st.Trial && st.Default != st.Running {
			return &firmware.Refusal{Reason: firmware.ReasonTrial, Detail: fmt.Sprintf("a trial boot is not yet committed: slot %d runs on trial and slot %d holds the system a rollback returns to", st.Running, st.Default)}
		}
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.loadLocked()
	for _, rb := range rc.saved.RolledBack {
		if rb.Version == m.Version && !m.Built.After(rb.Built) {
			return &firmware.Refusal{Reason: firmware.ReasonRolledBack, Detail: fmt.Sprintf("version %s (built %s) failed its trial boot on this device; send a newer build", m.Version, m.Built.UTC().Format(time.RFC3339))}
		}
	}
	return nil
}

// newerThanPending reports whether version may replace the update
// installed and not yet restarted into (pending; nil: none): only a newer
// one, so that the same file sent again does not rewrite the partition
// the next boot tries.
func newerThanPending(version string, pending *string) bool {
	if pending == nil {
		return true
	}
	v, err := firmware.ParseVersion(version)
	w, err2 := firmware.ParseVersion(*pending)
	return err == nil && err2 == nil && v.Compare(w) > 0
}

// install writes and checks the file systems of the update whose header
// passed, then switches; it discards what it wrote on any failure. wrote
// says whether it wrote to the target.
func (rc *Receiver) install(r io.Reader, m firmware.Manifest) (wrote bool, err error) {
	err = rc.write(r, m)
	if err == nil {
		if err = rc.Target.Switch(m); err != nil {
			err = &firmware.Refusal{Reason: firmware.ReasonWrite, Detail: "switch: " + err.Error()}
		}
	}
	if err != nil {
		if derr := rc.Target.Discard(); derr != nil {
			rc.log().Error("firmware update: marking the inactive partition bad", "err", derr)
		}
	}
	return true, err
}

// write streams root, then boot, from r into the target, each checked
// against the manifest, and checks that r ends there.
func (rc *Receiver) write(r io.Reader, m firmware.Manifest) error {
	for _, p := range []struct {
		name string
		part firmware.Part
		open func() (WriteSyncCloser, error)
	}{
		{"root", m.Root, rc.Target.Root},
		{"boot", m.Boot, rc.Target.Boot},
	} {
		if err := copyTo(p.open, r, p.name, p.part); err != nil {
			return err
		}
	}
	return firmware.ExpectEnd(r)
}

// copyTo opens a destination, copies one file system into it and syncs.
func copyTo(open func() (WriteSyncCloser, error), r io.Reader, name string, part firmware.Part) error {
	w, err := open()
	if err != nil {
		return &firmware.Refusal{Reason: firmware.ReasonWrite, Detail: name + ": " + err.Error()}
	}
	err = firmware.CopyPart(w, r, name, part)
	if err == nil {
		err = w.Sync()
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil && firmware.ReasonOf(err) == "" {
		err = &firmware.Refusal{Reason: firmware.ReasonWrite, Detail: name + ": " + err.Error()}
	}
	return err
}

// RecordTrial keeps a trial boot's decision (Trial.Run's outcome, when it
// was a trial) for Status, across the reboot that follows a rollback. It
// is called on the trial system: when the trial rolled back, the running
// build is remembered and refused from then on (unless built later).
func (rc *Receiver) RecordTrial(out TrialOutcome) {
	running := rc.Policy().Running
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.loadLocked()
	rc.saved.Trial = &out
	if out.RolledBack {
		rb := RolledBack{Version: running, Built: out.DecidedAt}
		if rc.saved.Installed == running && !rc.saved.Built.IsZero() {
			rb.Built = rc.saved.Built
		}
		rc.saved.RolledBack = append(rc.saved.RolledBack, rb)
		if n := len(rc.saved.RolledBack); n > maxRolledBack {
			rc.saved.RolledBack = slices.Clone(rc.saved.RolledBack[n-maxRolledBack:])
		}
	}
	rc.saveLocked()
}

// saveLocked writes StateFile.
func (rc *Receiver) saveLocked() {
	if rc.StateFile == "" {
		return
	}
	b, _ := json.Marshal(rc.saved)
	if err := atomicfile.WriteFile(rc.StateFile, b, 0o600); err != nil {
		rc.log().Error("firmware update state not saved", "file", rc.StateFile, "err", err)
	}
}

// record keeps a as the last attempt (with what the inactive partition
// now holds: wrote says the attempt wrote to it), saves it and logs it.
func (rc *Receiver) record(a Attempt, built time.Time, running string, wrote bool) Attempt {
	rc.mu.Lock()
	rc.loadLocked()
	rc.saved.Last = &a
	switch {
	case a.Installed:
		rc.saved.Installed, rc.saved.Built, rc.saved.Over = a.Version, built, running
		v := a.Version
		rc.pending.Store(&v)
	case wrote:
		rc.saved.Installed, rc.saved.Built, rc.saved.Over = "", time.Time{}, ""
	}
	if a.Installed || wrote {
		// A refusal that wrote nothing stays in memory: a LAN client
		// sending garbage must not make the device write flash.
		rc.saveLocked()
	}
	rc.mu.Unlock()
	if a.Installed {
		rc.log().Info("firmware update installed", "version", a.Version, "board", a.Board, "key", a.KeyID, "from", a.From)
		if rc.Installed != nil {
			rc.Installed(a)
		}
	} else {
		rc.log().Warn("firmware update refused", "reason", string(a.Reason), "detail", a.Detail, "version", a.Version, "from", a.From)
	}
	return a
}
