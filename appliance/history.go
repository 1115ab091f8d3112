package appliance

import (
	"context"
	"sync"
	"time"
)

// The status page's chart is the broker's messages in and out per second
// over the last hour: one point every historyEvery, historyLen points in
// a fixed array (about 9 KB), whatever the uptime. Each point is the
// rate over the rateWindow before it, from the broker's counters sampled
// every rateEvery (the dataflows' forwarded/s is measured the same way).
const (
	historyEvery = 10 * time.Second
	historyLen   = int(time.Hour / historyEvery)
)

// RatePoint is the broker's message rate over the rateWindow before Time.
type RatePoint struct {
	Time int64   `json:"t"`   // Unix seconds
	In   float64 `json:"in"`  // PUBLISH packets received per second
	Out  float64 `json:"out"` // PUBLISH packets sent per second
}

// RateHistory is what /history.json serves: the chart's points and the
// figure of the moment.
type RateHistory struct {
	EverySeconds float64 `json:"everySeconds"` // between two Points
	// Points are oldest first, one per EverySeconds, up to an hour.
	Points []RatePoint `json:"points"`
	// Now is the rate over the last rateWindow, at most rateEvery old.
	Now RatePoint `json:"now"`
}

// history keeps the broker's message rates for the status page. Its zero
// value is ready; its owner calls sample every rateEvery (sampleHistory).
type history struct {
	mu      sync.Mutex // guards everything below
	in, out rate       // of the received and sent counters
	latest  time.Time  // of the newest sample
	pointAt time.Time  // of the newest point
	pts     [historyLen]RatePoint
	n       int // points held, up to historyLen
	next    int // where the next point goes
}

// sample records the counters' values at now, and appends a point when
// the newest is historyEvery old (or there is none yet).
func (h *history) sample(now time.Time, in, out uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.in.add(now, in)
	h.out.add(now, out)
	h.latest = now
	// A ticker's ticks jitter: half a sample early is on time.
	if h.n > 0 && now.Sub(h.pointAt) < historyEvery-rateEvery/2 {
		return
	}
	h.pointAt = now
	h.pts[h.next] = h.nowLocked()
	h.next = (h.next + 1) % historyLen
	h.n = min(h.n+1, historyLen)
}

func (h *history) nowLocked() RatePoint {
	return RatePoint{Time: h.latest.Unix(), In: h.in.perSecond(), Out: h.out.perSecond()}
}

// now returns the rate over the last rateWindow.
func (h *history) now() RatePoint {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.nowLocked()
}

// snapshot returns the points held, oldest first, and the rate now.
func (h *history) snapshot() RateHistory {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := RateHistory{EverySeconds: historyEvery.Seconds(), Points: make([]RatePoint, 0, h.n), Now: h.nowLocked()}
	for i := h.next - h.n; i < h.next; i++ {
		r.Points = append(r.Points, h.pts[(i+historyLen)%historyLen])
	}
	return r
}

// sampleHistory samples the broker's message counters every rateEvery
// until ctx ends, starting at once.
func (a *Appliance) sampleHistory(ctx context.Context) {
	tick := time.NewTicker(rateEvery)
	defer tick.Stop()
	now := time.Now()
	for {
		a.hist.sample(now, a.srv.Stats.MessagesReceived.Load(), a.srv.Stats.MessagesSent.Load())
		select {
		case <-ctx.Done():
			return
		case now = <-tick.C:
		}
	}
}
