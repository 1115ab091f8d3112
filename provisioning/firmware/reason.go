package firmware

import (
	"errors"
	"fmt"
)

// Reason says why an update is refused. It implements error, so
// errors.Is(err, ReasonBoard) tests a refusal.
type Reason string

// The reasons an update is refused.
const (
	ReasonFormat     Reason = "malformed"          // not an update file, or a manifest that does not parse
	ReasonUntrusted  Reason = "untrusted key"      // signed by a key the device does not trust
	ReasonSignature  Reason = "bad signature"      // the manifest does not match its signature
	ReasonBoard      Reason = "wrong board"        // built for another board
	ReasonDowngrade  Reason = "downgrade"          // older than the running version, without a signed allowDowngrade
	ReasonNotNewer   Reason = "not newer"          // the running version again (a replay), without allowDowngrade
	ReasonExpired    Reason = "expired"            // a downgrade past its signed expiry
	ReasonOversize   Reason = "too large"          // a file system larger than its partition
	ReasonTruncated  Reason = "truncated"          // the upload ended before the signed size
	ReasonHash       Reason = "hash mismatch"      // a file system differs from its signed SHA-256
	ReasonTrailing   Reason = "trailing data"      // bytes after the last file system
	ReasonWrite      Reason = "write failed"       // the device could not write or switch a partition
	ReasonBusy       Reason = "update in progress" // another update is being received
	ReasonTrial      Reason = "on trial"           // the running system is a trial boot not yet committed: its fallback must stay
	ReasonRolledBack Reason = "rolled back"        // this build failed its trial boot on this device before
	ReasonLimited    Reason = "too many refusals"  // the sender had too many updates refused lately: not read
)

func (r Reason) Error() string { return "firmware: " + string(r) }

// Refusal is an update refused for Reason, with the detail.
type Refusal struct {
	Reason Reason
	Detail string
}

func (r *Refusal) Error() string { return fmt.Sprintf("firmware: %s: %s", r.Reason, r.Detail) }

// Unwrap returns the Reason.
func (r *Refusal) Unwrap() error { return r.Reason }

// refuse returns a *Refusal for reason with the formatted detail.
func refuse(reason Reason, format string, args ...any) *Refusal {
	return &Refusal{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// ReasonOf returns the Reason err carries, or "" when it carries none.
func ReasonOf(err error) Reason {
	var r Reason
	errors.As(err, &r)
	return r
}
