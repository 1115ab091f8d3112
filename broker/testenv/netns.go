package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// netnsEnv tells a test binary that it runs inside the network namespace
// its parent made for the named test.
const netnsEnv = "EDGEBROKER_NETNS_TEST"

// LAN is the network InNetns builds: a veth pair whose two ends are both
// in the namespace, up and addressed, as a LAN the device and a client
// share. Multicast leaving one end arrives at the other; multicast sent
// without naming an interface leaves by the second, the client's end
// (route 224.0.0.0/4).
var LAN = []struct{ Name, Addr string }{
	{"lan0", "10.77.0.1/24"},
	{"lan1", "10.77.0.2/24"},
}

var netnsSeq atomic.Int32

// InNetns runs the calling top-level test again in a new network
// namespace and reports whether this process is that run. In the parent it
// makes the namespace (lo up, the LAN veth pair), runs the test binary
// there on this test only (`ip netns exec`), logs its output, fails t if
// it failed, removes the namespace and returns false; the caller returns.
// In the child it returns true and the test goes on, alone on a network
// nobody else sees: multicast, fixed ports and addresses stay inside.
//
// It needs root and ip (iproute2); without them the test ends through
// Unavailable (a failure under CI).
func InNetns(t *testing.T) bool {
	t.Helper()
	if os.Getenv(netnsEnv) == t.Name() {
		return true
	}
	if strings.Contains(t.Name(), "/") {
		t.Fatal("testenv.InNetns: call it from a top-level test, not a subtest")
	}
	ip := NeedTool(t, "ip")
	if os.Geteuid() != 0 {
		Unavailable(t, "network namespaces need root")
	}
	ns := fmt.Sprintf("edgebroker-%d-%d", os.Getpid(), netnsSeq.Add(1))
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(ip, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", ns)
	t.Cleanup(func() {
		if out, err := exec.Command(ip, "netns", "delete", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns delete %s: %v\n%s", ns, err, out)
		}
	})
	in := func(args ...string) { t.Helper(); run(append([]string{"-n", ns}, args...)...) }
	in("link", "set", "lo", "up")
	in("link", "add", LAN[0].Name, "type", "veth", "peer", "name", LAN[1].Name)
	for _, l := range LAN {
		in("addr", "add", l.Addr, "dev", l.Name)
		in("link", "set", l.Name, "up")
	}
	in("route", "add", "224.0.0.0/4", "dev", LAN[1].Name)
	args := []string{"netns", "exec", ns, os.Args[0], "-test.run=^" + regexp.QuoteMeta(t.Name()) + "$", "-test.count=1", "-test.v"}
	if d, ok := t.Deadline(); ok { // the child times out first, so its goroutines are printed here
		args = append(args, "-test.timeout="+(time.Until(d)*9/10).Round(time.Second).String())
	}
	cmd := exec.Command(ip, args...)
	cmd.Env = append(os.Environ(), netnsEnv+"="+t.Name())
	out, err := cmd.CombinedOutput()
	t.Logf("in network namespace %s:\n%s", ns, out)
	if err != nil {
		t.Fatalf("%s in its network namespace: %v", t.Name(), err)
	}
	if !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("%s did not pass in its network namespace (skipped or not run)", t.Name())
	}
	return false
}
