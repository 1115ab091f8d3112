package config

import "testing"

func TestQuantity(t *testing.T) {
	for q, want := range map[Quantity]int64{
		"256Mi": 256 << 20, "1Gi": 1 << 30, "1.5Gi": 3 << 29, "64Ki": 64 << 10, "1G": 1e9, "500M": 5e8,
		"1048576": 1 << 20, "2k": 2000, "1Ti": 1 << 40,
	} {
		if got, err := q.Bytes(); err != nil || got != want {
			t.Errorf("%q: got %d, %v; want %d", q, got, err, want)
		}
	}
	for _, q := range []Quantity{"", "Mi", "256MB", "-1Mi", "1e9", "0x10", "Inf", "NaN", "1 Gi", "99999999Ti"} {
		if v, err := q.Bytes(); err == nil {
			t.Errorf("%q: got %d, want an error", q, v)
		}
	}
}

func TestMemoryBudget(t *testing.T) {
	const gb = 1 << 30
	var none *Broker
	if got := none.MemoryBudget(gb); got != 256<<20 {
		t.Errorf("no Broker, 1 GiB: %d, want a quarter", got)
	}
	for p, want := range map[string]int64{"": gb / 4, MemoryTiny: gb / 16, MemoryLow: gb / 8, MemoryMedium: gb / 4, MemoryHigh: gb / 2} {
		b := &Broker{Spec: BrokerSpec{MemoryProfile: p}}
		if got := b.MemoryBudget(gb); got != want {
			t.Errorf("profile %q: %d, want %d", p, got, want)
		}
	}
	b := &Broker{Spec: BrokerSpec{MemoryProfile: MemoryHigh, Appliance: &ApplianceLimits{MemoryBudget: "100Mi"}}}
	if got := b.MemoryBudget(gb); got != 100<<20 {
		t.Errorf("memoryBudget 100Mi with profile High: %d", got)
	}
	if got := (&Broker{Spec: BrokerSpec{MemoryProfile: MemoryTiny}}).MemoryBudget(64 << 20); got != MinMemoryBudget {
		t.Errorf("Tiny on 64 MiB: %d, want the minimum", got)
	}
}
