package bundle

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
)

// Bundle is an opened bundle: its manifest, signature and files, all in
// memory (bounded by the Limits it was opened with).
type Bundle struct {
	m     Manifest
	raw   []byte // manifest.json exactly as signed
	sig   []byte
	files *memFS
}

// Manifest returns the bundle's manifest. The caller must not modify it.
func (b *Bundle) Manifest() *Manifest { return &b.m }

// RawManifest returns manifest.json exactly as signed.
func (b *Bundle) RawManifest() []byte { return b.raw }

// FS returns the configuration folder. Its files are exactly the manifest's.
func (b *Bundle) FS() fs.FS { return b.files }

// Open reads a bundle from r and checks its structure: the manifest (format
// version, paths, limits), that the archive holds exactly the manifest's
// files as regular files with the listed sizes and hashes, and that it is
// complete. It reads at most about lim.MaxTotal bytes plus archive overhead,
// rejecting an oversize file from its header without reading it. Open does
// not check the signature: call Verify. Zero fields of lim take their
// DefaultLimits values.
func Open(r io.Reader, lim Limits) (*Bundle, error) {
	lim = lim.orDefault()
	// Archive overhead: a header, a possible PAX header and padding per entry.
	maxStream := lim.MaxTotal + maxManifest + 64 + int64(2*lim.MaxFiles+8)*4096
	cr := &countReader{r: io.LimitReader(r, maxStream+1)}
	tr := tar.NewReader(cr)
	b := new(Bundle)
	o := opener{b: b, tr: tr, cr: cr, lim: lim, max: maxStream}
	if err := o.read(); err != nil {
		return nil, err
	}
	return b, nil
}

type opener struct {
	b   *Bundle
	tr  *tar.Reader
	cr  *countReader
	lim Limits
	max int64
}

func (o *opener) read() error {
	raw, err := o.special(manifestName, maxManifest)
	if err != nil {
		return err
	}
	if err := o.b.parseManifest(raw, o.lim); err != nil {
		return err
	}
	if o.b.sig, err = o.special(sigName, 64); err != nil {
		return err
	}
	if len(o.b.sig) != 64 {
		return fmt.Errorf("%w: %s is %d bytes, want 64", ErrFormat, sigName, len(o.b.sig))
	}
	want := map[string]File{}
	for _, f := range o.b.m.Files {
		want[f.Path] = f
	}
	o.b.files = newMemFS()
	for {
		before := o.cr.n
		hdr, err := o.next()
		if err == io.EOF {
			// tar reads the two zero blocks of the end marker before
			// io.EOF; a stream cut at an entry boundary has none.
			if o.cr.n-before < 1024 {
				return fmt.Errorf("%w: the archive ends without its end marker", ErrTruncated)
			}
			if err := o.trailer(); err != nil {
				return err
			}
			break
		}
		if err != nil {
			return err
		}
		if err := o.entry(hdr, want); err != nil {
			return err
		}
	}
	for _, f := range o.b.m.Files {
		if _, ok := o.b.files.files[f.Path]; !ok {
			return fmt.Errorf("%w: %s", ErrMissing, f.Path)
		}
	}
	return nil
}

// recordSize is the unit tar writers pad an archive to (20 blocks).
const recordSize = 10240

// trailer checks what follows the end marker: at most the zeros that pad
// the archive to a whole record, then the end of the file. A bundle with
// anything else appended (data a signature check would never see) is
// rejected.
func (o *opener) trailer() error {
	end := o.cr.n
	pad := (recordSize - end%recordSize) % recordSize
	buf := make([]byte, pad+1)
	n, err := io.ReadFull(o.cr, buf)
	if err != nil && err != io.EOF && !errors.Is(err, io.ErrUnexpectedEOF) {
		return o.readErr(err)
	}
	if i := slices.IndexFunc(buf[:n], func(c byte) bool { return c != 0 }); i >= 0 {
		return fmt.Errorf("%w: data after the archive's end marker (a byte 0x%02x at offset %d)", ErrFormat, buf[i], end+int64(i))
	}
	if int64(n) > pad {
		return fmt.Errorf("%w: data after the archive's end marker and its padding (offset %d)", ErrFormat, end+pad)
	}
	return nil
}

// next reads the next header, turning read errors into bundle errors.
func (o *opener) next() (*tar.Header, error) {
	hdr, err := o.tr.Next()
	if errors.Is(err, tar.ErrInsecurePath) {
		return nil, fmt.Errorf("%w: %q", ErrPath, hdr.Name)
	}
	if err != nil && err != io.EOF {
		return nil, o.readErr(err)
	}
	return hdr, err
}

func (o *opener) readErr(err error) error {
	switch {
	case o.cr.n > o.max:
		return fmt.Errorf("%w: the archive is longer than %d bytes", ErrOversize, o.max)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: the archive ends in the middle of an entry", ErrTruncated)
	case errors.Is(err, tar.ErrHeader):
		return fmt.Errorf("%w: %v", ErrFormat, err)
	}
	return fmt.Errorf("bundle: read: %w", err)
}

// special reads the entry that must come next: manifest.json or manifest.sig.
func (o *opener) special(name string, max int64) ([]byte, error) {
	before := o.cr.n
	hdr, err := o.next()
	switch {
	case err == io.EOF && o.cr.n == 0:
		return nil, fmt.Errorf("%w: empty file", ErrFormat)
	case err == io.EOF && o.cr.n-before >= 1024:
		return nil, fmt.Errorf("%w: no %s", ErrFormat, name)
	case err == io.EOF:
		return nil, fmt.Errorf("%w: the archive ends before %s", ErrTruncated, name)
	}
	if err != nil && o.cr.n < 512 {
		return nil, fmt.Errorf("%w: %d bytes, shorter than an archive header", ErrFormat, o.cr.n)
	}
	if err != nil {
		return nil, err
	}
	switch {
	case hdr.Name != name:
		return nil, fmt.Errorf("%w: entry %q where %s should be", ErrFormat, hdr.Name, name)
	case !isRegular(hdr):
		return nil, fmt.Errorf("%w: %s", ErrFileType, name)
	case hdr.Size > max:
		return nil, fmt.Errorf("%w: %s is %d bytes, more than %d", ErrOversize, name, hdr.Size, max)
	}
	return o.data(hdr)
}

func (o *opener) data(hdr *tar.Header) ([]byte, error) {
	buf := make([]byte, hdr.Size)
	if n, err := io.ReadFull(o.tr, buf); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || err == io.EOF {
			if o.cr.n > o.max {
				return nil, fmt.Errorf("%w: the archive is longer than %d bytes", ErrOversize, o.max)
			}
			return nil, fmt.Errorf("%w: %s ends after %d of %d bytes", ErrTruncated, hdr.Name, n, hdr.Size)
		}
		return nil, o.readErr(err)
	}
	return buf, nil
}

// entry checks and reads one entry of the configuration folder.
func (o *opener) entry(hdr *tar.Header, want map[string]File) error {
	name, ok := strings.CutPrefix(hdr.Name, configDir)
	if !ok {
		return fmt.Errorf("%w: entry %q is outside %s", ErrPath, hdr.Name, configDir)
	}
	isDir := hdr.Typeflag == tar.TypeDir
	if isDir {
		name = strings.TrimSuffix(name, "/")
	}
	if err := checkPath(name); err != nil {
		return err
	}
	if !isDir && !isRegular(hdr) {
		return fmt.Errorf("%w: %s is a %s", ErrFileType, name, tarType(hdr))
	}
	if _, dup := o.b.files.files[name]; dup || o.b.files.isDir(name) && !isDir {
		return fmt.Errorf("%w: %s", ErrDuplicate, name)
	}
	if isDir {
		if _, ok := want[name]; ok {
			return fmt.Errorf("%w: %s is a file in the manifest and a folder in the archive", ErrDuplicate, name)
		}
		o.b.files.addDir(name)
		return nil
	}
	f, ok := want[name]
	switch {
	case !ok:
		return fmt.Errorf("%w: %s", ErrUnlisted, name)
	case hdr.Size > o.lim.MaxFileSize:
		return fmt.Errorf("%w: %s is %d bytes, more than %d", ErrOversize, name, hdr.Size, o.lim.MaxFileSize)
	case hdr.Size != f.Size:
		return fmt.Errorf("%w: %s is %d bytes, the manifest says %d", ErrHash, name, hdr.Size, f.Size)
	}
	data, err := o.data(hdr)
	if err != nil {
		return err
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != f.SHA256 {
		return fmt.Errorf("%w: %s has SHA-256 %x, the manifest says %s", ErrHash, name, sum, f.SHA256)
	}
	o.b.files.addFile(name, data)
	return nil
}

func isRegular(hdr *tar.Header) bool {
	return hdr.Typeflag == tar.TypeReg || hdr.Typeflag == tar.TypeRegA //lint:ignore SA1019 old writers
}

func tarType(hdr *tar.Header) string {
	switch hdr.Typeflag {
	case tar.TypeSymlink:
		return "symbolic link to " + hdr.Linkname
	case tar.TypeLink:
		return "hard link to " + hdr.Linkname
	case tar.TypeChar, tar.TypeBlock:
		return "device"
	case tar.TypeFifo:
		return "named pipe"
	}
	return fmt.Sprintf("special entry (type %q)", hdr.Typeflag)
}

// parseManifest decodes manifest.json strictly, checking the format
// version first so a newer format is reported as such.
func (b *Bundle) parseManifest(raw []byte, lim Limits) error {
	var v struct{ Format int }
	if err := json.Unmarshal(raw, &v); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrFormat, manifestName, err)
	}
	if v.Format != FormatVersion {
		return fmt.Errorf("%w: %d (this device reads format %d)", ErrVersion, v.Format, FormatVersion)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b.m); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrFormat, manifestName, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: %s: data after the manifest", ErrFormat, manifestName)
	}
	b.raw = raw
	return b.m.check(lim)
}

// check checks a manifest against the rules and limits.
func (m *Manifest) check(lim Limits) error {
	switch {
	case m.Format != FormatVersion:
		return fmt.Errorf("%w: %d (this device reads format %d)", ErrVersion, m.Format, FormatVersion)
	case m.Serial == 0:
		return fmt.Errorf("%w: serial 0 (serials start at 1)", ErrFormat)
	case m.Serial > MaxSerial:
		return fmt.Errorf("%w: serial %d is above %d (2^53), the largest a bundle may carry", ErrFormat, m.Serial, uint64(MaxSerial))
	case m.Created.IsZero() || !m.Expires.After(m.Created):
		return fmt.Errorf("%w: expires %v is not after created %v", ErrFormat, m.Expires, m.Created)
	case len(m.KeyID) != 16 || !isHex(m.KeyID):
		return fmt.Errorf("%w: key id %q", ErrFormat, m.KeyID)
	case len(m.Files) == 0:
		return fmt.Errorf("%w: no files", ErrFormat)
	case len(m.Files) > lim.MaxFiles:
		return fmt.Errorf("%w: %d files, more than %d", ErrOversize, len(m.Files), lim.MaxFiles)
	}
	seen := map[string]bool{}
	var total int64
	for _, f := range m.Files {
		if err := checkPath(f.Path); err != nil {
			return err
		}
		if seen[f.Path] {
			return fmt.Errorf("%w: %s", ErrDuplicate, f.Path)
		}
		seen[f.Path] = true
		switch {
		case f.Size < 0 || f.Size > lim.MaxFileSize:
			return fmt.Errorf("%w: %s is %d bytes, more than %d", ErrOversize, f.Path, f.Size, lim.MaxFileSize)
		case len(f.SHA256) != 64 || !isHex(f.SHA256):
			return fmt.Errorf("%w: %s: SHA-256 %q", ErrFormat, f.Path, f.SHA256)
		}
		if total += f.Size; total > lim.MaxTotal {
			return fmt.Errorf("%w: files add up to more than %d bytes", ErrOversize, lim.MaxTotal)
		}
	}
	for _, f := range m.Files {
		for d := f.Path; strings.Contains(d, "/"); {
			d = d[:strings.LastIndexByte(d, '/')]
			if seen[d] {
				return fmt.Errorf("%w: %s is a file and a folder (of %s)", ErrDuplicate, d, f.Path)
			}
		}
	}
	return m.checkKeys()
}

func (m *Manifest) checkKeys() error {
	for _, k := range m.Enrol {
		if len(k) != 32 {
			return fmt.Errorf("%w: enrol: a key of %d bytes, want 32", ErrKeys, len(k))
		}
		if TrustSet(m.Retire).Contains(k) {
			return fmt.Errorf("%w: key %s is both enrolled and retired", ErrKeys, KeyID(k))
		}
	}
	for _, k := range m.Retire {
		if len(k) != 32 {
			return fmt.Errorf("%w: retire: a key of %d bytes, want 32", ErrKeys, len(k))
		}
	}
	return nil
}

// checkPath accepts a relative slash-separated path without ".", ".."
// or empty elements, backslashes or control characters.
func checkPath(p string) error {
	why := ""
	switch {
	case p == "" || p == ".":
		why = "empty"
	case strings.HasPrefix(p, "/"):
		why = "absolute"
	case p == ".." || strings.HasPrefix(p, "../") || strings.Contains(p, "/../") || strings.HasSuffix(p, "/.."):
		why = "climbs out with .."
	case len(p) > maxPath:
		why = fmt.Sprintf("longer than %d bytes", maxPath)
	case strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }):
		why = "backslash or control character"
	case !fs.ValidPath(p):
		why = "not a clean relative path"
	}
	for _, e := range strings.Split(p, "/") {
		if why == "" && len(e) > maxElem {
			why = fmt.Sprintf("an element longer than %d bytes", maxElem)
		}
	}
	if why != "" {
		return fmt.Errorf("%w: %q: %s", ErrPath, p, why)
	}
	return nil
}

func isHex(s string) bool {
	return !strings.ContainsFunc(s, func(r rune) bool { return (r < '0' || r > '9') && (r < 'a' || r > 'f') })
}

// countReader counts the bytes read through it.
type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
