// Package netconf applies the device's own settings (host name, IPv4
// addressing per interface, NTP servers, Wi-Fi) that a Device resource
// brings, and takes them back when they cut the device off.
//
// Settings are typed and already validated (appliance/config checks the
// resource); Check adds what only the device knows: which interfaces it
// has. An Applier carries settings out: Gokrazy on the image, through
// gokrazy's own programs and files; on a host nothing is applied (the
// appliance only shows the settings). Guard wraps an Applier: after a
// change to a static interface with a gateway it probes the route to the
// gateway and, if none comes within its window (60 s), applies the
// previous settings again and returns an error wrapping ErrRouteLost.
//
// Everything that touches the system takes a root directory, so tests
// use a fake tree, or does it through a func field tests replace
// (Gokrazy's Run, SetHostname, Unconfigure); the namespace tests use the
// real ones.
package netconf

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Settings are the device's settings. The zero value keeps what the image
// set up.
type Settings struct {
	Hostname   string      // "": the image's (/etc/hostname)
	Interfaces []Interface // interfaces not listed keep DHCP
	NTPServers []string    // none: gokrazy's pool
	WiFi       *WiFi       // nil: Wi-Fi as it is (see Gokrazy)
}

// Interface is one interface's addressing.
type Interface struct {
	Name string
	// Address is the static IPv4 address and prefix length; the zero
	// Prefix means DHCP.
	Address netip.Prefix
	Gateway netip.Addr   // the default route's next hop; zero: none
	DNS     []netip.Addr // name servers
}

// Static reports whether the interface has a static address.
func (i Interface) Static() bool { return i.Address.IsValid() }

// WiFi is the network a board with Wi-Fi joins.
type WiFi struct {
	SSID       string
	Passphrase string // "" for an open network; never shown
}

// Equal reports whether two interface settings are the same.
func (i Interface) Equal(o Interface) bool {
	return i.Name == o.Name && i.Address == o.Address && i.Gateway == o.Gateway && slices.Equal(i.DNS, o.DNS)
}

// Interface returns the settings of the interface called name, and
// whether s has any.
func (s Settings) Interface(name string) (Interface, bool) {
	for _, in := range s.Interfaces {
		if in.Name == name {
			return in, true
		}
	}
	return Interface{Name: name}, false
}

// String describes the settings for people, one item per line, without
// the Wi-Fi passphrase.
func (s Settings) String() string {
	var b strings.Builder
	host := s.Hostname
	if host == "" {
		host = "(the image's)"
	}
	fmt.Fprintf(&b, "hostname %s\n", host)
	for _, in := range s.Interfaces {
		if !in.Static() {
			fmt.Fprintf(&b, "%s: DHCP\n", in.Name)
			continue
		}
		fmt.Fprintf(&b, "%s: static %s", in.Name, in.Address)
		if in.Gateway.IsValid() {
			fmt.Fprintf(&b, " gateway %s", in.Gateway)
		}
		if len(in.DNS) > 0 {
			fmt.Fprintf(&b, " dns %s", joinAddrs(in.DNS))
		}
		b.WriteString("\n")
	}
	if len(s.NTPServers) > 0 {
		fmt.Fprintf(&b, "ntp %s\n", strings.Join(s.NTPServers, " "))
	}
	if w := s.WiFi; w != nil {
		sec := "open"
		if w.Passphrase != "" {
			sec = "WPA2, passphrase set"
		}
		fmt.Fprintf(&b, "wifi %q (%s)\n", w.SSID, sec)
	}
	return b.String()
}

func joinAddrs(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, " ")
}

// Interfaces returns the names of the network interfaces below root
// (root/sys/class/net), sorted.
func Interfaces(root string) ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(root, "sys", "class", "net"))
	if err != nil {
		return nil, fmt.Errorf("netconf: %w", err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names, nil
}

// wireless reports whether interface name below root is a Wi-Fi one.
func wireless(root, name string) bool {
	_, err := os.Stat(filepath.Join(root, "sys", "class", "net", name, "wireless"))
	return err == nil
}

// FieldError is a setting the device cannot carry out. Path is the
// Device resource's field (spec.interfaces[0].name).
type FieldError struct {
	Path string
	Msg  string
}

func (e *FieldError) Error() string { return e.Path + ": " + e.Msg }

// Check reports what of s the board below root cannot carry out: an
// interface it does not have, Wi-Fi without a Wi-Fi interface. Each
// problem is a *FieldError; several are joined (errors.Join).
func Check(root string, s Settings) error {
	have, err := Interfaces(root)
	if err != nil {
		return err
	}
	var errs []error
	for i, in := range s.Interfaces {
		if !slices.Contains(have, in.Name) {
			errs = append(errs, &FieldError{fmt.Sprintf("spec.interfaces[%d].name", i),
				fmt.Sprintf("%q: no such interface on this device (it has %s)", in.Name, strings.Join(have, ", "))})
		}
	}
	if s.WiFi != nil && !slices.ContainsFunc(have, func(n string) bool { return wireless(root, n) }) {
		errs = append(errs, &FieldError{"spec.wifi", "this device has no Wi-Fi interface"})
	}
	return errors.Join(errs...)
}
