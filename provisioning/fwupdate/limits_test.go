package fwupdate

import (
	"net/netip"
	"testing"
	"time"
)

// TestRefusalLimits: an address waits once it had MaxRefusals refusals,
// until its window ends; the table keeps at most maxTracked addresses,
// dropping expired ones first, and beyond that the addresses it cannot
// track share one count.
func TestRefusalLimits(t *testing.T) {
	var l refusalLimits
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	a := netip.MustParseAddr("10.0.0.1")
	for range MaxRefusals {
		if d := l.wait(a, t0); d != 0 {
			t.Fatalf("wait before the limit: %v", d)
		}
		l.add(a, t0)
	}
	if d := l.wait(a, t0.Add(10*time.Second)); d != RefusalWindow-10*time.Second {
		t.Errorf("wait at the limit = %v, want %v", d, RefusalWindow-10*time.Second)
	}
	if d := l.wait(a, t0.Add(RefusalWindow)); d != 0 {
		t.Errorf("wait after the window = %v", d)
	}

	// Fill the table with addresses in their window: a new address
	// shares the overflow entry.
	t1 := t0.Add(RefusalWindow)
	for i := range maxTracked {
		l.add(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), t1)
	}
	if len(l.addr) != maxTracked {
		t.Fatalf("%d addresses tracked, want %d", len(l.addr), maxTracked)
	}
	for i := range MaxRefusals {
		l.add(netip.AddrFrom4([4]byte{10, 2, 0, byte(i)}), t1)
	}
	if d := l.wait(netip.MustParseAddr("10.2.0.99"), t1); d == 0 {
		t.Error("the overflowing addresses are not limited together")
	}
	if len(l.addr) > maxTracked {
		t.Errorf("%d addresses tracked, over %d", len(l.addr), maxTracked)
	}
	// Once their windows end, the table makes room.
	t2 := t1.Add(RefusalWindow)
	b := netip.MustParseAddr("10.3.0.1")
	l.add(b, t2)
	if _, ok := l.addr[b]; !ok {
		t.Error("a new address after the windows ended is not tracked on its own")
	}
}
