package announce_test

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/zeroconf/v2"
	"github.com/miekg/dns"

	"edgebroker/appliance/announce"
	"edgebroker/broker/testenv"
)

// found is what a browser learnt about one service instance.
type found struct {
	Instance string
	Host     string
	Port     int
	Text     string   // TXT strings joined by ","
	Addrs    []string // IPv4 addresses
}

func (f found) String() string {
	return fmt.Sprintf("%s@%s:%d [%s] %v", f.Instance, f.Host, f.Port, f.Text, f.Addrs)
}

// browse runs a DNS-SD browser (zeroconf's client: PTR queries on the
// group, answers resolved to SRV, TXT and A) on the LAN's client end for
// window and returns what it found, sorted.
func browse(t *testing.T, typ string, window time.Duration) []found {
	t.Helper()
	lan1, err := net.InterfaceByName(testenv.LAN[1].Name)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), window)
	defer cancel()
	entries := make(chan *zeroconf.ServiceEntry, 16)
	errc := make(chan error, 1)
	go func() {
		errc <- zeroconf.Browse(ctx, typ, "local.", entries, zeroconf.SelectIfaces([]net.Interface{*lan1}), zeroconf.SelectIPTraffic(zeroconf.IPv4))
	}()
	var out []found
	for e := range entries {
		f := found{Instance: unescape(e.Instance), Host: e.HostName, Port: e.Port, Text: strings.Join(e.Text, ",")}
		for _, a := range e.AddrIPv4 {
			f.Addrs = append(f.Addrs, a.String())
		}
		slices.Sort(f.Addrs)
		out = append(out, f)
	}
	if err := <-errc; err != nil {
		t.Fatalf("browse %s: %v", typ, err)
	}
	slices.SortFunc(out, func(a, b found) int { return strings.Compare(a.String(), b.String()) })
	return out
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

// awaitBrowse browses typ until the browser finds exactly want.
func awaitBrowse(t *testing.T, typ string, want ...string) {
	t.Helper()
	var got []string
	err := testenv.Poll(15*time.Second, nil, func() error {
		got = got[:0]
		for _, f := range browse(t, typ, 1500*time.Millisecond) {
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

// goodbyes listens on the mDNS group at the LAN's client end and delivers
// the names of the SRV records announced with TTL 0 (RFC 6762 §10.1).
func goodbyes(t *testing.T) <-chan string {
	t.Helper()
	lan1, err := net.InterfaceByName(testenv.LAN[1].Name)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.ListenMulticastUDP("udp4", lan1, &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: 5353})
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

// awaitGoodbye waits for a goodbye for name.
func awaitGoodbye(t *testing.T, bye <-chan string, name string) {
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

func hostname() (string, error) { return "gw-test.example.com", nil }

// device is the device's end of the LAN (the browser is on the other).
func device() ([]net.Interface, error) {
	ifi, err := net.InterfaceByName(testenv.LAN[0].Name)
	if err != nil {
		return nil, err
	}
	return []net.Interface{*ifi}, nil
}

// TestAnnounceFollowsUpdate: a DNS-SD browser on the LAN finds every
// service the responder announces, with its host, port, TXT record and
// address; after an Update the browser finds the new list, and what went
// was withdrawn by a goodbye; Close says goodbye for the rest.
func TestAnnounceFollowsUpdate(t *testing.T) {
	if !testenv.InNetns(t) {
		return
	}
	r := &announce.Responder{Hostname: hostname, Interfaces: device}
	defer r.Close()
	err := r.Update([]announce.Service{
		{Type: announce.MQTT, Port: 1883, Text: []string{"id=board-1", "bundle=3"}},
		{Type: announce.SecureMQTT, Port: 8883, Text: []string{"id=board-1", "bundle=3"}},
		{Type: announce.HTTP, Instance: "gw-test status v1.2", Port: 8080, Text: []string{"path=/"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	awaitBrowse(t, announce.MQTT, "gw-test@gw-test.local.:1883 [id=board-1,bundle=3] [10.77.0.1]")
	awaitBrowse(t, announce.SecureMQTT, "gw-test@gw-test.local.:8883 [id=board-1,bundle=3] [10.77.0.1]")
	awaitBrowse(t, announce.HTTP, "gw-test status v1.2@gw-test.local.:8080 [path=/] [10.77.0.1]")

	bye := goodbyes(t)
	err = r.Update([]announce.Service{
		{Type: announce.MQTT, Port: 1883, Text: []string{"id=board-1", "bundle=4"}},
		{Type: announce.MQTT, Instance: "gw-test (1884)", Port: 1884, Text: []string{"id=board-1", "bundle=4"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	awaitGoodbye(t, bye, `gw-test._secure-mqtt._tcp.local.:8883`)
	awaitGoodbye(t, bye, `gw-test\ status\ v1\.2._http._tcp.local.:8080`)
	awaitBrowse(t, announce.MQTT,
		"gw-test (1884)@gw-test.local.:1884 [id=board-1,bundle=4] [10.77.0.1]",
		"gw-test@gw-test.local.:1883 [id=board-1,bundle=4] [10.77.0.1]")

	r.Close()
	awaitGoodbye(t, bye, `gw-test._mqtt._tcp.local.:1883`)
	if err := r.Update([]announce.Service{{Type: announce.MQTT, Port: 1883}}); err != nil || len(r.Announced()) != 0 {
		t.Errorf("Update after Close: err %v, announced %v; want nothing announced", err, r.Announced())
	}
}

// TestAnnounceFollowsAddresses: Run announces the services again when an
// interface gains an address, and Run's end says goodbye.
func TestAnnounceFollowsAddresses(t *testing.T) {
	if !testenv.InNetns(t) {
		return
	}
	r := &announce.Responder{Hostname: hostname, Interfaces: device, Poll: 50 * time.Millisecond}
	if err := r.Update([]announce.Service{{Type: announce.MQTT, Port: 1883}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- r.Run(ctx) }()
	awaitBrowse(t, announce.MQTT, "gw-test@gw-test.local.:1883 [] [10.77.0.1]")

	if out, err := exec.Command("ip", "addr", "add", "10.77.0.9/24", "dev", testenv.LAN[0].Name).CombinedOutput(); err != nil {
		t.Fatalf("ip addr add: %v\n%s", err, out)
	}
	awaitBrowse(t, announce.MQTT, "gw-test@gw-test.local.:1883 [] [10.77.0.1 10.77.0.9]")

	bye := goodbyes(t)
	cancel()
	if err := <-ran; err != nil {
		t.Fatalf("Run: %v", err)
	}
	awaitGoodbye(t, bye, `gw-test._mqtt._tcp.local.:1883`)
}
