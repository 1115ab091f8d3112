package apply

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"edgebroker/provisioning/atomicfile"
)

// load reads state.json; a missing file is the empty state.
func (s *Store) load() (state, error) {
	var st state
	data, err := os.ReadFile(filepath.Join(s.Dir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("apply: state: %w", err)
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return st, fmt.Errorf("apply: state %s: %w", filepath.Join(s.Dir, stateFile), err)
	}
	return st, nil
}

func (s *Store) save(st state) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("apply: state: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(s.Dir, stateFile), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("apply: state: %w", err)
	}
	return nil
}

func (s *Store) history() ([]Result, error) {
	var h []Result
	data, err := os.ReadFile(filepath.Join(s.Dir, historyFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err == nil {
		err = json.Unmarshal(data, &h)
	}
	if err != nil {
		return nil, fmt.Errorf("apply: history: %w", err)
	}
	return h, nil
}

// maxReasons bounds the reasons history.json keeps per attempt.
const maxReasons = 100

// Record adds an attempt that ended before Install could read the bundle
// (a stick pulled mid-read) to the history.
func (s *Store) Record(res Result) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if res.Time.IsZero() {
		res.Time = s.now()
	}
	return s.record(res)
}

// record appends res to history.json, keeping the last HistoryLen attempts
// and the first maxReasons reasons of each. A damaged history is started
// afresh rather than blocking installs.
func (s *Store) record(res Result) error {
	h, _ := s.history()
	n := s.HistoryLen
	if n <= 0 {
		n = DefaultHistory
	}
	if len(res.Reasons) > maxReasons {
		more := len(res.Reasons) - maxReasons
		res.Reasons = append(res.Reasons[:maxReasons:maxReasons], fmt.Sprintf("... and %d more", more))
	}
	h = append(h, res)
	h = h[max(0, len(h)-n):]
	data, err := json.MarshalIndent(h, "", "  ")
	if err != nil {
		return fmt.Errorf("apply: history: %w", err)
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("apply: history: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(s.Dir, historyFile), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("apply: history: %w", err)
	}
	return nil
}

// clean removes everything in Dir that st does not refer to: a staging
// folder or config folder left by a crash, temporary files.
func (s *Store) clean(st state) {
	keep := []string{stateFile, historyFile, st.Current, st.Previous}
	ents, _ := os.ReadDir(s.Dir)
	for _, e := range ents {
		if !slices.Contains(keep, e.Name()) {
			os.RemoveAll(filepath.Join(s.Dir, e.Name()))
		}
	}
}

// extract writes every file of fsys into a staging folder, fsyncs it and
// renames it to Dir/name. Files are 0600 and folders 0700: a bundle
// carries private keys.
func (s *Store) extract(fsys fs.FS, name string) error {
	staging := filepath.Join(s.Dir, stagingDir)
	if err := os.RemoveAll(staging); err != nil {
		return fmt.Errorf("apply: extract: %w", err)
	}
	var dirs []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(staging, filepath.FromSlash(p))
		if d.IsDir() {
			dirs = append(dirs, dst)
			return os.Mkdir(dst, 0o700)
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		return atomicfile.WriteFile(dst, data, 0o600)
	})
	// Folders' entries are durable once each folder is fsynced, deepest first.
	for i := len(dirs) - 1; err == nil && i >= 0; i-- {
		err = syncDir(dirs[i])
	}
	if err == nil {
		err = os.Rename(staging, filepath.Join(s.Dir, name))
	}
	if err == nil {
		err = syncDir(s.Dir)
	}
	if err != nil {
		os.RemoveAll(staging)
		return fmt.Errorf("apply: extract: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
