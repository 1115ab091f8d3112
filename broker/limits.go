package broker

import "time"

// DropPolicy says which message a full session queue gives up.
type DropPolicy uint8

const (
	// DropOldest discards the oldest queued message to make room (the
	// default: a reconnecting sensor reader wants the newest values).
	DropOldest DropPolicy = iota
	// DropNewest discards the message that does not fit.
	DropNewest
)

// Limits bounds what one client may cost. The zero value of a field means
// its default (see DefaultLimits).
type Limits struct {
	MaxConnections   int    // concurrent network connections
	MaxPacketSize    uint32 // largest packet accepted (and announced in 5.0 CONNACK)
	MaxInflight      uint16 // unacknowledged QoS 1/2 messages per direction (our Receive Maximum)
	MaxQueued        int    // messages queued per session while offline or the window is full
	MaxPendingBytes  int    // encoded bytes buffered for one connection's socket
	MaxSubscriptions int    // subscriptions per session
	MaxTopicLength   int    // bytes in a topic name or filter
	MaxTopicLevels   int    // levels in a topic name or filter
	MaxTopicAliases  uint16 // topic aliases a 5.0 client may use towards us
	MaxKeepAlive     uint16 // cap on the client's keep-alive, in seconds (Server Keep Alive)
	MaxSessionExpiry uint32 // cap on a 5.0 session expiry interval, in seconds
	// MaxMessageExpiry caps the expiry interval of messages clients
	// publish (wills included), in seconds; a message without one gets it,
	// so nothing is retained or queued longer. 0: no cap.
	MaxMessageExpiry  uint32
	MaxClientIDLength int           // bytes in a client identifier
	QueueQoS0         bool          // also queue QoS 0 messages for offline persistent sessions
	DropPolicy        DropPolicy    // which message a full queue drops
	ConnectTimeout    time.Duration // time allowed between accepting a socket and its CONNECT
	WriteTimeout      time.Duration // a socket write that stalls this long closes the connection
}

// DefaultLimits returns the defaults, sized for an edge gateway with a few
// hundred clients.
func DefaultLimits() Limits { return defaultLimits }

var defaultLimits = Limits{
	MaxConnections:    10000,
	MaxPacketSize:     1 << 20,
	MaxInflight:       32,
	MaxQueued:         1000,
	MaxPendingBytes:   1 << 20,
	MaxSubscriptions:  1000,
	MaxTopicLength:    65535,
	MaxTopicLevels:    64,
	MaxTopicAliases:   64,
	MaxKeepAlive:      65535,
	MaxSessionExpiry:  0xFFFFFFFF,
	MaxClientIDLength: 256,
	ConnectTimeout:    10 * time.Second,
	WriteTimeout:      30 * time.Second,
}

// withDefaults fills zero fields from DefaultLimits.
func (l Limits) withDefaults() Limits {
	d := defaultLimits
	set := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	set(&l.MaxConnections, d.MaxConnections)
	set(&l.MaxQueued, d.MaxQueued)
	set(&l.MaxPendingBytes, d.MaxPendingBytes)
	set(&l.MaxSubscriptions, d.MaxSubscriptions)
	set(&l.MaxTopicLength, d.MaxTopicLength)
	set(&l.MaxTopicLevels, d.MaxTopicLevels)
	set(&l.MaxClientIDLength, d.MaxClientIDLength)
	if l.MaxPacketSize == 0 {
		l.MaxPacketSize = d.MaxPacketSize
	}
	if l.MaxInflight == 0 {
		l.MaxInflight = d.MaxInflight
	}
	if l.MaxTopicAliases == 0 {
		l.MaxTopicAliases = d.MaxTopicAliases
	}
	if l.MaxKeepAlive == 0 {
		l.MaxKeepAlive = d.MaxKeepAlive
	}
	if l.MaxSessionExpiry == 0 {
		l.MaxSessionExpiry = d.MaxSessionExpiry
	}
	if l.ConnectTimeout == 0 {
		l.ConnectTimeout = d.ConnectTimeout
	}
	if l.WriteTimeout == 0 {
		l.WriteTimeout = d.WriteTimeout
	}
	return l
}
