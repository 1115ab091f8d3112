package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// memoryCap puts what wrap starts into a new memory cgroup limited to
// limit bytes (cgroup v2's memory.max, or v1's memory.limit_in_bytes): a
// hard cap, beside the Go runtime's soft one. It returns the wrapper
// (prepend it to the command) and the cgroup's folder, or nil and the
// reason when this machine lets the test make no cgroup (then only the
// soft limit and the RSS bound hold the broker).
func memoryCap(t *testing.T, limit int64) (wrap []string, dir string, why string) {
	t.Helper()
	name := fmt.Sprintf("edgebroker-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	var limitFile string
	if ctl, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		if !strings.Contains(string(ctl), "memory") {
			return nil, "", "cgroup v2 without the memory controller"
		}
		dir, limitFile = filepath.Join("/sys/fs/cgroup", name), "memory.max"
	} else if _, err := os.Stat("/sys/fs/cgroup/memory/cgroup.procs"); err == nil {
		dir, limitFile = filepath.Join("/sys/fs/cgroup/memory", name), "memory.limit_in_bytes"
	} else {
		return nil, "", "no cgroup file system"
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, "", err.Error()
	}
	t.Cleanup(func() { // after the child is killed (cleanups run last first)
		for i := 0; i < 100 && os.Remove(dir) != nil; i++ {
			time.Sleep(20 * time.Millisecond)
		}
	})
	if err := os.WriteFile(filepath.Join(dir, limitFile), []byte(fmt.Sprint(limit)), 0o644); err != nil {
		return nil, "", err.Error()
	}
	if limitFile == "memory.max" {
		os.WriteFile(filepath.Join(dir, "memory.swap.max"), []byte("0"), 0o644) // absent without swap accounting
	}
	// The shell joins the cgroup, then becomes the broker (same PID).
	procs := filepath.Join(dir, "cgroup.procs")
	return []string{"sh", "-c", `echo $$ > "$0" && exec "$@"`, procs}, dir, ""
}

// oomKills returns how often the cgroup in dir ran out of memory (v2:
// memory.events oom_kill; v1: memory.oom_control oom_kill).
func oomKills(dir string) string {
	for _, f := range []string{"memory.events", "memory.oom_control"} {
		if b, err := os.ReadFile(filepath.Join(dir, f)); err == nil {
			for _, l := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(l, "oom_kill "); ok {
					return v
				}
			}
		}
	}
	return "?"
}

// cgroupPeak returns the most memory the cgroup in dir used (v2:
// memory.peak; v1: memory.max_usage_in_bytes).
func cgroupPeak(dir string) string {
	for _, f := range []string{"memory.peak", "memory.max_usage_in_bytes"} {
		if b, err := os.ReadFile(filepath.Join(dir, f)); err == nil {
			return strings.TrimSpace(string(b))
		}
	}
	return "?"
}
