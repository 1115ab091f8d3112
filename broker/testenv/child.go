package testenv

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"testing"
	"time"
)

// Child is a helper process a test talks to by lines: usually the test
// binary itself, re-executed so that its memory, its clients or its crash
// stay apart from the test's. The child says how far it got on stdout,
// one word a line ("ready"), and ends when its stdin is closed.
type Child struct {
	Cmd   *exec.Cmd      // the running process; set by StartChild, read-only
	Stdin io.WriteCloser // closing it asks the child to end
	lines chan string    // stdout's lines, sent by StartChild's reader; closed at EOF
	stop  chan struct{}  // closed at the test's end: the reader drops lines from then on
}

// StartChild starts cmd with its stdin and stdout piped to the test and
// its stderr the test's. When the test ends, its stdin is closed and it
// is waited for, and killed if it has not ended childGrace later.
func StartChild(t testing.TB, cmd *exec.Cmd) *Child {
	t.Helper()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &Child{Cmd: cmd, Stdin: stdin, lines: make(chan string), stop: make(chan struct{})}
	go c.read(stdout)
	t.Cleanup(func() {
		stdin.Close()
		close(c.stop)
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		select {
		case <-exited:
		case <-time.After(childGrace):
			cmd.Process.Kill()
			<-exited
		}
	})
	return c
}

// childGrace is how long a child may take to end once its stdin is
// closed at the end of the test.
const childGrace = 10 * time.Second

// Lines returns the child's stdout, a line at a time; it is closed when
// the child closes its stdout (it ended).
func (c *Child) Lines() <-chan string { return c.lines }

func (c *Child) read(stdout io.Reader) {
	defer close(c.lines)
	sc := bufio.NewScanner(stdout)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		select {
		case c.lines <- sc.Text():
		case <-c.stop:
		}
	}
}

// Expect waits up to d for the child's next line and fails the test
// unless it is want (the message quotes a line that is not: "error: ...",
// say).
func (c *Child) Expect(t testing.TB, want string, d time.Duration) {
	t.Helper()
	if l, ok := c.next(t, d, fmt.Sprintf("%q", want)); ok && l != want {
		t.Fatalf("the child process said %q, want %q", l, want)
	}
}

// Line waits up to d for the child's next line and returns it; it fails
// the test (ok false) when the child ends first or d passes.
func (c *Child) Line(t testing.TB, d time.Duration) (line string, ok bool) {
	t.Helper()
	return c.next(t, d, "a line")
}

func (c *Child) next(t testing.TB, d time.Duration, what string) (string, bool) {
	t.Helper()
	select {
	case l, ok := <-c.lines:
		if !ok {
			t.Fatalf("the child process ended before it said %s", what)
		}
		return l, ok
	case <-time.After(d):
		t.Fatalf("the child process did not say %s within %v", what, d)
		return "", false
	}
}
