package loadgen

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// dialing makes the connections of a run that counts connections
// (runConns, runConnects), cfg.Dialers at a time, and counts them for
// its progress lines and its result.
type dialing struct {
	start time.Time // set by newDialing; read-only
	e     *errs     // the run's errors; its own lock
	// connected and failed count the connections made and failed so far.
	connected, failed atomic.Int64
}

func newDialing(e *errs) *dialing { return &dialing{start: time.Now(), e: e} }

// progress prints the counts to w once a second until stop is closed (w
// nil: nothing); the func it returns waits for the last line.
func (d *dialing) progress(w io.Writer, stop <-chan struct{}) (wait func()) {
	if w == nil {
		return func() {}
	}
	return ticker(stop, time.Second, func() {
		fmt.Fprintf(w, "mqttload: %4.0fs connected=%d failed=%d\n", time.Since(d.start).Seconds(), d.connected.Load(), d.failed.Load())
	})
}

// run makes connections 0 … n-1 with dialers goroutines, each taking the
// next one while more() holds: one(i) makes connection i, and its error
// counts it failed and is recorded. It returns the time since the start.
func (d *dialing) run(n int64, dialers int, more func() bool, one func(i int64) error) time.Duration {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(int64(dialers), n) {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < n && more(); i = next.Add(1) - 1 {
				if err := one(i); err != nil {
					d.failed.Add(1)
					d.e.add(err)
					continue
				}
				d.connected.Add(1)
			}
		})
	}
	wg.Wait()
	return time.Since(d.start)
}

// result puts the counts, and their rate over elapsed, into res.
func (d *dialing) result(res *Result, elapsed time.Duration) {
	res.Conns, res.ConnectFailed = int(d.connected.Load()), int(d.failed.Load())
	res.Seconds = elapsed.Seconds()
	res.ConnsPerSecond = float64(res.Conns) / res.Seconds
}
