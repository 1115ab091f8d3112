// Package firmware defines edgebroker's signed firmware update: a manifest
// (version, build time, target board, size and SHA-256 of the root and
// boot file systems) signed with an ed25519 key of the same kind, and
// the same keys, that sign provisioning bundles.
//
// An update travels as one file (FileName on a USB stick, the body of a
// PUT over TLS):
//
//	"EBFWUPD1"        8 bytes, the magic
//	length            4 bytes, big-endian: the manifest's length (≤ MaxManifest)
//	manifest.json     the Manifest; the signature covers these exact bytes
//	signature         64 bytes, ed25519
//	root              Manifest.Root.Size bytes: the SquashFS of the root partition
//	boot              Manifest.Boot.Size bytes: the FAT of the boot partition
//
// ReadHeader reads the header (magic, manifest, signature) with a bounded
// read; Verify decides whether a device may install the update, before a
// byte of a file system is written; CopyPart streams one file system while
// hashing it and refuses it when its size or hash differs from the signed
// manifest. Every refusal is a *Refusal carrying a typed Reason, so
// callers test it with errors.Is and show its text.
//
// The package is standard library only: the device (appliance) and the
// host tools (image/, which import no other folder) share it. So it holds
// the one KeyID and ParsePrivateKey of the signing keys, which
// provisioning/bundle uses for bundles.
package firmware

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// FileName is the update's file name on a USB stick, beside the bundle.
const FileName = "edgebroker.fwupdate"

// Magic starts every update file.
const Magic = "EBFWUPD1"

// FormatVersion is the manifest format this package writes and reads.
const FormatVersion = 1

// MaxManifest bounds the manifest's JSON.
const MaxManifest = 64 << 10

// headerFixed is the size of the magic and the length field.
const headerFixed = len(Magic) + 4

// Manifest describes a signed update; its JSON encoding is what the
// signature covers.
type Manifest struct {
	Format  int       `json:"format"`
	Version string    `json:"version"` // dotted numbers, e.g. "1.4.2" or "20261203.1"; see CompareVersions
	Built   time.Time `json:"built"`
	Board   string    `json:"board"` // the image's target, e.g. "rpi" or "qemu"
	KeyID   string    `json:"keyId"` // KeyID of the signing key
	Root    Part      `json:"root"`
	Boot    Part      `json:"boot"`
	// AllowDowngrade lets the update replace a newer (or the same)
	// version. A downgrade must expire: Expires is then required, so a
	// recorded downgrade cannot be replayed forever.
	AllowDowngrade bool      `json:"allowDowngrade,omitempty"`
	Expires        time.Time `json:"expires,omitzero"`
}

// BootControlFiles are the boot file system's small files that choose
// what boots (the default and the trial command line and configuration),
// in the order an image's FAT must hold them: first, each in one cluster,
// so they sit in clusters 2 to 5 of every image. A device writes a new
// boot file system over the old one in place; with the control files in
// the same clusters in both, a power cut during that write leaves each of
// them old or new, never another file's bytes (provisioning/fwupdate
// Disk.Switch).
var BootControlFiles = []string{"cmdline.txt", "cmdtry.txt", "config.txt", "tryboot.txt"}

// Part is one file system of the update.
type Part struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // lower-case hex
}

// PartOf returns the Part describing b.
func PartOf(b []byte) Part {
	sum := sha256.Sum256(b)
	return Part{Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:])}
}

// Version is a parsed dotted version: "1.4.2" is [1 4 2].
type Version []uint64

// ParseVersion parses dotted decimal numbers (at most 8 of them). Numbers
// compare as numbers: "20261203.093015" (a build time) is 20261203.93015.
func ParseVersion(s string) (Version, error) {
	parts := strings.Split(s, ".")
	if s == "" || len(parts) > 8 {
		return nil, fmt.Errorf("version %q: want 1 to 8 dotted numbers", s)
	}
	v := make(Version, len(parts))
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 64)
		if err != nil || p[0] == '+' {
			return nil, fmt.Errorf("version %q: %q is not a number", s, p)
		}
		v[i] = n
	}
	return v, nil
}

// Compare returns -1, 0 or +1 as v is older than, the same as or newer
// than w; missing trailing numbers count as 0 ("1.2" == "1.2.0").
func (v Version) Compare(w Version) int {
	for i := range max(len(v), len(w)) {
		a, b := at(v, i), at(w, i)
		switch {
		case a < b:
			return -1
		case a > b:
			return +1
		}
	}
	return 0
}

func at(v Version, i int) uint64 {
	if i < len(v) {
		return v[i]
	}
	return 0
}

func (v Version) String() string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.FormatUint(n, 10)
	}
	return strings.Join(s, ".")
}
