package testenv

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestChild runs the test binary as a Child that says "ready", and "bye"
// once its stdin is closed: Expect passes on the line it waits for, fails
// quoting another one, and fails once the child has ended.
func TestChild(t *testing.T) {
	if os.Getenv("EDGEBROKER_TESTENV_CHILD") != "" {
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin)
		fmt.Println("bye")
		os.Exit(0)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestChild$")
	cmd.Env = append(os.Environ(), "EDGEBROKER_TESTENV_CHILD=1")
	c := StartChild(t, cmd)
	r := &recorder{TB: t}
	c.Expect(r, "ready", time.Minute)
	if r.fatal != "" {
		t.Fatalf("Expect(ready): %s", r.fatal)
	}
	c.Stdin.Close()
	c.Expect(r, "ready", time.Minute)
	if !strings.Contains(r.fatal, `"bye"`) {
		t.Errorf("Expect(ready) on bye: fatal %q, want it to quote bye", r.fatal)
	}
	r.fatal = ""
	c.Expect(r, "ready", time.Minute)
	if !strings.Contains(r.fatal, "ended") {
		t.Errorf("Expect(ready) after the end: fatal %q, want it to say the child ended", r.fatal)
	}
}
