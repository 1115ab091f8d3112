package appliance

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// PIDFile is the file in the data directory that holds the running
// appliance's process ID ("kill -HUP $(cat DATA/edgebroker.pid)"
// reloads exactly that one). It is locked (flock) while the appliance
// runs, so a second appliance on the same data directory refuses to
// start: two on one state store would corrupt it.
const PIDFile = "edgebroker.pid"

// ErrDataDirInUse is returned by Run when another process runs an
// appliance on the same data directory.
var ErrDataDirInUse = errors.New("appliance: the data directory is in use by another edgebroker")

// pidLock is the locked PID file: owned by Run, released when it returns.
type pidLock struct {
	f    *os.File // open and flocked while the appliance runs
	path string
}

// lockPID takes DATA/edgebroker.pid: locks it and writes this process's
// ID into it. A file left by a process that died is not locked (the
// kernel drops a dead process's locks) and is replaced.
func lockPID(dir string) (*pidLock, error) {
	path := filepath.Join(dir, PIDFile)
	for range 10 {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("appliance: pid file: %w", err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, fmt.Errorf("%w (pid %s, %s is locked): stop it first, or give this one another -data DIR",
					ErrDataDirInUse, readPID(path), path)
			}
			return nil, fmt.Errorf("appliance: pid file: flock %s: %w", path, err)
		}
		// The holder may have removed the file between our open and
		// lock (its clean exit): then the lock is on a file no one
		// else finds, and we start over with the file at path.
		held, err1 := f.Stat()
		now, err2 := os.Stat(path)
		if err1 != nil || err2 != nil || !os.SameFile(held, now) {
			f.Close()
			continue
		}
		if err := f.Truncate(0); err != nil {
			f.Close()
			return nil, fmt.Errorf("appliance: pid file: %w", err)
		}
		if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
			f.Close()
			return nil, fmt.Errorf("appliance: pid file: %w", err)
		}
		return &pidLock{f: f, path: path}, nil
	}
	return nil, fmt.Errorf("appliance: pid file %s: replaced while locking it, again and again", path)
}

// readPID returns the process ID in the PID file at path, for messages.
func readPID(path string) string {
	b := make([]byte, 32)
	f, err := os.Open(path)
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	n, _ := f.Read(b)
	if pid := strings.TrimSpace(string(b[:n])); pid != "" {
		return pid
	}
	return "unknown"
}

// release removes the PID file, then unlocks it (in that order: whoever
// locks the file after us finds it gone and takes the new one).
func (p *pidLock) release() {
	os.Remove(p.path)
	p.f.Close()
}
