package usbtest

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
	"sync"
	"syscall"
	"time"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem"

	"edgebroker/provisioning/usb"
)

// Mounter implements usb.Mounter over disk image files, in user space.
// Its zero value is ready to use.
type Mounter struct {
	// Images maps a Device.Disk ("sda") to a whole-disk image file. A
	// device whose disk is not listed is opened at its DevPath, which
	// must then be a whole-disk image (see ImageDevice).
	Images map[string]string

	// PullAfter, if > 0, makes every Medium this Mounter returns behave
	// like a stick pulled out after that many bytes were read (PullAfter).
	PullAfter int64

	mu      sync.Mutex
	mounted int
	total   int
}

// Mounted reports how many media are mounted now (not yet closed) and how
// many were mounted in total.
func (m *Mounter) Mounted() (now, total int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mounted, m.total
}

// Mount opens the image behind dev and reads the FAT (or ext4) file system
// on partition dev.Partition (0: the whole image).
func (m *Mounter) Mount(dev usb.Device) (usb.Medium, error) {
	img := dev.DevPath
	if p, ok := m.Images[dev.Disk]; ok {
		img = p
	}
	d, err := diskfs.Open(img, diskfs.WithOpenMode(diskfs.ReadWrite), diskfs.WithSectorSize(diskfs.SectorSize512))
	if err != nil {
		return nil, fmt.Errorf("usbtest: mount %s: %w", dev.Name, err)
	}
	fsys, err := d.GetFilesystem(dev.Partition)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("usbtest: mount %s: no usable file system: %w", dev.Name, err)
	}
	switch fsys.Type() {
	case filesystem.TypeFat32, filesystem.TypeFat16, filesystem.TypeFat12, filesystem.TypeExt4:
	default:
		d.Close()
		return nil, fmt.Errorf("usbtest: mount %s: no usable file system (type %v)", dev.Name, fsys.Type())
	}
	m.mu.Lock()
	m.mounted++
	m.total++
	m.mu.Unlock()
	var med usb.Medium = &medium{mounter: m, disk: d, part: dev.Partition, fsys: fsys}
	if m.PullAfter > 0 {
		med = PullAfter(med, m.PullAfter)
	}
	return med, nil
}

// ReadFile reads name from partition 1 of the stick image at img, as a
// host that mounts the stick would: what a device wrote back to it. The
// image is mounted for the read only.
func ReadFile(img, name string) ([]byte, error) {
	med, err := new(Mounter).Mount(ImageDevice(img))
	if err != nil {
		return nil, err
	}
	defer med.Close()
	return fs.ReadFile(med.FS(), name)
}

// medium is a mounted image. Its FS is read-only; WriteFile writes into
// the image through go-diskfs.
type medium struct {
	mounter *Mounter
	mu      sync.Mutex // go-diskfs is not safe for concurrent use
	disk    *disk.Disk
	part    int
	fsys    filesystem.FileSystem
	closed  bool
}

func (m *medium) FS() fs.FS { return imageFS{m} }

func (m *medium) WriteFile(name string, data []byte) error {
	if !fs.ValidPath(name) || name == "." {
		return fmt.Errorf("usbtest: write %s: invalid path", name)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("usbtest: write %s: %w", name, fs.ErrClosed)
	}
	dir, base := path.Split(name)
	dir = path.Clean(dir)
	if dir != "." {
		real, err := m.lookup(dir)
		if err != nil {
			return fmt.Errorf("usbtest: write %s: %w", name, err)
		}
		dir = real
	}
	// FAT names are case-insensitive: replace an existing file under its
	// own spelling, as the kernel does.
	if real, err := m.lookup(path.Join(dir, base)); err == nil {
		name = real
		// An empty file has no cluster (see fixup), and go-diskfs cannot
		// grow such a file: replace it. (Its Remove frees no clusters, so
		// non-empty files are truncated in place instead.)
		if info, err := m.fsys.Stat(real); err == nil && info.Size() == 0 {
			if err := m.fsys.Remove(real); err != nil {
				return fmt.Errorf("usbtest: write %s: %w", name, err)
			}
		}
	} else {
		name = path.Join(dir, base)
	}
	if err := writeFAT(m.fsys, name, data); err != nil {
		return fmt.Errorf("usbtest: write %s: %w", name, err)
	}
	// Correct go-diskfs's on-disk quirks, then reread the file system so
	// its in-memory state matches the disk again.
	if err := fixup(m.fsys); err != nil {
		return fmt.Errorf("usbtest: write %s: fixup: %w", name, err)
	}
	fsys, err := m.disk.GetFilesystem(m.part)
	if err != nil {
		return fmt.Errorf("usbtest: write %s: reread: %w", name, err)
	}
	m.fsys = fsys
	return nil
}

func (m *medium) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	m.mounter.mu.Lock()
	m.mounter.mounted--
	m.mounter.mu.Unlock()
	return m.disk.Close()
}

// lookup resolves name component by component, matching names without
// regard to case as vfat does, and returns it spelled as on the medium.
// A missing component gives an error wrapping fs.ErrNotExist.
func (m *medium) lookup(name string) (string, error) {
	if name == "." {
		return ".", nil
	}
	cur := "."
	for _, c := range strings.Split(name, "/") {
		entries, err := m.fsys.ReadDir(cur)
		if err != nil {
			return "", fmt.Errorf("%s: %w", cur, err)
		}
		found := ""
		for _, e := range entries {
			if strings.EqualFold(e.Name(), c) {
				found = e.Name()
				break
			}
		}
		if found == "" {
			return "", fs.ErrNotExist
		}
		cur = path.Join(cur, found)
	}
	return cur, nil
}

// imageFS is a read-only fs.FS over a go-diskfs file system that behaves
// like os.DirFS on a mounted stick: fs.ErrNotExist for missing names,
// directories that list, reads that stop at the end of the file.
type imageFS struct{ m *medium }

func (f imageFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	m := f.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrClosed}
	}
	real, err := m.lookup(name)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	info, err := m.stat(real)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	if info.IsDir() {
		entries, err := m.fsys.ReadDir(real)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		for i, e := range entries {
			if e.IsDir() {
				entries[i] = dirEntry{e}
			}
		}
		return &dirFile{info: info, entries: entries}, nil
	}
	file, err := m.fsys.OpenFile(real, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return &imageFile{m: m, name: name, f: file, info: info}, nil
}

func (m *medium) stat(real string) (fs.FileInfo, error) {
	if real == "." {
		return rootInfo{}, nil
	}
	info, err := m.fsys.Stat(real)
	if err != nil {
		return nil, err
	}
	if info.IsDir() && !info.Mode().IsDir() {
		info = dirInfo{info} // go-diskfs leaves fs.ModeDir out of Mode()
	}
	return info, nil
}

type dirInfo struct{ fs.FileInfo }

type dirEntry struct{ fs.DirEntry }

func (d dirEntry) Type() fs.FileMode { return fs.ModeDir }
func (d dirEntry) Info() (fs.FileInfo, error) {
	info, err := d.DirEntry.Info()
	if err != nil {
		return nil, err
	}
	return dirInfo{info}, nil
}

func (d dirInfo) Mode() fs.FileMode { return d.FileInfo.Mode() | fs.ModeDir }

// imageFile reads a file, never asking go-diskfs for bytes past the end:
// go-diskfs v1.9.4 returns the rest of the last cluster as file content
// when a read starts mid-cluster and asks for more than is left (700-byte
// reads of a 1000-byte file give 1024 bytes).
type imageFile struct {
	m    *medium
	name string
	f    io.ReadCloser
	info fs.FileInfo
	off  int64
}

func (f *imageFile) Stat() (fs.FileInfo, error) { return f.info, nil }

func (f *imageFile) Read(b []byte) (int, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if f.m.closed {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: fs.ErrClosed}
	}
	left := f.info.Size() - f.off
	if left <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > left {
		b = b[:left]
	}
	if len(b) == 0 {
		return 0, nil
	}
	n, err := f.f.Read(b)
	f.off += int64(n)
	if errors.Is(err, io.EOF) && f.off < f.info.Size() {
		err = io.ErrUnexpectedEOF
	}
	if err != nil && !errors.Is(err, io.EOF) {
		err = &fs.PathError{Op: "read", Path: f.name, Err: err}
	}
	return n, err
}

func (f *imageFile) Close() error { return f.f.Close() }

type dirFile struct {
	info    fs.FileInfo
	entries []fs.DirEntry
	off     int
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.Name(), Err: errors.New("is a directory")}
}
func (d *dirFile) Close() error { return nil }

func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.entries[d.off:]
	if n <= 0 {
		d.off = len(d.entries)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	rest = rest[:min(n, len(rest))]
	d.off += len(rest)
	return rest, nil
}

// PullAfter wraps m so that it behaves like a stick pulled out once n
// bytes (counted over all files) have been read: the read that crosses n
// returns the bytes up to n, and every read, open and write after that
// fails with an I/O error (syscall.EIO), as the kernel reports it.
func PullAfter(m usb.Medium, n int64) usb.Medium {
	return &pulled{Medium: m, left: n}
}

type pulled struct {
	usb.Medium
	mu   sync.Mutex
	left int64
}

func (p *pulled) gone() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.left <= 0
}

// take returns how many of want bytes may still be read.
func (p *pulled) take(want int) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := min(int64(want), p.left)
	p.left -= n
	return int(n)
}

func (p *pulled) FS() fs.FS { return pulledFS{p} }

func (p *pulled) WriteFile(name string, data []byte) error {
	if p.gone() {
		return fmt.Errorf("usbtest: write %s: %w", name, syscall.EIO)
	}
	return p.Medium.WriteFile(name, data)
}

type pulledFS struct{ p *pulled }

func (f pulledFS) Open(name string) (fs.File, error) {
	if f.p.gone() {
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.EIO}
	}
	file, err := f.p.Medium.FS().Open(name)
	if err != nil {
		return nil, err
	}
	if d, ok := file.(fs.ReadDirFile); ok {
		return d, nil
	}
	return &pulledFile{File: file, p: f.p, name: name}, nil
}

type pulledFile struct {
	fs.File
	p    *pulled
	name string
}

func (f *pulledFile) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	allowed := f.p.take(len(b))
	if allowed == 0 {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: syscall.EIO}
	}
	n, err := f.File.Read(b[:allowed])
	if n < allowed {
		f.p.mu.Lock()
		f.p.left += int64(allowed - n) // give back what was not read
		f.p.mu.Unlock()
	}
	return n, err
}

type rootInfo struct{}

func (rootInfo) Name() string       { return "." }
func (rootInfo) Size() int64        { return 0 }
func (rootInfo) Mode() fs.FileMode  { return fs.ModeDir | 0o555 }
func (rootInfo) ModTime() time.Time { return time.Time{} }
func (rootInfo) IsDir() bool        { return true }
func (rootInfo) Sys() any           { return nil }
