package netconf

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Applier carries settings out.
type Applier interface {
	// Apply makes s the device's settings, replacing those applied
	// before (an interface no longer listed goes back to DHCP, an empty
	// host name to the image's). It returns once the system has taken
	// them, not once the network works: Guard checks that.
	Apply(ctx context.Context, s Settings) error
}

// Prober checks that the device has a working route to gw on interface
// iface: nil if so.
type Prober func(ctx context.Context, iface string, gw netip.Addr) error

// Defaults of Guard.
const (
	DefaultWindow   = 60 * time.Second
	DefaultInterval = time.Second
)

// ErrRouteLost is wrapped by the error of Guard.Apply when new settings
// cut the route to a gateway and were taken back.
var ErrRouteLost = errors.New("netconf: no route to the gateway")

// RouteLostError says which interface lost its gateway, and for how long
// the route was probed.
type RouteLostError struct {
	Interface string
	Gateway   netip.Addr
	Window    time.Duration
	Last      error // the last probe's error
}

func (e *RouteLostError) Error() string {
	return fmt.Sprintf("netconf: %s: no route to the gateway %s for %v (last probe: %v); the previous settings are back",
		e.Interface, e.Gateway, e.Window, e.Last)
}

// Unwrap makes errors.Is(err, ErrRouteLost) true.
func (e *RouteLostError) Unwrap() error { return ErrRouteLost }

// Guard applies settings and takes them back when they cut the device
// off. Set the fields before the first call; calls must not overlap (the
// appliance makes them under its reload lock).
type Guard struct {
	Applier Applier
	Probe   Prober        // nil: RouteProbe below "/"
	Window  time.Duration // how long a gateway may stay unreachable; 0: DefaultWindow
	// Interval is the time between probes; 0: DefaultInterval.
	Interval time.Duration
}

// Apply applies next, the settings replacing prev. For every interface
// whose settings changed to a static address with a gateway, it probes
// the route to the gateway every Interval; if one finds none within
// Window, prev is applied again and the error is a *RouteLostError
// (joined with the error of re-applying prev, if that fails too). An
// error of the Applier itself also re-applies prev.
func (g *Guard) Apply(ctx context.Context, prev, next Settings) error {
	if err := g.Applier.Apply(ctx, next); err != nil {
		return errors.Join(err, g.revert(ctx, prev))
	}
	for _, in := range next.Interfaces {
		old, _ := prev.Interface(in.Name)
		if !in.Static() || !in.Gateway.IsValid() || in.Equal(old) {
			continue
		}
		if err := g.await(ctx, in); err != nil {
			return errors.Join(err, g.revert(ctx, prev))
		}
	}
	return nil
}

func (g *Guard) revert(ctx context.Context, prev Settings) error {
	// Reverting must happen even when ctx ended (shutdown mid-probe).
	if err := g.Applier.Apply(context.WithoutCancel(ctx), prev); err != nil {
		return fmt.Errorf("netconf: restoring the previous settings: %w", err)
	}
	return nil
}

// await probes the route to in's gateway until one probe succeeds or the
// window passes.
func (g *Guard) await(ctx context.Context, in Interface) error {
	window, interval := g.Window, g.Interval
	if window <= 0 {
		window = DefaultWindow
	}
	if interval <= 0 {
		interval = DefaultInterval
	}
	probe := g.Probe
	if probe == nil {
		probe = RouteProbe("/")
	}
	deadline := time.NewTimer(window)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, interval)
		last := probe(pctx, in.Name, in.Gateway)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-deadline.C:
			return &RouteLostError{Interface: in.Name, Gateway: in.Gateway, Window: window, Last: last}
		case <-ctx.Done():
			return fmt.Errorf("netconf: %s: probing the gateway %s: %w", in.Name, in.Gateway, ctx.Err())
		case <-tick.C:
		}
	}
}
