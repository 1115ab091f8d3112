package netconf

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
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
