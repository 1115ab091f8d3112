package loadgen

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
)

// TestDialing: every connection is made once, by at most dialers at a
// time; failures are counted and recorded, and more() stops the dialing.
func TestDialing(t *testing.T) {
	var e errs
	dl := newDialing(&e)
	var busy, most atomic.Int64
	seen := make([]atomic.Int32, 10)
	dl.run(10, 3, func() bool { return true }, func(i int64) error {
		n := busy.Add(1)
		defer busy.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		seen[i].Add(1)
		if i%2 == 1 {
			return fmt.Errorf("connection %d: %w", i, errors.New("refused"))
		}
		return nil
	})
	for i := range seen {
		if n := seen[i].Load(); n != 1 {
			t.Errorf("connection %d made %d times", i, n)
		}
	}
	if most.Load() > 3 {
		t.Errorf("%d connections at once, want at most 3", most.Load())
	}
	var res Result
	dl.result(&res, 1e9)
	if res.Conns != 5 || res.ConnectFailed != 5 || len(e.strings()) != 5 || res.ConnsPerSecond != 5 {
		t.Errorf("conns %d, failed %d, %v/s, errors %q", res.Conns, res.ConnectFailed, res.ConnsPerSecond, e.strings())
	}

	dl = newDialing(&e)
	var made atomic.Int64
	dl.run(100, 2, func() bool { return made.Load() < 4 }, func(int64) error { made.Add(1); return nil })
	if n := dl.connected.Load(); n < 4 || n > 5 {
		t.Errorf("stopped after %d connections, want 4 (5 with two dialers racing)", n)
	}
}
