package netconf

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// RouteProbe returns the Prober the device uses: the kernel must route
// the gateway through the interface (a UDP socket connected to it gets
// one of the interface's addresses as source), and the gateway must have
// answered ARP on that interface (a complete entry in root/proc/net/arp).
// A probe sends one datagram to the gateway's discard port, which makes
// the kernel ask for the gateway's link address; the answer shows in a
// later probe if not in this one.
func RouteProbe(root string) Prober {
	return func(ctx context.Context, iface string, gw netip.Addr) error {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return fmt.Errorf("netconf: %w", err)
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "udp4", netip.AddrPortFrom(gw, 9).String())
		if err != nil {
			return fmt.Errorf("netconf: no route to %s: %w", gw, err)
		}
		defer c.Close()
		src := c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
		if !hasAddr(ifi, src) {
			return fmt.Errorf("netconf: the route to %s leaves from %s, not from an address of %s", gw, src, iface)
		}
		c.Write([]byte{0}) // an error (ICMP unreachable) says nothing about ARP
		ok, err := arpComplete(root, iface, gw)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("netconf: %s does not answer ARP on %s", gw, iface)
		}
		return nil
	}
}

func hasAddr(ifi *net.Interface, a netip.Addr) bool {
	addrs, err := ifi.Addrs()
	if err != nil {
		return false
	}
	for _, x := range addrs {
		if n, ok := x.(*net.IPNet); ok {
			if b, ok := netip.AddrFromSlice(n.IP); ok && b.Unmap() == a {
				return true
			}
		}
	}
	return false
}

// arpComplete reports whether root/proc/net/arp has a complete entry
// (flag ATF_COM, 0x2) for gw on iface.
func arpComplete(root, iface string, gw netip.Addr) (bool, error) {
	f, err := os.Open(filepath.Join(root, "proc", "net", "arp"))
	if err != nil {
		return false, fmt.Errorf("netconf: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		// IP address  HW type  Flags  HW address  Mask  Device
		fs := strings.Fields(sc.Text())
		if len(fs) < 6 || fs[0] != gw.String() || fs[5] != iface {
			continue
		}
		var flags int
		if _, err := fmt.Sscanf(fs[2], "0x%x", &flags); err == nil && flags&0x2 != 0 {
			return true, nil
		}
	}
	return false, sc.Err()
}
