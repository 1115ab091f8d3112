package appliance

import (
	"testing"
	"time"
)

// TestUploadRefusals: uploadRefusals refusals fill a window; the next
// waits for the window's end, and a new window starts empty.
func TestUploadRefusals(t *testing.T) {
	var r refusals
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range uploadRefusals {
		now := t0.Add(time.Duration(i) * time.Second)
		if d := r.wait(now); d != 0 {
			t.Fatalf("refusal %d: wait %v, want 0", i+1, d)
		}
		r.add(now)
	}
	if got, want := r.wait(t0.Add(20*time.Second)), uploadRefusalWindow-20*time.Second; got != want {
		t.Errorf("after %d refusals: wait %v, want %v", uploadRefusals, got, want)
	}
	if d := r.wait(t0.Add(uploadRefusalWindow)); d != 0 {
		t.Errorf("a window later: wait %v, want 0", d)
	}
	r.add(t0.Add(uploadRefusalWindow))
	if d := r.wait(t0.Add(uploadRefusalWindow + time.Second)); d != 0 {
		t.Errorf("one refusal into a new window: wait %v, want 0", d)
	}
}
