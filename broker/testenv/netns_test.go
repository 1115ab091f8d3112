package testenv_test

import (
	"net"
	"slices"
	"testing"

	"edgebroker/broker/testenv"
)

// TestInNetns: the test runs again in a namespace whose interfaces are lo
// and the LAN pair, addressed as LAN says, and nothing of the host's.
func TestInNetns(t *testing.T) {
	if !testenv.InNetns(t) {
		return
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, ifi := range ifaces {
		names = append(names, ifi.Name)
	}
	slices.Sort(names)
	if want := []string{"lan0", "lan1", "lo"}; !slices.Equal(names, want) {
		t.Fatalf("interfaces %q, want %q", names, want)
	}
	for _, l := range testenv.LAN {
		ifi, err := net.InterfaceByName(l.Name)
		if err != nil {
			t.Fatal(err)
		}
		addrs, _ := ifi.Addrs()
		if !slices.ContainsFunc(addrs, func(a net.Addr) bool { return a.String() == l.Addr }) {
			t.Errorf("%s: addresses %v, want %s among them", l.Name, addrs, l.Addr)
		}
	}
}
