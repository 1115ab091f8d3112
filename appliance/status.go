package appliance

import (
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"edgebroker/broker"
	"edgebroker/provisioning/certs"
)

// Appliance is a running appliance, as Config.Started hands it over.
type Appliance struct {
	cfg *Config
	log *slog.Logger
	srv *broker.Server
	g   *errgroup.Group

	certs *certs.Manager // Automatic TLS: issues, persists and renews server certificates

	reloadMu sync.Mutex           // one apply at a time
	live     map[string]*livePort // by "listener/port"; guarded by reloadMu
	// ports is a copy of live for lock-free lookups by port name (the
	// state store's key authorization), replaced by every apply.
	ports atomic.Pointer[map[string]*livePort]

	mu     sync.Mutex
	status Status
}

// Status is what the appliance reports about its configuration.
type Status struct {
	Ports []PortStatus // every configured BrokerListener port, in configuration order
}

// PortStatus is one configured port.
type PortStatus struct {
	Listener string   // BrokerListener name
	Port     int      // configured port number
	Serving  bool     // accepting connections
	Addr     net.Addr // bound address while serving
	// Message says why a port is not served, e.g. "BrokerListener/tls:
	// port 8885: Server certificate server-cert not found. Awaiting
	// creation of secret."
	Message string
}

// Status returns a copy of the appliance's current status.
func (a *Appliance) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	return Status{Ports: append([]PortStatus(nil), a.status.Ports...)}
}

// Port returns the status of a configured port.
func (s Status) Port(listener string, port int) (PortStatus, bool) {
	for _, p := range s.Ports {
		if p.Listener == listener && p.Port == port {
			return p, true
		}
	}
	return PortStatus{}, false
}

// String returns one line per port.
func (s Status) String() string {
	var b strings.Builder
	for _, p := range s.Ports {
		b.WriteString(portKey(p.Listener, p.Port))
		if p.Serving {
			b.WriteString(": serving on " + p.Addr.String())
		} else {
			b.WriteString(": not served: " + p.Message)
		}
		b.WriteByte('\n')
	}
	return b.String()
}
