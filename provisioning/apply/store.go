// Package apply keeps the gateway's provisioned configuration on the data
// partition and installs new bundles: open, verify, validate, extract,
// switch through the appliance's live reload, and roll back if the new
// configuration cannot come up.
//
// The store is a folder (the appliance passes DATA/provisioning):
//
//	state.json       last applied serial, current and previous folder, key changes
//	history.json     the last attempts, applied or not, with every reason
//	config-<serial>  the current configuration, and the previous one
//
// state.json is the commit point: a new configuration folder is extracted
// into a staging folder, fsynced and renamed into place, applied, and only
// then does an atomic write of state.json make it current. A power cut at
// any point leaves state.json naming either the old or the new folder,
// both complete; leftovers (a staging folder, an orphaned config folder,
// temporary files) are removed by the next Install that gets that far.
// A rejected bundle changes nothing but history.json.
package apply

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"edgebroker/provisioning/bundle"
)

// File names inside Store.Dir.
const (
	stateFile   = "state.json"
	historyFile = "history.json"
	stagingDir  = ".staging"
	configPre   = "config-"
)

// DefaultHistory is how many attempts History keeps by default.
const DefaultHistory = 20

// Store is the on-device store of provisioned configurations. Set the
// fields before the first call; its methods are safe for concurrent use
// (they run one at a time).
type Store struct {
	Dir    string              // the store's folder; created if missing
	Trust  []ed25519.PublicKey // keys baked into the image; bundles may enrol and retire more
	Device bundle.Device       // this gateway, for bundles' device selectors
	Limits bundle.Limits       // zero: bundle.DefaultLimits

	// Validate checks a bundle's configuration folder before anything is
	// stored (the appliance's config.Load + Validate). An error that
	// unwraps to several errors (Unwrap() []error) gives one reason each.
	// nil: no check.
	Validate func(fsys fs.FS) error
	// Apply makes the configuration in dir live (the appliance's reload).
	// An error means the configuration could not come up; Install then
	// applies the current one again. nil: nothing to apply.
	Apply func(ctx context.Context, dir string) error
	// Now is the clock for validity checks and history; nil: time.Now.
	Now func() time.Time
	// HistoryLen is how many attempts to keep; 0: DefaultHistory.
	HistoryLen int

	mu sync.Mutex
}

// Result is the outcome of one Install.
type Result struct {
	Time       time.Time `json:"time"`
	Serial     uint64    `json:"serial,omitempty"` // 0 if the bundle could not be read
	KeyID      string    `json:"keyId,omitempty"`  // the signer
	Applied    bool      `json:"applied"`          // the bundle is now the current configuration
	RolledBack bool      `json:"rolledBack,omitempty"`
	// Reasons says why the bundle was not applied (every problem found),
	// or what went wrong around it; empty for a clean install.
	Reasons []string `json:"reasons,omitempty"`
	// Err is the rejection as an error, for errors.Is with the bundle
	// package's sentinel errors; nil if applied. Not persisted.
	Err error `json:"-"`
}

// state is state.json.
type state struct {
	Serial   uint64              `json:"serial"`
	Current  string              `json:"current,omitempty"`  // folder name in Dir
	Previous string              `json:"previous,omitempty"` // folder name in Dir
	Enrolled []ed25519.PublicKey `json:"enrolled,omitempty"`
	Retired  []ed25519.PublicKey `json:"retired,omitempty"`
}

// Install reads a bundle from r and, if it is signed by a trusted key,
// newer than the current one, valid now, meant for this device and its
// configuration validates, makes it the current configuration. If Apply
// fails for it, the current configuration is applied again and the result
// says so (RolledBack). Every attempt is added to the history.
func (s *Store) Install(ctx context.Context, r io.Reader) Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	res := s.install(ctx, r, now)
	res.Time = now
	if err := s.record(res); err != nil {
		res.Reasons = append(res.Reasons, err.Error())
	}
	return res
}

func (s *Store) install(ctx context.Context, r io.Reader, now time.Time) (res Result) {
	fail := func(err error) Result {
		res.Err = err
		res.Reasons = append(res.Reasons, reasons(err)...)
		return res
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fail(fmt.Errorf("apply: %w", err))
	}
	st, err := s.load()
	if err != nil {
		return fail(err)
	}
	b, err := bundle.Open(r, s.Limits)
	if err != nil {
		return fail(err)
	}
	m := b.Manifest()
	res.Serial, res.KeyID = m.Serial, m.KeyID
	if err := b.Verify(s.trust(st), replayFloor(st), now, &s.Device); err != nil {
		return fail(err)
	}
	if s.Validate != nil {
		if err := s.Validate(b.FS()); err != nil {
			return fail(err)
		}
	}
	s.clean(st)
	name := fmt.Sprintf("%s%020d", configPre, m.Serial)
	if err := s.extract(b.FS(), name); err != nil {
		return fail(err)
	}
	dir := filepath.Join(s.Dir, name)
	if err := s.apply(ctx, dir); err != nil {
		os.RemoveAll(dir)
		return fail(s.rollback(ctx, st, fmt.Errorf("apply: the new configuration could not come up: %w", err), &res))
	}
	next := st
	next.Serial, next.Previous, next.Current = m.Serial, st.Current, name
	enrol, retire := b.KeyChange()
	next.Enrolled = bundle.TrustSet(st.Enrolled).Change(enrol, retire)
	next.Retired = bundle.TrustSet(st.Retired).Change(retire, enrol)
	if err := s.save(next); err != nil {
		os.RemoveAll(dir)
		return fail(s.rollback(ctx, st, err, &res))
	}
	if st.Previous != "" {
		os.RemoveAll(filepath.Join(s.Dir, st.Previous))
	}
	res.Applied = true
	return res
}

// replayFloor is the serial a new bundle must exceed: the current
// configuration's. A current serial above bundle.MaxSerial can only come
// from a bundle applied before such serials were refused, and no bundle
// could ever follow it; the floor is then the previous configuration's
// serial (the bundles before the current one stay refused), or 0 when
// there is none.
func replayFloor(st state) uint64 {
	if st.Serial <= bundle.MaxSerial {
		return st.Serial
	}
	n, err := strconv.ParseUint(strings.TrimPrefix(st.Previous, configPre), 10, 64)
	if err != nil || !strings.HasPrefix(st.Previous, configPre) || n > bundle.MaxSerial {
		return 0
	}
	return n
}

// rollback applies the current configuration again after cause.
func (s *Store) rollback(ctx context.Context, st state, cause error, res *Result) error {
	if st.Current == "" {
		return errors.Join(cause, errors.New("apply: no previous configuration to roll back to"))
	}
	if err := s.apply(ctx, filepath.Join(s.Dir, st.Current)); err != nil {
		return errors.Join(cause, fmt.Errorf("apply: rolling back to serial %d failed too: %w", st.Serial, err))
	}
	res.RolledBack = true
	return errors.Join(cause, fmt.Errorf("apply: rolled back to serial %d", st.Serial))
}

func (s *Store) apply(ctx context.Context, dir string) error {
	if s.Apply == nil {
		return nil
	}
	return s.Apply(ctx, dir)
}

// Current returns the folder of the current configuration, if one was
// applied.
func (s *Store) Current() (dir string, ok bool) {
	return s.folder(func(st state) string { return st.Current })
}

// Previous returns the folder of the configuration before the current one.
func (s *Store) Previous() (dir string, ok bool) {
	return s.folder(func(st state) string { return st.Previous })
}

func (s *Store) folder(pick func(state) string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.load()
	if err != nil || pick(st) == "" {
		return "", false
	}
	return filepath.Join(s.Dir, pick(st)), true
}

// LastSerial returns the serial of the current configuration (0: none).
func (s *Store) LastSerial() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, _ := s.load()
	return st.Serial
}

// Trusted returns the keys the store accepts bundles from now: the baked-in
// ones plus those enrolled, minus those retired.
func (s *Store) Trusted() bundle.TrustSet {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, _ := s.load()
	return s.trust(st)
}

func (s *Store) trust(st state) bundle.TrustSet {
	return bundle.TrustSet(s.Trust).Change(st.Enrolled, st.Retired)
}

// History returns the last attempts, oldest first.
func (s *Store) History() []Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, _ := s.history()
	return h
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// reasons flattens err into one line per joined error.
func reasons(err error) []string {
	if u, ok := err.(interface{ Unwrap() []error }); ok {
		var out []string
		for _, e := range u.Unwrap() {
			out = append(out, reasons(e)...)
		}
		return out
	}
	return []string{err.Error()}
}
