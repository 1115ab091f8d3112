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
	MaxClientIDLength int        // bytes in a client identifier
	QueueQoS0         bool       // also queue QoS 0 messages for offline persistent sessions
	DropPolicy        DropPolicy // which message a full queue drops
	// ConnectTimeout is the time allowed between accepting a socket and
	// the end of its CONNECT (authentication included): the timeout of
	// unauthenticated sockets.
	ConnectTimeout time.Duration
	WriteTimeout   time.Duration // a socket write that stalls this long closes the connection

	// MemoryBudget is the memory, in bytes, that what clients make the
	// broker keep may take: the limits below that are zero follow from
	// it (see LimitsForBudget). 0: DefaultMemoryBudget.
	MemoryBudget int64
	// MaxRetained and MaxRetainedBytes bound the retained messages (count,
	// and bytes of topics, payloads and properties). A retained message
	// beyond them is refused: not stored, not routed (5.0: PUBACK/PUBREC
	// 0x97 Quota exceeded).
	MaxRetained      int
	MaxRetainedBytes int64
	// MaxQueuedBytes bounds the bytes of the messages queued for one
	// session (beside MaxQueued); MaxTotalQueuedBytes those of every
	// session together. A message queued for several sessions counts in
	// each of them.
	MaxQueuedBytes      int64
	MaxTotalQueuedBytes int64
	// MaxSessions bounds the sessions with an expiry (those that outlive
	// their connection). A CONNECT that would create one more is refused
	// (CONNACK 0x97 Quota exceeded; 3.1.1: 3 Server unavailable).
	MaxSessions int
	// MaxConnectSize is the largest CONNECT (and, during 5.0 enhanced
	// authentication, AUTH) accepted before authentication; it is checked
	// on the fixed header, before the body is read. Larger: 5.0 CONNACK
	// 0x95 Packet too large, 3.1.1 the socket is closed.
	MaxConnectSize int
	// MaxReadBuffers bounds the bytes of read buffers grown beyond the
	// standard 2 KiB for packets in progress, all connections together
	// (each may need up to MaxPacketSize). A connection whose packet
	// finds no room is closed (5.0: DISCONNECT 0x97 Quota exceeded).
	MaxReadBuffers int64
	// MaxConnecting bounds the sockets that have not finished CONNECT.
	// They also count toward MaxConnections: a socket accepted beyond
	// either limit is closed at once.
	MaxConnecting int
	// MaxSubscriptionBytes bounds what one session's subscriptions may
	// cost (beside MaxSubscriptions), MaxTotalSubscriptionBytes what every
	// session's together may: each subscription is charged its filter's
	// length plus SubscriptionOverhead. A SUBSCRIBE beyond them gets
	// 0x97 Quota exceeded for that filter (3.1.1: 0x80 Failure).
	MaxSubscriptionBytes      int64
	MaxTotalSubscriptionBytes int64
	// MaxTotalPendingBytes bounds the encoded messages waiting for slow
	// sockets beyond the first 16 KiB of each connection, all connections
	// together (each is also held to MaxPendingBytes). A delivery that
	// finds no room is handled as for a full socket buffer: QoS 0 is
	// dropped, QoS 1/2 waits in the session's queue.
	MaxTotalPendingBytes int64
}

// SubscriptionOverhead is what a subscription is charged beside its
// filter's bytes: the session's entry and the subscription tree's node
// and entry. It was measured at about 800 bytes with short filters when
// sessions and nodes had a map each; since issue 17 it is about 150 to
// 350 (idle_mem_test.go), and the charge stayed.
const SubscriptionOverhead = 768

// DefaultMemoryBudget is the budget of a device with 1 GB of memory (a
// quarter of it): the broker's default.
const DefaultMemoryBudget = 256 << 20

// DefaultMaxConnectSize is the CONNECT size accepted before
// authentication when the budget allows it.
const DefaultMaxConnectSize = 64 << 10

// LimitsForBudget returns the limits that follow from a memory budget of
// b bytes (at least 16 MiB is used). Every other field is zero.
//
// The shares leave room for what a byte kept costs beyond itself: a
// retained message or a persistent session is also indexed by the journal
// (about journal.IndexBytesPerDelivery per queued message), and Go's collector lets
// the heap grow to twice what is live. So what clients can make the
// broker keep is an eighth of the budget per kind:
//
//   - retained messages: b/8 bytes, and one per 8 KiB of b (the index
//     costs about 1 KiB per topic);
//   - queued messages: b/8 bytes for all sessions, b/32 for one;
//   - sessions with an expiry: one per 256 KiB of b (a session and its
//     saved copy cost a few KiB with a few subscriptions, but with 100
//     subscriptions each 2,048 sessions measured 171 MiB of RSS);
//   - connections: one per 256 KiB of b (goroutines, buffers and the
//     session of a busy client), and b/8 for the read buffers of large
//     packets in progress (each up to MaxPacketSize);
//   - clients that have not finished CONNECT: b/16 bytes, that is
//     MaxConnecting sockets of MaxConnectSize (64 KiB, less on a small
//     budget) each.
//
// With the default budget of a 1 GB device (256 MiB): 32 MiB and 32,768
// retained messages, 32 MiB queued (8 MiB per session), 1,024 sessions,
// 1,024 connections of which 256 may be unauthenticated.
func LimitsForBudget(b int64) Limits {
	b = max(b, 16<<20)
	connect := int(min(DefaultMaxConnectSize, b/16/16))
	return Limits{
		MemoryBudget:        b,
		MaxRetained:         int(min(b/(8<<10), 1<<31-1)),
		MaxRetainedBytes:    b / 8,
		MaxQueuedBytes:      b / 32,
		MaxTotalQueuedBytes: b / 8,
		MaxSessions:         int(min(b/(256<<10), 1<<31-1)),
		MaxConnections:      int(min(b/(256<<10), 1<<31-1)),
		MaxReadBuffers:      b / 8,
		MaxConnectSize:      connect,
		MaxConnecting:       int(min(b/16/int64(connect), 1<<31-1)),
		// Subscriptions: b/8 in all, b/256 (1 MiB at 256 MiB: about 1,000
		// subscriptions of short filters) for one session.
		MaxSubscriptionBytes:      b / 256,
		MaxTotalSubscriptionBytes: b / 8,
		MaxTotalPendingBytes:      b / 8,
	}
}

// DefaultLimits returns the defaults, sized for an edge gateway with a few
// hundred clients.
func DefaultLimits() Limits { return defaultLimits }

var defaultLimits = withBudget(Limits{
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
}, DefaultMemoryBudget)

// withBudget fills l's zero budget-derived fields from LimitsForBudget.
func withBudget(l Limits, b int64) Limits {
	d := LimitsForBudget(b)
	l.MemoryBudget = d.MemoryBudget
	set := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	set64 := func(v *int64, def int64) {
		if *v == 0 {
			*v = def
		}
	}
	set(&l.MaxRetained, d.MaxRetained)
	set64(&l.MaxRetainedBytes, d.MaxRetainedBytes)
	set64(&l.MaxQueuedBytes, d.MaxQueuedBytes)
	set64(&l.MaxTotalQueuedBytes, d.MaxTotalQueuedBytes)
	set64(&l.MaxReadBuffers, d.MaxReadBuffers)
	set(&l.MaxSessions, d.MaxSessions)
	set(&l.MaxConnections, d.MaxConnections)
	set(&l.MaxConnectSize, d.MaxConnectSize)
	set(&l.MaxConnecting, d.MaxConnecting)
	set64(&l.MaxSubscriptionBytes, d.MaxSubscriptionBytes)
	set64(&l.MaxTotalSubscriptionBytes, d.MaxTotalSubscriptionBytes)
	set64(&l.MaxTotalPendingBytes, d.MaxTotalPendingBytes)
	return l
}

// withDefaults fills zero fields from DefaultLimits, and the
// budget-derived ones from l's MemoryBudget when it has one.
func (l Limits) withDefaults() Limits {
	d := defaultLimits
	if l.MemoryBudget > 0 {
		l = withBudget(l, l.MemoryBudget)
	} else {
		l = withBudget(l, DefaultMemoryBudget)
	}
	set := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
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
