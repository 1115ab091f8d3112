package bundle

import (
	"bytes"
	"io"
	"io/fs"
	"path"
	"slices"
	"time"
)

// memFS is the read-only fs.FS of a bundle's configuration folder.
type memFS struct {
	files map[string][]byte
	dirs  map[string][]string // folder → sorted names of its entries; "." is the root
}

func newMemFS() *memFS {
	return &memFS{files: map[string][]byte{}, dirs: map[string][]string{".": nil}}
}

func (m *memFS) isDir(name string) bool { _, ok := m.dirs[name]; return ok }

func (m *memFS) addFile(name string, data []byte) {
	m.files[name] = data
	m.link(name)
}

func (m *memFS) addDir(name string) {
	if !m.isDir(name) {
		m.dirs[name] = nil
		m.link(name)
	}
}

// link enters name in its parent folder, creating parents as needed.
func (m *memFS) link(name string) {
	parent := path.Dir(name)
	m.addDir(parent)
	base := path.Base(name)
	if i, found := slices.BinarySearch(m.dirs[parent], base); !found {
		m.dirs[parent] = slices.Insert(m.dirs[parent], i, base)
	}
}

func (m *memFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	if data, ok := m.files[name]; ok {
		return &memFile{info: m.info(name), r: bytes.NewReader(data)}, nil
	}
	if m.isDir(name) {
		return &memDir{info: m.info(name), fs: m, full: name}, nil
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

func (m *memFS) ReadFile(name string) ([]byte, error) {
	data, ok := m.files[name]
	if !ok {
		f, err := m.Open(name) // the right error for a folder or a bad name
		if err == nil {
			f.Close()
			err = &fs.PathError{Op: "read", Path: name, Err: fs.ErrInvalid}
		}
		return nil, err
	}
	return bytes.Clone(data), nil
}

func (m *memFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if !fs.ValidPath(name) || !m.isDir(name) {
		if _, ok := m.files[name]; ok {
			return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrInvalid}
		}
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
	}
	return m.entries(name), nil
}

func (m *memFS) entries(dir string) []fs.DirEntry {
	out := make([]fs.DirEntry, 0, len(m.dirs[dir]))
	for _, base := range m.dirs[dir] {
		out = append(out, fs.FileInfoToDirEntry(m.info(path.Join(dir, base))))
	}
	return out
}

func (m *memFS) info(name string) fileInfo {
	data, isFile := m.files[name]
	return fileInfo{name: path.Base(name), size: int64(len(data)), dir: !isFile}
}

// fileInfo describes a file or folder of a memFS.
type fileInfo struct {
	name string
	size int64
	dir  bool
}

func (i fileInfo) Name() string       { return i.name }
func (i fileInfo) Size() int64        { return i.size }
func (i fileInfo) ModTime() time.Time { return time.Time{} }
func (i fileInfo) IsDir() bool        { return i.dir }
func (i fileInfo) Sys() any           { return nil }
func (i fileInfo) Mode() fs.FileMode {
	if i.dir {
		return fs.ModeDir | 0o555
	}
	return 0o444
}

type memFile struct {
	info fileInfo
	r    *bytes.Reader
}

func (f *memFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *memFile) Read(p []byte) (int, error) { return f.r.Read(p) }
func (f *memFile) Close() error               { return nil }

// Seek and ReadAt make a memFile an io.ReadSeeker, as files of os.DirFS are.
func (f *memFile) Seek(off int64, whence int) (int64, error) { return f.r.Seek(off, whence) }
func (f *memFile) ReadAt(p []byte, off int64) (int, error)   { return f.r.ReadAt(p, off) }

type memDir struct {
	info fileInfo
	fs   *memFS
	full string        // path of the folder in fs
	next []fs.DirEntry // entries ReadDir has not returned yet
	read bool          // whether next was filled
}

func (d *memDir) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *memDir) Close() error               { return nil }
func (d *memDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.name, Err: fs.ErrInvalid}
}

func (d *memDir) ReadDir(n int) ([]fs.DirEntry, error) {
	if !d.read {
		d.read = true
		d.next = d.fs.entries(d.full)
	}
	if n <= 0 {
		out := d.next
		d.next = nil
		return out, nil
	}
	if len(d.next) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(d.next))
	out := d.next[:n:n]
	d.next = d.next[n:]
	return out, nil
}
