package netconf

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// recorder is an Applier that keeps what it was asked to apply; fail, if
// set, is the error for the settings it matches.
type recorder struct {
	mu      sync.Mutex
	applied []Settings
	fail    func(Settings) error
}

func (r *recorder) Apply(_ context.Context, s Settings) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.applied = append(r.applied, s)
	if r.fail != nil {
		return r.fail(s)
	}
	return nil
}

func (r *recorder) hostnames() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var h []string
	for _, s := range r.applied {
		h = append(h, s.Hostname)
	}
	return h
}

var (
	dhcp   = Settings{Hostname: "old", Interfaces: []Interface{{Name: "eth0"}}}
	static = Settings{Hostname: "new", Interfaces: []Interface{{
		Name:    "eth0",
		Address: netip.MustParsePrefix("10.0.0.3/24"),
		Gateway: netip.MustParseAddr("10.0.0.1"),
	}}}
)

// probeAfter returns a Prober that fails until n probes were made, and
// counts them.
func probeAfter(n int, count *int) Prober {
	return func(ctx context.Context, iface string, gw netip.Addr) error {
		*count++
		if *count > n {
			return nil
		}
		return errors.New("no answer")
	}
}

func TestGuardRevertsAfterWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := new(recorder)
		probes := 0
		g := &Guard{Applier: rec, Probe: probeAfter(1<<30, &probes)}
		start := time.Now()
		err := g.Apply(t.Context(), dhcp, static)
		if got, want := time.Since(start), DefaultWindow; got != want {
			t.Errorf("reverted after %v, want %v", got, want)
		}
		var rl *RouteLostError
		if !errors.Is(err, ErrRouteLost) || !errors.As(err, &rl) {
			t.Fatalf("Apply: %v, want a RouteLostError", err)
		}
		if rl.Interface != "eth0" || rl.Gateway != static.Interfaces[0].Gateway || rl.Window != DefaultWindow {
			t.Errorf("RouteLostError %+v", rl)
		}
		if got, want := strings.Join(rec.hostnames(), ","), "new,old"; got != want {
			t.Errorf("applied %s, want %s (the new settings, then the previous ones)", got, want)
		}
		if probes < 60 || probes > 62 {
			t.Errorf("%d probes in %v, want one a second", probes, DefaultWindow)
		}
	})
}

func TestGuardKeepsWhenGatewayAnswers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := new(recorder)
		probes := 0
		g := &Guard{Applier: rec, Probe: probeAfter(5, &probes)}
		start := time.Now()
		if err := g.Apply(t.Context(), dhcp, static); err != nil {
			t.Fatal(err)
		}
		if got, want := time.Since(start), 5*DefaultInterval; got != want {
			t.Errorf("Apply returned after %v, want %v (the sixth probe succeeds)", got, want)
		}
		if got, want := strings.Join(rec.hostnames(), ","), "new"; got != want {
			t.Errorf("applied %s, want %s", got, want)
		}
	})
}

func TestGuardProbesOnlyChangedInterfaces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := new(recorder)
		probes := 0
		g := &Guard{Applier: rec, Probe: probeAfter(1<<30, &probes)}
		renamed := static
		renamed.Hostname = "newer"
		// The gateway is down, but the address did not change: a new
		// host name must not be taken back for it.
		if err := g.Apply(t.Context(), static, renamed); err != nil {
			t.Fatal(err)
		}
		if probes != 0 {
			t.Errorf("%d probes, want none", probes)
		}
		// Back to DHCP: nothing to probe either.
		if err := g.Apply(t.Context(), static, dhcp); err != nil || probes != 0 {
			t.Errorf("to DHCP: %v, %d probes; want nil, none", err, probes)
		}
	})
}

func TestGuardRevertsWhenApplyFails(t *testing.T) {
	rec := &recorder{fail: func(s Settings) error {
		if s.Hostname == "new" {
			return errors.New("sethostname: operation not permitted")
		}
		return nil
	}}
	g := &Guard{Applier: rec, Probe: func(context.Context, string, netip.Addr) error { return nil }}
	err := g.Apply(t.Context(), dhcp, static)
	if err == nil || !strings.Contains(err.Error(), "operation not permitted") || errors.Is(err, ErrRouteLost) {
		t.Errorf("Apply: %v, want the applier's error", err)
	}
	if got, want := strings.Join(rec.hostnames(), ","), "new,old"; got != want {
		t.Errorf("applied %s, want %s", got, want)
	}
}

func TestGuardRevertsOnShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := new(recorder)
		probes := 0
		g := &Guard{Applier: rec, Probe: probeAfter(1<<30, &probes)}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		err := g.Apply(ctx, dhcp, static)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Apply: %v, want the context's error", err)
		}
		// Unconfirmed settings are not left behind.
		if got, want := strings.Join(rec.hostnames(), ","), "new,old"; got != want {
			t.Errorf("applied %s, want %s", got, want)
		}
	})
}

func fakeNet(t *testing.T, ifaces ...string) string {
	root := t.TempDir()
	for _, n := range ifaces {
		name, wifi := strings.CutSuffix(n, "+wireless")
		dir := filepath.Join(root, "sys", "class", "net", name)
		if wifi {
			dir = filepath.Join(dir, "wireless")
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestCheck(t *testing.T) {
	wired := fakeNet(t, "lo", "eth0")
	s := Settings{Interfaces: []Interface{{Name: "eth0"}, {Name: "eth7"}}, WiFi: &WiFi{SSID: "x"}}
	err := Check(wired, s)
	var fes []*FieldError
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *FieldError
		if errors.As(e, &fe) {
			fes = append(fes, fe)
		}
	}
	if len(fes) != 2 {
		t.Fatalf("Check: %v, want 2 field errors", err)
	}
	if got, want := fes[0].Error(), `spec.interfaces[1].name: "eth7": no such interface on this device (it has eth0, lo)`; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if got, want := fes[1].Error(), `spec.wifi: this device has no Wi-Fi interface`; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	pi := fakeNet(t, "lo", "eth0", "wlan0+wireless")
	if err := Check(pi, Settings{Interfaces: []Interface{{Name: "wlan0"}}, WiFi: &WiFi{SSID: "x"}}); err != nil {
		t.Errorf("Check on a board with Wi-Fi: %v", err)
	}
}

func TestSettingsStringHidesPassphrase(t *testing.T) {
	s := static
	s.Interfaces = []Interface{static.Interfaces[0]}
	s.Interfaces[0].DNS = []netip.Addr{netip.MustParseAddr("10.0.0.1")}
	s.NTPServers = []string{"ntp.example.com"}
	s.WiFi = &WiFi{SSID: "hall-3", Passphrase: "correct horse"}
	got := s.String()
	want := "hostname new\neth0: static 10.0.0.3/24 gateway 10.0.0.1 dns 10.0.0.1\nntp ntp.example.com\nwifi \"hall-3\" (WPA2, passphrase set)\n"
	if got != want {
		t.Errorf("String:\n%s\nwant\n%s", got, want)
	}
}
