package config

// Subscriber queue strategies.
const (
	QueueNone       = "None"       // a full queue drops the new message
	QueueDropOldest = "DropOldest" // a full queue drops its oldest message
)

// Broker is AIO's Broker resource, for the limits in spec.advanced.clients
// and the appliance's own limits in spec.appliance. AIO's cluster fields
// (cardinality, memoryProfile, diagnostics, generateResourceLimits,
// advanced.encryptInternalTraffic, advanced.internalCerts) are accepted
// and ignored. At most one Broker may exist; without one the broker's
// default limits apply.
type Broker struct {
	Object `json:",inline" yaml:",inline"`
	Spec   BrokerSpec `json:"spec" yaml:"spec"`
}

// BrokerSpec is Broker.spec. Every limit is optional (nil = default).
type BrokerSpec struct {
	Advanced  *BrokerAdvanced  `json:"advanced,omitempty" yaml:"advanced,omitempty"`
	Appliance *ApplianceLimits `json:"appliance,omitempty" yaml:"appliance,omitempty"`
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
	MaxKeepAliveSeconds     *int                  `json:"maxKeepAliveSeconds,omitempty" yaml:"maxKeepAliveSeconds,omitempty"`         // 0..65535
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

func (b *Broker) validate(_ *Set, rp *report) {
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
