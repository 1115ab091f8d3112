package fwupdate_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"edgebroker/broker/testenv"
	"edgebroker/provisioning/firmware"
	"edgebroker/provisioning/fwupdate"
)

// A small disk laid out like a gokrazy image: boot, root A, root B.
var (
	bootExt  = fwupdate.Extent{Start: 64 << 10, Size: 256 << 10}
	rootAExt = fwupdate.Extent{Start: 320 << 10, Size: 512 << 10}
	rootBExt = fwupdate.Extent{Start: 832 << 10, Size: 512 << 10}
	diskSize = int64(1344 << 10)
)

type rig struct {
	t          *testing.T
	key        ed25519.PrivateKey
	disk       *fwupdate.Disk
	rc         *fwupdate.Receiver
	root, boot []byte // the update's file systems
	running    string

	mu     sync.Mutex
	trials []int // slots Trial was called with
}

func newRig(t *testing.T) *rig {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	img := make([]byte, diskSize)
	for i := range img {
		img[i] = byte(i % 251) // the old system: every byte known
	}
	path := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(path, img, 0o600); err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, key: key, running: "1.0",
		root: bytes.Repeat([]byte("new root "), 40000), boot: bytes.Repeat([]byte("new boot "), 10000)}
	r.disk = &fwupdate.Disk{Path: path, BootFS: bootExt, Roots: [2]fwupdate.Extent{rootAExt, rootBExt},
		Stage: filepath.Join(dir, "boot.staged"),
		Arm: func(_ fwupdate.BootFiles, slot int) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.trials = append(r.trials, slot)
			return nil
		}}
	r.rc = &fwupdate.Receiver{Target: r.disk, Policy: func() firmware.Policy {
		return firmware.Policy{Trust: []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}, Board: "qemu",
			Running: r.running, Now: time.Now(), MaxRoot: rootBExt.Size, MaxBoot: bootExt.Size}
	}}
	return r
}

func (r *rig) manifest(version string) firmware.Manifest {
	return firmware.Manifest{Version: version, Built: time.Now(), Board: "qemu",
		Root: firmware.PartOf(r.root), Boot: firmware.PartOf(r.boot)}
}

func (r *rig) file(m firmware.Manifest, key ed25519.PrivateKey, root, boot []byte) []byte {
	r.t.Helper()
	return signedUpdate(r.t, m, key, root, boot)
}

// signedUpdate returns an update file: m signed with key, then root and
// boot (which need not be what m describes).
func signedUpdate(t *testing.T, m firmware.Manifest, key ed25519.PrivateKey, root, boot []byte) []byte {
	t.Helper()
	h, err := firmware.Sign(m, key)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Join([][]byte{h, root, boot}, nil)
}

func (r *rig) read(e fwupdate.Extent, n int64) []byte {
	r.t.Helper()
	f, err := os.Open(r.disk.Path)
	if err != nil {
		r.t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, e.Start); err != nil {
		r.t.Fatal(err)
	}
	return b
}

func (r *rig) diskSum() [32]byte {
	r.t.Helper()
	b, err := os.ReadFile(r.disk.Path)
	if err != nil {
		r.t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func (r *rig) trialCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.trials)
}

func TestInstall(t *testing.T) {
	r := newRig(t)
	activeBefore := r.read(rootAExt, rootAExt.Size)
	var hooked []string
	r.rc.Installed = func(a fwupdate.Attempt) { hooked = append(hooked, a.Version) }
	a := r.rc.Install(bytes.NewReader(r.file(r.manifest("1.1"), r.key, r.root, r.boot)), "test")
	if !a.Installed {
		t.Fatalf("not installed: %v", a)
	}
	if len(hooked) != 1 || hooked[0] != "1.1" {
		t.Errorf("Installed hook calls: %q, want [1.1]", hooked)
	}
	if got := r.read(rootBExt, int64(len(r.root))); !bytes.Equal(got, r.root) {
		t.Error("the inactive root partition does not hold the new root file system")
	}
	if got := r.read(bootExt, int64(len(r.boot))); !bytes.Equal(got, r.boot) {
		t.Error("the boot partition does not hold the new boot file system")
	}
	if !bytes.Equal(r.read(rootAExt, rootAExt.Size), activeBefore) {
		t.Error("the running root partition was written")
	}
	if r.trials[0] != 1 || len(r.trials) != 1 {
		t.Errorf("Trial calls %v, want [1] (root B)", r.trials)
	}
	if last, ok := r.rc.Last(); !ok || !last.Installed || last.Version != "1.1" {
		t.Errorf("Last() = %+v, %v", last, ok)
	}
	if _, err := os.Stat(r.disk.Stage); !os.IsNotExist(err) {
		t.Errorf("staged boot file system left behind: %v", err)
	}
	r.rc.Install(bytes.NewReader(r.file(r.manifest("1.0"), r.key, r.root, r.boot)), "test") // refused
	if len(hooked) != 1 {
		t.Errorf("Installed hook called for a refused update: %q", hooked)
	}
}

// TestRefusedSwitchesNothing: each refused update leaves the boot
// partition and the running root as they were and switches nothing;
// refused before its first byte is written, the disk is untouched;
// refused while writing, the inactive root is marked bad.
func TestRefusedSwitchesNothing(t *testing.T) {
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	for _, c := range []struct {
		name      string
		make      func(r *rig) []byte
		want      firmware.Reason
		untouched bool // refused before writing: the whole disk is as it was
	}{
		{"wrong key", func(r *rig) []byte { return r.file(r.manifest("2.0"), other, r.root, r.boot) }, firmware.ReasonUntrusted, true},
		{"wrong board", func(r *rig) []byte {
			m := r.manifest("2.0")
			m.Board = "rpi"
			return r.file(m, r.key, r.root, r.boot)
		}, firmware.ReasonBoard, true},
		{"downgrade", func(r *rig) []byte { return r.file(r.manifest("0.9"), r.key, r.root, r.boot) }, firmware.ReasonDowngrade, true},
		{"replayed running version", func(r *rig) []byte { return r.file(r.manifest("1.0"), r.key, r.root, r.boot) }, firmware.ReasonNotNewer, true},
		{"root larger than the partition", func(r *rig) []byte {
			big := bytes.Repeat([]byte{1}, int(rootBExt.Size)+1)
			m := r.manifest("2.0")
			m.Root = firmware.PartOf(big)
			return r.file(m, r.key, big, r.boot)
		}, firmware.ReasonOversize, true},
		{"tampered root", func(r *rig) []byte {
			root := bytes.Clone(r.root)
			root[len(root)-1] ^= 1
			return r.file(r.manifest("2.0"), r.key, root, r.boot)
		}, firmware.ReasonHash, false},
		{"tampered boot", func(r *rig) []byte {
			boot := bytes.Clone(r.boot)
			boot[0] ^= 1
			return r.file(r.manifest("2.0"), r.key, r.root, boot)
		}, firmware.ReasonHash, false},
		{"truncated upload", func(r *rig) []byte {
			b := r.file(r.manifest("2.0"), r.key, r.root, r.boot)
			return b[:len(b)-len(r.boot)-1000]
		}, firmware.ReasonTruncated, false},
		{"trailing bytes", func(r *rig) []byte {
			return append(r.file(r.manifest("2.0"), r.key, r.root, r.boot), "more"...)
		}, firmware.ReasonTrailing, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t)
			before := r.diskSum()
			bootBefore, activeBefore := r.read(bootExt, bootExt.Size), r.read(rootAExt, rootAExt.Size)
			a := r.rc.Install(bytes.NewReader(c.make(r)), "test")
			if a.Installed || a.Reason != c.want || a.Detail == "" {
				t.Fatalf("got %+v, want refused for %q with a detail", a, c.want)
			}
			if n := r.trialCount(); n != 0 {
				t.Errorf("Trial called %d times", n)
			}
			if !bytes.Equal(r.read(bootExt, bootExt.Size), bootBefore) || !bytes.Equal(r.read(rootAExt, rootAExt.Size), activeBefore) {
				t.Error("the boot partition or the running root was written")
			}
			if c.untouched {
				if r.diskSum() != before {
					t.Error("the disk was written")
				}
				return
			}
			if head := r.read(rootBExt, 4096); !bytes.Equal(head, make([]byte, 4096)) {
				t.Error("the inactive root is not marked bad (its first 4 KiB are not zero)")
			}
			if _, err := os.Stat(r.disk.Stage); !os.IsNotExist(err) {
				t.Errorf("staged boot file system left behind: %v", err)
			}
		})
	}
}

// TestHandler: the HTTP face answers with the attempt and a status code
// per outcome, and takes one update at a time.
func TestHandler(t *testing.T) {
	r := newRig(t)
	srv := httptest.NewServer(http.StripPrefix("/update", r.rc.Handler()))
	t.Cleanup(srv.Close)
	// send may run on another goroutine: it returns its error.
	send := func(body io.Reader) (int, fwupdate.Attempt, error) {
		req, _ := http.NewRequest(http.MethodPut, srv.URL+"/update/firmware", body)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, fwupdate.Attempt{}, err
		}
		defer resp.Body.Close()
		var a fwupdate.Attempt
		err = json.NewDecoder(resp.Body).Decode(&a)
		return resp.StatusCode, a, err
	}
	put := func(body io.Reader) (int, fwupdate.Attempt) {
		t.Helper()
		code, a, err := send(body)
		if err != nil {
			t.Fatal(err)
		}
		return code, a
	}
	if code, a := put(bytes.NewReader(r.file(r.manifest("0.5"), r.key, r.root, r.boot))); code != http.StatusUnprocessableEntity || a.Reason != firmware.ReasonDowngrade {
		t.Errorf("downgrade: %d %+v", code, a)
	}

	// An upload in progress holds the receiver: a second one is refused.
	good := r.file(r.manifest("1.5"), r.key, r.root, r.boot)
	pr, pw := io.Pipe()
	first := make(chan int)
	go func() {
		code, _, err := send(pr)
		if err != nil {
			t.Error(err)
		}
		first <- code
	}()
	half := len(good) - len(r.boot) - len(r.root)/2
	if _, err := pw.Write(good[:half]); err != nil {
		t.Fatal(err)
	}
	// Once the new root's first bytes are on the disk, the first upload
	// holds the receiver.
	testenv.Eventually(t, 10*time.Second, "the first upload writes root B", func() bool {
		return bytes.Equal(r.read(rootBExt, 16), r.root[:16])
	})
	if code, a := put(bytes.NewReader(good)); code != http.StatusConflict || a.Reason != firmware.ReasonBusy {
		t.Errorf("concurrent upload: %d %+v, want 409 and %q", code, a, firmware.ReasonBusy)
	}
	pw.Write(good[half:])
	pw.Close()
	if code := <-first; code != http.StatusOK {
		t.Errorf("first upload: %d, want 200", code)
	}
	resp, err := http.Get(srv.URL + "/update/last")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var last fwupdate.Attempt
	json.NewDecoder(resp.Body).Decode(&last)
	if !last.Installed || last.Version != "1.5" {
		t.Errorf("/update/last: %+v", last)
	}
}

// TestStatusAcrossReboots: the receiver's status says what each root
// partition holds and the last attempt, also after a restart (StateFile):
// the update pending, then running over the previous version, then a
// partition marked bad by a broken upload.
func TestStatusAcrossReboots(t *testing.T) {
	r := newRig(t)
	state := filepath.Join(t.TempDir(), "firmware.json")
	r.rc.StateFile = state
	if a := r.rc.Install(bytes.NewReader(r.file(r.manifest("1.1"), r.key, r.root, r.boot)), "test"); !a.Installed {
		t.Fatal(a)
	}
	if st := r.rc.Status(); st.Running != "1.0" || st.Other != "1.1" || st.Last == nil || !st.Last.Installed {
		t.Errorf("after the install: %+v", st)
	}
	// The reboot into 1.1: a new receiver reads the state.
	r.running = "1.1"
	rc := &fwupdate.Receiver{Target: r.disk, Policy: r.rc.Policy, StateFile: state}
	if st := rc.Status(); st.Running != "1.1" || st.Other != "1.0" || st.Last == nil || st.Last.Version != "1.1" {
		t.Errorf("after the reboot: %+v", st)
	}
	root := bytes.Clone(r.root)
	root[0] ^= 1
	if a := rc.Install(bytes.NewReader(r.file(r.manifest("1.2"), r.key, root, r.boot)), "test"); a.Reason != firmware.ReasonHash {
		t.Fatal(a)
	}
	rc = &fwupdate.Receiver{Target: r.disk, Policy: r.rc.Policy, StateFile: state}
	if st := rc.Status(); st.Other != "" || st.Last == nil || st.Last.Reason != firmware.ReasonHash {
		t.Errorf("after a broken upload: %+v", st)
	}
	// A trial that rolled back says why, after the reboot into the
	// previous system.
	rc.RecordTrial(fwupdate.TrialOutcome{Trial: true, Slot: 1, RolledBack: true, Reason: "statestore: closed"})
	rc = &fwupdate.Receiver{Target: r.disk, Policy: r.rc.Policy, StateFile: state}
	if st := rc.Status(); st.Trial == nil || !st.Trial.RolledBack || st.Trial.Reason != "statestore: closed" {
		t.Errorf("after a rolled back trial: %+v", st.Trial)
	}
}

// TestHandlerOutlastsServerTimeouts: an upload slower than the server's
// own read and write timeouts (the status endpoint's are 30 s) is still
// installed and answered.
func TestHandlerOutlastsServerTimeouts(t *testing.T) {
	r := newRig(t)
	srv := httptest.NewUnstartedServer(http.StripPrefix("/update", r.rc.Handler()))
	srv.Config.ReadTimeout, srv.Config.WriteTimeout = 50*time.Millisecond, 50*time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	upd := r.file(r.manifest("1.1"), r.key, r.root, r.boot)
	half := len(upd) / 2
	// The body's second half comes after both timeouts have passed.
	body := io.MultiReader(bytes.NewReader(upd[:half]), &lateReader{after: 200 * time.Millisecond, r: bytes.NewReader(upd[half:])})
	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/update/firmware", body)
	req.ContentLength = int64(len(upd))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("slow upload: %v", err)
	}
	defer resp.Body.Close()
	var a fwupdate.Attempt
	json.NewDecoder(resp.Body).Decode(&a)
	if resp.StatusCode != http.StatusOK || !a.Installed {
		t.Errorf("slow upload: %s %+v", resp.Status, a)
	}
}

// lateReader delays its first read: an upload stalled on a slow link.
type lateReader struct {
	after  time.Duration
	r      io.Reader
	waited bool
}

func (l *lateReader) Read(p []byte) (int, error) {
	if !l.waited {
		l.waited = true
		<-time.After(l.after)
	}
	return l.r.Read(p)
}

// TestPendingAndUnsavedRefusals: once an update is installed and the
// device has not restarted into it, the same version sent again is
// refused without touching the disk (a newer one may still replace it);
// and a refusal that wrote nothing is not written to the state file, so a
// LAN client sending garbage makes the device write no flash.
func TestPendingAndUnsavedRefusals(t *testing.T) {
	r := newRig(t)
	r.rc.StateFile = filepath.Join(t.TempDir(), "fwupdate.json")
	if a := r.rc.Install(bytes.NewReader([]byte("not an update at all")), "lan"); a.Installed || a.Reason != firmware.ReasonFormat {
		t.Fatalf("garbage: %+v", a)
	}
	if _, err := os.Stat(r.rc.StateFile); !os.IsNotExist(err) {
		t.Errorf("a refusal that wrote nothing saved the state file: %v", err)
	}
	upd := r.file(r.manifest("1.1"), r.key, r.root, r.boot)
	if a := r.rc.Install(bytes.NewReader(upd), "lan"); !a.Installed {
		t.Fatalf("first install: %+v", a)
	}
	if _, err := os.Stat(r.rc.StateFile); err != nil {
		t.Errorf("an install did not save the state file: %v", err)
	}
	before, trials := r.diskSum(), r.trialCount()
	if a := r.rc.Install(bytes.NewReader(upd), "lan"); a.Installed || a.Reason != firmware.ReasonBusy {
		t.Fatalf("the same update again before the restart: %+v, want refused (busy)", a)
	}
	if r.diskSum() != before || r.trialCount() != trials {
		t.Error("the repeated update touched the disk or armed another trial")
	}
	if a := r.rc.Install(bytes.NewReader(r.file(r.manifest("1.2"), r.key, r.root, r.boot)), "lan"); !a.Installed {
		t.Errorf("a newer update before the restart: %+v, want installed", a)
	}
}

// TestTrialRefusesUpdates: while the running system is a trial not yet
// committed, the other partition is its fallback, and an update (however
// well signed) is refused without touching the disk; once committed, the
// same update installs.
func TestTrialRefusesUpdates(t *testing.T) {
	r := newRig(t)
	st := fwupdate.BootState{Running: 1, Default: 0, Trial: true}
	r.rc.BootState = func() (fwupdate.BootState, error) { return st, nil }
	upd := r.file(r.manifest("1.1"), r.key, r.root, r.boot)
	before := r.diskSum()
	a := r.rc.Install(bytes.NewReader(upd), "lan")
	if a.Installed || a.Reason != firmware.ReasonTrial || !strings.Contains(a.Detail, "not yet committed") {
		t.Fatalf("an update on an uncommitted trial: %+v, want refused (%s)", a, firmware.ReasonTrial)
	}
	if r.diskSum() != before || r.trialCount() != 0 {
		t.Fatal("the refused update touched the disk or armed a trial")
	}
	if last, _ := r.rc.Last(); last.Reason != firmware.ReasonTrial {
		t.Errorf("the status's last attempt: %+v", last)
	}
	srv := httptest.NewServer(r.rc.Handler())
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/"+fwupdate.Path, bytes.NewReader(upd))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict {
		t.Errorf("over HTTP: %s, want 409", resp.Status)
	}

	st.Default = 1 // committed (the Pi's tryboot flag stays set until the next boot)
	if a := r.rc.Install(bytes.NewReader(upd), "lan"); !a.Installed {
		t.Fatalf("after the commit: %+v", a)
	}
}

// TestRolledBackBuildRefused: a build that failed its trial (recorded on
// the trial system) is refused when sent again, after the reboot into the
// previous system; a later build of the same version, or a newer version,
// is installed.
func TestRolledBackBuildRefused(t *testing.T) {
	r := newRig(t)
	state := filepath.Join(t.TempDir(), "fwupdate.json")
	r.rc.StateFile = state
	m := r.manifest("1.1")
	upd := r.file(m, r.key, r.root, r.boot)
	if a := r.rc.Install(bytes.NewReader(upd), "lan"); !a.Installed {
		t.Fatal(a)
	}

	// The trial system (1.1) fails its trial and records it.
	r.running = "1.1"
	trial := &fwupdate.Receiver{Target: r.disk, Policy: r.rc.Policy, StateFile: state}
	trial.RecordTrial(fwupdate.TrialOutcome{Trial: true, Slot: 1, RolledBack: true, Reason: "broker: not probed yet", DecidedAt: time.Now()})

	// Back on 1.0: the same file again.
	r.running = "1.0"
	prev := &fwupdate.Receiver{Target: r.disk, Policy: r.rc.Policy, StateFile: state}
	before := r.diskSum()
	a := prev.Install(bytes.NewReader(upd), "lan")
	if a.Installed || a.Reason != firmware.ReasonRolledBack {
		t.Fatalf("the rolled-back build again: %+v, want refused (%s)", a, firmware.ReasonRolledBack)
	}
	if r.diskSum() != before {
		t.Error("the refused build touched the disk")
	}
	again := r.manifest("1.1")
	again.Built = m.Built.Add(time.Minute)
	if a := prev.Install(bytes.NewReader(r.file(again, r.key, r.root, r.boot)), "lan"); !a.Installed {
		t.Errorf("a later build of 1.1: %+v, want installed", a)
	}
}
