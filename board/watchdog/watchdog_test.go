package watchdog

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// runAsync starts Run and returns a channel with its result and the time
// (since the start) it returned.
type result struct {
	err   error
	after time.Duration
}

func runAsync(ctx context.Context, w *Watchdog) <-chan result {
	ch := make(chan result, 1)
	start := time.Now()
	go func() {
		err := w.Run(ctx)
		ch <- result{err, time.Since(start)}
	}()
	return ch
}

func wedged(t *testing.T, err error, subsystem string) *WedgedError {
	t.Helper()
	var we *WedgedError
	if !errors.As(err, &we) {
		t.Fatalf("Run: got %v, want a *WedgedError for %s", err, subsystem)
	}
	if we.Subsystem != subsystem {
		t.Errorf("wedged subsystem: got %q, want %q (%v)", we.Subsystem, subsystem, err)
	}
	return we
}

func TestHealthyUntilCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var w Watchdog
		var calls atomic.Int32
		w.Register("broker", time.Second, func(ctx context.Context) error {
			calls.Add(1)
			return nil
		})
		w.Expect("statestore", 10*time.Second)
		ctx, cancel := context.WithCancel(t.Context())
		done := runAsync(ctx, &w)
		for range 12 { // a minute of beats every 5 s
			time.Sleep(5 * time.Second)
			w.Beat("statestore")
		}
		synctest.Wait()
		select {
		case r := <-done:
			t.Fatalf("Run returned while healthy: %v", r.err)
		default:
		}
		if got := calls.Load(); got != 60 {
			t.Errorf("probe calls in 60 s at 1 s: %d, want 60", got)
		}
		st := w.Status()
		if len(st) != 2 || st[0].Name != "broker" || st[0].LastErr != "" || st[1].Name != "statestore" || st[1].Kind != "beat" {
			t.Errorf("Status: %+v", st)
		}
		cancel()
		if r := <-done; r.err != nil {
			t.Errorf("Run after cancel: %v, want nil", r.err)
		}
	})
}

func TestProbeFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var w Watchdog
		boom := errors.New("accept loop stuck")
		var n atomic.Int32
		w.Register("broker", time.Second, func(ctx context.Context) error {
			if n.Add(1) == 4 {
				return boom
			}
			return nil
		})
		w.Register("certs", time.Second, func(ctx context.Context) error { return nil })
		r := <-runAsync(t.Context(), &w)
		we := wedged(t, r.err, "broker")
		if !errors.Is(we, boom) {
			t.Errorf("error %v does not wrap the probe's", r.err)
		}
		if r.after != 4*time.Second {
			t.Errorf("Run returned after %v, want 4s (the 4th probe)", r.after)
		}
		if got, want := r.err.Error(), "watchdog: broker is wedged: accept loop stuck"; got != want {
			t.Errorf("error text: %q, want %q", got, want)
		}
	})
}

// TestFailuresInARow: with Failures 3, two failures and a success do not
// count; three failures in a row do.
func TestFailuresInARow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := Watchdog{Failures: 3}
		results := []error{errors.New("1"), errors.New("2"), nil, errors.New("a"), errors.New("b"), errors.New("c")}
		var n atomic.Int32
		w.Register("statestore", time.Second, func(ctx context.Context) error {
			return results[min(int(n.Add(1))-1, len(results)-1)]
		})
		r := <-runAsync(t.Context(), &w)
		we := wedged(t, r.err, "statestore")
		if we.Err.Error() != "c" || r.after != 6*time.Second {
			t.Errorf("got %v after %v, want c after 6s", we.Err, r.after)
		}
	})
}

// TestProbeHangs: a probe that ignores its context's deadline is wedged
// one period plus Grace after it started.
func TestProbeHangs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := Watchdog{Grace: 2 * time.Second}
		release := make(chan struct{})
		defer close(release) // lets the hung call end with the bubble
		w.Register("usb", 10*time.Second, func(ctx context.Context) error {
			<-release // ignores ctx
			return nil
		})
		r := <-runAsync(t.Context(), &w)
		we := wedged(t, r.err, "usb")
		if !errors.Is(we, ErrProbeHung) || r.after != 22*time.Second {
			t.Errorf("got %v after %v, want ErrProbeHung after 22s (10s period, 10s deadline, 2s grace)", r.err, r.after)
		}
	})
}

// TestProbeHonoursDeadline: a slow probe that returns on its context's
// deadline is a failure, not a hang.
func TestProbeHonoursDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var w Watchdog
		w.Register("acme", time.Second, func(ctx context.Context) error {
			<-ctx.Done()
			return ctx.Err()
		})
		r := <-runAsync(t.Context(), &w)
		we := wedged(t, r.err, "acme")
		if !errors.Is(we, context.DeadlineExceeded) || r.after != 2*time.Second {
			t.Errorf("got %v after %v, want DeadlineExceeded after 2s", r.err, r.after)
		}
	})
}

func TestMissedBeat(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var w Watchdog
		w.Expect("statestore", 10*time.Second)
		w.Expect("provisioning", 30*time.Second)
		time.Sleep(time.Minute) // before Run: does not count
		done := runAsync(t.Context(), &w)
		go func() {
			for range 3 {
				time.Sleep(8 * time.Second)
				w.Beat("statestore")
				w.Beat("provisioning")
			}
		}()
		r := <-done
		we := wedged(t, r.err, "statestore")
		if !errors.Is(we, ErrNoBeat) || r.after != 34*time.Second {
			t.Errorf("got %v after %v, want ErrNoBeat after 34s (last beat at 24s + 10s)", r.err, r.after)
		}
		if got, want := r.err.Error(), "watchdog: statestore is wedged: no beat for 10s (limit 10s)"; got != want {
			t.Errorf("error text: %q, want %q", got, want)
		}
	})
}

// TestChangesWhileRunning: a probe registered and a beat expected while
// Run runs are watched from then on.
func TestChangesWhileRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var w Watchdog
		w.Expect("slow", time.Hour)
		done := runAsync(t.Context(), &w)
		time.Sleep(time.Minute)
		w.Expect("fast", 5*time.Second) // must not wait for the hour
		r := <-done
		wedged(t, r.err, "fast")
		if r.after != time.Minute+5*time.Second {
			t.Errorf("Run returned after %v, want 1m5s", r.after)
		}

		var w2 Watchdog
		done = runAsync(t.Context(), &w2)
		time.Sleep(time.Minute)
		w2.Register("late", time.Second, func(context.Context) error { return errors.New("down") })
		r = <-done
		wedged(t, r.err, "late")
		if r.after != time.Minute+time.Second {
			t.Errorf("Run returned after %v, want 1m1s", r.after)
		}
	})
}

func TestRunTwice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var w Watchdog
		ctx, cancel := context.WithCancel(t.Context())
		done := runAsync(ctx, &w)
		synctest.Wait()
		if err := w.Run(ctx); err == nil {
			t.Error("second concurrent Run: no error")
		}
		cancel()
		if r := <-done; r.err != nil {
			t.Errorf("first Run: %v", r.err)
		}
		// Run again after it stopped: the watchdog is reusable.
		w.Register("x", time.Second, func(context.Context) error { return errors.New("x") })
		wedged(t, (<-runAsync(t.Context(), &w)).err, "x")
	})
}

// TestShutdownIsNotAFailure: probes cancelled because Run's context ended
// do not make Run report a wedge.
func TestShutdownIsNotAFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var w Watchdog
		started := make(chan struct{})
		w.Register("broker", time.Second, func(ctx context.Context) error {
			close(started)
			<-ctx.Done()
			return ctx.Err()
		})
		ctx, cancel := context.WithCancel(t.Context())
		done := runAsync(ctx, &w)
		<-started
		cancel()
		if r := <-done; r.err != nil {
			t.Errorf("Run: %v, want nil", r.err)
		}
	})
}
