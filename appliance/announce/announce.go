// Package announce makes the appliance findable on its LAN: it announces
// services by multicast DNS and DNS-SD (RFC 6762, RFC 6763) on every LAN
// interface, answers browsers' queries, and follows changes: Update with a
// new list of services says goodbye (TTL 0) for what went and announces
// what came, and Run re-announces everything when the interfaces or their
// addresses change (a DHCP lease, a cable plugged in).
//
// The responder is github.com/libp2p/zeroconf/v2 (v2.2.0), chosen among
// the maintained Go mDNS libraries the module proxy serves:
//
//   - it announces at start (two or more unsolicited responses, RFC 6762
//     §8.3) and says goodbye on Shutdown (§10.1), so a browser's cache
//     follows a port removed by a reload at once, not after the TTL;
//   - Shutdown waits for its goroutines, so the appliance's shutdown
//     leaves none behind;
//   - it needs only github.com/miekg/dns and golang.org/x/net (together
//     0.85 MB of the arm64 binary; tools/depcheck's firmware budget lists
//     them) and takes the host name and addresses we give it.
//
// github.com/hashicorp/mdns only answers queries (no announcement, no
// goodbye; a removed service lingers in caches for its TTL) on one
// interface per server; github.com/brutella/dnssd pulls in
// vishvananda/netlink, logs through a package-level logger and leaves
// announcement goroutines sleeping after its responder stops.
//
// zeroconf's Server carries one service. The Responder keeps one Server
// per announced service; they share UDP port 5353 (SO_REUSEADDR) and each
// answers the questions about its own records. Any change (a service
// added, removed or changed, a new address or host name) withdraws every
// service and announces the new list: a zeroconf goodbye also withdraws
// the host's address records, which only an announcement puts back for
// the services that stay (zeroconf's SetText is not safe against its
// receiving goroutines either). Browsers see the list flicker once per
// configuration change. zeroconf does not answer address queries for the
// host name by themselves: browsers learn the addresses from the records
// that come with the services' answers.
package announce

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
)

// Service types the appliance announces.
const (
	MQTT       = "_mqtt._tcp"        // MQTT over TCP
	SecureMQTT = "_secure-mqtt._tcp" // MQTT over TLS
	HTTP       = "_http._tcp"        // the status page
	HTTPS      = "_https._tcp"       // the status page over TLS (-status-tls)
)

// Service is one DNS-SD service instance.
type Service struct {
	Type     string   // service type, e.g. MQTT
	Instance string   // instance name; "" is the host name
	Port     int      // TCP port
	Text     []string // TXT record: "key=value" strings, in order
}

func (s Service) String() string {
	return fmt.Sprintf("%q.%s.local:%d %q", s.Instance, s.Type, s.Port, s.Text)
}

func (s Service) equal(o Service) bool {
	return s.Type == o.Type && s.Instance == o.Instance && s.Port == o.Port && slices.Equal(s.Text, o.Text)
}

// LANInterfaces returns the interfaces the device announces on: up,
// multicast-capable, not loopback, with at least one address.
func LANInterfaces() ([]net.Interface, error) {
	all, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("announce: %w", err)
	}
	var out []net.Interface
	for _, ifi := range all {
		if ifi.Flags&net.FlagUp == 0 || ifi.Flags&net.FlagMulticast == 0 || ifi.Flags&net.FlagLoopback != 0 {
			continue
		}
		if len(addrsOf(ifi)) > 0 {
			out = append(out, ifi)
		}
	}
	return out, nil
}

// addrsOf returns the addresses ifi is reached at, as A and AAAA records
// give them: IPv4 and global IPv6, or the link-local IPv6 ones when the
// interface has nothing else.
func addrsOf(ifi net.Interface) []string {
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil
	}
	var out, local []string
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.IsLoopback() {
			continue
		}
		switch ip := ipn.IP; {
		case ip.To4() != nil, ip.IsGlobalUnicast():
			out = append(out, ip.String())
		case ip.IsLinkLocalUnicast():
			local = append(local, ip.String())
		}
	}
	if len(out) == 0 {
		return local
	}
	return out
}

// lan is what the services are announced on: the host name and the
// interfaces with their addresses.
type lan struct {
	host   string // first label of the host name
	ifaces []net.Interface
	addrs  []string // of every interface, in interface order
}

// key says whether two lans announce the same records.
func (l lan) key() string {
	var b strings.Builder
	b.WriteString(l.host)
	for _, ifi := range l.ifaces {
		fmt.Fprintf(&b, "|%d:%s", ifi.Index, ifi.Name)
	}
	fmt.Fprintf(&b, "|%v", l.addrs)
	return b.String()
}

// hostLabel turns a host name into the label of its .local name:
// "gw-1.example.com" is announced as "gw-1.local".
func hostLabel(name string) string {
	name, _, _ = strings.Cut(strings.TrimSuffix(name, "."), ".")
	return name
}

// currentLAN reads the host name and the interfaces.
func (r *Responder) currentLAN() (lan, error) {
	hostname, ifaces := r.Hostname, r.Interfaces
	if hostname == nil {
		hostname = os.Hostname
	}
	if ifaces == nil {
		ifaces = LANInterfaces
	}
	h, err := hostname()
	if err == nil && hostLabel(h) == "" {
		err = errors.New("empty host name")
	}
	if err != nil {
		return lan{}, fmt.Errorf("announce: host name: %w", err)
	}
	l := lan{host: hostLabel(h)}
	if l.ifaces, err = ifaces(); err != nil {
		return lan{}, err
	}
	for _, ifi := range l.ifaces {
		l.addrs = append(l.addrs, addrsOf(ifi)...)
	}
	return l, nil
}

// logger returns r.Log, or a logger that discards.
func (r *Responder) logger() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return slog.New(slog.DiscardHandler)
}
