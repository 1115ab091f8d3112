package appliance

import "time"

// A dataflow's "forwarded per second" is the messages it forwarded in
// the last rateWindow divided by the time between the two samples that
// span it: the appliance reads each flow's forwarded count every
// rateEvery (dataflows.sampleRates), so the figure is at most rateEvery
// old and falls to 0 a rateWindow after forwarding stopped.
const (
	rateWindow = 10 * time.Second
	rateEvery  = time.Second
)

// rateSamples is how many samples span rateWindow.
const rateSamples = int(rateWindow/rateEvery) + 1

// rate is a counter's rate over the last rateWindow, from its samples.
// Its owner serializes calls (dataflows.mu).
type rate struct {
	at   [rateSamples]time.Time
	v    [rateSamples]uint64
	n    int // samples held, up to rateSamples
	next int // where the next sample goes
}

// add records the counter's value v at t. A value below the last one
// means the counter started again: earlier samples are forgotten.
func (r *rate) add(t time.Time, v uint64) {
	if r.n > 0 && v < r.v[r.newest()] {
		r.n = 0
	}
	r.at[r.next], r.v[r.next] = t, v
	r.next = (r.next + 1) % rateSamples
	r.n = min(r.n+1, rateSamples)
}

func (r *rate) newest() int { return (r.next + rateSamples - 1) % rateSamples }

// perSecond is the counter's increase per second between the oldest and
// newest samples held; 0 with fewer than two.
func (r *rate) perSecond() float64 {
	if r.n < 2 {
		return 0
	}
	newest, oldest := r.newest(), (r.next+rateSamples-r.n)%rateSamples
	dt := r.at[newest].Sub(r.at[oldest]).Seconds()
	if dt <= 0 {
		return 0
	}
	return float64(r.v[newest]-r.v[oldest]) / dt
}
