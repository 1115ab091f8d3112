package statestore

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MaxClockSkew is how far a request's __ts or __ft may be ahead of the
// store's wall clock before it is rejected (protocol §1, §5).
const MaxClockSkew = time.Minute

// HLC is a hybrid logical clock value: wall-clock milliseconds, a logical
// counter and the id of the node that produced it. The zero HLC means
// "absent".
type HLC struct {
	Wall    int64 // Unix milliseconds
	Counter uint64
	Node    string
}

// ParseHLC parses "wall:counter:node". It accepts the SDK's zero-padded
// form ("001696374425000:00000:n") and the docs' unpadded form
// ("1696374425000:1:n"). The node may be empty but may not contain ':'.
func ParseHLC(s string) (HLC, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return HLC{}, fmt.Errorf("%w: %q: want 3 ':'-separated fields", ErrMalformedTimestamp, s)
	}
	wall, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil {
		return HLC{}, fmt.Errorf("%w: %q: wall clock: %v", ErrMalformedTimestamp, s, err)
	}
	ctr, err := strconv.ParseUint(parts[1], 10, 64)
	if err != nil {
		return HLC{}, fmt.Errorf("%w: %q: counter: %v", ErrMalformedTimestamp, s, err)
	}
	return HLC{Wall: wall, Counter: ctr, Node: parts[2]}, nil
}

// String formats h the way the AIO SDK does: "%015d:%05d:%s".
func (h HLC) String() string {
	return fmt.Sprintf("%015d:%05d:%s", h.Wall, h.Counter, h.Node)
}

// IsZero reports whether h is the zero HLC.
func (h HLC) IsZero() bool { return h == HLC{} }

// Compare orders by wall clock, then counter, then node (string order).
// It returns -1, 0 or +1.
func (h HLC) Compare(o HLC) int {
	switch {
	case h.Wall != o.Wall:
		return cmpInt(h.Wall < o.Wall)
	case h.Counter != o.Counter:
		return cmpInt(h.Counter < o.Counter)
	default:
		return strings.Compare(h.Node, o.Node)
	}
}

func cmpInt(less bool) int {
	if less {
		return -1
	}
	return 1
}

// Clock is the store's hybrid logical clock. It is safe for concurrent use.
type Clock struct {
	node string
	now  func() time.Time

	mu   sync.Mutex
	last HLC
}

// NewClock returns a clock for node. A nil now means time.Now.
func NewClock(node string, now func() time.Time) *Clock {
	if now == nil {
		now = time.Now
	}
	return &Clock{node: node, now: now}
}

// Now returns a new HLC, strictly greater than every HLC this clock
// returned before.
func (c *Clock) Now() HLC {
	c.mu.Lock()
	defer c.mu.Unlock()
	wall := c.now().UnixMilli()
	if wall > c.last.Wall {
		c.last = HLC{Wall: wall, Node: c.node}
	} else {
		c.last.Counter++
	}
	return c.last
}

// Update merges a remote timestamp (a request's __ts) into the clock and
// returns the new version, which is greater than both remote and every
// earlier result (§2). A remote more than MaxClockSkew ahead of the local
// wall clock is rejected with ErrTimestampFuture and leaves the clock as is.
func (c *Clock) Update(remote HLC) (HLC, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	local := c.now().UnixMilli()
	if err := checkSkew(remote, local, ErrTimestampFuture); err != nil {
		return HLC{}, err
	}
	wall := max(local, c.last.Wall, remote.Wall)
	var ctr uint64
	switch {
	case wall == c.last.Wall && wall == remote.Wall:
		ctr = max(c.last.Counter, remote.Counter) + 1
	case wall == c.last.Wall:
		ctr = c.last.Counter + 1
	case wall == remote.Wall:
		ctr = remote.Counter + 1
	}
	c.last = HLC{Wall: wall, Counter: ctr, Node: c.node}
	return c.last, nil
}

// observe makes later results greater than h: the store seeds its clock
// with the newest stored version, so versions keep increasing across a
// restart even if the wall clock stepped back.
func (c *Clock) observe(h HLC) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if h.Wall > c.last.Wall || h.Wall == c.last.Wall && h.Counter > c.last.Counter {
		c.last = HLC{Wall: h.Wall, Counter: h.Counter, Node: c.node}
	}
}

// CheckFuture returns sentinel (wrapped) if h is more than MaxClockSkew
// ahead of the clock's wall time.
func (c *Clock) CheckFuture(h HLC, sentinel error) error {
	return checkSkew(h, c.now().UnixMilli(), sentinel)
}

func checkSkew(h HLC, localMillis int64, sentinel error) error {
	if ahead := time.Duration(h.Wall-localMillis) * time.Millisecond; ahead > MaxClockSkew {
		return &SkewError{Err: sentinel, Ahead: ahead}
	}
	return nil
}

// SkewError reports a timestamp too far ahead of the store's clock.
// errors.Is(err, ErrTimestampFuture) or ErrFencingFuture tells which one.
type SkewError struct {
	Err   error
	Ahead time.Duration
}

func (e *SkewError) Error() string { return fmt.Sprintf("%v (%v ahead)", e.Err, e.Ahead) }
func (e *SkewError) Unwrap() error { return e.Err }
