package config

// Subscriber queue strategies.
const (
	QueueNone       = "None"       // a full queue drops the new message
	QueueDropOldest = "DropOldest" // a full queue drops its oldest message
)

// Broker is AIO's Broker resource, for the memory profile, the limits in
// spec.advanced.clients and the appliance's own limits in spec.appliance.
// AIO's cluster fields (cardinality, diagnostics, generateResourceLimits,
// advanced.encryptInternalTraffic, advanced.internalCerts, the volume
// claims of diskBackedMessageBuffer) are accepted and ignored, with a
// warning; persistence is refused (see aioUnsupported). At most one Broker may exist; without one the broker's
// default limits apply.
type Broker struct {
	Object `json:",inline" yaml:",inline"`
	Spec   BrokerSpec `json:"spec" yaml:"spec"`
}

// BrokerSpec is Broker.spec. Every limit is optional (nil = default).
type BrokerSpec struct {
	// MemoryProfile (AIO: Tiny|Low|Medium|High, default Medium) sets the
	// broker's memory budget as a share of the device's memory: Tiny
	// 1/16, Low 1/8, Medium 1/4, High 1/2 (see MemoryBudget).
	MemoryProfile string          `json:"memoryProfile,omitempty" yaml:"memoryProfile,omitempty"`
	Advanced      *BrokerAdvanced `json:"advanced,omitempty" yaml:"advanced,omitempty"`
	// DiskBackedMessageBuffer.MaxSize is the disk budget of the journal
	// that keeps the messages queued for persistent sessions, retained
	// messages and sessions (default DefaultDiskBufferBytes).
	DiskBackedMessageBuffer *DiskBuffer      `json:"diskBackedMessageBuffer,omitempty" yaml:"diskBackedMessageBuffer,omitempty"`
	Appliance               *ApplianceLimits `json:"appliance,omitempty" yaml:"appliance,omitempty"`
}

// DiskBuffer is AIO's Broker spec.diskBackedMessageBuffer: its maxSize
// (a Kubernetes quantity such as "1G" or "512Mi"). The volume claims are
// cluster fields, ignored.
type DiskBuffer struct {
	MaxSize Quantity `json:"maxSize" yaml:"maxSize"`
}

// DefaultDiskBufferBytes is the journal's disk budget without a
// diskBackedMessageBuffer: small against an SD card, large against the
// memory budget.
const DefaultDiskBufferBytes = 1 << 30

// MinDiskBufferBytes is the smallest maxSize accepted: four segments of
// the journal.
const MinDiskBufferBytes = 64 << 20

// DiskBufferBytes returns the journal's disk budget.
func (s *Set) DiskBufferBytes() int64 {
	if b := s.Broker(); b != nil && b.Spec.DiskBackedMessageBuffer != nil {
		if v, err := b.Spec.DiskBackedMessageBuffer.MaxSize.Bytes(); err == nil && v > 0 {
			return v
		}
	}
	return DefaultDiskBufferBytes
}

// BrokerAdvanced is Broker.spec.advanced.
type BrokerAdvanced struct {
	Clients *ClientConfig `json:"clients,omitempty" yaml:"clients,omitempty"`
}

// ClientConfig is AIO's per-client limits.
type ClientConfig struct {
	MaxSessionExpirySeconds *int                  `json:"maxSessionExpirySeconds,omitempty" yaml:"maxSessionExpirySeconds,omitempty"` // >= 1
	MaxMessageExpirySeconds *int                  `json:"maxMessageExpirySeconds,omitempty" yaml:"maxMessageExpirySeconds,omitempty"` // >= 1
	MaxPacketSizeBytes      *int                  `json:"maxPacketSizeBytes,omitempty" yaml:"maxPacketSizeBytes,omitempty"`           // 1..268435456
	MaxReceiveMaximum       *int                  `json:"maxReceiveMaximum,omitempty" yaml:"maxReceiveMaximum,omitempty"`             // 1..65535: inflight window
	MaxKeepAliveSeconds     *int                  `json:"maxKeepAliveSeconds,omitempty" yaml:"maxKeepAliveSeconds,omitempty"`         // 0..65535; unset: DefaultMaxKeepAliveSeconds; 0: no cap
	SubscriberQueueLimit    *SubscriberQueueLimit `json:"subscriberQueueLimit,omitempty" yaml:"subscriberQueueLimit,omitempty"`
}

// SubscriberQueueLimit bounds each session's queue.
type SubscriberQueueLimit struct {
	Length   *int   `json:"length,omitempty" yaml:"length,omitempty"`     // >= 1
	Strategy string `json:"strategy,omitempty" yaml:"strategy,omitempty"` // None | DropOldest; default None
}

// ApplianceLimits are the appliance's limits that AIO has no field for.
type ApplianceLimits struct {
	MaxConnections    *int     `json:"maxConnections,omitempty" yaml:"maxConnections,omitempty"`       // concurrent connections
	MaxPendingBytes   *int     `json:"maxPendingBytes,omitempty" yaml:"maxPendingBytes,omitempty"`     // bytes buffered per connection
	MaxSubscriptions  *int     `json:"maxSubscriptions,omitempty" yaml:"maxSubscriptions,omitempty"`   // per session
	MaxTopicLength    *int     `json:"maxTopicLength,omitempty" yaml:"maxTopicLength,omitempty"`       // bytes, 1..65535
	MaxTopicLevels    *int     `json:"maxTopicLevels,omitempty" yaml:"maxTopicLevels,omitempty"`       // levels in a topic
	MaxTopicAliases   *int     `json:"maxTopicAliases,omitempty" yaml:"maxTopicAliases,omitempty"`     // 0..65535
	MaxClientIDLength *int     `json:"maxClientIdLength,omitempty" yaml:"maxClientIdLength,omitempty"` // bytes, 1..65535
	QueueQoS0         *bool    `json:"queueQos0,omitempty" yaml:"queueQos0,omitempty"`                 // also queue QoS 0 for offline sessions
	ConnectTimeout    Duration `json:"connectTimeout,omitempty" yaml:"connectTimeout,omitempty"`       // socket accepted to CONNECT
	WriteTimeout      Duration `json:"writeTimeout,omitempty" yaml:"writeTimeout,omitempty"`           // a stalled write closes the connection
	// MemoryBudget is the broker's memory budget as a Kubernetes quantity
	// ("256Mi", "1Gi"): an exact figure instead of spec.memoryProfile's
	// share. The limits of retained messages, queues, sessions and
	// connections follow from it unless set here.
	MemoryBudget Quantity `json:"memoryBudget,omitempty" yaml:"memoryBudget,omitempty"`
	// Limits of the budget set explicitly (they override the budget's).
	MaxRetained         *int `json:"maxRetained,omitempty" yaml:"maxRetained,omitempty"`                 // retained messages
	MaxRetainedBytes    *int `json:"maxRetainedBytes,omitempty" yaml:"maxRetainedBytes,omitempty"`       // bytes of retained messages
	MaxQueuedBytes      *int `json:"maxQueuedBytes,omitempty" yaml:"maxQueuedBytes,omitempty"`           // bytes queued per session
	MaxTotalQueuedBytes *int `json:"maxTotalQueuedBytes,omitempty" yaml:"maxTotalQueuedBytes,omitempty"` // bytes queued for all sessions
	MaxSessions         *int `json:"maxSessions,omitempty" yaml:"maxSessions,omitempty"`                 // sessions with an expiry
	MaxConnectSize      *int `json:"maxConnectSize,omitempty" yaml:"maxConnectSize,omitempty"`           // CONNECT bytes before authentication
	MaxConnecting       *int `json:"maxConnecting,omitempty" yaml:"maxConnecting,omitempty"`             // sockets that have not finished CONNECT
	MaxReadBuffers      *int `json:"maxReadBuffers,omitempty" yaml:"maxReadBuffers,omitempty"`           // bytes of read buffers for large packets, all connections
	// Subscriptions, charged their filter plus broker.SubscriptionOverhead:
	// bytes for one session, and for all sessions.
	MaxSubscriptionBytes      *int `json:"maxSubscriptionBytes,omitempty" yaml:"maxSubscriptionBytes,omitempty"`
	MaxTotalSubscriptionBytes *int `json:"maxTotalSubscriptionBytes,omitempty" yaml:"maxTotalSubscriptionBytes,omitempty"`
	// Bytes waiting for slow sockets beyond 16 KiB a connection, all
	// connections together.
	MaxTotalPendingBytes *int `json:"maxTotalPendingBytes,omitempty" yaml:"maxTotalPendingBytes,omitempty"`
	// State store quotas: a SET beyond them gets "-ERR the quota has been
	// exceeded". The totals bound the whole store, the per-principal ones
	// what one principal holds (the keys whose current value it wrote).
	// Defaults: DefaultStateStoreMaxKeys, DefaultStateStoreMaxBytes, and
	// a DefaultStateStorePrincipalShare of the totals.
	StateStoreMaxKeys              *int `json:"stateStoreMaxKeys,omitempty" yaml:"stateStoreMaxKeys,omitempty"`
	StateStoreMaxBytes             *int `json:"stateStoreMaxBytes,omitempty" yaml:"stateStoreMaxBytes,omitempty"` // keys + values
	StateStoreMaxKeysPerPrincipal  *int `json:"stateStoreMaxKeysPerPrincipal,omitempty" yaml:"stateStoreMaxKeysPerPrincipal,omitempty"`
	StateStoreMaxBytesPerPrincipal *int `json:"stateStoreMaxBytesPerPrincipal,omitempty" yaml:"stateStoreMaxBytesPerPrincipal,omitempty"` // keys + values
}

// DefaultMaxKeepAliveSeconds caps a 5.0 client's keep-alive when no
// Broker sets maxKeepAliveSeconds (AIO documents no default): a longer
// one is lowered with Server Keep Alive in CONNACK, so a client that
// vanished (a flaky Wi-Fi link) is found within 90 s (1.5 x 60) and its
// will and session handled, not hours later. 60 s is the default
// keep-alive of AIO's own Go SDK session client and of mosquitto's
// clients (paho.mqtt.golang's is 30 s), so clients with their defaults
// are not lowered; a PINGREQ a minute costs a few bytes.
// 3.1.1 has no Server Keep Alive: their keep-alive is not capped.
const DefaultMaxKeepAliveSeconds = 60

// State store quotas when spec.appliance sets none: sized for a gateway's
// data partition and memory (buntdb keeps every key in memory). Each
// principal may hold 1/DefaultStateStorePrincipalShare of the totals, so
// that one principal cannot fill the store for the others.
const (
	DefaultStateStoreMaxKeys        = 100000
	DefaultStateStoreMaxBytes       = 64 << 20
	DefaultStateStorePrincipalShare = 4
)

// StateStoreQuota is the state store's quotas: totals and per principal.
type StateStoreQuota struct {
	MaxKeys              int
	MaxBytes             int64
	MaxKeysPerPrincipal  int
	MaxBytesPerPrincipal int64
}

// StateStoreQuota returns the state store's quotas. A per-principal quota
// not set is the total's share (at least 1 key, 1 KiB).
func (s *Set) StateStoreQuota() StateStoreQuota {
	q := StateStoreQuota{MaxKeys: DefaultStateStoreMaxKeys, MaxBytes: DefaultStateStoreMaxBytes}
	var a *ApplianceLimits
	if b := s.Broker(); b != nil {
		a = b.Spec.Appliance
	}
	if a != nil && a.StateStoreMaxKeys != nil {
		q.MaxKeys = *a.StateStoreMaxKeys
	}
	if a != nil && a.StateStoreMaxBytes != nil {
		q.MaxBytes = int64(*a.StateStoreMaxBytes)
	}
	q.MaxKeysPerPrincipal = max(q.MaxKeys/DefaultStateStorePrincipalShare, 1)
	q.MaxBytesPerPrincipal = max(q.MaxBytes/DefaultStateStorePrincipalShare, 1024)
	if a != nil && a.StateStoreMaxKeysPerPrincipal != nil {
		q.MaxKeysPerPrincipal = *a.StateStoreMaxKeysPerPrincipal
	}
	if a != nil && a.StateStoreMaxBytesPerPrincipal != nil {
		q.MaxBytesPerPrincipal = int64(*a.StateStoreMaxBytesPerPrincipal)
	}
	return q
}

func (b *Broker) setDefaults() {
	if c := b.clients(); c != nil && c.SubscriberQueueLimit != nil && c.SubscriberQueueLimit.Strategy == "" {
		c.SubscriberQueueLimit.Strategy = QueueNone
	}
}

func (b *Broker) clients() *ClientConfig {
	if b.Spec.Advanced == nil {
		return nil
	}
	return b.Spec.Advanced.Clients
}

// Memory profiles (AIO's spec.memoryProfile) and the share of the
// device's memory each gives the broker.
const (
	MemoryTiny   = "Tiny"
	MemoryLow    = "Low"
	MemoryMedium = "Medium" // AIO's default, and ours
	MemoryHigh   = "High"
)

// MinMemoryBudget is the smallest budget spec.appliance.memoryBudget
// accepts.
const MinMemoryBudget = 16 << 20

// MemoryBudget returns the broker's memory budget on a device with total
// bytes of memory: spec.appliance.memoryBudget if set, else the share of
// total that spec.memoryProfile gives (Medium: a quarter). b may be nil.
//
// AIO sizes each broker pod by its profile (from about 100 MiB per
// replica for Tiny to several GiB for High) on a Kubernetes node; the
// appliance is the whole device, so the profiles scale with its memory:
// Tiny 1/16, Low 1/8, Medium 1/4, High 1/2. On a 1 GB device: 64, 128,
// 256 and 512 MiB.
func (b *Broker) MemoryBudget(total int64) int64 {
	profile := ""
	if b != nil {
		if a := b.Spec.Appliance; a != nil && a.MemoryBudget != "" {
			if v, err := a.MemoryBudget.Bytes(); err == nil {
				return v
			}
		}
		profile = b.Spec.MemoryProfile
	}
	div := int64(4)
	switch profile {
	case MemoryTiny:
		div = 16
	case MemoryLow:
		div = 8
	case MemoryHigh:
		div = 2
	}
	return max(total/div, MinMemoryBudget)
}

func (b *Broker) validate(_ *Set, rp *report) {
	if p := b.Spec.MemoryProfile; p != "" {
		oneOf(rp, b, "spec.memoryProfile", p, MemoryTiny, MemoryLow, MemoryMedium, MemoryHigh)
	}
	if d := b.Spec.DiskBackedMessageBuffer; d != nil {
		const p = "spec.diskBackedMessageBuffer.maxSize"
		switch v, err := d.MaxSize.Bytes(); {
		case d.MaxSize == "":
			rp.add(b, p, "required: the journal's disk budget, such as 1G")
		case err != nil:
			rp.add(b, p, "%v", err)
		case v < MinDiskBufferBytes:
			rp.add(b, p, "%s is below the minimum of 64Mi", d.MaxSize)
		}
	}
	if c := b.clients(); c != nil {
		const p = "spec.advanced.clients."
		b.limit(rp, p+"maxSessionExpirySeconds", c.MaxSessionExpirySeconds, 1, 1<<32-1)
		b.limit(rp, p+"maxMessageExpirySeconds", c.MaxMessageExpirySeconds, 1, 1<<32-1)
		b.limit(rp, p+"maxPacketSizeBytes", c.MaxPacketSizeBytes, 1, 268435456)
		b.limit(rp, p+"maxReceiveMaximum", c.MaxReceiveMaximum, 1, 65535)
		b.limit(rp, p+"maxKeepAliveSeconds", c.MaxKeepAliveSeconds, 0, 65535)
		if q := c.SubscriberQueueLimit; q != nil {
			b.limit(rp, p+"subscriberQueueLimit.length", q.Length, 1, 1<<31-1)
			oneOf(rp, b, p+"subscriberQueueLimit.strategy", q.Strategy, QueueNone, QueueDropOldest)
		}
	}
	if a := b.Spec.Appliance; a != nil {
		const p = "spec.appliance."
		b.limit(rp, p+"maxConnections", a.MaxConnections, 1, 1<<31-1)
		b.limit(rp, p+"maxPendingBytes", a.MaxPendingBytes, 1024, 1<<31-1)
		b.limit(rp, p+"maxSubscriptions", a.MaxSubscriptions, 1, 1<<31-1)
		b.limit(rp, p+"maxTopicLength", a.MaxTopicLength, 1, 65535)
		b.limit(rp, p+"maxTopicLevels", a.MaxTopicLevels, 1, 65535)
		b.limit(rp, p+"maxTopicAliases", a.MaxTopicAliases, 0, 65535)
		b.limit(rp, p+"maxClientIdLength", a.MaxClientIDLength, 1, 65535)
		b.limit(rp, p+"stateStoreMaxKeys", a.StateStoreMaxKeys, 1, 1<<31-1)
		b.limit(rp, p+"stateStoreMaxBytes", a.StateStoreMaxBytes, 1024, 1<<31-1)
		b.limit(rp, p+"stateStoreMaxKeysPerPrincipal", a.StateStoreMaxKeysPerPrincipal, 1, deref(a.StateStoreMaxKeys, DefaultStateStoreMaxKeys))
		b.limit(rp, p+"stateStoreMaxBytesPerPrincipal", a.StateStoreMaxBytesPerPrincipal, 1024, deref(a.StateStoreMaxBytes, DefaultStateStoreMaxBytes))
		b.limit(rp, p+"maxRetained", a.MaxRetained, 1, 1<<31-1)
		b.limit(rp, p+"maxRetainedBytes", a.MaxRetainedBytes, 1, 1<<31-1)
		b.limit(rp, p+"maxQueuedBytes", a.MaxQueuedBytes, 1, 1<<31-1)
		b.limit(rp, p+"maxTotalQueuedBytes", a.MaxTotalQueuedBytes, 1, 1<<31-1)
		b.limit(rp, p+"maxSessions", a.MaxSessions, 1, 1<<31-1)
		b.limit(rp, p+"maxConnectSize", a.MaxConnectSize, 64, 268435456)
		b.limit(rp, p+"maxConnecting", a.MaxConnecting, 1, 1<<31-1)
		b.limit(rp, p+"maxReadBuffers", a.MaxReadBuffers, 65536, 1<<31-1)
		b.limit(rp, p+"maxSubscriptionBytes", a.MaxSubscriptionBytes, 1024, 1<<31-1)
		b.limit(rp, p+"maxTotalSubscriptionBytes", a.MaxTotalSubscriptionBytes, 1024, 1<<31-1)
		b.limit(rp, p+"maxTotalPendingBytes", a.MaxTotalPendingBytes, 65536, 1<<31-1)
		if a.MemoryBudget != "" {
			if v, err := a.MemoryBudget.Bytes(); err != nil {
				rp.add(b, p+"memoryBudget", "%v", err)
			} else if v < MinMemoryBudget {
				rp.add(b, p+"memoryBudget", "%s is below the minimum of 16Mi", a.MemoryBudget)
			}
		}
		for _, d := range []struct {
			path string
			v    Duration
		}{{p + "connectTimeout", a.ConnectTimeout}, {p + "writeTimeout", a.WriteTimeout}} {
			if v, err := d.v.Value(); err != nil {
				rp.add(b, d.path, "%v", err)
			} else if v < 0 {
				rp.add(b, d.path, "must not be negative")
			}
		}
	}
}

// deref returns *v, or def when v is nil.
func deref(v *int, def int) int {
	if v == nil {
		return def
	}
	return *v
}

func (b *Broker) limit(rp *report, path string, v *int, lo, hi int) {
	if v != nil && (*v < lo || *v > hi) {
		rp.add(b, path, "%d is out of range %d..%d", *v, lo, hi)
	}
}
