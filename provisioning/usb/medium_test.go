package usb_test

import (
	"bytes"
	"errors"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"

	"edgebroker/provisioning/usb"
)

// mapMedium is a Medium over an fstest.MapFS; lie, if set, replaces the
// size every Stat reports, and read counts the bytes handed out.
type mapMedium struct {
	fsys fstest.MapFS
	lie  int64
	read int64
}

func (m *mapMedium) FS() fs.FS                         { return m }
func (m *mapMedium) WriteFile(string, []byte) error    { return errors.New("read-only") }
func (m *mapMedium) Close() error                      { return nil }
func (m *mapMedium) Open(name string) (fs.File, error) { return m.open(name) }

func (m *mapMedium) open(name string) (fs.File, error) {
	f, err := m.fsys.Open(name)
	if err != nil {
		return nil, err
	}
	return &countingFile{File: f, m: m}, nil
}

type countingFile struct {
	fs.File
	m *mapMedium
}

func (f *countingFile) Read(b []byte) (int, error) {
	n, err := f.File.Read(b)
	f.m.read += int64(n)
	return n, err
}

func (f *countingFile) Stat() (fs.FileInfo, error) {
	info, err := f.File.Stat()
	if err != nil || f.m.lie == 0 {
		return info, err
	}
	return lyingInfo{info, f.m.lie}, nil
}

type lyingInfo struct {
	fs.FileInfo
	size int64
}

func (l lyingInfo) Size() int64 { return l.size }

func TestReadFile(t *testing.T) {
	data := bytes.Repeat([]byte("x"), 1000)
	files := fstest.MapFS{
		"bundle.ebb": {Data: data},
		"empty":      {Data: nil},
		"dir/a":      {Data: []byte("a")},
	}
	for _, tt := range []struct {
		name     string
		file     string
		max      int64
		lie      int64
		want     []byte
		wantErr  string
		tooLarge bool
		notExist bool
		maxRead  int64 // bytes the medium may hand out (0: no check)
	}{
		{name: "fits", file: "bundle.ebb", max: 4096, want: data},
		{name: "exactly the limit", file: "bundle.ebb", max: 1000, want: data},
		{name: "one over", file: "bundle.ebb", max: 999, tooLarge: true, maxRead: 0},
		{name: "empty", file: "empty", max: 0, want: []byte{}},
		{name: "missing", file: "nope", max: 10, notExist: true},
		{name: "directory", file: "dir", max: 10, wantErr: "is a directory"},
		{name: "negative limit", file: "bundle.ebb", max: -1, wantErr: "negative limit"},
		{name: "invalid path", file: "../x", max: 10, wantErr: "invalid"},
		// The directory entry claims 10 bytes; the file goes on. ReadFile
		// stops after max+1 bytes instead of trusting it.
		{name: "size lies", file: "bundle.ebb", max: 100, lie: 10, tooLarge: true, maxRead: 101},
		// Claims more than is there: short read is fine, content is what
		// was read (a truncated bundle then fails its hash check).
		{name: "size lies high", file: "dir/a", max: 100, lie: 50, want: []byte("a")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := &mapMedium{fsys: files, lie: tt.lie}
			got, err := usb.ReadFile(m, tt.file, tt.max)
			switch {
			case tt.tooLarge:
				if !errors.Is(err, usb.ErrTooLarge) {
					t.Errorf("got %v, want ErrTooLarge", err)
				}
			case tt.notExist:
				if !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("got %v, want fs.ErrNotExist", err)
				}
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("got %v, want an error containing %q", err, tt.wantErr)
				}
			default:
				if err != nil || !bytes.Equal(got, tt.want) {
					t.Errorf("got %q, %v; want %q", got, err, tt.want)
				}
			}
			if err != nil && !strings.Contains(err.Error(), tt.file) {
				t.Errorf("error %q does not name the file %q", err, tt.file)
			}
			if tt.maxRead > 0 && m.read > tt.maxRead {
				t.Errorf("read %d bytes from the medium, want at most %d", m.read, tt.maxRead)
			}
		})
	}
}
