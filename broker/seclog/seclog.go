// Package seclog records security events: failed authentication, refused
// session takeovers, denied publishes and subscribes, refused response
// topics, refusals by a memory or quota limit and bundles refused over
// the LAN.
//
// Every event is counted (for /metrics), and logged as one structured
// line at Warn level, at most Burst lines per Window for each kind of
// event; the next line logged after a quiet spell says how many were
// suppressed. Counting and the decision to log allocate nothing, so a
// client hammering a denied topic costs a counter increment per message.
//
// Callers never pass a secret (password, authentication data, payload):
// the names of the principal, the client id, the topic and the remote
// address are what an operator needs.
package seclog

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Event is a kind of security event.
type Event uint8

const (
	AuthFailed           Event = iota // authentication refused a CONNECT or AUTH
	ConnectDenied                     // authorization refused a CONNECT
	TakeoverRefused                   // a CONNECT for a client id another principal owns
	PublishDenied                     // a PUBLISH (or will) the client may not send
	SubscribeDenied                   // a SUBSCRIBE filter the client may not use
	ResponseTopicRefused              // a response topic the requester may not publish to
	LimitConnections                  // the connection limit (authenticated or not)
	LimitConnectSize                  // a CONNECT larger than allowed before authentication
	LimitRetained                     // the retained-message count or byte limit
	LimitQueue                        // a session's or the total queued-bytes limit
	LimitSessions                     // the persistent-session limit
	LimitStateStore                   // a state store quota (per principal or total)
	LimitSubscriptions                // a session's or the total subscription memory
	LimitDisk                         // the journal's disk budget, or a full disk
	BundleRefused                     // a bundle uploaded over the LAN (POST /bundle) refused
	FirmwareRefused                   // a firmware update sent over the LAN (/update/) refused
	NumEvents                         // the number of kinds; not an event
)

var names = [NumEvents]string{
	AuthFailed:           "auth_failed",
	ConnectDenied:        "connect_denied",
	TakeoverRefused:      "takeover_refused",
	PublishDenied:        "publish_denied",
	SubscribeDenied:      "subscribe_denied",
	ResponseTopicRefused: "response_topic_refused",
	LimitConnections:     "limit_connections",
	LimitConnectSize:     "limit_connect_size",
	LimitRetained:        "limit_retained",
	LimitQueue:           "limit_queue",
	LimitSessions:        "limit_sessions",
	LimitStateStore:      "limit_statestore",
	LimitSubscriptions:   "limit_subscriptions",
	LimitDisk:            "limit_disk",
	BundleRefused:        "bundle_refused",
	FirmwareRefused:      "firmware_refused",
}

// String returns the event's name as it appears in logs and metrics
// labels, such as "auth_failed".
func (e Event) String() string {
	if e < NumEvents {
		return names[e]
	}
	return "unknown"
}

// Defaults for the rate limit of each kind of event.
const (
	Burst  = 10
	Window = 10 * time.Second
)

// Log counts and logs security events. The zero value is not usable; a
// nil *Log counts nothing and logs nothing.
type Log struct {
	logger *slog.Logger     // set by New; read-only
	now    func() time.Time // set by New; read-only

	counts [NumEvents]atomic.Uint64 // events seen, by kind
	lims   [NumEvents]limiter       // each guarded by its own mutex
}

// limiter is a fixed-window rate limit for one kind of event.
type limiter struct {
	mu         sync.Mutex
	start      time.Time // the current window's start
	logged     int       // lines logged in the current window
	suppressed uint64    // events not logged since the last line
}

// New returns a Log writing to logger (nil: discard). now is the clock
// (nil: time.Now).
func New(logger *slog.Logger, now func() time.Time) *Log {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	return &Log{logger: logger, now: now}
}

// Allow counts one event of kind e and reports whether it may be logged
// now. A caller that gets true calls Log (once); one that gets false
// logs nothing. It does not allocate.
func (l *Log) Allow(e Event) bool {
	if l == nil || e >= NumEvents {
		return false
	}
	l.counts[e].Add(1)
	r := &l.lims[e]
	now := l.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.Sub(r.start) >= Window {
		r.start, r.logged = now, 0
	}
	if r.logged >= Burst {
		r.suppressed++
		return false
	}
	r.logged++
	return true
}

// Log writes one line for an event that Allow let through: msg, the
// event's name, args (slog key-value pairs, never a secret) and how many
// events of the kind were suppressed since the previous line.
func (l *Log) Log(e Event, msg string, args ...any) {
	if l == nil || e >= NumEvents {
		return
	}
	r := &l.lims[e]
	r.mu.Lock()
	n := r.suppressed
	r.suppressed = 0
	r.mu.Unlock()
	args = append([]any{"event", e.String()}, args...)
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	l.logger.Warn(msg, args...)
}

// Event counts an event and logs it if the rate limit allows: Allow and
// Log in one call, for paths where building args costs nothing that
// matters.
func (l *Log) Event(e Event, msg string, args ...any) {
	if l.Allow(e) {
		l.Log(e, msg, args...)
	}
}

// Count returns how many events of kind e were seen.
func (l *Log) Count(e Event) uint64 {
	if l == nil || e >= NumEvents {
		return 0
	}
	return l.counts[e].Load()
}
