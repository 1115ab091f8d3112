package appliance

import (
	"testing"
	"time"
	"unsafe"
)

// TestHistory: a point every historyEvery with the rate over the window
// before it, oldest first; after more than an hour the ring holds the
// last hour only, in a fixed size; the rate now follows every sample.
func TestHistory(t *testing.T) {
	var h history
	t0 := time.Unix(1_000_000, 5e8) // mid-second: jitter changes no Unix second
	if got := h.snapshot(); len(got.Points) != 0 || got.EverySeconds != 10 {
		t.Fatalf("empty history: %+v", got)
	}
	h.sample(t0, 0, 0)
	if got := h.snapshot().Points; len(got) != 1 || got[0] != (RatePoint{Time: t0.Unix()}) {
		t.Fatalf("first sample: points %+v, want one at %d with rate 0", got, t0.Unix())
	}
	// 5 in and 10 out a second for 2 hours, the ticks 100 ms late or
	// early.
	var in, out uint64
	for s := 1; s <= 7200; s++ {
		in, out = in+5, out+10
		jitter := time.Duration(s%3-1) * 100 * time.Millisecond
		h.sample(t0.Add(time.Duration(s)*time.Second+jitter), in, out)
		if s == 3 {
			if now := h.now(); now.In < 4.8 || now.In > 5.2 || now.Out < 9.6 || now.Out > 10.4 {
				t.Fatalf("after 3 s: now %+v, want 5 in/s, 10 out/s", now)
			}
		}
	}
	got := h.snapshot()
	if len(got.Points) != historyLen {
		t.Fatalf("after 2 h: %d points, want %d", len(got.Points), historyLen)
	}
	for i, p := range got.Points {
		if i > 0 && p.Time-got.Points[i-1].Time != 10 {
			t.Fatalf("point %d at %d, the one before at %d: want 10 s apart", i, p.Time, got.Points[i-1].Time)
		}
		if p.In < 4.8 || p.In > 5.2 || p.Out < 9.6 || p.Out > 10.4 {
			t.Fatalf("point %d: %+v, want 5 in/s and 10 out/s", i, p)
		}
	}
	if first, last := got.Points[0].Time, got.Points[historyLen-1].Time; last-first != 3590 || last < t0.Unix()+7190 {
		t.Errorf("points from %d to %d: want the last hour before %d", first, last, t0.Unix()+7200)
	}
	if got.Now.Time != t0.Unix()+7200 {
		t.Errorf("now at %d, want the last sample's %d", got.Now.Time, t0.Unix()+7200)
	}
	if size := unsafe.Sizeof(h); size > 10<<10 {
		t.Errorf("history is %d bytes, want at most 10 KiB", size)
	}
}
