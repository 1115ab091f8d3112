package netconf

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestGokrazyNTP: NTP servers stop gokrazy's supervised ntp and run the
// image's /gokrazy/ntp with the servers as arguments (here a stand-in
// script that records them and its environment); other servers replace
// that process; no servers end it and restart the supervised one.
func TestGokrazyNTP(t *testing.T) {
	root, perm, dir := t.TempDir(), t.TempDir(), t.TempDir()
	out := t.TempDir()
	os.MkdirAll(filepath.Join(root, "gokrazy"), 0o755)
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc", "hostname"), []byte("edgebroker"), 0o644)
	script := "#!/bin/sh\necho \"$@ $NTP_PRIVILEGES_DROPPED $NTP_TIMEFILE\" > " + out + "/args.$$\necho $$ > " + out + "/pid\nexec sleep 600\n"
	if err := os.WriteFile(filepath.Join(root, "gokrazy", "ntp"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	svc := new(services)
	g := &Gokrazy{Root: root, Perm: perm, Dir: dir, Services: svc, SetHostname: func(string) error { return nil }}
	t.Cleanup(g.stopNTP)

	started := func(want string) int {
		t.Helper()
		var pid int
		deadline := time.Now().Add(10 * time.Second)
		for {
			if b, err := os.ReadFile(filepath.Join(out, "pid")); err == nil {
				pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
				if a, err := os.ReadFile(filepath.Join(out, "args."+strconv.Itoa(pid))); err == nil && strings.TrimSpace(string(a)) == want {
					return pid
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("no ntp started with %q", want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	gone := func(pid int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for syscall.Kill(pid, 0) == nil {
			if time.Now().After(deadline) {
				t.Fatalf("ntp %d still runs", pid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	if err := g.Apply(t.Context(), Settings{NTPServers: []string{"192.168.10.1", "ntp.example"}}); err != nil {
		t.Fatal(err)
	}
	first := started("192.168.10.1 ntp.example 1 1") // privileges dropped, the time file handed over
	if _, err := os.Stat(filepath.Join(perm, "home", "ntp", "ntp-time-at-last-shutdown")); err != nil {
		t.Errorf("the saved time file: %v", err)
	}
	if diff := cmp.Diff([]string{"stop " + NTPService}, svc.calls); diff != "" {
		t.Errorf("service calls (-want +got):\n%s", diff)
	}

	svc.calls = nil
	if err := g.Apply(t.Context(), Settings{NTPServers: []string{"10.0.0.1"}}); err != nil {
		t.Fatal(err)
	}
	gone(first)
	second := started("10.0.0.1 1 1")
	if len(svc.calls) != 0 {
		t.Errorf("service calls %q, want none (the supervised ntp stays stopped)", svc.calls)
	}

	if err := g.Apply(t.Context(), Settings{}); err != nil {
		t.Fatal(err)
	}
	gone(second)
	if diff := cmp.Diff([]string{"restart " + NTPService}, svc.calls); diff != "" {
		t.Errorf("service calls (-want +got):\n%s", diff)
	}
}
