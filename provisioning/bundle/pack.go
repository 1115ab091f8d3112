package bundle

import (
	"archive/tar"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"
)

// PackOptions say how Pack signs a bundle.
type PackOptions struct {
	Key     ed25519.PrivateKey // the signing key (required)
	Serial  uint64             // required, 1..MaxSerial; must exceed the last serial the device applied
	Created time.Time          // zero: now
	Expires time.Time          // required, after Created
	Device  *Device            // nil: any device
	Enrol   []ed25519.PublicKey
	Retire  []ed25519.PublicKey
	Limits  Limits // zero fields: DefaultLimits
}

// Pack writes a signed bundle of every regular file in fsys to w and
// returns its manifest. Hidden files and folders (".git", ".DS_Store") are
// left out; a symbolic link or other special file is an error, as is a
// folder that exceeds the limits Open would apply.
func Pack(w io.Writer, fsys fs.FS, opts PackOptions) (*Manifest, error) {
	lim := opts.Limits.orDefault()
	if opts.Created.IsZero() {
		opts.Created = time.Now()
	}
	switch {
	case len(opts.Key) != ed25519.PrivateKeySize:
		return nil, errors.New("bundle: pack: no ed25519 signing key")
	case opts.Serial == 0:
		return nil, errors.New("bundle: pack: serial must be at least 1")
	case opts.Serial > MaxSerial:
		return nil, fmt.Errorf("bundle: pack: serial %d is above %d (2^53), the largest a device accepts", opts.Serial, uint64(MaxSerial))
	case !opts.Expires.After(opts.Created):
		return nil, fmt.Errorf("bundle: pack: expiry %s is not after creation %s", opts.Expires.Format(time.RFC3339), opts.Created.Format(time.RFC3339))
	}
	files, data, err := collect(fsys, lim)
	if err != nil {
		return nil, err
	}
	m := &Manifest{
		Format:  FormatVersion,
		Serial:  opts.Serial,
		Created: opts.Created.UTC().Truncate(time.Second),
		Expires: opts.Expires.UTC().Truncate(time.Second),
		Device:  opts.Device,
		KeyID:   KeyID(opts.Key.Public().(ed25519.PublicKey)),
		Files:   files,
		Enrol:   opts.Enrol,
		Retire:  opts.Retire,
	}
	if m.Device != nil && *m.Device == (Device{}) {
		m.Device = nil
	}
	if err := m.check(lim); err != nil {
		return nil, fmt.Errorf("bundle: pack: %w", err)
	}
	raw, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("bundle: pack: %w", err)
	}
	raw = append(raw, '\n')
	tw := tar.NewWriter(w)
	add := func(name string, b []byte) error {
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(b)), Mode: 0o644,
			ModTime: m.Created, Format: tar.FormatUSTAR}
		if len(name) > 100 {
			hdr.Format = tar.FormatPAX // long names
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	if err := add(manifestName, raw); err != nil {
		return nil, fmt.Errorf("bundle: pack: %w", err)
	}
	if err := add(sigName, ed25519.Sign(opts.Key, raw)); err != nil {
		return nil, fmt.Errorf("bundle: pack: %w", err)
	}
	for _, f := range files {
		if err := add(configDir+f.Path, data[f.Path]); err != nil {
			return nil, fmt.Errorf("bundle: pack: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("bundle: pack: %w", err)
	}
	return m, nil
}

// collect reads every regular, non-hidden file of fsys (in lexical order,
// as fs.WalkDir walks) within the limits.
func collect(fsys fs.FS, lim Limits) ([]File, map[string][]byte, error) {
	var files []File
	data := map[string][]byte{}
	var total int64
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if name == "." {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		switch {
		case d.IsDir():
			return nil
		case !d.Type().IsRegular():
			return fmt.Errorf("%w: %s is a %s", ErrFileType, name, typeName(d.Type()))
		}
		if len(files) == lim.MaxFiles {
			return fmt.Errorf("%w: more than %d files", ErrOversize, lim.MaxFiles)
		}
		b, err := readLimited(fsys, name, lim.MaxFileSize)
		if err != nil {
			return err
		}
		if total += int64(len(b)); total > lim.MaxTotal {
			return fmt.Errorf("%w: files add up to more than %d bytes", ErrOversize, lim.MaxTotal)
		}
		sum := sha256.Sum256(b)
		files = append(files, File{Path: name, Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:])})
		data[name] = b
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("bundle: pack: %w", err)
	}
	if len(files) == 0 {
		return nil, nil, errors.New("bundle: pack: no files to pack")
	}
	return files, data, nil
}

func readLimited(fsys fs.FS, name string, max int64) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, io.LimitReader(f, max+1)); err != nil {
		return nil, err
	}
	if int64(buf.Len()) > max {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrOversize, name, max)
	}
	return buf.Bytes(), nil
}

func typeName(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	case m&fs.ModeDevice != 0:
		return "device"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	}
	return "special file"
}
