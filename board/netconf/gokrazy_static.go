package netconf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// lease is the JSON gokrazy's DHCP client reads with
// -static_network_config (github.com/rtr7/dhcp4's Lease: the same field
// names and types, so the same encoding).
type lease struct {
	IP      net.IP
	Netmask net.IPMask
	Router  net.IP   `json:",omitempty"`
	DNS     []net.IP `json:",omitempty"`
}

func leaseOf(in Interface) lease {
	l := lease{
		IP:      net.IP(in.Address.Addr().AsSlice()),
		Netmask: net.CIDRMask(in.Address.Bits(), 32),
	}
	if in.Gateway.IsValid() {
		l.Router = net.IP(in.Gateway.AsSlice())
	}
	for _, d := range in.DNS {
		l.DNS = append(l.DNS, net.IP(d.AsSlice()))
	}
	return l
}

func (g *Gokrazy) applyStatic(ctx context.Context, in Interface) error {
	if g.Dir == "" {
		return errors.New("netconf: Gokrazy.Dir is empty")
	}
	b, err := json.Marshal(leaseOf(in))
	if err != nil {
		return fmt.Errorf("netconf: %w", err)
	}
	if err := os.MkdirAll(g.Dir, 0o700); err != nil {
		return fmt.Errorf("netconf: %w", err)
	}
	file := filepath.Join(g.Dir, in.Name+".json")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		return fmt.Errorf("netconf: %w", err)
	}
	if in.Name == DHCPInterface && !g.stopped {
		if err := g.services().Stop(ctx, DHCPService); err != nil && !errors.Is(err, ErrNoService) {
			return err
		}
		g.stopped = true
	}
	dhcp := filepath.Join(g.root(), strings.TrimPrefix(DHCPService, "/"))
	err = g.run(ctx, dhcp, "-interface", in.Name, "-static_network_config", file)
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 125 { // applied; "do not restart me"
		err = nil
	}
	if err != nil {
		return fmt.Errorf("netconf: %s: %s -static_network_config: %w", in.Name, DHCPService, err)
	}
	return nil
}

// undoStatic takes back the static leases in Dir that s does not keep:
// those of an interface s no longer names, names without a static
// address, or gives another address or gateway. gokrazy's DHCP client
// puts a lease's address and default route on the interface and nothing
// of gokrazy's takes them off, so undoStatic does (unconfigure) and
// removes the lease. Dir lives as long as the kernel's settings (/tmp on
// the image), so a lease an earlier edgebroker applied is taken back too.
func (g *Gokrazy) undoStatic(s Settings) error {
	if g.Dir == "" {
		return nil
	}
	ents, err := os.ReadDir(g.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("netconf: %w", err)
	}
	unconf := g.Unconfigure
	if unconf == nil {
		unconf = unconfigure
	}
	var errs []error
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		file := filepath.Join(g.Dir, e.Name())
		b, err := os.ReadFile(file)
		var old lease
		if err == nil {
			err = json.Unmarshal(b, &old)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("netconf: %s: %w", file, err))
			continue
		}
		addr, gw := old.address()
		if in, _ := s.Interface(name); in.Static() && in.Address == addr && in.Gateway == gw {
			continue
		}
		if err := unconf(name, addr, gw); err != nil {
			errs = append(errs, err)
			continue
		}
		if name == DHCPInterface {
			g.stopped = true // whoever applied the lease stopped the supervised client
		}
		if err := os.Remove(file); err != nil {
			errs = append(errs, fmt.Errorf("netconf: %w", err))
		}
	}
	return errors.Join(errs...)
}

// address returns the lease's address with its prefix length, and its
// router (zero if none).
func (l lease) address() (netip.Prefix, netip.Addr) {
	ip, _ := netip.AddrFromSlice(l.IP.To4())
	bits, _ := l.Netmask.Size()
	gw, _ := netip.AddrFromSlice(l.Router.To4())
	return netip.PrefixFrom(ip, bits), gw
}
