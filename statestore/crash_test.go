package statestore

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"edgebroker/broker/testenv"
)

const crashHelperEnv = "STATESTORE_CRASH_HELPER_DIR"

// TestCrashHelper is the child process of TestCrashSafety: it writes
// concurrently and prints "key value" for every acknowledged Set, forever.
func TestCrashHelper(t *testing.T) {
	dir := os.Getenv(crashHelperEnv)
	if dir == "" {
		t.Skip("helper process for TestCrashSafety")
	}
	s, err := Open(dir, Options{})
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := 0; ; i++ {
				k := fmt.Sprintf("p%d-g%02d-%06d", os.Getpid(), g, i)
				v := strings.Repeat(k, 1+i%7)
				if _, err := s.Set([]byte(k), []byte(v), SetOptions{}); err != nil {
					fmt.Fprintln(os.Stderr, "Set:", err)
					os.Exit(3)
				}
				mu.Lock()
				fmt.Fprintf(out, "%s %s\n", k, v)
				out.Flush() // one write(2) per acknowledged key
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	dir := t.TempDir()
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.v=false")
		cmd.Env = append(os.Environ(), crashHelperEnv+"="+dir)
		child := testenv.StartChild(t, cmd)
		acked := make(map[string]string)
		killAt := time.Now().Add(time.Duration(200+100*round) * time.Millisecond)
		killed := false
		for line := range child.Lines() {
			k, v, ok := strings.Cut(line, " ")
			if !ok || k == "ERROR" {
				t.Fatalf("helper: %q", line)
			}
			acked[k] = v
			if !killed && time.Now().After(killAt) {
				cmd.Process.Signal(syscall.SIGKILL) // keep reading what was already acked
				killed = true
			}
		}
		cmd.Wait()
		if !killed {
			t.Fatalf("helper exited before the kill")
		}
		if len(acked) == 0 {
			t.Fatalf("round %d: no acknowledged writes", round)
		}
		s, err := Open(dir, Options{})
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		if rec, note := s.Recovered(); rec {
			t.Logf("round %d: %s", round, note)
		}
		missing := 0
		for k, v := range acked {
			got, _, err := s.Get([]byte(k))
			if err != nil || string(got) != v {
				missing++
				if missing < 5 {
					t.Errorf("round %d: acknowledged %q: Get = %q, %v", round, k, got, err)
				}
			}
		}
		t.Logf("round %d: %d acknowledged writes checked, %d missing", round, len(acked), missing)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
