package appliance

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"edgebroker/appliance/config"
	"edgebroker/board/netconf"
)

// DeviceConfig carries out the device's own settings (a Device resource:
// host name, addressing, NTP, Wi-Fi). Without one (a host, not gokrazy)
// they are validated and shown, not applied.
type DeviceConfig struct {
	Applier netconf.Applier // required: netconf.Gokrazy on the image
	// Probe checks the route to a gateway; nil: netconf.RouteProbe below
	// Config.BoardRoot. Window is how long a new static address may leave
	// its gateway unreachable before the previous settings come back (0:
	// netconf.DefaultWindow, 60 s); Interval the time between probes (0:
	// netconf.DefaultInterval). For tests.
	Probe    netconf.Prober
	Window   time.Duration
	Interval time.Duration
}

// DeviceStatus is the device's own settings as the status and the
// provisioning report show them.
type DeviceStatus struct {
	Resource string   `json:"resource"` // Device/name
	Settings []string `json:"settings"` // one line each; never the Wi-Fi passphrase
	// Applied says the settings are in force; false on a host, which
	// validates and shows them only.
	Applied bool   `json:"applied"`
	Error   string `json:"error,omitempty"` // of the last apply at start
}

// String is one line, as the report shows it.
func (d *DeviceStatus) String() string {
	how := "applied"
	if !d.Applied {
		how = "shown, not applied: not running on gokrazy"
	}
	s := fmt.Sprintf("device %s (%s): %s", d.Resource, how, strings.Join(d.Settings, "; "))
	if d.Error != "" {
		s += "; error: " + d.Error
	}
	return s
}

// deviceSettings returns set's Device as netconf settings (zero: none).
// set is validated, so every address parses.
func deviceSettings(set *config.Set) netconf.Settings {
	var s netconf.Settings
	d := set.Device()
	if d == nil {
		return s
	}
	s.Hostname = d.Spec.Hostname
	s.NTPServers = d.Spec.NTPServers
	for _, in := range d.Spec.Interfaces {
		ni := netconf.Interface{Name: in.Name}
		if in.Addressing == config.AddressingStatic {
			ni.Address, _ = netip.ParsePrefix(in.Address)
			ni.Gateway, _ = netip.ParseAddr(in.Gateway)
			for _, a := range in.DNS {
				if ip, err := netip.ParseAddr(a); err == nil {
					ni.DNS = append(ni.DNS, ip)
				}
			}
		}
		s.Interfaces = append(s.Interfaces, ni)
	}
	if w := d.Spec.WiFi; w != nil {
		s.WiFi = &netconf.WiFi{SSID: w.SSID, Passphrase: set.WiFiPassphrase()}
	}
	return s
}

// checkDevice reports what of set's Device this board cannot carry out
// (an interface it does not have), as configuration errors naming the
// resource and field. On a host nothing is checked: its interfaces are
// not the device's.
func (a *Appliance) checkDevice(set *config.Set) error {
	d := set.Device()
	if d == nil || a.cfg.Device == nil {
		return nil
	}
	err := netconf.Check(a.boardRoot, deviceSettings(set))
	if err == nil {
		return nil
	}
	var out config.Errors
	for _, e := range unwrapAll(err) {
		file, line := d.Position()
		ce := &config.Error{File: file, Line: line, Kind: d.Kind, Name: d.Metadata.Name, Msg: e.Error()}
		var fe *netconf.FieldError
		if errors.As(e, &fe) {
			ce.Path, ce.Msg = fe.Path, fe.Msg
			ce.File, ce.Line = d.FieldPosition(fe.Path)
		}
		out = append(out, ce)
	}
	return out
}

func unwrapAll(err error) []error {
	if u, ok := err.(interface{ Unwrap() []error }); ok {
		return u.Unwrap()
	}
	return []error{err}
}

// deviceGuard returns the Guard device settings are applied through.
func (a *Appliance) deviceGuard() *netconf.Guard {
	dc := a.cfg.Device
	probe := dc.Probe
	if probe == nil {
		probe = netconf.RouteProbe(a.boardRoot)
	}
	return &netconf.Guard{Applier: dc.Applier, Probe: probe, Window: dc.Window, Interval: dc.Interval}
}

// applyDevice makes set's Device settings the device's: through the
// Guard, so a static address that cuts the route to its gateway is
// taken back and returned as the error (wrapping netconf.ErrRouteLost).
// On a host the settings are only shown. The caller holds reloadMu.
func (a *Appliance) applyDevice(ctx context.Context, set *config.Set) error {
	next := deviceSettings(set)
	if a.cfg.Device != nil {
		if err := a.deviceGuard().Apply(ctx, a.device, next); err != nil {
			return fmt.Errorf("appliance: device settings: %w", err)
		}
		a.device = next
	}
	a.showDevice(set, "")
	return nil
}

// startDevice applies the running configuration's Device settings at
// start (gokrazy keeps none of them across a reboot). They were
// confirmed when applied, so the gateway is not probed: a network that
// is down at boot must not take them back. An error is shown and logged,
// not fatal.
func (a *Appliance) startDevice(ctx context.Context, set *config.Set) {
	next := deviceSettings(set)
	var msg string
	if a.cfg.Device != nil && set.Device() != nil {
		if err := a.cfg.Device.Applier.Apply(ctx, next); err != nil {
			msg = err.Error()
			a.log.Error("device settings", "err", err)
		}
		a.device = next
	}
	a.showDevice(set, msg)
}

// showDevice puts set's Device settings into the status.
func (a *Appliance) showDevice(set *config.Set, errMsg string) {
	var ds *DeviceStatus
	if d := set.Device(); d != nil {
		lines := strings.Split(strings.TrimRight(deviceSettings(set).String(), "\n"), "\n")
		ds = &DeviceStatus{Resource: d.Ref(), Settings: lines, Applied: a.cfg.Device != nil, Error: errMsg}
		if !ds.Applied {
			a.log.Info("device settings shown, not applied: not running on gokrazy", "resource", d.Ref(), "settings", strings.Join(lines, "; "))
		}
	}
	a.mu.Lock()
	a.deviceStatus = ds
	a.mu.Unlock()
}

// applyWithDevice applies set's Device settings, then the rest of set
// (applyConfig). Device settings that cut a gateway off are taken back
// and nothing else changes; if the rest cannot come up, the previous
// Device settings are applied again. The caller holds reloadMu.
func (a *Appliance) applyWithDevice(ctx context.Context, path string, set *config.Set, why string) error {
	if err := a.checkDevice(set); err != nil {
		return fmt.Errorf("appliance: configuration %s rejected:\n%w", configName(path), err)
	}
	prev := a.device
	if err := a.applyDevice(ctx, set); err != nil {
		return err
	}
	err := a.applyConfig(path, set, why)
	if err == nil {
		return nil
	}
	if a.cfg.Device != nil {
		if rerr := a.cfg.Device.Applier.Apply(context.WithoutCancel(ctx), prev); rerr != nil {
			a.log.Error("device settings: restoring the previous ones", "err", rerr)
		} else {
			a.device = prev
		}
	}
	if a.set != nil {
		a.showDevice(a.set, "")
	}
	return err
}
