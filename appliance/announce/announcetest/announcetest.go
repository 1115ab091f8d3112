// Package announcetest is a DNS-SD browser for tests of mDNS
// announcements: it finds services as a client on the LAN does (zeroconf's
// client: PTR queries on the group, the answers resolved to SRV, TXT and
// A records) and watches the group for goodbyes. Import it only from
// _test.go files; the tests run in a network namespace (testenv.InNetns).
package announcetest

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/mdns"
	"github.com/libp2p/zeroconf/v2"
	"github.com/miekg/dns"

	"edgebroker/broker/testenv"
)

// Found is what a browser learnt about one service instance.
type Found struct {
	Instance string
	Host     string
	Port     int
	Text     string   // TXT strings joined by ","
	Addrs    []string // IPv4 addresses, sorted
}

// String is "INSTANCE@HOST:PORT [TXT] [ADDRS]", the form AwaitBrowse
// compares.
func (f Found) String() string {
	return fmt.Sprintf("%s@%s:%d [%s] %v", f.Instance, f.Host, f.Port, f.Text, f.Addrs)
}

// Browse browses for services of type typ on the interface ifname for
// window and returns what it found, sorted by String.
func Browse(t testing.TB, ifname, typ string, window time.Duration) []Found {
	t.Helper()
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), window)
	defer cancel()
	entries := make(chan *zeroconf.ServiceEntry, 16)
	errc := make(chan error, 1)
	go func() {
		errc <- zeroconf.Browse(ctx, typ, "local.", entries, zeroconf.SelectIfaces([]net.Interface{*ifi}), zeroconf.SelectIPTraffic(zeroconf.IPv4))
	}()
	var out []Found
	for e := range entries {
		f := Found{Instance: unescape(e.Instance), Host: e.HostName, Port: e.Port, Text: strings.Join(e.Text, ",")}
		for _, a := range e.AddrIPv4 {
			f.Addrs = append(f.Addrs, a.String())
		}
		slices.Sort(f.Addrs)
		out = append(out, f)
	}
	if err := <-errc; err != nil {
		t.Fatalf("browse %s: %v", typ, err)
	}
	slices.SortFunc(out, func(a, b Found) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// AwaitBrowse browses typ on ifname, 1.5 s at a time, until the browser
// finds exactly want (each a Found.String, in any order), failing t
// after 20 s.
func AwaitBrowse(t testing.TB, ifname, typ string, want ...string) {
	t.Helper()
	want = slices.Sorted(slices.Values(want))
	var got []string
	err := testenv.Poll(20*time.Second, nil, func() error {
		got = got[:0]
		for _, f := range Browse(t, ifname, typ, 1500*time.Millisecond) {
			got = append(got, f.String())
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("browse %s: got %q, want %q", typ, got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Query asks for services of type typ with a second, independent mDNS
// client (github.com/hashicorp/mdns: one query from an ephemeral port,
// answers read on the group) on ifname for window, and returns what it
// resolved, sorted by String. Found.Host and Addrs are as Browse gives
// them; the instance is the name's first label.
func Query(t testing.TB, ifname, typ string, window time.Duration) []Found {
	t.Helper()
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	entries := make(chan *mdns.ServiceEntry, 64)
	p := mdns.DefaultParams(typ)
	p.Entries, p.Interface, p.Timeout, p.DisableIPv6 = entries, ifi, window, true
	p.Logger = log.New(io.Discard, "", 0)
	if err := mdns.Query(p); err != nil {
		t.Fatalf("query %s: %v", typ, err)
	}
	close(entries)
	var out []Found
	for e := range entries {
		instance, _, _ := strings.Cut(e.Name, "."+typ)
		f := Found{Instance: unescape(instance), Host: e.Host, Port: e.Port, Text: strings.Join(e.InfoFields, ",")}
		if e.AddrV4 != nil {
			f.Addrs = []string{e.AddrV4.String()}
		}
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b Found) int { return strings.Compare(a.String(), b.String()) })
	return slices.CompactFunc(out, func(a, b Found) bool { return a.String() == b.String() })
}

// unescape turns a label in DNS presentation format (as zeroconf's
// client returns instance names: `gw\ status`, `gw\.1`, `gw\032x`) into
// its bytes.
func unescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		if i+3 < len(s) && isDigits(s[i+1:i+4]) {
			n := int(s[i+1]-'0')*100 + int(s[i+2]-'0')*10 + int(s[i+3]-'0')
			b.WriteByte(byte(n))
			i += 3
			continue
		}
		b.WriteByte(s[i+1])
		i++
	}
	return b.String()
}

func isDigits(s string) bool {
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// Goodbyes listens on the mDNS group on ifname and delivers
// "NAME:PORT" (NAME in presentation format, as miekg/dns writes it) for
// every SRV record announced with TTL 0 (a goodbye, RFC 6762 §10.1),
// until the test ends.
func Goodbyes(t testing.TB, ifname string) <-chan string {
	t.Helper()
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.ListenMulticastUDP("udp4", ifi, &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: 5353})
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan string, 64)
	done := make(chan struct{})
	t.Cleanup(func() { c.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 9000)
		for {
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			var m dns.Msg
			if m.Unpack(buf[:n]) != nil || !m.Response {
				continue
			}
			for _, rr := range m.Answer {
				if srv, ok := rr.(*dns.SRV); ok && srv.Hdr.Ttl == 0 {
					select {
					case out <- fmt.Sprintf("%s:%d", srv.Hdr.Name, srv.Port):
					default:
					}
				}
			}
		}
	}()
	return out
}

// AwaitGoodbye waits up to 10 s for a goodbye for name ("NAME:PORT")
// on bye.
func AwaitGoodbye(t testing.TB, bye <-chan string, name string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	var seen []string
	for {
		select {
		case got := <-bye:
			if got == name {
				return
			}
			seen = append(seen, got)
		case <-timeout:
			t.Fatalf("no goodbye for %s; goodbyes seen: %q", name, seen)
		}
	}
}
