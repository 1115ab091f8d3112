// Package topic validates MQTT topic names and topic filters, matches names
// against filters, and indexes subscriptions ([Tree]) and retained messages
// ([Retained]) in tries keyed by topic level.
//
// Names and filters are passed as []byte that usually alias a packet read
// buffer; nothing here retains them except Subscribe and Set, which copy.
// UTF-8 well-formedness and the absence of U+0000 [MQTT-4.7.3-2] are checked
// by the packet codec and not again here.
//
// Validation, Match and Covers allocate nothing, and neither does
// [Tree.Match] once the destination slice has grown, so they can run on the
// PUBLISH hot path. The package uses only the standard library.
//
// Shared subscriptions ("$share/{group}/{filter}", MQTT 5.0 §4.8.2) are
// recognized by [ValidFilter], [ParseShared] and [Tree.Subscribe]. A broker
// speaking MQTT 3.1.1 to a client that wants "$share/..." treated literally
// has to decide that before calling in.
package topic

import (
	"bytes"
	"errors"
)

// Errors returned by validation. They are allocated once and compared with
// errors.Is; the broker maps them to reason codes (0x90 Topic Name invalid,
// 0x8F Topic Filter invalid).
var (
	ErrEmpty          = errors.New("topic: empty topic name or filter")
	ErrWildcardInName = errors.New("topic: wildcard in topic name")
	ErrBadFilter      = errors.New("topic: malformed wildcard in topic filter")
	ErrTooLong        = errors.New("topic: too long")
	ErrTooManyLevels  = errors.New("topic: too many levels")
	ErrBadShare       = errors.New("topic: malformed shared subscription filter")
)

// maxLength is the protocol limit: names and filters are UTF-8 encoded
// strings with a two-byte length prefix [MQTT-4.7.3-3].
const maxLength = 65535

// sharePrefix starts a shared subscription filter [MQTT-4.8.2-1].
const sharePrefix = "$share/"

// Limits bounds topic names and filters beyond what the protocol allows.
// The zero value imposes only the protocol limit of 65535 bytes.
type Limits struct {
	// MaxLength is the maximum length in bytes, 0 for no extra limit.
	// For shared filters it applies to the whole "$share/..." string.
	MaxLength int
	// MaxLevels is the maximum number of '/'-separated levels, 0 for no
	// limit. For shared filters it counts the levels after the group.
	MaxLevels int
}

// ValidName reports whether name is a valid PUBLISH topic name, using zero
// Limits.
func ValidName(name []byte) error { return Limits{}.ValidName(name) }

// ValidFilter reports whether filter is a valid SUBSCRIBE or UNSUBSCRIBE
// topic filter, using zero Limits.
func ValidFilter(filter []byte) error { return Limits{}.ValidFilter(filter) }

// ValidName reports whether name is a valid topic name for PUBLISH within l.
// It returns one of the package's sentinel errors, or nil.
func (l Limits) ValidName(name []byte) error {
	if len(name) == 0 {
		return ErrEmpty // [MQTT-4.7.3-1]
	}
	if err := l.checkLength(name); err != nil {
		return err
	}
	// [MQTT-3.3.2-2] [MQTT-4.7.1-1] wildcards are for filters only.
	if bytes.IndexByte(name, '+') >= 0 || bytes.IndexByte(name, '#') >= 0 {
		return ErrWildcardInName
	}
	return l.checkLevels(name)
}

// ValidFilter reports whether filter is a valid topic filter within l,
// including shared subscription filters "$share/{group}/{filter}". It
// returns one of the package's sentinel errors, or nil.
func (l Limits) ValidFilter(filter []byte) error {
	if len(filter) == 0 {
		return ErrEmpty // [MQTT-4.7.3-1]
	}
	if err := l.checkLength(filter); err != nil {
		return err
	}
	if bytes.HasPrefix(filter, []byte(sharePrefix)) {
		group, f, ok := ParseShared(filter)
		// [MQTT-4.8.2-1] a ShareName is at least one character, followed by
		// '/' and a topic filter.
		if !ok || len(group) == 0 || len(f) == 0 {
			return ErrBadShare
		}
		// [MQTT-4.8.2-2] the ShareName must not contain '/', '+' or '#'.
		if bytes.IndexByte(group, '+') >= 0 || bytes.IndexByte(group, '#') >= 0 {
			return ErrBadShare
		}
		filter = f
	}
	if err := validWildcards(filter); err != nil {
		return err
	}
	return l.checkLevels(filter)
}

// validWildcards checks the placement of '+' and '#' in a non-shared filter.
func validWildcards(filter []byte) error {
	for i, c := range filter {
		switch c {
		case '#':
			// [MQTT-4.7.1-2] '#' must occupy a whole level and be the last
			// character of the filter.
			if i != len(filter)-1 || (i > 0 && filter[i-1] != '/') {
				return ErrBadFilter
			}
		case '+':
			// [MQTT-4.7.1-3] '+' must occupy an entire level.
			if (i > 0 && filter[i-1] != '/') ||
				(i < len(filter)-1 && filter[i+1] != '/') {
				return ErrBadFilter
			}
		}
	}
	return nil
}

func (l Limits) checkLength(b []byte) error {
	if len(b) > maxLength || (l.MaxLength > 0 && len(b) > l.MaxLength) {
		return ErrTooLong
	}
	return nil
}

func (l Limits) checkLevels(b []byte) error {
	if l.MaxLevels > 0 && bytes.Count(b, []byte{'/'})+1 > l.MaxLevels {
		return ErrTooManyLevels
	}
	return nil
}

// ParseShared splits a shared subscription filter "$share/{group}/{f}" into
// its group and filter. For any other filter it returns nil, filter, false.
// It does not validate: group or f may be empty, which ValidFilter rejects.
// The returned slices alias filter.
func ParseShared(filter []byte) (group, f []byte, shared bool) {
	if !bytes.HasPrefix(filter, []byte(sharePrefix)) {
		return nil, filter, false
	}
	rest := filter[len(sharePrefix):]
	i := bytes.IndexByte(rest, '/')
	if i < 0 {
		return nil, filter, false
	}
	return rest[:i], rest[i+1:], true
}

// cut splits b at its first '/': level is the first level, rest what follows
// the separator, and more reports whether there was a separator.
func cut(b []byte) (level, rest []byte, more bool) {
	if i := bytes.IndexByte(b, '/'); i >= 0 {
		return b[:i], b[i+1:], true
	}
	return b, nil, false
}

// isWild reports whether a filter level is a single '+' or '#'.
func isWild(level []byte) bool {
	return len(level) == 1 && (level[0] == '+' || level[0] == '#')
}
