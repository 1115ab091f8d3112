// Package bundle reads and writes edgebroker's signed provisioning bundle:
// one file that carries a configuration folder (the YAML documents and the
// certificates, keys and password files they refer to) from a host to a
// gateway on a USB stick.
//
// A bundle is a POSIX ustar archive holding, in this order:
//
//	manifest.json   the Manifest: format, serial, validity, device selector,
//	                signer key id, size and SHA-256 of every file, key changes
//	manifest.sig    the 64-byte ed25519 signature over manifest.json's exact bytes
//	config/...      the configuration folder, regular files (and folders) only
//
// Open parses a bundle and checks its structure against the manifest
// (paths, sizes, hashes, limits) reading at most a bounded number of bytes;
// Verify checks the signature against a TrustSet, the serial against the
// last one applied, the validity window and the device selector. Neither
// has side effects: the caller decides what to do with a verified bundle
// (see provisioning/apply). Every rejection wraps one of the Err* sentinel
// errors with the detail, so callers test with errors.Is and show the text.
package bundle

import (
	"crypto/ed25519"
	"errors"
	"strconv"
	"time"
)

// FileName is the bundle's file name on the USB stick.
const FileName = "edgebroker.bundle"

// FormatVersion is the manifest format this package writes and reads.
const FormatVersion = 1

// Archive entry names.
const (
	manifestName = "manifest.json"
	sigName      = "manifest.sig"
	configDir    = "config/"
)

// MaxSerial is the largest serial a bundle may carry, 2^53: every JSON
// tool reads it exactly (a float64 holds every integer up to it), and a
// device that applied it has room left for more serials, where one at
// 2^64-1 would refuse every later bundle as a replay.
const MaxSerial = 1 << 53

// ClockSkew is how far before its creation time a bundle is still accepted,
// for a device whose clock runs a little behind the host's.
const ClockSkew = 10 * time.Minute

// Errors a bundle is rejected with. Each is wrapped with the detail.
var (
	ErrFormat      = errors.New("bundle: not a valid bundle")
	ErrVersion     = errors.New("bundle: unsupported format version")
	ErrPath        = errors.New("bundle: unsafe path")
	ErrFileType    = errors.New("bundle: not a regular file or folder")
	ErrDuplicate   = errors.New("bundle: duplicate name")
	ErrUnlisted    = errors.New("bundle: file not in the manifest")
	ErrMissing     = errors.New("bundle: file missing from the bundle")
	ErrTruncated   = errors.New("bundle: truncated")
	ErrHash        = errors.New("bundle: hash mismatch")
	ErrOversize    = errors.New("bundle: too large")
	ErrSignature   = errors.New("bundle: bad signature")
	ErrUntrusted   = errors.New("bundle: untrusted key")
	ErrReplay      = errors.New("bundle: replayed serial")
	ErrExpired     = errors.New("bundle: expired")
	ErrNotYetValid = errors.New("bundle: not yet valid")
	ErrDevice      = errors.New("bundle: not for this device")
	ErrKeys        = errors.New("bundle: invalid key change")
)

// Manifest describes a bundle; its JSON encoding (manifest.json) is what
// the signature covers.
type Manifest struct {
	Format  int       `json:"format"`
	Serial  uint64    `json:"serial"` // 1..MaxSerial; must exceed the last serial the device applied
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	Device  *Device   `json:"device,omitempty"` // nil: any device
	KeyID   string    `json:"keyId"`            // KeyID of the signing key
	Files   []File    `json:"files"`
	// Enrol and Retire change the device's trusted keys when the bundle is
	// applied: keys to add and keys to remove (a key's raw 32 bytes, base64
	// in JSON).
	Enrol  []ed25519.PublicKey `json:"enrol,omitempty"`
	Retire []ed25519.PublicKey `json:"retire,omitempty"`
}

// File is one file of the configuration folder.
type File struct {
	Path   string `json:"path"` // slash-separated, relative to the folder
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // lower-case hex
}

// Device identifies a gateway, or selects gateways in a Manifest: an empty
// field matches any value.
type Device struct {
	Serial string `json:"serial,omitempty"` // board serial number
	Model  string `json:"model,omitempty"`  // board model, exactly as the board reports it
}

// Matches reports whether the selector d matches device dev.
func (d *Device) Matches(dev Device) bool {
	if d == nil {
		return true
	}
	return (d.Serial == "" || d.Serial == dev.Serial) && (d.Model == "" || d.Model == dev.Model)
}

func (d *Device) String() string {
	if d == nil || *d == (Device{}) {
		return "any device"
	}
	s := ""
	if d.Model != "" {
		s = "model " + strconv.Quote(d.Model)
	}
	if d.Serial != "" {
		if s != "" {
			s += ", "
		}
		s += "serial " + strconv.Quote(d.Serial)
	}
	return s
}

// Limits bound what Open accepts (and what Pack writes). A zero field
// means its DefaultLimits value.
type Limits struct {
	MaxTotal    int64 // sum of all file sizes
	MaxFiles    int   // number of files
	MaxFileSize int64 // one file
}

// DefaultLimits returns the limits the appliance uses: 16 MiB in at most
// 512 files of at most 4 MiB each.
func DefaultLimits() Limits {
	return Limits{MaxTotal: 16 << 20, MaxFiles: 512, MaxFileSize: 4 << 20}
}

// orDefault returns l with each zero (or negative) field set from DefaultLimits.
func (l Limits) orDefault() Limits {
	d := DefaultLimits()
	if l.MaxTotal <= 0 {
		l.MaxTotal = d.MaxTotal
	}
	if l.MaxFiles <= 0 {
		l.MaxFiles = d.MaxFiles
	}
	if l.MaxFileSize <= 0 {
		l.MaxFileSize = d.MaxFileSize
	}
	return l
}

// maxManifest bounds manifest.json.
const maxManifest = 1 << 20

// maxPath bounds a path; maxElem one element of it.
const (
	maxPath = 1024
	maxElem = 255
)
