package appliance

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"time"

	"edgebroker/appliance/config"
	"edgebroker/broker"
	"edgebroker/broker/bridge"
)

// dataflows runs the configuration's Dataflows, one bridge each. A flow
// whose resolved settings did not change keeps running across a reload; a
// changed one restarts (what it has not forwarded waits in its local
// session's journal, or upstream, meanwhile); a removed one stops. While
// the appliance runs, sampleRates reads each flow's forwarded count every
// rateEvery for its forwarded-per-second figure.
type dataflows struct {
	srv *broker.Server
	log *slog.Logger

	mu      sync.Mutex // guards running and closed
	running map[string]*runningFlow
	closed  bool // close ran: nothing starts again
}

type runningFlow struct {
	flow config.ResolvedFlow
	b    *bridge.Bridge
	fwd  rate // of b's forwarded count; guarded by dataflows.mu
}

func newDataflows(srv *broker.Server, log *slog.Logger) *dataflows {
	return &dataflows{srv: srv, log: log, running: map[string]*runningFlow{}}
}

// apply makes the running flows those of set.
func (d *dataflows) apply(set *config.Set) error {
	flows := set.Flows()
	// Each flow up may fill an equal share of half the disk budget with
	// what its upstream does not take; beyond it its oldest messages go.
	ups := 0
	for _, f := range flows {
		if f.Direction == config.FlowUp {
			ups++
		}
	}
	share := set.DiskBufferBytes() / 2 / int64(max(ups, 1))
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	want := map[string]bool{}
	var errs []error
	for _, f := range flows {
		want[f.Name] = true
		if r := d.running[f.Name]; r != nil {
			if reflect.DeepEqual(r.flow, f) {
				continue
			}
			r.b.Close()
			delete(d.running, f.Name)
		}
		b, err := d.start(f, share)
		if err != nil {
			errs = append(errs, fmt.Errorf("dataflow %s: %w", f.Name, err))
			continue
		}
		d.running[f.Name] = &runningFlow{flow: f, b: b}
		d.log.Info("dataflow started", "dataflow", f.Name, "direction", f.Direction.String(), "hosts", f.Remote.Hosts)
	}
	for name, r := range d.running {
		if !want[name] {
			r.b.Close()
			delete(d.running, name)
			d.log.Info("dataflow stopped", "dataflow", name)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("appliance: dataflows: %v", errs)
	}
	return nil
}

// start starts one flow's bridge.
func (d *dataflows) start(f config.ResolvedFlow, queueBytes int64) (*bridge.Bridge, error) {
	e := &f.Remote
	r := bridge.Remote{Hosts: e.Hosts, Username: e.Username, Password: e.Password, KeepAlive: e.KeepAliveSeconds,
		SessionExpiry: e.SessionExpirySeconds, QoS: e.QoS, RetainKeep: e.RetainKeep, MaxInflight: e.MaxInflightMessages,
		ClientID: f.Name, WebSocket: e.Protocol == config.ProtocolWebSockets}
	if e.ClientIDPrefix != "" {
		r.ClientID = e.ClientIDPrefix + "-" + f.Name
	}
	if e.TLS {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if len(e.CAPEM) > 0 {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(e.CAPEM) {
				return nil, fmt.Errorf("endpoint %s: no certificate in its trusted CA", e.Name)
			}
			tc.RootCAs = pool
		}
		if len(e.ClientCertPEM) > 0 {
			cert, err := tls.X509KeyPair(e.ClientCertPEM, e.ClientKeyPEM)
			if err != nil {
				return nil, fmt.Errorf("endpoint %s: client certificate: %w", e.Name, err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		r.TLS = tc
	}
	tmpl, err := config.ParseTopicTemplate(f.Destination)
	if err != nil {
		return nil, err
	}
	return bridge.Start(bridge.Config{Name: f.Name, Local: d.srv, Remote: r, Up: f.Direction == config.FlowUp,
		Sources: f.Sources, Map: tmpl.Expand, QueueDiskBytes: queueBytes, Logger: d.log})
}

// statuses reports every running flow, by name: the bridge's status and
// its forwarding rate (the queue is the Appliance's to add).
func (d *dataflows) statuses() []DataflowStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]DataflowStatus, 0, len(d.running))
	for _, r := range d.running {
		out = append(out, DataflowStatus{Status: r.b.Status(), ForwardedPerSecond: r.fwd.perSecond()})
	}
	slices.SortFunc(out, func(a, b DataflowStatus) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// sampleRates samples every running flow's forwarded count each
// rateEvery until ctx ends.
func (d *dataflows) sampleRates(ctx context.Context) {
	tick := time.NewTicker(rateEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			d.sample(now)
		}
	}
}

// sample records each running flow's forwarded count at now.
func (d *dataflows) sample(now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range d.running {
		r.fwd.add(now, r.b.Status().Forwarded)
	}
}

// close stops every flow.
func (d *dataflows) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	for name, r := range d.running {
		r.b.Close()
		delete(d.running, name)
	}
}
