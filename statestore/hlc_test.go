package statestore

import (
	"errors"
	"testing"
	"time"
)

func TestParseHLC(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want HLC
		err  bool
	}{
		{in: "1696374425000:1:StateStore", want: HLC{1696374425000, 1, "StateStore"}},
		{in: "001696374425000:00000:node-1", want: HLC{1696374425000, 0, "node-1"}},
		{in: "0:0:", want: HLC{}},
		{in: "1:2", err: true},
		{in: "1:2:3:4", err: true},
		{in: "x:0:n", err: true},
		{in: "1:-1:n", err: true},
		{in: "", err: true},
	} {
		got, err := ParseHLC(tt.in)
		if tt.err {
			if !errors.Is(err, ErrMalformedTimestamp) {
				t.Errorf("ParseHLC(%q): err %v, want ErrMalformedTimestamp", tt.in, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseHLC(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestHLCStringRoundTrip(t *testing.T) {
	h := HLC{1696374425000, 7, "0192-uuid"}
	if got, want := h.String(), "001696374425000:00007:0192-uuid"; got != want {
		t.Errorf("String: got %q, want %q", got, want)
	}
	if back, err := ParseHLC(h.String()); err != nil || back != h {
		t.Errorf("round trip: got %v, %v", back, err)
	}
}

func TestHLCCompare(t *testing.T) {
	for _, tt := range []struct {
		a, b HLC
		want int
	}{
		{HLC{1, 0, "a"}, HLC{2, 0, "a"}, -1},
		{HLC{2, 0, "a"}, HLC{1, 9, "z"}, 1},
		{HLC{1, 1, "a"}, HLC{1, 2, "a"}, -1},
		{HLC{1, 1, "b"}, HLC{1, 1, "a"}, 1},
		{HLC{1, 1, "a"}, HLC{1, 1, "a"}, 0},
	} {
		if got := tt.a.Compare(tt.b); got != tt.want {
			t.Errorf("%v.Compare(%v) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func fixedNow(ms int64) func() time.Time {
	return func() time.Time { return time.UnixMilli(ms) }
}

func TestClockUpdate(t *testing.T) {
	const base = 1696374425000
	// Doc example: request 1696374425000:0:Client1 → 1696374425000:1:StateStore.
	c := NewClock("StateStore", fixedNow(base))
	got, err := c.Update(HLC{base, 0, "Client1"})
	if want := (HLC{base, 1, "StateStore"}); err != nil || got != want {
		t.Fatalf("doc example: got %v, %v; want %v", got, err, want)
	}
	for _, tt := range []struct {
		name  string
		local int64
		last  HLC
		req   HLC
		want  HLC
	}{
		{"local ahead resets counter", base + 5, HLC{base, 3, "S"}, HLC{base, 9, "c"}, HLC{base + 5, 0, "S"}},
		{"remote ahead", base, HLC{base, 3, "S"}, HLC{base + 10, 4, "c"}, HLC{base + 10, 5, "S"}},
		{"last ahead", base, HLC{base + 20, 3, "S"}, HLC{base + 10, 4, "c"}, HLC{base + 20, 4, "S"}},
		{"all equal takes max counter", base, HLC{base, 3, "S"}, HLC{base, 8, "c"}, HLC{base, 9, "S"}},
		{"remote 59s ahead accepted", base, HLC{}, HLC{base + 59000, 0, "c"}, HLC{base + 59000, 1, "S"}},
	} {
		c := NewClock("S", fixedNow(tt.local))
		c.last = tt.last
		got, err := c.Update(tt.req)
		if err != nil || got != tt.want {
			t.Errorf("%s: got %v, %v; want %v", tt.name, got, err, tt.want)
		}
		if got.Compare(tt.req) <= 0 {
			t.Errorf("%s: version %v not greater than request %v", tt.name, got, tt.req)
		}
	}
	c = NewClock("S", fixedNow(base))
	_, err = c.Update(HLC{base + 61000, 0, "c"})
	var skew *SkewError
	if !errors.Is(err, ErrTimestampFuture) || !errors.As(err, &skew) {
		t.Errorf("61s ahead: err %v, want ErrTimestampFuture *SkewError", err)
	}
	if n := c.Now(); n != (HLC{base, 0, "S"}) {
		t.Errorf("rejected update changed the clock: Now = %v", n)
	}
}

func TestClockNowMonotonic(t *testing.T) {
	ms := int64(100)
	c := NewClock("n", func() time.Time { return time.UnixMilli(ms) })
	a := c.Now()
	ms = 50 // wall clock steps back
	b := c.Now()
	if b.Compare(a) <= 0 {
		t.Errorf("Now went backwards: %v then %v", a, b)
	}
}
