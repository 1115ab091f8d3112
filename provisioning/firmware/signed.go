package firmware

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// Sign returns the header of an update (magic, manifest, signature) for
// m signed with key; m.Format and m.KeyID are set from FormatVersion and
// key. The file systems follow the header: root, then boot.
func Sign(m Manifest, key ed25519.PrivateKey) ([]byte, error) {
	m.Format = FormatVersion
	m.KeyID = KeyID(key.Public().(ed25519.PublicKey))
	if err := m.check(); err != nil {
		return nil, err
	}
	raw, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("firmware: sign: %w", err)
	}
	if len(raw) > MaxManifest {
		return nil, fmt.Errorf("firmware: sign: manifest is %d bytes, at most %d", len(raw), MaxManifest)
	}
	h := make([]byte, 0, headerFixed+len(raw)+ed25519.SignatureSize)
	h = append(h, Magic...)
	h = binary.BigEndian.AppendUint32(h, uint32(len(raw)))
	h = append(h, raw...)
	return append(h, ed25519.Sign(key, raw)...), nil
}

// check validates the manifest's own fields (not its signature).
func (m *Manifest) check() error {
	if m.Format != FormatVersion {
		return refuse(ReasonFormat, "manifest format %d, this device reads %d", m.Format, FormatVersion)
	}
	if _, err := ParseVersion(m.Version); err != nil {
		return refuse(ReasonFormat, "%v", err)
	}
	if m.Board == "" {
		return refuse(ReasonFormat, "no board")
	}
	if m.AllowDowngrade && m.Expires.IsZero() {
		return refuse(ReasonFormat, "allowDowngrade without expires")
	}
	for _, p := range []struct {
		name string
		p    Part
	}{{"root", m.Root}, {"boot", m.Boot}} {
		if b, err := hex.DecodeString(p.p.SHA256); err != nil || len(b) != sha256.Size {
			return refuse(ReasonFormat, "%s: sha256 %q is not 64 hex digits", p.name, p.p.SHA256)
		}
		if p.p.Size <= 0 {
			return refuse(ReasonFormat, "%s: size %d", p.name, p.p.Size)
		}
	}
	return nil
}

// Signed is an update's header as read by ReadHeader: a parsed manifest
// with the exact bytes its signature covers. It is immutable.
type Signed struct {
	Manifest Manifest
	raw      []byte // the manifest's JSON as signed
	sig      []byte // ed25519 signature over raw
}

// Len is the header's length in the update file.
func (s *Signed) Len() int64 { return int64(headerFixed + len(s.raw) + len(s.sig)) }

// ReadHeader reads an update's header from r, reading no more than the
// header (at most MaxManifest plus 76 bytes), and parses the manifest. It
// checks the format, not the signature: see Verify.
func ReadHeader(r io.Reader) (*Signed, error) {
	var fixed [headerFixed]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return nil, refuse(ReasonFormat, "reading the header: %v", err)
	}
	if string(fixed[:len(Magic)]) != Magic {
		return nil, refuse(ReasonFormat, "not an edgebroker firmware update (magic %q)", fixed[:len(Magic)])
	}
	n := binary.BigEndian.Uint32(fixed[len(Magic):])
	if n == 0 || n > MaxManifest {
		return nil, refuse(ReasonFormat, "manifest length %d, want 1 to %d", n, MaxManifest)
	}
	buf := make([]byte, int(n)+ed25519.SignatureSize)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, refuse(ReasonTruncated, "reading the manifest and signature: %v", err)
	}
	s := &Signed{raw: buf[:n], sig: buf[n:]}
	dec := json.NewDecoder(bytes.NewReader(s.raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s.Manifest); err != nil {
		return nil, refuse(ReasonFormat, "manifest: %v", err)
	}
	if err := s.Manifest.check(); err != nil {
		return nil, err
	}
	return s, nil
}

// Policy is what a device accepts.
type Policy struct {
	Trust   []ed25519.PublicKey // keys whose signatures it accepts
	Board   string              // its board, as images name their target
	Running string              // the version it runs
	Now     time.Time           // for a downgrade's expiry
	// MaxRoot and MaxBoot are the sizes of its partitions; 0: no limit.
	MaxRoot, MaxBoot int64
}

// Verify decides whether a device with policy p may install the update:
// signed by a trusted key with a valid signature, for p.Board, newer than
// p.Running (or signed with allowDowngrade and not expired), and with file
// systems that fit the partitions. It returns the first refusal, checking
// the signature before anything the manifest says.
func (s *Signed) Verify(p Policy) error {
	m := &s.Manifest
	var pub ed25519.PublicKey
	for _, k := range p.Trust {
		if KeyID(k) == m.KeyID {
			pub = k
		}
	}
	if pub == nil {
		return refuse(ReasonUntrusted, "signed by key %s, the device trusts %v", m.KeyID, keyIDs(p.Trust))
	}
	if !ed25519.Verify(pub, s.raw, s.sig) {
		return refuse(ReasonSignature, "the manifest does not match its signature by key %s", m.KeyID)
	}
	if m.Board != p.Board {
		return refuse(ReasonBoard, "the update is for board %q, this device is %q", m.Board, p.Board)
	}
	if err := s.checkVersion(p); err != nil {
		return err
	}
	if p.MaxRoot > 0 && m.Root.Size > p.MaxRoot {
		return refuse(ReasonOversize, "root file system of %d bytes, the partition holds %d", m.Root.Size, p.MaxRoot)
	}
	if p.MaxBoot > 0 && m.Boot.Size > p.MaxBoot {
		return refuse(ReasonOversize, "boot file system of %d bytes, the partition holds %d", m.Boot.Size, p.MaxBoot)
	}
	return nil
}

// checkVersion refuses an update that is not newer than p.Running, unless
// it is a signed downgrade that has not expired.
func (s *Signed) checkVersion(p Policy) error {
	m := &s.Manifest
	newV, _ := ParseVersion(m.Version) // checked by ReadHeader
	run, err := ParseVersion(p.Running)
	if err != nil {
		return fmt.Errorf("firmware: the running version: %w", err)
	}
	c := newV.Compare(run)
	switch {
	case c > 0:
		return nil
	case m.AllowDowngrade && !p.Now.Before(m.Expires):
		return refuse(ReasonExpired, "version %s allows a downgrade until %s, the device's clock says %s",
			m.Version, m.Expires.UTC().Format(time.RFC3339), p.Now.UTC().Format(time.RFC3339))
	case m.AllowDowngrade:
		return nil
	case c == 0:
		return refuse(ReasonNotNewer, "version %s is the running version", m.Version)
	default:
		return refuse(ReasonDowngrade, "version %s is older than the running %s, and the update does not allow a downgrade", m.Version, p.Running)
	}
}

func keyIDs(keys []ed25519.PublicKey) []string {
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = KeyID(k)
	}
	return ids
}

// CopyPart copies one file system described by part (name is "root" or
// "boot", for messages) from src to dst, reading exactly part.Size bytes
// and hashing them as they pass. It refuses with ReasonTruncated when src
// ends early, ReasonHash when the bytes differ from the signed SHA-256 and
// ReasonWrite when dst fails. dst has received the bytes in every case
// but a hash match: the caller must not use them unless CopyPart returns
// nil.
func CopyPart(dst io.Writer, src io.Reader, name string, part Part) error {
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(markWriter{dst}, h), io.LimitReader(src, part.Size))
	if err != nil {
		var we *writeError
		if errors.As(err, &we) {
			return refuse(ReasonWrite, "%s: %v", name, we.err)
		}
		return refuse(ReasonTruncated, "%s: after %d of %d bytes: %v", name, n, part.Size, err)
	}
	if n < part.Size {
		return refuse(ReasonTruncated, "%s: %d of %d bytes", name, n, part.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != part.SHA256 {
		return refuse(ReasonHash, "%s: SHA-256 %s, the manifest signs %s", name, got, part.SHA256)
	}
	return nil
}

// writeError marks an error of CopyPart's destination, to tell it from
// the source's.
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }

// markWriter wraps the errors of w in *writeError.
type markWriter struct{ w io.Writer }

func (m markWriter) Write(p []byte) (int, error) {
	n, err := m.w.Write(p)
	if err != nil {
		err = &writeError{err}
	}
	return n, err
}

// ExpectEnd refuses with ReasonTrailing when src has more bytes: an
// update ends with its boot file system.
func ExpectEnd(src io.Reader) error {
	var b [1]byte
	n, err := io.ReadFull(src, b[:])
	if n > 0 {
		return refuse(ReasonTrailing, "bytes after the boot file system")
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return refuse(ReasonTruncated, "after the boot file system: %v", err)
	}
	return nil
}
