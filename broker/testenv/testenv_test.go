package testenv

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// recorder is a testing.TB that records how a helper ended the test
// instead of ending it.
type recorder struct {
	testing.TB
	fatal, skip string
}

func (r *recorder) Helper()                        {}
func (r *recorder) Fatalf(format string, a ...any) { r.fatal = fmt.Sprintf(format, a...) }
func (r *recorder) Skip(a ...any)                  { r.skip = fmt.Sprint(a...) }

const missing = "edgebroker-testenv-no-such-tool"

// TestNeedToolFailsUnderCI: a missing tool fails the test when CI is set
// and skips it otherwise; a present tool is returned by path either way.
func TestNeedToolFailsUnderCI(t *testing.T) {
	for _, tt := range []struct {
		ci        string
		wantFatal bool
	}{
		{"true", true}, {"1", true}, {"", false}, {"false", false}, {"0", false},
	} {
		t.Setenv("CI", tt.ci)
		r := &recorder{TB: t}
		if p := NeedTool(r, missing); p != "" {
			t.Errorf("CI=%q: NeedTool(missing) = %q", tt.ci, p)
		}
		if gotFatal := r.fatal != ""; gotFatal != tt.wantFatal || (r.skip != "") == tt.wantFatal {
			t.Errorf("CI=%q: fatal %q, skip %q; want fatal %v", tt.ci, r.fatal, r.skip, tt.wantFatal)
		}
		if msg := r.fatal + r.skip; !strings.Contains(msg, missing) || !strings.Contains(msg, "tools/setup-test-deps") {
			t.Errorf("CI=%q: message %q does not name the tool and tools/setup-test-deps", tt.ci, msg)
		}
		r = &recorder{TB: t}
		if p := NeedTool(r, "sh"); p == "" || r.fatal != "" || r.skip != "" {
			t.Errorf("CI=%q: NeedTool(sh) = %q, fatal %q, skip %q", tt.ci, p, r.fatal, r.skip)
		}
	}
}

// TestEventually: it returns once the condition holds, and fails naming
// what it waited for when the timeout passes first (fake time: no sleeping).
func TestEventually(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start, calls := time.Now(), 0
		r := &recorder{TB: t}
		Eventually(r, time.Minute, "the third call", func() bool { calls++; return calls == 3 })
		if r.fatal != "" || calls != 3 {
			t.Errorf("held on call 3: fatal %q after %d calls", r.fatal, calls)
		}
		if d := time.Since(start); d > 10*time.Millisecond {
			t.Errorf("held on call 3 after %v: the first pauses are short", d)
		}

		start = time.Now()
		r = &recorder{TB: t}
		Eventually(r, 5*time.Second, "never", func() bool { return false })
		if !strings.Contains(r.fatal, "waiting for never") {
			t.Errorf("never holds: fatal %q, want it to name what it waited for", r.fatal)
		}
		if d := time.Since(start); d < 5*time.Second || d > 5*time.Second+200*time.Millisecond {
			t.Errorf("gave up after %v, want 5 s (and one pause at most)", d)
		}
	})
}

// TestPoll: nil once f succeeds, f's last error at the timeout, and an
// error wrapping f's as soon as exited is closed.
func TestPoll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		errDown := errors.New("down")
		n := 0
		if err := Poll(time.Second, nil, func() error { n++; return map[bool]error{true: nil, false: errDown}[n == 4] }); err != nil || n != 4 {
			t.Errorf("up on call 4: %v after %d calls", err, n)
		}
		start := time.Now()
		if err := Poll(time.Second, nil, func() error { return errDown }); err != errDown || time.Since(start) < time.Second {
			t.Errorf("never up: %v after %v, want %v after 1 s", err, time.Since(start), errDown)
		}
		exited := make(chan struct{})
		close(exited)
		start = time.Now()
		if err := Poll(time.Hour, exited, func() error { return errDown }); !errors.Is(err, errDown) || !strings.Contains(err.Error(), "process exited") || time.Since(start) != 0 {
			t.Errorf("exited: %v after %v, want at once an error wrapping %v", err, time.Since(start), errDown)
		}
	})
}

// TestFreePorts: the ports are distinct and can be listened on.
func TestFreePorts(t *testing.T) {
	ports := append(FreePorts(t, 3), FreePort(t))
	seen := map[int]bool{}
	for _, p := range ports[:3] {
		if seen[p] {
			t.Errorf("FreePorts: %v repeats %d", ports[:3], p)
		}
		seen[p] = true
	}
	for _, p := range ports {
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Fatalf("port %d: %v", p, err)
		}
		ln.Close()
	}
}
