// Package testenv is what the tests of every floor share about their
// environment: the host tools they need, bounded waits on conditions
// that send no event, a network namespace of their own (InNetns), free
// loopback ports (FreePort), helper processes that report by lines
// (StartChild), and real brokers to talk to (StartMosquitto, and
// StartNATSCluster: nats-server v2.15.2, pinned by the module tools/nats).
//
// NeedTool and Unavailable skip a test on a developer's machine that lacks
// something, and fail it when CI is set (.ci/run sets CI=true): CI installs
// everything through tools/setup-test-deps, so a missing tool there is a
// bug, not a reason to test less.
//
// It lives at the ground beside the broker (the broker's tests may import
// nothing of another subsystem) and imports only the standard library;
// tools/depcheck declares it shared, so provisioning, board, statestore,
// appliance, tools and image tests import it too. Import it only from
// _test.go files and test helper packages.
package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"
)

// InCI reports whether the tests run under CI: the environment variable CI
// is set to anything but "", "0" or "false".
func InCI() bool {
	v := os.Getenv("CI")
	return v != "" && v != "0" && v != "false"
}

// Unavailable ends a test that cannot run here: under CI it fails, elsewhere
// it skips. The message says what is missing and how to get it.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("%s (CI is set: a test may not skip under CI)", msg)
		return
	}
	t.Skip(msg)
}

// NeedTool returns the path of a host tool, or ends the test through
// Unavailable when the tool is not in PATH.
func NeedTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Unavailable(t, "%s not installed: run tools/setup-test-deps", name)
		return ""
	}
	return p
}

// Eventually calls cond until it holds, failing the test when timeout
// passes first: a bounded wait for a condition that sends no event.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	errNotYet := errors.New("not yet")
	err := Poll(timeout, nil, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
	if err != nil {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// Poll calls f until it returns nil, exited is closed (nil: never) or
// timeout passes, and returns f's last error: a bounded wait on, for
// example, a server coming up. The pause between calls grows from 1 ms to
// 100 ms.
func Poll(timeout time.Duration, exited <-chan struct{}, f func() error) error {
	deadline := time.Now().Add(timeout)
	for d := time.Millisecond; ; d = min(2*d, 100*time.Millisecond) {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("process exited (see its log): %w", err)
		default:
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(d)
	}
}
