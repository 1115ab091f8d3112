package appliance

import (
	"edgebroker/broker/bridge"
	"edgebroker/broker/journal"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"edgebroker/appliance/announce"
	"edgebroker/appliance/config"
	"edgebroker/board"
	"edgebroker/board/netconf"
	"edgebroker/broker"
	"edgebroker/provisioning/apply"
	"edgebroker/provisioning/fwupdate"
)

// Appliance is a running appliance, as Config.Started hands it over.
type Appliance struct {
	cfg *Config // as Run was given it; read-only
	log *slog.Logger
	srv *broker.Server // set by Run before anything serves
	ss  *stateStore    // set by Run before anything serves
	bs  *brokerState   // set by Run before anything serves
	// flows runs the Dataflows; set by Run before anything serves, its
	// flows started by run and changed by applyPorts (under reloadMu).
	flows *dataflows

	boardRoot string   // where the board's /proc and /sys are; read-only
	pid       *pidLock // DATA/edgebroker.pid, locked from newAppliance until Run returns

	iss *issuers // Automatic TLS: the certificate Manager and the ACME challenge answers

	reloadMu sync.Mutex // one apply at a time
	// g runs the accept loops of configured ports; nil until Run starts
	// its goroutines, when apply leaves the ports it bound in pending.
	// Both guarded by reloadMu.
	g       *errgroup.Group
	pending []*livePort
	closed  bool // shut down: nothing more is bound; guarded by reloadMu
	// path is where the running configuration was read from ("" the
	// embedded default): -config, or the bundle applied last. Reload
	// re-reads it. Guarded by reloadMu.
	path string
	live map[string]*livePort // by "listener/port"; guarded by reloadMu
	// ports is a copy of live for lock-free lookups by port name (the
	// state store's key authorization), replaced by every apply.
	ports atomic.Pointer[map[string]*livePort]

	set      *config.Set   // the configuration applied last; guarded by reloadMu
	refreshc chan struct{} // a certificate arrived: bring up waiting ports

	prov *apply.Store   // provisioning: applied bundles, their serial and history
	id   board.Identity // this board, for bundles and reports

	statusAddr net.Addr // of the status endpoint; nil without one
	// hist is the broker's message rate over the last hour, for the
	// status page: sampled by sampleHistory; its own lock.
	hist history

	// mdns announces the broker on the LAN (Config.MDNS; nil without):
	// set by Run before anything serves, updated under reloadMu
	// (announce), run by run.
	mdns *announce.Responder
	// bundleSerial is the serial of the bundle in force (0: none), as
	// announced: set by Run before anything serves and by Install, under
	// reloadMu. A copy, because the provisioning store's lock comes before
	// reloadMu (Install holds it while the bundle applies): nothing under
	// reloadMu may ask the store.
	bundleSerial uint64

	mu     sync.Mutex
	status Status
	// listen are the -listen ports, shown after the configured ones: set
	// by run before the status endpoint serves; guarded by mu.
	listen []PortStatus
	// usb describes the -usb watcher while it runs ("" without one): set
	// and cleared by watchUSB; guarded by mu.
	usb string
	// device are the Device settings applied last (zero: the image's);
	// guarded by reloadMu. deviceStatus is what Status shows of the
	// running configuration's Device; guarded by mu.
	device       netconf.Settings
	deviceStatus *DeviceStatus

	// uploading is held by the one POST /bundle being read and applied;
	// a second upload meanwhile is refused (409), not queued.
	uploading atomic.Bool
	refused   refusals // uploads refused lately, for the 429 limit

	// trial is Config.Trial's decision on this boot, nil until it is
	// made: set by decideTrial; guarded by mu.
	trial *fwupdate.TrialOutcome
}

// StatusAddr returns the bound address of the status endpoint, or nil.
func (a *Appliance) StatusAddr() net.Addr { return a.statusAddr }

// Status is what the appliance reports about itself: the status
// endpoint serves it as JSON.
type Status struct {
	// Ports are every configured BrokerListener port, in configuration
	// order, then the -listen ports (Listener ListenFlag), in flag order.
	Ports []PortStatus `json:"ports"`
	// Certificates are the certificates the device issues and renews
	// (Certificate resources and Automatic TLS ports), by Secret name.
	Certificates []CertStatus    `json:"certificates"`
	StateStore   StateStoreUsage `json:"stateStore"`
	Clients      int64           `json:"clients"` // connected MQTT clients
	// Messages is the broker's message rate over the last 10 s (see
	// rateWindow); /history.json has the last hour's.
	Messages     RatePoint        `json:"messagesPerSecond"`
	Provisioning Provisioning     `json:"provisioning"`
	Journal      JournalStatus    `json:"journal"`
	Dataflows    []DataflowStatus `json:"dataflows"`
	// Device is the Device resource's settings; nil without one.
	Device *DeviceStatus `json:"device,omitempty"`
	// Firmware is the firmware update receiver's state (Config.Firmware):
	// the running version, the other partition's, the last attempt.
	Firmware *fwupdate.Status `json:"firmware,omitempty"`
	// Boot is the decision on this boot (Config.Trial): a trial
	// committed, or rolled back and why; nil until it is made.
	Boot *fwupdate.TrialOutcome `json:"boot,omitempty"`
}

// DataflowStatus is one running Dataflow.
type DataflowStatus struct {
	bridge.Status
	// Queued: messages (and their bytes on disk) a flow up holds in its
	// local session's journal, not yet acknowledged upstream. A flow down
	// queues nothing here: what it has not fetched waits upstream.
	QueuedMessages int   `json:"queuedMessages"`
	QueuedBytes    int64 `json:"queuedBytes"`
	// OldestQueuedSeconds is how long the oldest message waiting for the
	// flow (queued, or sent upstream and not yet acknowledged) has waited;
	// 0 when none waits. The broker does not keep a message's arrival
	// time on disk: one read back from the journal (after a restart, or
	// when a long queue's window refills) counts from its reading (see
	// broker.QueueInfo).
	OldestQueuedSeconds float64 `json:"oldestQueuedSeconds"`
	// ForwardedPerSecond is the rate of Forwarded over the last 10 s,
	// from the samples the appliance takes every second (see rateWindow).
	ForwardedPerSecond float64 `json:"forwardedPerSecond"`
}

// JournalStatus is what the broker's journal holds on disk (retained
// messages, persistent sessions and the messages queued for them) and
// what it costs the SD card.
type JournalStatus struct {
	Messages  int   `json:"messages"`  // messages held for persistent sessions
	LiveBytes int64 `json:"liveBytes"` // bytes of live records
	DiskBytes int64 `json:"diskBytes"` // bytes of segment files (preallocated)
	MaxBytes  int64 `json:"maxBytes"`  // the disk budget (diskBackedMessageBuffer.maxSize)
	Sessions  int   `json:"sessions"`
	Retained  int   `json:"retained"`
	Full      bool  `json:"full"`   // refusing messages: budget or disk full
	Failed    bool  `json:"failed"` // a write or fsync failed: restart needed
	// Written bytes (by the broker and again by compaction) and fsyncs
	// since the start; commit latency (write + fdatasync) quantiles.
	BytesWritten   int64   `json:"bytesWritten"`
	BytesCompacted int64   `json:"bytesCompacted"`
	Fsyncs         int64   `json:"fsyncs"`
	CommitP50Ms    float64 `json:"commitP50Ms"`
	CommitP99Ms    float64 `json:"commitP99Ms"`
	Refused        int64   `json:"refused"` // messages refused for lack of space
	// PerSession: each persistent session's messages and bytes on disk.
	PerSession map[string]journal.SessionUsage `json:"perSession,omitempty"`
}

// Provisioning is the state of bundle provisioning.
type Provisioning struct {
	Serial  uint64         `json:"serial"`  // of the bundle in force; 0: none applied yet
	History []apply.Result `json:"history"` // the latest attempts, newest first
	// USB says how USB sticks are watched for a bundle (-usb), e.g.
	// "watching for USB sticks with edgebroker-bundle.tar"; "" when they
	// are not.
	USB string `json:"usb,omitempty"`
}

// ListenFlag is the Listener of a -listen port in Status.Ports: no
// BrokerListener can have the name (Kubernetes names start with a letter
// or digit).
const ListenFlag = "-listen"

// listenStatus is the status of a bound -listen port given as flag.
func listenStatus(flag string, addr net.Addr) PortStatus {
	ps := PortStatus{Listener: ListenFlag, Serving: true, Addr: addr, Message: "-listen " + flag + ": plain, anonymous"}
	if ta, ok := addr.(*net.TCPAddr); ok {
		ps.Port = ta.Port
	}
	return ps
}

// PortStatus is one configured port.
type PortStatus struct {
	Listener string   `json:"listener"` // BrokerListener name
	Port     int      `json:"port"`     // configured port number
	Serving  bool     `json:"serving"`  // accepting connections
	Addr     net.Addr `json:"-"`        // bound address while serving
	// Message says why a port is not served, e.g. "BrokerListener/tls:
	// port 8885: Server certificate server-cert not found. Awaiting
	// creation of secret."
	Message string      `json:"message,omitempty"`
	TLS     *CertStatus `json:"tls,omitempty"` // nil for a plain port
}

// MarshalJSON adds the bound address as a string.
func (p PortStatus) MarshalJSON() ([]byte, error) {
	type plain PortStatus
	var addr string
	if p.Addr != nil {
		addr = p.Addr.String()
	}
	return json.Marshal(struct {
		plain
		Addr string `json:"addr,omitempty"`
	}{plain(p), addr})
}

// CertStatus is a server or CA certificate's state.
type CertStatus struct {
	Mode        string    `json:"mode,omitempty"` // of a port: Manual or Automatic
	Secret      string    `json:"secret"`         // where it is stored
	Issuer      string    `json:"issuer"`         // e.g. "ca test-ca", "selfSigned", "acme https://…"; for Manual, the certificate's issuer
	NotAfter    time.Time `json:"notAfter,omitzero"`
	NextRenewal time.Time `json:"nextRenewal,omitzero"` // Automatic only
	LastError   string    `json:"lastError,omitempty"`  // of the last issuance attempt
}

// StateStoreUsage is the state store's size against its quotas (0: none).
type StateStoreUsage struct {
	Keys     int   `json:"keys"`
	Bytes    int64 `json:"bytes"`
	MaxKeys  int   `json:"maxKeys,omitempty"`
	MaxBytes int64 `json:"maxBytes,omitempty"`
	// What one principal may hold.
	MaxKeysPerPrincipal  int   `json:"maxKeysPerPrincipal,omitempty"`
	MaxBytesPerPrincipal int64 `json:"maxBytesPerPrincipal,omitempty"`
}

// Status returns the appliance's current status.
func (a *Appliance) Status() Status {
	a.mu.Lock()
	st := a.status
	st.Ports = slices.Concat(st.Ports, a.listen)
	st.Provisioning.USB = a.usb
	st.Device = a.deviceStatus
	st.Boot = a.trial
	a.mu.Unlock()
	if a.cfg.Firmware != nil {
		fw := a.cfg.Firmware.Status()
		st.Firmware = &fw
	}
	for i, p := range st.Ports {
		if p.TLS != nil && p.TLS.Mode == "Automatic" {
			c := a.certStatus(p.TLS.Secret)
			c.Mode = p.TLS.Mode
			st.Ports[i].TLS = &c
			if p.Serving && c.NotAfter.IsZero() { // ACME: served while the certificate is issued
				msg := "Awaiting certificate " + c.Secret + " from " + c.Issuer + ": handshakes fail until it is issued"
				if c.LastError != "" {
					msg += "; last attempt: " + c.LastError
				}
				st.Ports[i].Message = msg
			}
		}
	}
	names := a.iss.m.Statuses()
	for _, name := range slices.Sorted(maps.Keys(names)) {
		st.Certificates = append(st.Certificates, a.certStatus(name))
	}
	if a.ss != nil {
		st.StateStore.Keys, st.StateStore.Bytes = a.ss.store.Usage()
		q := a.ss.quota
		st.StateStore.MaxKeys, st.StateStore.MaxBytes = q.MaxKeys, q.MaxBytes
		st.StateStore.MaxKeysPerPrincipal, st.StateStore.MaxBytesPerPrincipal = q.MaxKeysPerPrincipal, q.MaxBytesPerPrincipal
	}
	st.Clients = a.srv.Stats.Connections.Load()
	st.Messages = a.hist.now()
	if a.flows != nil {
		var usage map[string]journal.SessionUsage
		if a.bs != nil {
			usage = a.bs.j.Report(true).PerSession
		}
		now := time.Now()
		for _, f := range a.flows.statuses() {
			id := bridge.LocalClientID(f.Name)
			u := usage[id]
			f.QueuedMessages, f.QueuedBytes = u.Messages, u.Bytes
			if q, ok := a.srv.SessionQueue(id); ok && !q.Oldest.IsZero() {
				f.OldestQueuedSeconds = max(now.Sub(q.Oldest).Seconds(), 0)
			}
			st.Dataflows = append(st.Dataflows, f)
		}
	}
	if a.bs != nil {
		r := a.bs.j.Report(true)
		st.Journal = JournalStatus{Messages: r.Messages, LiveBytes: r.LiveBytes, DiskBytes: r.DiskBytes, MaxBytes: r.MaxBytes,
			Sessions: r.Sessions, Retained: r.Retained, Full: r.Full, Failed: r.Failed, BytesWritten: r.Appended,
			BytesCompacted: r.Compacted, Fsyncs: r.Fsyncs, Refused: r.Refused,
			CommitP50Ms: float64(r.CommitP50) / 1e6, CommitP99Ms: float64(r.CommitP99) / 1e6, PerSession: r.PerSession}
	}
	if a.prov != nil {
		st.Provisioning.Serial = a.prov.LastSerial()
		h := a.prov.History()
		slices.Reverse(h)
		st.Provisioning.History = h[:min(len(h), 10)]
	}
	return st
}

// certStatus reports a certificate the Manager holds.
func (a *Appliance) certStatus(secret string) CertStatus {
	cs := CertStatus{Secret: secret}
	s, ok := a.iss.m.Status(secret)
	if !ok {
		cs.LastError = "not managed"
		return cs
	}
	cs.Issuer, cs.NotAfter, cs.NextRenewal = s.Issuer, s.NotAfter, s.NextRenewal
	if s.LastError != nil {
		cs.LastError = s.LastError.Error()
	}
	return cs
}

// when formats a status time; the zero time is "none".
func when(t time.Time) string {
	if t.IsZero() {
		return "none"
	}
	return t.UTC().Format(time.RFC3339)
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

// String returns one line per port, then one per certificate, then the
// device's settings.
func (s Status) String() string {
	var b strings.Builder
	for _, p := range s.Ports {
		b.WriteString(portKey(p.Listener, p.Port))
		if p.Serving {
			b.WriteString(": serving on " + p.Addr.String())
			if p.Message != "" {
				b.WriteString(" (" + p.Message + ")")
			}
		} else {
			b.WriteString(": not served: " + p.Message)
		}
		if c := p.TLS; c != nil {
			fmt.Fprintf(&b, "; TLS %s from %s", c.Mode, c.Issuer)
			if !c.NotAfter.IsZero() {
				fmt.Fprintf(&b, ", valid until %s", when(c.NotAfter))
			}
			if c.LastError != "" {
				b.WriteString(", last error: " + c.LastError)
			}
		}
		b.WriteByte('\n')
	}
	for _, c := range s.Certificates {
		fmt.Fprintf(&b, "certificate %s: %s, not after %s, next attempt %s", c.Secret, c.Issuer, when(c.NotAfter), when(c.NextRenewal))
		if c.LastError != "" {
			b.WriteString(", last error: " + c.LastError)
		}
		b.WriteByte('\n')
	}
	if s.Device != nil {
		b.WriteString(s.Device.String() + "\n")
	}
	return b.String()
}
