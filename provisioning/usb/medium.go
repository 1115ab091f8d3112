package usb

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
)

// Mounter makes a Device's files readable.
type Mounter interface {
	// Mount gives read-only access to the file system on dev. The caller
	// must Close the Medium.
	Mount(dev Device) (Medium, error)
}

// Medium is a mounted stick.
//
// If the stick is pulled while it is mounted, reads and writes return I/O
// errors; nothing is retried and nothing else is affected.
type Medium interface {
	// FS gives the files of the stick, read-only. Paths are fs.FS paths
	// ("bundle.ebb", "dir/file"); links never lead outside the stick.
	FS() fs.FS

	// WriteFile writes one file (the provisioning report) durably: it
	// makes the medium writable for the moment of the write, replaces
	// name with data (a reader sees the old or the new content, never a
	// torn one, on file systems with atomic rename) and makes it read-only
	// again. name is an fs.FS path whose directory must exist.
	WriteFile(name string, data []byte) error

	// Close flushes and unmounts the medium. It is safe to pull the
	// stick afterwards.
	Close() error
}

// ErrTooLarge is returned by ReadFile for a file longer than its limit.
var ErrTooLarge = errors.New("file too large")

// ReadFile reads a whole file from m. It refuses a name that is not a
// valid fs.FS path ("../x", "/x"), and a file longer than max bytes (with
// an error wrapping ErrTooLarge) without reading more than max+1 bytes of
// it, whatever its directory entry claims. Other errors (an I/O error when
// the stick was pulled) are returned wrapped with the name.
func ReadFile(m Medium, name string, max int64) ([]byte, error) {
	if max < 0 {
		return nil, fmt.Errorf("usb: read %s: negative limit %d", name, max)
	}
	if !fs.ValidPath(name) {
		return nil, fmt.Errorf("usb: read %s: invalid path: %w", name, fs.ErrInvalid)
	}
	max = min(max, math.MaxInt64-1)
	f, err := m.FS().Open(name)
	if err != nil {
		return nil, fmt.Errorf("usb: read %s: %w", name, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("usb: read %s: %w", name, err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("usb: read %s: is a directory", name)
	}
	if st.Size() > max {
		return nil, fmt.Errorf("usb: read %s: %d bytes, limit %d: %w", name, st.Size(), max, ErrTooLarge)
	}
	b := make([]byte, 0, st.Size()+1) // Size() <= max: bounded
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		end := min(int64(cap(b)), max+1)
		n, err := f.Read(b[len(b):end])
		b = b[:len(b)+n]
		if int64(len(b)) > max {
			return nil, fmt.Errorf("usb: read %s: more than %d bytes: %w", name, max, ErrTooLarge)
		}
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return nil, fmt.Errorf("usb: read %s: %w", name, err)
		}
	}
}
