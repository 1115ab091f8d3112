package announce_test

import (
	"context"
	"net"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"edgebroker/appliance/announce"
	"edgebroker/appliance/announce/announcetest"
	"edgebroker/broker/testenv"
)

func hostname() (string, error) { return "gw-test.example.com", nil }

// device is the device's end of the LAN; client is the browser's.
func device() ([]net.Interface, error) {
	ifi, err := net.InterfaceByName(testenv.LAN[0].Name)
	if err != nil {
		return nil, err
	}
	return []net.Interface{*ifi}, nil
}

var client = testenv.LAN[1].Name

// TestAnnounceFollowsUpdate: a DNS-SD browser on the LAN finds every
// service the responder announces, with its host, port, TXT record and
// address; after an Update the browser finds the new list (a repeated
// instance name gets its port), and what went was withdrawn by a
// goodbye; Close says goodbye for the rest, and Update after it does
// nothing.
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
	announcetest.AwaitBrowse(t, client, announce.MQTT, "gw-test@gw-test.local.:1883 [id=board-1,bundle=3] [10.77.0.1]")
	announcetest.AwaitBrowse(t, client, announce.SecureMQTT, "gw-test@gw-test.local.:8883 [id=board-1,bundle=3] [10.77.0.1]")
	announcetest.AwaitBrowse(t, client, announce.HTTP, "gw-test status v1.2@gw-test.local.:8080 [path=/] [10.77.0.1]")
	// A second mDNS client, of another implementation, resolves them too.
	for typ, want := range map[string]string{
		announce.MQTT: "gw-test@gw-test.local.:1883 [id=board-1,bundle=3] [10.77.0.1]",
		announce.HTTP: "gw-test status v1.2@gw-test.local.:8080 [path=/] [10.77.0.1]",
	} {
		if got := announcetest.Query(t, client, typ, time.Second); len(got) != 1 || got[0].String() != want {
			t.Errorf("query %s: got %q, want %q", typ, got, want)
		}
	}

	bye := announcetest.Goodbyes(t, client)
	err = r.Update([]announce.Service{
		{Type: announce.MQTT, Port: 1883, Text: []string{"id=board-1", "bundle=4"}},
		{Type: announce.MQTT, Port: 1884, Text: []string{"id=board-1", "bundle=4"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	announcetest.AwaitGoodbye(t, bye, `gw-test._secure-mqtt._tcp.local.:8883`)
	announcetest.AwaitGoodbye(t, bye, `gw-test\ status\ v1\.2._http._tcp.local.:8080`)
	announcetest.AwaitBrowse(t, client, announce.MQTT,
		"gw-test (1884)@gw-test.local.:1884 [id=board-1,bundle=4] [10.77.0.1]",
		"gw-test@gw-test.local.:1883 [id=board-1,bundle=4] [10.77.0.1]")

	r.Close()
	announcetest.AwaitGoodbye(t, bye, `gw-test._mqtt._tcp.local.:1883`)
	if err := r.Update([]announce.Service{{Type: announce.MQTT, Port: 1883}}); err != nil || len(r.Announced()) != 0 {
		t.Errorf("Update after Close: err %v, announced %v; want nothing announced", err, r.Announced())
	}
}

// TestAnnounceFollowsAddresses: Run announces the services again when an
// interface gains an address, and Run's end says goodbye and leaves none
// of the responder's goroutines behind.
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
	announcetest.AwaitBrowse(t, client, announce.MQTT, "gw-test@gw-test.local.:1883 [] [10.77.0.1]")

	if out, err := exec.Command("ip", "addr", "add", "10.77.0.9/24", "dev", testenv.LAN[0].Name).CombinedOutput(); err != nil {
		t.Fatalf("ip addr add: %v\n%s", err, out)
	}
	announcetest.AwaitBrowse(t, client, announce.MQTT, "gw-test@gw-test.local.:1883 [] [10.77.0.1 10.77.0.9]")

	bye := announcetest.Goodbyes(t, client)
	cancel()
	if err := <-ran; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st := stacks(); strings.Contains(st, "zeroconf.(*Server)") {
		t.Errorf("a responder goroutine is left after Run returned:\n%s", st)
	}
	announcetest.AwaitGoodbye(t, bye, `gw-test._mqtt._tcp.local.:1883`)
}

// stacks returns every goroutine's stack.
func stacks() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}
