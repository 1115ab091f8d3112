package netconf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// Paths of gokrazy's programs in the image, and the interface the
// supervised DHCP client serves (its -interface default; the image passes
// none).
const (
	DHCPInterface = "eth0"
	DHCPService   = "/gokrazy/dhcp" // gokrazy installs its helpers under /gokrazy
	NTPService    = "/gokrazy/ntp"
	WiFiService   = "/user/wifi" // github.com/gokrazy/wifi, when the image has it
)

// Gokrazy applies settings on a gokrazy image with gokrazy's own
// mechanisms:
//
//   - host name: gokrazy sets it from /etc/hostname at boot, and the root
//     file system is read-only, so Gokrazy sets the kernel's (sethostname)
//     and restarts gokrazy's DHCP client, which sends the name it finds
//     at start. An empty host name restores /etc/hostname's.
//   - static address: gokrazy's DHCP client applies a static
//     configuration (a JSON lease) given by -static_network_config and
//     exits. Gokrazy writes the lease into Dir, stops the supervised DHCP
//     client through gokrazy's web interface and runs /gokrazy/dhcp with the
//     lease. When settings no longer keep a lease (an interface back to
//     DHCP, no longer named, or given another address), Gokrazy takes
//     its address and default route off the interface, on any interface
//     (gokrazy's client adds them and nothing of gokrazy's removes them),
//     and for eth0 restarts the supervised client.
//   - Wi-Fi: github.com/gokrazy/wifi reads /perm/wifi.json ({"ssid",
//     "psk"}); Gokrazy writes it and restarts /user/wifi if the image
//     has it. Settings without Wi-Fi leave the file alone (an operator
//     may have put it there, as gokrazy's documentation says), unless
//     they take back one this Gokrazy wrote.
//   - NTP servers: gokrazy's ntp takes them as arguments, which the image
//     fixes. Gokrazy stops the supervised /gokrazy/ntp and runs it itself
//     with the servers (as its child, in its own process group, killed
//     with edgebroker: a restarted edgebroker applies the settings
//     again), handing it /dev/rtc0 and the saved time as gokrazy's
//     privilege drop would; without servers it restarts the supervised
//     one.
//
// Calls must not overlap (Guard's callers serialise them).
type Gokrazy struct {
	Root     string       // where /etc and /user are; "" means "/"
	Perm     string       // gokrazy's /perm ("" means "/perm"): wifi.json
	Dir      string       // where the static leases are written; required
	Services Services     // nil: GokrazyAPI{}
	Log      *slog.Logger // nil: slog.Default()

	// Run runs a program and waits for it; nil: os/exec. SetHostname sets
	// the kernel's host name; nil: sethostname(2). Unconfigure takes a
	// lease's address and default route (gw, if valid) off an interface;
	// nil: through the kernel's routing netlink. Tests replace them.
	Run         func(ctx context.Context, name string, args ...string) error
	SetHostname func(name string) error
	Unconfigure func(iface string, addr netip.Prefix, gw netip.Addr) error

	// applied is the last settings applied; owned by the caller's
	// serialisation, like every call.
	applied     *Settings
	stopped     bool      // the supervised DHCP client is stopped by us
	wifiWritten bool      // this Gokrazy wrote /perm/wifi.json
	ntpStopped  bool      // the supervised ntp is stopped by us
	ntp         *exec.Cmd // our ntp with the Device's servers; nil: none
}

// Apply makes s the device's settings (see Gokrazy).
func (g *Gokrazy) Apply(ctx context.Context, s Settings) error {
	var errs []error
	hostChanged := g.applied == nil || g.applied.Hostname != s.Hostname
	if hostChanged {
		errs = append(errs, g.setHostname(s.Hostname))
	}
	errs = append(errs, g.undoStatic(s))
	static := false // the supervised client's interface is static
	for _, in := range s.Interfaces {
		if in.Static() {
			static = static || in.Name == DHCPInterface
			errs = append(errs, g.applyStatic(ctx, in))
		}
	}
	switch {
	case !static && g.stopped:
		// Back to DHCP (the supervised client sends the current host name).
		err := g.services().Restart(ctx, DHCPService)
		if err == nil {
			g.stopped = false
		}
		errs = append(errs, err)
	case !static && hostChanged && (g.applied != nil || s.Hostname != ""):
		errs = append(errs, g.services().Restart(ctx, DHCPService))
	}
	if (s.WiFi != nil || g.wifiWritten) && (g.applied == nil || !wifiEqual(g.applied.WiFi, s.WiFi)) {
		errs = append(errs, g.applyWiFi(ctx, s.WiFi))
	}
	if g.applied == nil && len(s.NTPServers) > 0 || g.applied != nil && !slices.Equal(g.applied.NTPServers, s.NTPServers) {
		errs = append(errs, g.applyNTP(ctx, s.NTPServers))
	}
	g.applied = &s
	return errors.Join(errs...)
}

func (g *Gokrazy) setHostname(name string) error {
	if name == "" {
		b, err := os.ReadFile(filepath.Join(g.root(), "etc", "hostname"))
		if err != nil {
			return fmt.Errorf("netconf: the image's host name: %w", err)
		}
		name = strings.TrimSpace(string(b))
	}
	set := g.SetHostname
	if set == nil {
		set = sethostname
	}
	if err := set(name); err != nil {
		return fmt.Errorf("netconf: host name %q: %w", name, err)
	}
	return nil
}

// applyNTP runs gokrazy's ntp with servers instead of the supervised one;
// no servers: the supervised one again.
func (g *Gokrazy) applyNTP(ctx context.Context, servers []string) error {
	g.stopNTP()
	if len(servers) == 0 {
		if !g.ntpStopped {
			return nil
		}
		err := g.services().Restart(ctx, NTPService)
		if err == nil || errors.Is(err, ErrNoService) {
			g.ntpStopped = false
			err = nil
		}
		return err
	}
	if !g.ntpStopped {
		if err := g.services().Stop(ctx, NTPService); err != nil && !errors.Is(err, ErrNoService) {
			return err
		}
		g.ntpStopped = true
	}
	cmd := exec.Command(filepath.Join(g.root(), strings.TrimPrefix(NTPService, "/")), servers...)
	// As gokrazy's ntp hands itself the clock and the saved time when it
	// drops privileges: fd 3 /dev/rtc0, the next the time file.
	cmd.Env = append(os.Environ(), "NTP_PRIVILEGES_DROPPED=1")
	if rtc, err := os.Open(filepath.Join(g.root(), "dev", "rtc0")); err == nil {
		defer rtc.Close()
		cmd.Env = append(cmd.Env, "NTP_RTC=1")
		cmd.ExtraFiles = append(cmd.ExtraFiles, rtc)
	}
	if err := os.MkdirAll(filepath.Join(g.perm(), "home", "ntp"), 0o700); err == nil {
		if tf, err := os.OpenFile(filepath.Join(g.perm(), "home", "ntp", "ntp-time-at-last-shutdown"), os.O_RDWR|os.O_CREATE, 0o600); err == nil {
			defer tf.Close()
			cmd.Env = append(cmd.Env, "NTP_TIMEFILE=1")
			cmd.ExtraFiles = append(cmd.ExtraFiles, tf)
		}
	}
	cmd.SysProcAttr = ntpProcAttr()
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr // gokrazy keeps edgebroker's output
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("netconf: %s: %w", NTPService, err)
	}
	go cmd.Wait() // reaps it when it ends (stopNTP, or it fails)
	g.ntp = cmd
	g.log().Info("device settings: NTP servers applied", "servers", strings.Join(servers, " "), "pid", cmd.Process.Pid)
	return nil
}

// stopNTP ends the ntp applyNTP started, if any.
func (g *Gokrazy) stopNTP() {
	if g.ntp != nil {
		syscall.Kill(-g.ntp.Process.Pid, syscall.SIGTERM) // its process group
		g.ntp = nil
	}
}

// wifiJSON is /perm/wifi.json as github.com/gokrazy/wifi reads it.
type wifiJSON struct {
	SSID string `json:"ssid"`
	PSK  string `json:"psk,omitempty"`
}

func (g *Gokrazy) applyWiFi(ctx context.Context, w *WiFi) error {
	file := filepath.Join(g.perm(), "wifi.json")
	if w == nil {
		if err := os.Remove(file); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("netconf: %w", err)
		}
		g.wifiWritten = false
	} else {
		b, _ := json.Marshal(wifiJSON{SSID: w.SSID, PSK: w.Passphrase})
		if err := os.WriteFile(file, b, 0o600); err != nil {
			return fmt.Errorf("netconf: %w", err)
		}
		g.wifiWritten = true
	}
	err := g.services().Restart(ctx, WiFiService)
	if errors.Is(err, ErrNoService) {
		if w != nil {
			g.log().Warn("device settings: Wi-Fi written to " + file + ", but the image has no " + WiFiService + " (github.com/gokrazy/wifi) to join it")
		}
		return nil
	}
	return err
}

func wifiEqual(a, b *WiFi) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func (g *Gokrazy) root() string {
	if g.Root == "" {
		return "/"
	}
	return g.Root
}

func (g *Gokrazy) perm() string {
	if g.Perm == "" {
		return "/perm"
	}
	return g.Perm
}

func (g *Gokrazy) services() Services {
	if g.Services == nil {
		return GokrazyAPI{}
	}
	return g.Services
}

func (g *Gokrazy) log() *slog.Logger {
	if g.Log == nil {
		return slog.Default()
	}
	return g.Log
}

func (g *Gokrazy) run(ctx context.Context, name string, args ...string) error {
	if g.Run != nil {
		return g.Run(ctx, name, args...)
	}
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil && len(out) > 0 {
		g.log().Warn("device settings: "+name, "output", strings.TrimSpace(string(out)))
	}
	return err
}
