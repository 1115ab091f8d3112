package announce

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/zeroconf/v2"
)

// DefaultPoll is how often Run looks at the interfaces for a change.
const DefaultPoll = 5 * time.Second

// Responder announces a list of services on the LAN and answers queries
// for them. Set its fields before the first Update; the zero value
// announces on LANInterfaces under os.Hostname.
type Responder struct {
	// Hostname returns the host name the services' records point at
	// (its first label, under .local) and the instance name of services
	// without one; nil: os.Hostname. Read at each Update and Run poll.
	Hostname func() (string, error)
	// Interfaces returns the interfaces to announce on; nil:
	// LANInterfaces. Read at each Update and Run poll.
	Interfaces func() ([]net.Interface, error)
	// Poll is how often Run re-reads the host name and interfaces; 0:
	// DefaultPoll.
	Poll time.Duration
	Log  *slog.Logger // nil: discard

	mu      sync.Mutex // guards the fields below; held across a whole apply
	want    []Service  // the last Update's list, instances named
	on      lan        // what running was registered on
	running []announced
	closed  bool // Close was called: nothing is announced any more
}

// announced is a service being announced, with its server.
type announced struct {
	svc Service
	srv *zeroconf.Server
}

// Update makes services the announced list: services no longer in it (or
// changed) get a goodbye, new ones are announced. A service whose
// Instance is "" is named after the host; a name repeated within a type
// gets the port appended. The error names the services
// that could not be announced; the others are. Update after Close does
// nothing.
func (r *Responder) Update(services []Service) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.want = append([]Service(nil), services...)
	l, err := r.currentLAN()
	if err != nil {
		return err
	}
	return r.apply(l)
}

// Announced returns the services being announced now, instances named.
func (r *Responder) Announced() []Service {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Service, len(r.running))
	for i, a := range r.running {
		out[i] = a.svc
	}
	return out
}

// Run re-announces the services whenever the host name, the interfaces or
// their addresses change, and retries those that could not be announced,
// every Poll until ctx ends; then it closes r (goodbyes for everything)
// and returns nil.
func (r *Responder) Run(ctx context.Context) error {
	poll := r.Poll
	if poll <= 0 {
		poll = DefaultPoll
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			r.Close()
			return nil
		case <-t.C:
			r.refresh()
		}
	}
}

// refresh re-applies the wanted list when the LAN changed.
func (r *Responder) refresh() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	l, err := r.currentLAN()
	if err != nil {
		r.logger().Warn("mDNS: cannot read the interfaces", "err", err)
		return
	}
	failed := len(l.ifaces) > 0 && len(r.running) < len(r.want) // a service could not be announced: retry
	if l.key() == r.on.key() && !failed {
		return
	}
	r.logger().Info("mDNS: announcing again", "host", l.host, "addrs", l.addrs, "retry", failed)
	if err := r.apply(l); err != nil {
		r.logger().Warn("mDNS: announcement", "err", err)
	}
}

// Close says goodbye for every service and stops answering. It waits for
// the responder's goroutines.
func (r *Responder) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	for _, a := range r.running {
		a.srv.Shutdown()
	}
	r.running = nil
}

// apply makes running announce r.want on l. Unless nothing changed, it
// withdraws every service and announces the wanted list again: a
// zeroconf goodbye withdraws the host's address records too (TTL 0 with
// the cache-flush bit), and only a new announcement puts them back for
// the services that stay. The caller holds mu.
func (r *Responder) apply(l lan) error {
	want := named(r.want, l.host)
	if l.key() == r.on.key() && slices.EqualFunc(want, r.running, func(s Service, a announced) bool { return s.equal(a.svc) }) {
		return nil
	}
	for _, a := range r.running {
		a.srv.Shutdown() // goodbye: TTL 0 for its records
		r.logger().Debug("mDNS: withdrawn", "service", a.svc.String())
	}
	r.running, r.on = nil, l
	if len(l.ifaces) == 0 {
		if len(want) > 0 {
			r.logger().Info("mDNS: no LAN interface with an address: nothing announced yet")
		}
		return nil
	}
	var errs []error
	for _, s := range want {
		srv, err := zeroconf.RegisterProxy(escape(s.Instance), s.Type, "local.", s.Port, l.host, l.addrs, s.Text, l.ifaces)
		if err != nil {
			errs = append(errs, fmt.Errorf("announce: %s: %w", s, err))
			continue
		}
		r.running = append(r.running, announced{s, srv})
		r.logger().Debug("mDNS: announced", "service", s.String())
	}
	r.logger().Info("mDNS: announcing", "services", len(r.running), "host", l.host+".local", "addrs", l.addrs)
	return errors.Join(errs...)
}

// named returns services with empty instance names set to host, and
// each name unique within its type: a service whose name an earlier one
// of its type has is "NAME (PORT)" (two plain MQTT ports: "gw" and
// "gw (1884)").
func named(services []Service, host string) []Service {
	out := make([]Service, len(services))
	taken := map[[2]string]bool{}
	for i, s := range services {
		if s.Instance == "" {
			s.Instance = host
		}
		if taken[[2]string{s.Type, s.Instance}] {
			s.Instance = fmt.Sprintf("%s (%d)", s.Instance, s.Port)
		}
		taken[[2]string{s.Type, s.Instance}] = true
		out[i] = s
	}
	return out
}

// escape writes an instance name as one label in DNS presentation format,
// which zeroconf passes on: a dot or backslash in the name stays in the
// label instead of splitting it.
func escape(instance string) string {
	return strings.NewReplacer(`\`, `\\`, `.`, `\.`).Replace(instance)
}
