package loadgen

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// clockTick is USER_HZ, the unit of utime and stime in /proc/PID/stat. It
// is 100 on every Linux architecture we run on (arm, arm64, amd64).
const clockTick = 10 * time.Millisecond

// ProcCPU returns the user plus system CPU time of process pid, read from
// root/PID/stat (root is normally "/proc").
func ProcCPU(root string, pid int) (time.Duration, error) {
	b, err := os.ReadFile(filepath.Join(root, strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, fmt.Errorf("loadgen: %w", err)
	}
	// The command name (field 2) is in parentheses and may hold spaces;
	// fields are counted after the last ')'. utime and stime are fields
	// 14 and 15, i.e. the 12th and 13th after the ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("loadgen: %s/%d/stat: no command name", root, pid)
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("loadgen: %s/%d/stat: %d fields", root, pid, len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(string(s), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("loadgen: %s/%d/stat: %w", root, pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick, nil
}

// ProcRSS returns the resident set size (VmRSS) of process pid in bytes,
// read from root/PID/status.
func ProcRSS(root string, pid int) (int64, error) {
	b, err := os.ReadFile(filepath.Join(root, strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, fmt.Errorf("loadgen: %w", err)
	}
	for line := range bytes.Lines(b) {
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest) // "1234", "kB"
		if len(f) != 2 || string(f[1]) != "kB" {
			break
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("loadgen: %s/%d/status: %w", root, pid, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("loadgen: %s/%d/status: no VmRSS line", root, pid)
}

// RaiseFileLimit raises RLIMIT_NOFILE so that at least need descriptors
// can be open: the soft limit up to the hard one, and the hard one too
// when the process may (root). It always sets the limit, so child
// processes inherit it (Go restores the original soft limit in children
// of a program that never called Setrlimit).
func RaiseFileLimit(need uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("loadgen: getrlimit: %w", err)
	}
	if lim.Max < need {
		raised := syscall.Rlimit{Cur: need, Max: need}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err == nil {
			return nil
		}
		return fmt.Errorf("loadgen: RLIMIT_NOFILE hard limit is %d, need %d (raise it with ulimit -Hn as root)", lim.Max, need)
	}
	lim.Cur = max(need, min(lim.Max, 1<<20))
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("loadgen: setrlimit: %w", err)
	}
	return nil
}
