package statestore

import (
	"errors"
	"fmt"
)

// Sentinel errors. The text after "statestore: " of the protocol errors is
// the exact string the AIO SDK expects after "-ERR " (§4); use ProtocolText.
var (
	ErrNotFound           = errors.New("statestore: not found")
	ErrClosed             = errors.New("statestore: store closed")
	ErrLocked             = errors.New("statestore: database is locked by another process")
	ErrEmptyKey           = errors.New("statestore: the key length is zero")
	ErrTimestampFuture    = errors.New("statestore: the request timestamp is too far in the future; ensure that the client and broker system clocks are synchronized")
	ErrFencingRequired    = errors.New("statestore: a fencing token is required for this request")
	ErrFencingFuture      = errors.New("statestore: the request fencing token timestamp is too far in the future; ensure that the client and broker system clocks are synchronized")
	ErrFencingLower       = errors.New("statestore: the request fencing token is a lower version than the fencing token protecting the resource")
	ErrQuotaExceeded      = errors.New("statestore: the quota has been exceeded")
	ErrMalformedTimestamp = errors.New("statestore: malformed timestamp")
	ErrCorruptRecord      = errors.New("statestore: corrupt value record")
	// ErrFailed: a write could not be made durable (fsync failed); the
	// store refuses reads and writes until it is opened again.
	ErrFailed = errors.New("statestore: failed, reopen the store")
	// ErrOwnerQuotaExceeded is ErrQuotaExceeded for an owner's quota.
	ErrOwnerQuotaExceeded = fmt.Errorf("%w for its owner", ErrQuotaExceeded)
)

// ProtocolText returns the text to send after "-ERR " for one of the
// protocol sentinel errors wrapped in err, and false for other errors.
func ProtocolText(err error) (string, bool) {
	for _, s := range []error{ErrEmptyKey, ErrTimestampFuture, ErrFencingRequired,
		ErrFencingFuture, ErrFencingLower, ErrQuotaExceeded, ErrMalformedTimestamp} {
		if errors.Is(err, s) {
			return s.Error()[len("statestore: "):], true
		}
	}
	return "", false
}
