package appliance

import (
	"testing"
	"time"
)

// TestRate: the rate is the increase between the oldest and newest of
// the last rateSamples samples, per second: 0 until there are two, 0 a
// window after the counter stopped, and a counter that starts again (a
// restarted flow) is not a negative rate.
func TestRate(t *testing.T) {
	var r rate
	t0 := time.Unix(1000, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * rateEvery) }
	check := func(what string, want float64) {
		t.Helper()
		if got := r.perSecond(); got != want {
			t.Errorf("%s: perSecond() = %v, want %v", what, got, want)
		}
	}
	check("no sample", 0)
	r.add(at(0), 100)
	check("one sample", 0)
	r.add(at(1), 150)
	check("50 in a second", 50)
	for s := 2; s <= 10; s++ {
		r.add(at(s), 150+uint64(s-1)*10)
	}
	check("50 then 10 a second, over 10 s", float64(240-100)/10)
	r.add(at(11), 250)
	check("the first sample left the window", float64(250-150)/10)
	for s := 12; s <= 21; s++ {
		r.add(at(s), 250)
	}
	check("stopped a window ago", 0)
	r.add(at(22), 3)
	check("started again: one sample", 0)
	r.add(at(23), 13)
	check("started again", 10)
}
