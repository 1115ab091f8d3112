package loadgen

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// clockTick is USER_HZ, the unit of utime and stime in /proc/PID/stat. It
// is 100 on every Linux architecture we run on (arm, arm64, amd64).
const clockTick = 10 * time.Millisecond

// ProcCPU returns the CPU time of process pid: the sum of its threads'
// time on a CPU in nanoseconds (root/PID/task/*/schedstat, root normally
// "/proc"), or, where the kernel keeps no schedstat, user plus system
// time from root/PID/stat, counted in 10 ms ticks. The ticks are too
// coarse for the paced runs: 3,000 messages at 40 µs each are 12 ticks,
// so one tick more or less moved a ratio by 8 %. A thread that exits
// takes its time with it (see ProcCtxSwitches).
func ProcCPU(root string, pid int) (time.Duration, error) {
	if d, ok := schedCPU(root, pid); ok {
		return d, nil
	}
	return statCPU(root, pid)
}

// schedCPU sums the first field of every thread's schedstat (time on a
// CPU, ns); false if there is none to read.
func schedCPU(root string, pid int) (time.Duration, bool) {
	dir := filepath.Join(root, strconv.Itoa(pid), "task")
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0, false
	}
	var sum time.Duration
	read := 0
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, t.Name(), "schedstat"))
		if err != nil {
			continue // the thread ended since ReadDir, or no schedstat
		}
		f := bytes.Fields(b)
		if len(f) < 1 {
			return 0, false
		}
		ns, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return 0, false
		}
		sum += time.Duration(ns)
		read++
	}
	return sum, read > 0
}

// statCPU returns utime plus stime from root/PID/stat.
func statCPU(root string, pid int) (time.Duration, error) {
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

// ProcCtxSwitches returns the context switches, voluntary plus
// nonvoluntary, of every thread of process pid, summed over
// root/PID/task/*/status (root is normally "/proc"). A thread that exits
// takes its count with it, so read it before and after a phase of a
// process whose threads live as long as it does (a Go program's).
func ProcCtxSwitches(root string, pid int) (int64, error) {
	dir := filepath.Join(root, strconv.Itoa(pid), "task")
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("loadgen: %w", err)
	}
	var sum int64
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, t.Name(), "status"))
		if errors.Is(err, fs.ErrNotExist) {
			continue // the thread ended since ReadDir
		}
		if err != nil {
			return 0, fmt.Errorf("loadgen: %w", err)
		}
		n, err := parseCtxSwitches(b)
		if err != nil {
			return 0, fmt.Errorf("loadgen: %s/%s/status: %w", dir, t.Name(), err)
		}
		sum += n
	}
	return sum, nil
}

// parseCtxSwitches returns voluntary_ctxt_switches plus
// nonvoluntary_ctxt_switches from a status file; both lines must be there.
func parseCtxSwitches(status []byte) (int64, error) {
	var sum int64
	found := 0
	for line := range bytes.Lines(status) {
		name, val, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		switch string(name) {
		case "voluntary_ctxt_switches", "nonvoluntary_ctxt_switches":
		default:
			continue
		}
		n, err := strconv.ParseInt(string(bytes.TrimSpace(val)), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", name, err)
		}
		sum += n
		found++
	}
	if found != 2 {
		return 0, errors.New("no voluntary_ctxt_switches and nonvoluntary_ctxt_switches lines")
	}
	return sum, nil
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
