package loadgen

import (
	"sync"
	"sync/atomic"
	"time"
)

// flow is the end-to-end window: publishers stop while any subscriber is
// more than limit messages behind what has been published. It keeps both
// brokers out of their overflow paths (queue limits, slow-consumer drops),
// so a throughput run measures routing, not dropping. Lost messages never
// arrive: when the slowest subscriber makes no progress for a whole stall
// period, the outstanding messages are forgiven.
type flow struct {
	limit int64
	stall time.Duration
	sent  atomic.Int64   // messages published, all publishers
	recv  []atomic.Int64 // messages received, per subscriber
	slack atomic.Int64   // forgiven messages

	waiting atomic.Bool
	mu      sync.Mutex
	wake    chan struct{} // closed to wake waiting publishers
}

func newFlow(limit, subscribers int, stall time.Duration) *flow {
	return &flow{limit: int64(limit), stall: stall, recv: make([]atomic.Int64, subscribers)}
}

// behind is how far the slowest subscriber lags, in messages.
func (f *flow) behind() int64 {
	return f.sent.Load() - f.slowest() - f.slack.Load()
}

// slowest is the count of the subscriber that received the fewest.
func (f *flow) slowest() int64 {
	lo := f.recv[0].Load()
	for i := 1; i < len(f.recv); i++ {
		lo = min(lo, f.recv[i].Load())
	}
	return lo
}

// acquire reserves room for one more message. A publisher keeps the
// reservations it got in *credit (its share of the free window, shares
// publishers in all) and only looks at the subscribers again when they are
// used up. beforeWait runs before the publisher blocks; stop ends the wait.
func (f *flow) acquire(credit *int64, shares int, beforeWait func(), stop <-chan struct{}) bool {
	if f == nil {
		return true
	}
	if *credit > 0 {
		*credit--
		return true
	}
	waited := false
	for {
		if room := f.limit - f.behind(); room > 0 {
			k := max(room/int64(shares), 1)
			f.sent.Add(k)
			*credit = k - 1
			return true
		}
		if !waited {
			beforeWait()
			waited = true
		}
		f.mu.Lock()
		if f.wake == nil {
			f.wake = make(chan struct{})
		}
		wake := f.wake
		f.waiting.Store(true)
		f.mu.Unlock()
		if f.behind() < f.limit {
			continue
		}
		lo := f.slowest()
		t := time.NewTimer(f.stall)
		select {
		case <-wake:
		case <-t.C:
			if f.slowest() == lo { // no progress: lost messages, stop waiting for them
				f.slack.Add(f.behind())
			}
		case <-stop:
			t.Stop()
			return false
		}
		t.Stop()
	}
}

// received counts a message at subscriber i and wakes waiting publishers
// once there is room for half a window.
func (f *flow) received(i int) {
	if f == nil {
		return
	}
	f.recv[i].Add(1)
	if f.waiting.Load() && f.behind() <= f.limit/2 {
		f.mu.Lock()
		if f.wake != nil {
			close(f.wake)
			f.wake = nil
		}
		f.waiting.Store(false)
		f.mu.Unlock()
	}
}
