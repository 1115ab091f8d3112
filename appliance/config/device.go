package config

import (
	"net/netip"
	"strings"
)

// APIVersionAppliance serves the appliance's own kinds (Device). The group
// is edgebroker's, not AIO's or Kubernetes': no cluster has these kinds.
const APIVersionAppliance = "appliance.edgebroker.dev/v1"

// Interface addressing modes.
const (
	AddressingDHCP   = "DHCP"   // gokrazy's DHCP client configures the interface
	AddressingStatic = "Static" // address, gateway and DNS from the Device resource
)

// Limits of a Device resource.
const (
	MaxDeviceInterfaces = 8
	MaxNTPServers       = 8
	MaxDNSServers       = 3 // what a resolv.conf holds
)

// Device is the device's own settings: host name, per-interface IPv4
// addressing, NTP servers and Wi-Fi. At most one Device may exist;
// without one the device keeps what its image set up (the image's host
// name, DHCP on every interface, gokrazy's NTP pool).
//
//	apiVersion: appliance.edgebroker.dev/v1
//	kind: Device
//	metadata:
//	  name: site
//	spec:
//	  hostname: gw-hall-3
//	  interfaces:
//	  - name: eth0
//	    addressing: Static
//	    address: 192.168.10.20/24
//	    gateway: 192.168.10.1
//	    dns: [192.168.10.1]
//	  ntpServers: [192.168.10.1]
//	  wifi:
//	    ssid: hall-3
//	    passphraseSecretRef: {name: wifi, key: passphrase}
//
// Validate checks what can be checked anywhere; whether the interfaces
// exist is the device's business (see board/netconf).
type Device struct {
	Object `json:",inline" yaml:",inline"`
	Spec   DeviceSpec `json:"spec" yaml:"spec"`
}

// DeviceSpec is Device.spec; every field is optional.
type DeviceSpec struct {
	// Hostname is one DNS label (1-63 letters, digits and '-'); "" keeps
	// the image's.
	Hostname   string            `json:"hostname,omitempty" yaml:"hostname,omitempty"`
	Interfaces []DeviceInterface `json:"interfaces,omitempty" yaml:"interfaces,omitempty"`
	// NTPServers are host names or addresses; none keeps gokrazy's pool.
	NTPServers []string    `json:"ntpServers,omitempty" yaml:"ntpServers,omitempty"`
	WiFi       *DeviceWiFi `json:"wifi,omitempty" yaml:"wifi,omitempty"`
}

// DeviceInterface is the addressing of one network interface.
type DeviceInterface struct {
	Name       string `json:"name" yaml:"name"`                                 // eth0, wlan0, ...
	Addressing string `json:"addressing,omitempty" yaml:"addressing,omitempty"` // DHCP (default) or Static
	// Address is the interface's IPv4 address and prefix length
	// (192.168.10.20/24); Static only.
	Address string `json:"address,omitempty" yaml:"address,omitempty"`
	// Gateway is the default route's next hop, inside Address's network;
	// Static only, optional (a network without a router).
	Gateway string   `json:"gateway,omitempty" yaml:"gateway,omitempty"`
	DNS     []string `json:"dns,omitempty" yaml:"dns,omitempty"` // name servers; Static only
}

// DeviceWiFi is the network a board with Wi-Fi joins (on wlan0).
type DeviceWiFi struct {
	SSID string `json:"ssid" yaml:"ssid"`
	// PassphraseSecretRef names an Opaque Secret and its key (default
	// "passphrase") holding the WPA2 passphrase (8-63 characters); nil
	// for an open network.
	PassphraseSecretRef *SecretKeySelector `json:"passphraseSecretRef,omitempty" yaml:"passphraseSecretRef,omitempty"`
}

// DefaultPassphraseKey is the Secret key of a Wi-Fi passphrase when
// passphraseSecretRef.key is empty.
const DefaultPassphraseKey = "passphrase"

// Device returns the Device resource, or nil.
func (s *Set) Device() *Device {
	if len(s.Devices) == 0 {
		return nil
	}
	return s.Devices[0]
}

func (d *Device) setDefaults() {
	for i := range d.Spec.Interfaces {
		if d.Spec.Interfaces[i].Addressing == "" {
			d.Spec.Interfaces[i].Addressing = AddressingDHCP
		}
	}
	if w := d.Spec.WiFi; w != nil && w.PassphraseSecretRef != nil && w.PassphraseSecretRef.Key == "" {
		w.PassphraseSecretRef.Key = DefaultPassphraseKey
	}
}

func (d *Device) validate(s *Set, rp *report) {
	sp := &d.Spec
	if sp.Hostname != "" && !isHostLabel(sp.Hostname) {
		rp.add(d, "spec.hostname", "%q is not a host name: use 1 to 63 letters, digits and '-', not starting or ending with '-'", sp.Hostname)
	}
	if len(sp.Interfaces) > MaxDeviceInterfaces {
		rp.add(d, "spec.interfaces", "%d interfaces, at most %d", len(sp.Interfaces), MaxDeviceInterfaces)
	}
	seen := map[string]int{}
	for i := range sp.Interfaces {
		p := "spec.interfaces[" + itoa(i) + "]"
		name := sp.Interfaces[i].Name
		if j, ok := seen[name]; ok && name != "" {
			rp.add(d, p+".name", "%q already configured by spec.interfaces[%d]", name, j)
		}
		seen[name] = i
		d.validateInterface(rp, p, &sp.Interfaces[i])
	}
	if len(sp.NTPServers) > MaxNTPServers {
		rp.add(d, "spec.ntpServers", "%d servers, at most %d", len(sp.NTPServers), MaxNTPServers)
	}
	for i, srv := range sp.NTPServers {
		if _, err := netip.ParseAddr(srv); err != nil && !isDNSName(srv) || strings.HasPrefix(srv, "*.") {
			rp.add(d, "spec.ntpServers["+itoa(i)+"]", "%q is neither a host name nor an IP address", srv)
		}
	}
	if sp.WiFi != nil {
		d.validateWiFi(s, rp, sp.WiFi)
	}
}

func (d *Device) validateInterface(rp *report, p string, in *DeviceInterface) {
	if in.Name == "" {
		rp.add(d, p+".name", "required (the interface, e.g. eth0)")
	} else if !isIfName(in.Name) {
		rp.add(d, p+".name", "%q is not an interface name (1 to 15 characters, no '/', ':' or spaces)", in.Name)
	}
	if !oneOf(rp, d, p+".addressing", in.Addressing, AddressingDHCP, AddressingStatic) {
		return
	}
	if in.Addressing == AddressingDHCP {
		for _, f := range []struct {
			name string
			set  bool
		}{{"address", in.Address != ""}, {"gateway", in.Gateway != ""}, {"dns", len(in.DNS) > 0}} {
			if f.set {
				rp.add(d, p+"."+f.name, "only with addressing: Static (DHCP supplies it)")
			}
		}
		return
	}
	if in.Address == "" {
		rp.add(d, p+".address", "required with addressing: Static (e.g. 192.168.1.20/24)")
		return
	}
	pfx, ok := d.checkPrefix(rp, p+".address", in.Address)
	if in.Gateway != "" {
		gw, err := netip.ParseAddr(in.Gateway)
		switch {
		case err != nil || !gw.Is4():
			rp.add(d, p+".gateway", "%q is not an IPv4 address", in.Gateway)
		case ok && !pfx.Masked().Contains(gw):
			rp.add(d, p+".gateway", "%q is outside %s: the device could not reach it", in.Gateway, pfx.Masked())
		case ok && gw == pfx.Addr():
			rp.add(d, p+".gateway", "%q is the interface's own address", in.Gateway)
		}
	}
	if len(in.DNS) > MaxDNSServers {
		rp.add(d, p+".dns", "%d servers, at most %d", len(in.DNS), MaxDNSServers)
	}
	for i, s := range in.DNS {
		if a, err := netip.ParseAddr(s); err != nil || a.Zone() != "" {
			rp.add(d, p+".dns["+itoa(i)+"]", "%q is not an IP address", s)
		}
	}
}

// checkPrefix parses a static IPv4 address with its prefix length.
func (d *Device) checkPrefix(rp *report, path, v string) (netip.Prefix, bool) {
	pfx, err := netip.ParsePrefix(v)
	switch {
	case err != nil:
		if _, aerr := netip.ParseAddr(v); aerr == nil {
			rp.add(d, path, "%q has no prefix length (e.g. %s/24)", v, v)
		} else {
			rp.add(d, path, "%q is not an IP prefix (want address/length, e.g. 192.168.1.20/24)", v)
		}
	case !pfx.Addr().Is4():
		rp.add(d, path, "%q is not IPv4 (static addressing is IPv4 only)", v)
	case pfx.Bits() < 8 || pfx.Bits() > 32:
		rp.add(d, path, "%q: prefix length %d out of range (8 to 32)", v, pfx.Bits())
	case pfx.Addr().IsUnspecified() || pfx.Addr().IsLoopback() || pfx.Addr().IsMulticast():
		rp.add(d, path, "%q is not a unicast address", v)
	case pfx.Bits() <= 30 && pfx.Addr() == pfx.Masked().Addr():
		rp.add(d, path, "%q is the network's own address, not a host's", v)
	case pfx.Bits() <= 30 && pfx.Addr() == lastAddr(pfx):
		rp.add(d, path, "%q is the network's broadcast address, not a host's", v)
	default:
		return pfx, true
	}
	return pfx, false
}

// lastAddr returns the highest address of pfx's network (IPv4).
func lastAddr(pfx netip.Prefix) netip.Addr {
	a := pfx.Masked().Addr().As4()
	host := uint32(1)<<(32-pfx.Bits()) - 1
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func (d *Device) validateWiFi(s *Set, rp *report, w *DeviceWiFi) {
	if n := len(w.SSID); n == 0 || n > 32 {
		rp.add(d, "spec.wifi.ssid", "%q: want 1 to 32 bytes", w.SSID)
	}
	ref := w.PassphraseSecretRef
	if ref == nil {
		return
	}
	p := "spec.wifi.passphraseSecretRef"
	if ref.Name == "" {
		rp.add(d, p+".name", "required (an Opaque Secret holding the passphrase)")
		return
	}
	sec := s.Secret(ref.Name)
	if sec == nil {
		rp.add(d, p+".name", "Secret/%s not found", ref.Name)
		return
	}
	pw, ok := sec.Bytes(ref.Key)
	switch {
	case !ok:
		rp.add(d, p+".key", "%s has no key %q", sec.Ref(), ref.Key)
	case !isPassphrase(string(pw)):
		// The passphrase itself is never printed.
		rp.add(d, p+".key", "%s[%s] is not a WPA2 passphrase: want 8 to 63 printable ASCII characters (it has %d bytes)", sec.Ref(), ref.Key, len(pw))
	}
}

// WiFiPassphrase returns the Wi-Fi passphrase from its Secret ("" for an
// open network or none configured).
func (s *Set) WiFiPassphrase() string {
	d := s.Device()
	if d == nil || d.Spec.WiFi == nil || d.Spec.WiFi.PassphraseSecretRef == nil {
		return ""
	}
	ref := d.Spec.WiFi.PassphraseSecretRef
	sec := s.Secret(ref.Name)
	if sec == nil {
		return ""
	}
	key := ref.Key
	if key == "" {
		key = DefaultPassphraseKey
	}
	b, _ := sec.Bytes(key)
	return string(b)
}

func isPassphrase(s string) bool {
	if len(s) < 8 || len(s) > 63 {
		return false
	}
	for _, c := range []byte(s) {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// isHostLabel reports whether s is one DNS label, as a host name.
func isHostLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// isIfName reports whether s can name a Linux network interface.
func isIfName(s string) bool {
	if len(s) == 0 || len(s) > 15 || s == "." || s == ".." {
		return false
	}
	return !strings.ContainsAny(s, "/: \t\n\x00")
}
