package appliance

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"edgebroker/appliance/config"
	"edgebroker/board/watchdog"
	"edgebroker/broker"
)

// TestWatchdogFindsWedgedStore: the appliance's watchdog ends with an
// error naming the state store once the store stops answering (closed
// here), which makes Run, and the process, exit non-zero.
func TestWatchdogFindsWedgedStore(t *testing.T) {
	wd, ss := testWatchdog(t, slog.New(slog.NewTextHandler(t.Output(), nil)))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- wd.Run(ctx) }()
	// Both probes pass at least once before the store goes.
	for healthy := 0; healthy < 2; {
		healthy = 0
		for _, st := range wd.Status() {
			if !st.Last.IsZero() && st.LastErr == "" {
				healthy++
			}
		}
		select {
		case err := <-done:
			t.Fatalf("healthy appliance: watchdog ended: %v", err)
		case <-ctx.Done():
			t.Fatal("probes never passed")
		case <-time.After(healthEvery):
		}
	}
	ss.close()
	var we *watchdog.WedgedError
	select {
	case err := <-done:
		if !errors.As(err, &we) || we.Subsystem != "statestore" {
			t.Fatalf("watchdog: %v, want a WedgedError naming statestore", err)
		}
		t.Logf("as logged: %v", err)
	case <-ctx.Done():
		t.Fatal("watchdog did not notice the closed store")
	}
}

// fastHealth makes the watchdog probe every 20 ms until the test ends.
func fastHealth(t *testing.T) {
	d := healthEvery
	healthEvery = 20 * time.Millisecond
	t.Cleanup(func() { healthEvery = d })
}

// testWatchdog is the appliance's watchdog (fastHealth) over a broker and
// a state store in a new folder, not yet running.
func testWatchdog(t *testing.T, log *slog.Logger) (*watchdog.Watchdog, *stateStore) {
	t.Helper()
	fastHealth(t)
	srv := broker.New(broker.Config{Logger: log})
	t.Cleanup(func() { srv.Close() })
	ss, err := openStateStore(t.TempDir(), config.StateStoreQuota{}, log)
	if err != nil {
		t.Fatal(err)
	}
	wd, err := newWatchdog(srv, ss, log)
	if err != nil {
		t.Fatal(err)
	}
	return wd, ss
}
