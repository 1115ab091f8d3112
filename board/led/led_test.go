package led

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Raspberry Pi 4 ACT LED triggers (shortened), SD card activity selected.
const piTriggers = "none kbd-scrolllock timer oneshot heartbeat backlight gpio cpu default-on input panic actpwr [mmc0] mmc1\n"

// fakeLED makes root/sys/class/leds/name with the files the kernel has
// (delay_on/delay_off exist only once the timer trigger is set; the fake
// has them from the start).
func fakeLED(t *testing.T, root, name, triggers string) string {
	t.Helper()
	dir := filepath.Join(root, "sys", "class", "leds", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for f, v := range map[string]string{
		"trigger": triggers, "brightness": "0\n", "max_brightness": "255\n", "delay_on": "500\n", "delay_off": "500\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// recorder notes every write with the (fake) time since it was made.
type recorder struct {
	mu     sync.Mutex
	start  time.Time
	writes []string
}

func record(l *LED) *recorder {
	r := &recorder{start: time.Now()}
	l.written = func(file, value string) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.writes = append(r.writes, fmt.Sprintf("%v %s=%s", time.Since(r.start), file, value))
	}
	return r
}

// take returns the writes so far and forgets them.
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.writes
	r.writes = nil
	return w
}

func content(t *testing.T, dir, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestOpen(t *testing.T) {
	root := t.TempDir()
	fakeLED(t, root, "led0", "none [heartbeat] timer\n")
	fakeLED(t, root, "PWR", "none [default-on]\n")
	for _, tt := range []struct {
		name, want, trigger string
		timer               bool
	}{
		{"", "led0", "heartbeat", true},
		{"PWR", "PWR", "default-on", false},
		{"missing", "", "", false},
	} {
		l := Open(root, tt.name)
		if l.Name() != tt.want || l.trigger != tt.trigger || l.hasTimer != tt.timer || (tt.want != "" && l.max != 255) {
			t.Errorf("Open(%q): name %q trigger %q timer %v max %d; want %q %q %v 255", tt.name, l.Name(), l.trigger, l.hasTimer, l.max, tt.want, tt.trigger, tt.timer)
		}
	}
	root2 := t.TempDir()
	fakeLED(t, root2, "ACT", piTriggers)
	fakeLED(t, root2, "led0", piTriggers)
	if got := Open(root2, "").Name(); got != "ACT" {
		t.Errorf("Open with ACT and led0: got %q, want ACT", got)
	}
}

// TestAbsent: no LED is a no-op, not an error, and creates no files.
func TestAbsent(t *testing.T) {
	root := t.TempDir()
	l := Open(root, "")
	for _, p := range []Pattern{Working, Success, Failure, Off, Idle} {
		l.Show(t.Context(), p)
	}
	l.Close()
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Errorf("no-op LED created %v", entries)
	}
}

func TestWorkingTimerTrigger(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := fakeLED(t, t.TempDir(), "ACT", piTriggers)
		l := Open(filepath.Dir(filepath.Dir(filepath.Dir(filepath.Dir(dir)))), "")
		r := record(l)
		l.Show(t.Context(), Working)
		time.Sleep(time.Minute) // the kernel blinks; nothing more to write
		synctest.Wait()
		if diff := cmp.Diff([]string{"0s trigger=timer", "0s delay_on=100", "0s delay_off=100"}, r.take()); diff != "" {
			t.Errorf("Working writes (-want +got):\n%s", diff)
		}
		l.Show(t.Context(), Idle)
		if diff := cmp.Diff([]string{"1m0s trigger=mmc0"}, r.take()); diff != "" {
			t.Errorf("Idle writes (-want +got):\n%s", diff)
		}
		if got := content(t, dir, "trigger"); got != "mmc0" {
			t.Errorf("trigger file: %q, want mmc0", got)
		}
	})
}

func TestWorkingToggle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		root := t.TempDir()
		dir := fakeLED(t, root, "ACT", "none [default-on]\n") // no timer trigger
		l := Open(root, "ACT")
		r := record(l)
		l.Show(t.Context(), Working)
		time.Sleep(350 * time.Millisecond)
		synctest.Wait()
		want := []string{"0s trigger=none", "0s brightness=255", "100ms brightness=0", "200ms brightness=255", "300ms brightness=0"}
		if diff := cmp.Diff(want, r.take()); diff != "" {
			t.Errorf("Working writes (-want +got):\n%s", diff)
		}
		if got := content(t, dir, "brightness"); got != "0" {
			t.Errorf("brightness file at 350ms: %q, want 0", got)
		}
		// The next pattern stops the toggling at once.
		l.Show(t.Context(), Off)
		time.Sleep(time.Second)
		synctest.Wait()
		if diff := cmp.Diff([]string{"350ms trigger=none", "350ms brightness=0"}, r.take()); diff != "" {
			t.Errorf("after Off (-want +got):\n%s", diff)
		}
	})
}

func TestSuccess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		root := t.TempDir()
		dir := fakeLED(t, root, "ACT", piTriggers)
		l := Open(root, "")
		l.SuccessFor = 3 * time.Second
		r := record(l)
		l.Show(t.Context(), Success)
		time.Sleep(3*time.Second - time.Nanosecond)
		synctest.Wait()
		if got := content(t, dir, "brightness"); got != "255" {
			t.Errorf("brightness just before the end of Success: %q, want 255", got)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		want := []string{"0s trigger=none", "0s brightness=255", "3s trigger=mmc0"}
		if diff := cmp.Diff(want, r.take()); diff != "" {
			t.Errorf("Success writes (-want +got):\n%s", diff)
		}
	})
}

func TestFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		root := t.TempDir()
		fakeLED(t, root, "ACT", piTriggers)
		l := Open(root, "")
		r := record(l)
		l.Show(t.Context(), Failure)
		time.Sleep(2*time.Second + 160*time.Millisecond)
		synctest.Wait()
		want := []string{
			"0s trigger=none",
			"0s brightness=255", "150ms brightness=0",
			"300ms brightness=255", "450ms brightness=0",
			"600ms brightness=255", "750ms brightness=0",
			// a pause of FailurePause, then again
			"1.75s brightness=255", "1.9s brightness=0",
			"2.05s brightness=255",
		}
		if diff := cmp.Diff(want, r.take()); diff != "" {
			t.Errorf("Failure writes (-want +got):\n%s", diff)
		}
	})
}

// TestContextDone: when the context of a blinking pattern ends (the
// appliance shuts down), the LED goes back to Idle by itself.
func TestContextDone(t *testing.T) {
	for _, trig := range []string{piTriggers, "none [default-on]\n"} {
		synctest.Test(t, func(t *testing.T) {
			root := t.TempDir()
			dir := fakeLED(t, root, "ACT", trig)
			l := Open(root, "")
			ctx, cancel := context.WithCancel(t.Context())
			l.Show(ctx, Working)
			time.Sleep(time.Second)
			cancel()
			synctest.Wait()
			if got, want := content(t, dir, "trigger"), l.trigger; got != want {
				t.Errorf("trigger after the context ended: %q, want %q", got, want)
			}
		})
	}
}

// TestConcurrentShow: patterns switched from many goroutines leave one
// pattern running and no goroutine behind (synctest fails on leaks).
func TestConcurrentShow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		root := t.TempDir()
		dir := fakeLED(t, root, "ACT", "none [mmc0]\n")
		l := Open(root, "")
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Go(func() { l.Show(t.Context(), []Pattern{Working, Failure, Success}[i%3]) })
		}
		wg.Wait()
		l.Close()
		synctest.Wait()
		if got := content(t, dir, "trigger"); got != "mmc0" {
			t.Errorf("trigger after Close: %q, want mmc0", got)
		}
	})
}
