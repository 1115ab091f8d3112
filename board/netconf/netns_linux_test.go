package netconf

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"edgebroker/broker/testenv"
)

// helperEnv, when set, makes TestGuardNetns the half that runs inside the
// device's network namespace.
const helperEnv = "NETCONF_NETNS_HELPER"

// TestGuardNetns runs Guard with the real RouteProbe against the kernel:
// two network namespaces joined by a veth pair, "gw" holding the
// gateway 10.77.0.1/24 and "dev" the device. Inside dev (this test
// binary again, under ip netns exec) a static address next to the
// gateway is kept; one in a network where nobody answers is taken back
// after the window, and the route to the first gateway works again.
func TestGuardNetns(t *testing.T) {
	if os.Getenv(helperEnv) != "" {
		guardInNetns(t)
		return
	}
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "network namespaces need root")
	}
	ip := testenv.NeedTool(t, "ip")
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(ip, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	dev, gw := fmt.Sprintf("ebdev%d", os.Getpid()), fmt.Sprintf("ebgw%d", os.Getpid())
	for _, ns := range []string{dev, gw} {
		run("netns", "add", ns)
		t.Cleanup(func() { exec.Command(ip, "netns", "del", ns).Run() })
	}
	run("link", "add", "v0", "netns", dev, "type", "veth", "peer", "name", "v1", "netns", gw)
	run("-n", gw, "addr", "add", "10.77.0.1/24", "dev", "v1")
	run("-n", gw, "link", "set", "v1", "up")
	run("-n", dev, "link", "set", "lo", "up")
	run("-n", dev, "link", "set", "v0", "up")

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ip, "netns", "exec", dev, os.Args[0], "-test.run=^TestGuardNetns$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestGuardNetns") {
		t.Fatalf("inside the namespace: %v\n%s", err, out)
	}
	t.Logf("inside the namespace:\n%s", out)
}

// ipApplier applies addressing to v0 with ip(8): the test's stand-in for
// the gokrazy Applier, which the host cannot run.
type ipApplier struct{}

func (a ipApplier) Apply(ctx context.Context, s Settings) error {
	cmds := [][]string{{"addr", "flush", "dev", "v0"}}
	if in, ok := s.Interface("v0"); ok && in.Static() {
		cmds = append(cmds, []string{"addr", "add", in.Address.String(), "dev", "v0"})
		if in.Gateway.IsValid() {
			cmds = append(cmds, []string{"route", "replace", "default", "via", in.Gateway.String(), "dev", "v0"})
		}
	}
	for _, c := range cmds {
		if out, err := exec.CommandContext(ctx, "ip", c...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(c, " "), err, out)
		}
	}
	return nil
}

func guardInNetns(t *testing.T) {
	addr := func(a, gw string) Settings {
		return Settings{Interfaces: []Interface{{Name: "v0", Address: netip.MustParsePrefix(a), Gateway: netip.MustParseAddr(gw)}}}
	}
	good, lost := addr("10.77.0.2/24", "10.77.0.1"), addr("10.88.0.2/24", "10.88.0.1")
	const window = 2 * time.Second
	g := &Guard{Applier: ipApplier{}, Probe: RouteProbe("/"), Window: window, Interval: 100 * time.Millisecond}

	if err := g.Apply(t.Context(), Settings{}, good); err != nil {
		t.Fatalf("a static address next to the gateway: %v", err)
	}
	start := time.Now()
	err := g.Apply(t.Context(), good, lost)
	if !errors.Is(err, ErrRouteLost) {
		t.Fatalf("a static address where nobody answers: %v, want ErrRouteLost", err)
	}
	if d := time.Since(start); d < window {
		t.Errorf("taken back after %v, before the window of %v", d, window)
	}
	t.Logf("taken back: %v", err)
	out, _ := exec.Command("ip", "-4", "addr", "show", "dev", "v0").CombinedOutput()
	if !strings.Contains(string(out), "10.77.0.2/24") || strings.Contains(string(out), "10.88.0.2") {
		t.Errorf("after the rollback v0 has:\n%s\nwant 10.77.0.2/24 only", out)
	}
	probe := RouteProbe("/")
	if err := testenv.Poll(5*time.Second, nil, func() error {
		return probe(t.Context(), "v0", netip.MustParseAddr("10.77.0.1"))
	}); err != nil {
		t.Errorf("the route to 10.77.0.1 after the rollback: %v", err)
	}
}

// dhcpEnv carries the path of gokrazy's DHCP client, built outside the
// namespace, to TestGokrazyUndoStaticNetns inside it.
const dhcpEnv = "NETCONF_GOKRAZY_DHCP"

// gokrazyDHCP returns gokrazy's DHCP client as the image has it: built
// from the module image/pins pins (tools/setup-test-deps warms the
// build cache).
func gokrazyDHCP(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv(dhcpEnv); bin != "" {
		return bin
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "tool", "-n", "github.com/gokrazy/gokrazy/cmd/dhcp")
	cmd.Dir = filepath.Join("..", "..", "image", "pins")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		testenv.Unavailable(t, "building gokrazy's dhcp in %s (needs the Go module proxy the first time): %v\n%s", cmd.Dir, err, stderr.String())
	}
	bin := strings.TrimSpace(string(out))
	t.Setenv(dhcpEnv, bin) // for the test's run inside its namespace
	return bin
}

// TestGokrazyUndoStaticNetns runs Gokrazy with gokrazy's own DHCP client
// on a second veth pair (lan2, its peer lan3) in a network namespace:
// lan2 is not eth0, the interface gokrazy's supervised client serves. A
// static lease's address and default route leave lan2 when the settings
// no longer keep them: when Guard takes back settings whose gateway
// never answers, when lan2 gets another address, when it goes back to
// DHCP, and when a new Gokrazy (edgebroker restarted) finds the lease
// the one before applied.
func TestGokrazyUndoStaticNetns(t *testing.T) {
	dhcp := gokrazyDHCP(t)
	if !testenv.InNetns(t) {
		return
	}
	ip := testenv.NeedTool(t, "ip")
	unshare := testenv.NeedTool(t, "unshare")
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(ip, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("link", "add", "lan2", "type", "veth", "peer", "name", "lan3")
	run("link", "set", "lan2", "up")
	run("link", "set", "lan3", "up")

	// gokrazy's dhcp signals init (pid 1) once it applied a lease: here it
	// is pid 1 itself, of a PID namespace of its own, with SIGHUP ignored.
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "gokrazy"), 0o755)
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc", "hostname"), []byte("edgebroker"), 0o644)
	wrapper := fmt.Sprintf("#!/bin/sh\nexec '%s' --pid --fork sh -c 'trap \"\" HUP; exec \"$0\" \"$@\"' '%s' \"$@\"\n", unshare, dhcp)
	if err := os.WriteFile(filepath.Join(root, "gokrazy", "dhcp"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	newGokrazy := func() *Gokrazy {
		return &Gokrazy{Root: root, Perm: t.TempDir(), Dir: dir, Services: new(services),
			SetHostname: func(string) error { return nil }} // not the host's
	}
	// No DNS servers in these settings: gokrazy's dhcp would write them
	// into /tmp/resolv.conf, which the namespace shares with the host.
	static := func(addr, gw string) Settings {
		return Settings{Interfaces: []Interface{{Name: "lan2", Address: netip.MustParsePrefix(addr), Gateway: netip.MustParseAddr(gw)}}}
	}
	lan2 := func() string {
		return run("-4", "addr", "show", "dev", "lan2") + run("-4", "route", "show", "default")
	}
	has := func(when string, want ...string) {
		t.Helper()
		got := lan2()
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: lan2 and the default routes have no %q:\n%s", when, w, got)
			}
		}
	}
	hasNot := func(when string, unwanted ...string) {
		t.Helper()
		got := lan2()
		for _, w := range unwanted {
			if strings.Contains(got, w) {
				t.Errorf("%s: lan2 or the default routes still have %q:\n%s", when, w, got)
			}
		}
	}
	apply := func(g *Gokrazy, s Settings) {
		t.Helper()
		if err := g.Apply(t.Context(), s); err != nil {
			t.Fatalf("Apply(%v): %v", s, err)
		}
	}

	// Guard takes back settings whose gateway never answers.
	g := newGokrazy()
	var during string
	probe := RouteProbe("/")
	guard := &Guard{Applier: g, Window: time.Second, Interval: 100 * time.Millisecond,
		Probe: func(ctx context.Context, iface string, gw netip.Addr) error {
			if during == "" {
				during = lan2()
			}
			return probe(ctx, iface, gw)
		}}
	err := guard.Apply(t.Context(), Settings{}, static("10.88.0.2/24", "10.88.0.1"))
	var lost *RouteLostError
	if !errors.As(err, &lost) || err.Error() != lost.Error() {
		t.Fatalf("a gateway nobody answers: %v, want a RouteLostError alone (taken back without error)", err)
	}
	if !strings.Contains(during, "inet 10.88.0.2/24") || !strings.Contains(during, "default via 10.88.0.1 dev lan2") {
		t.Fatalf("while probing, lan2 and the default routes were:\n%s\nwant 10.88.0.2/24 and a default route via 10.88.0.1", during)
	}
	hasNot("taken back by Guard", "10.88.0.2", "via 10.88.0.1")

	// Another address replaces the first.
	apply(g, static("10.88.0.2/24", "10.88.0.1"))
	has("static", "inet 10.88.0.2/24", "default via 10.88.0.1 dev lan2")
	apply(g, static("10.99.0.2/16", "10.99.0.1"))
	has("another address", "inet 10.99.0.2/16", "default via 10.99.0.1 dev lan2")
	hasNot("another address", "10.88.0.2", "via 10.88.0.1")

	// Back to DHCP. lan2 keeps another address (a DHCP client's), so the
	// kernel keeps the default route unless it is taken off too.
	run("addr", "add", "10.66.0.2/24", "dev", "lan2")
	apply(g, Settings{Interfaces: []Interface{{Name: "lan2"}}})
	hasNot("back to DHCP", "10.99.0.2", "via 10.99.0.1")
	has("back to DHCP", "inet 10.66.0.2/24")
	run("addr", "del", "10.66.0.2/24", "dev", "lan2")

	// A restarted edgebroker takes back what the one before applied.
	apply(g, static("10.88.0.2/24", "10.88.0.1"))
	apply(newGokrazy(), Settings{})
	hasNot("taken back by a new Gokrazy", "10.88.0.2", "via 10.88.0.1")
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("leases left in %s: %v", dir, ents)
	}
}
