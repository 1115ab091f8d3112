package netconf

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// services records Stop and Restart calls; paths in missing answer
// ErrNoService.
type services struct {
	calls   []string
	missing []string
}

func (s *services) call(op, path string) error {
	s.calls = append(s.calls, op+" "+path)
	for _, m := range s.missing {
		if m == path {
			return ErrNoService
		}
	}
	return nil
}

func (s *services) Stop(_ context.Context, path string) error    { return s.call("stop", path) }
func (s *services) Restart(_ context.Context, path string) error { return s.call("restart", path) }

func TestGokrazyApply(t *testing.T) {
	root, perm, dir := t.TempDir(), t.TempDir(), t.TempDir()
	// An operator's own wifi.json survives settings without Wi-Fi.
	own := filepath.Join(perm, "wifi.json")
	os.WriteFile(own, []byte(`{"ssid":"operator"}`), 0o600)
	g0 := &Gokrazy{Root: root, Perm: perm, Dir: dir, Services: new(services), SetHostname: func(string) error { return nil },
		Unconfigure: func(string, netip.Prefix, netip.Addr) error { return errors.New("nothing to take back") }}
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc", "hostname"), []byte("edgebroker"), 0o644)
	if err := g0.Apply(t.Context(), Settings{Hostname: "x"}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(own); err != nil || string(b) != `{"ssid":"operator"}` {
		t.Errorf("the operator's wifi.json after settings without Wi-Fi: %q, %v", b, err)
	}

	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc", "hostname"), []byte("edgebroker"), 0o644)
	svc := &services{missing: []string{WiFiService}}
	var hostnames, runs, unconfigured []string
	var leaseJSON string
	g := &Gokrazy{Root: root, Perm: perm, Dir: dir, Services: svc,
		SetHostname: func(n string) error { hostnames = append(hostnames, n); return nil },
		Unconfigure: func(iface string, addr netip.Prefix, gw netip.Addr) error {
			unconfigured = append(unconfigured, fmt.Sprintf("%s %s %s", iface, addr, gw))
			return nil
		},
		Run: func(_ context.Context, name string, args ...string) error {
			runs = append(runs, name+" "+strings.Join(args, " "))
			b, err := os.ReadFile(args[len(args)-1])
			leaseJSON = string(b)
			return err
		},
	}
	s := Settings{
		Hostname: "gw-3",
		Interfaces: []Interface{{Name: "eth0", Address: netip.MustParsePrefix("10.0.2.20/24"),
			Gateway: netip.MustParseAddr("10.0.2.2"), DNS: []netip.Addr{netip.MustParseAddr("10.0.2.3")}}},
		WiFi: &WiFi{SSID: "hall-3", Passphrase: "correct horse"},
	}
	if err := g.Apply(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"gw-3"}, hostnames); diff != "" {
		t.Errorf("host names (-want +got):\n%s", diff)
	}
	lease := filepath.Join(dir, "eth0.json")
	if diff := cmp.Diff([]string{filepath.Join(root, "gokrazy/dhcp") + " -interface eth0 -static_network_config " + lease}, runs); diff != "" {
		t.Errorf("runs (-want +got):\n%s", diff)
	}
	// gokrazy's dhcp decodes this into rtr7/dhcp4.Lease: Netmask is a
	// []byte (base64), the addresses text.
	if got, want := leaseJSON, `{"IP":"10.0.2.20","Netmask":"////AA==","Router":"10.0.2.2","DNS":["10.0.2.3"]}`; got != want {
		t.Errorf("lease %s, want %s", got, want)
	}
	wifi, err := os.ReadFile(filepath.Join(perm, "wifi.json"))
	if got, want := string(wifi), `{"ssid":"hall-3","psk":"correct horse"}`; err != nil || got != want {
		t.Errorf("wifi.json %q (%v), want %q", got, err, want)
	}
	if diff := cmp.Diff([]string{"stop " + DHCPService, "restart " + WiFiService}, svc.calls); diff != "" {
		t.Errorf("service calls (-want +got):\n%s", diff)
	}

	if len(unconfigured) > 0 {
		t.Errorf("took back %q, want nothing", unconfigured)
	}

	// Back to the image's settings: its host name, DHCP again (eth0's
	// static address and route taken off), and the wifi.json this Gokrazy
	// wrote removed.
	svc.calls, runs = nil, nil
	if err := g.Apply(t.Context(), Settings{}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"eth0 10.0.2.20/24 10.0.2.2"}, unconfigured); diff != "" {
		t.Errorf("taken back (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"gw-3", "edgebroker"}, hostnames); diff != "" {
		t.Errorf("host names (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"restart " + DHCPService, "restart " + WiFiService}, svc.calls); diff != "" {
		t.Errorf("service calls (-want +got):\n%s", diff)
	}
	if len(runs) > 0 {
		t.Errorf("ran %q, want nothing", runs)
	}
	if _, err := os.Stat(filepath.Join(perm, "wifi.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("wifi.json after Wi-Fi was removed: %v", err)
	}

	// A static address on another interface leaves eth0's DHCP client
	// running.
	svc.calls, runs = nil, nil
	wlan := Settings{Interfaces: []Interface{{Name: "eth0"}, {Name: "wlan0", Address: netip.MustParsePrefix("192.168.7.2/24")}}}
	if err := g.Apply(t.Context(), wlan); err != nil {
		t.Fatal(err)
	}
	if len(svc.calls) != 0 || len(runs) != 1 || !strings.Contains(runs[0], "-interface wlan0") {
		t.Errorf("static wlan0: service calls %q, runs %q; want none and one /gokrazy/dhcp -interface wlan0", svc.calls, runs)
	}

	// Taken back on wlan0 too; eth0's DHCP client, never stopped, is
	// left alone.
	svc.calls, unconfigured = nil, nil
	if err := g.Apply(t.Context(), Settings{}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"wlan0 192.168.7.2/24 invalid IP"}, unconfigured); diff != "" {
		t.Errorf("taken back (-want +got):\n%s", diff)
	}
	if len(svc.calls) != 0 {
		t.Errorf("service calls %q, want none", svc.calls)
	}
}

// TestGokrazyAPI checks the requests against what gokrazy's
// stopstartHandler and authenticated (gokrazy's supervise.go,
// authenticated.go) require: POST, Basic auth as gokrazy, the
// gokrazy_xsrf cookie equal to the xsrftoken form value, the path; it
// answers 303 on success and 404 for an unknown path.
func TestGokrazyAPI(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "gokrazy-http.sock")
	pwFile := filepath.Join(t.TempDir(), "gokr-pw.txt")
	os.WriteFile(pwFile, []byte("s3cret\n"), 0o600)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []string
	want := "s3cret" // gokrazy's httpPassword; "": built without one, the socket needs none
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pw, ok := r.BasicAuth()
		c, cerr := r.Cookie("gokrazy_xsrf")
		mu.Lock()
		need := want
		mu.Unlock()
		switch {
		case need != "" && (!ok || user != "gokrazy" || pw != need):
			http.Error(w, "unauthorized", http.StatusUnauthorized)
		case r.Method != http.MethodPost:
			http.Error(w, "expected a POST request", http.StatusBadRequest)
		case cerr != nil || c.Value == "" || c.Value != r.FormValue("xsrftoken"):
			http.Error(w, "XSRF token mismatch", http.StatusForbidden)
		case r.FormValue("path") != DHCPService:
			http.Error(w, "no such service", http.StatusNotFound)
		default:
			mu.Lock()
			got = append(got, r.URL.Path+" "+r.FormValue("path"))
			mu.Unlock()
			http.Redirect(w, r, "/status?path="+r.FormValue("path"), http.StatusSeeOther)
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	api := GokrazyAPI{Socket: sock, PasswordFile: pwFile}
	if err := api.Stop(t.Context(), DHCPService); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if err := api.Restart(t.Context(), DHCPService); err != nil {
		t.Errorf("Restart: %v", err)
	}
	if err := api.Restart(t.Context(), WiFiService); !errors.Is(err, ErrNoService) {
		t.Errorf("Restart(%s): %v, want ErrNoService", WiFiService, err)
	}
	mu.Lock()
	if diff := cmp.Diff([]string{"/stop " + DHCPService, "/restart " + DHCPService}, got); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
	mu.Unlock()
	// An image built without a password file (image/build's default):
	// gokrazy has no password, and its socket takes requests without one.
	none := GokrazyAPI{Socket: sock, PasswordFile: filepath.Join(t.TempDir(), "none")}
	if err := none.Stop(t.Context(), DHCPService); err == nil {
		t.Error("Stop without a password file, gokrazy with one: no error")
	}
	mu.Lock()
	want = ""
	mu.Unlock()
	if err := none.Stop(t.Context(), DHCPService); err != nil {
		t.Errorf("Stop without a password file, gokrazy without one: %v", err)
	}
}
