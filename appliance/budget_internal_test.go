package appliance

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"edgebroker/appliance/config"
	"edgebroker/broker"
)

// fakeMeminfo writes root/proc/meminfo with MemTotal kb.
func fakeMeminfo(t *testing.T, content string) string {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "proc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "proc", "meminfo"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestMemTotal(t *testing.T) {
	root := fakeMeminfo(t, "MemTotal:        1000000 kB\nMemFree:          500000 kB\n")
	if got, err := memTotal(root); err != nil || got != 1000000<<10 {
		t.Errorf("memTotal: %d, %v", got, err)
	}
	for _, bad := range []string{"MemFree: 1 kB\n", "MemTotal: lots kB\n", "MemTotal: 1000 MB\n"} {
		if got, err := memTotal(fakeMeminfo(t, bad)); err == nil {
			t.Errorf("%q: got %d, want an error", bad, got)
		}
	}
	if _, err := memTotal(t.TempDir()); err == nil {
		t.Error("no meminfo: want an error")
	}
}

func TestWithMemoryBudget(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	gb := fakeMeminfo(t, "MemTotal: 1048576 kB\n") // a 1 GiB device
	if l := withMemoryBudget(broker.Limits{}, nil, gb, log); l.MemoryBudget != 256<<20 {
		t.Errorf("default: budget %d, want 256 MiB", l.MemoryBudget)
	}
	low := &config.Broker{Spec: config.BrokerSpec{MemoryProfile: config.MemoryLow}}
	if l := withMemoryBudget(broker.Limits{}, low, gb, log); l.MemoryBudget != 128<<20 {
		t.Errorf("Low: budget %d, want 128 MiB", l.MemoryBudget)
	}
	// A budget in Config.Limits stays unless the resource sets one.
	if l := withMemoryBudget(broker.Limits{MemoryBudget: 99 << 20}, nil, gb, log); l.MemoryBudget != 99<<20 {
		t.Errorf("Config.Limits budget: %d", l.MemoryBudget)
	}
	if l := withMemoryBudget(broker.Limits{MemoryBudget: 99 << 20}, low, gb, log); l.MemoryBudget != 128<<20 {
		t.Errorf("profile over Config.Limits: %d", l.MemoryBudget)
	}
	// Unreadable meminfo: the broker's default.
	if l := withMemoryBudget(broker.Limits{}, nil, t.TempDir(), log); l.MemoryBudget != broker.DefaultMemoryBudget {
		t.Errorf("no meminfo: %d", l.MemoryBudget)
	}
	// Explicit limits in the resource override the budget's.
	n := 7
	b := &config.Broker{Spec: config.BrokerSpec{Appliance: &config.ApplianceLimits{MemoryBudget: "64Mi", MaxSessions: &n, MaxRetainedBytes: &n}}}
	l := withMemoryBudget(brokerLimits(b, broker.Limits{}), b, gb, log)
	if l.MemoryBudget != 64<<20 || l.MaxSessions != 7 || l.MaxRetainedBytes != 7 {
		t.Errorf("explicit limits: %+v", l)
	}
}
