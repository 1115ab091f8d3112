package usb

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// FSTypes are the file systems KernelMounter tries, in order, with their
// mount options. vfat gets "utf8" and never "iocharset=": gokrazy's
// kernels lack NLS_UTF8, so iocharset=utf8 fails the mount.
var FSTypes = []struct{ Type, Options string }{
	{"vfat", "utf8,shortname=mixed"},
	{"exfat", ""},
	{"ext4", ""},
}

// mountFlags: read-only, and nothing on the stick can become a device
// node, a set-uid program or an executable.
const mountFlags = unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC

// KernelMounter mounts devices with mount(2). It needs CAP_SYS_ADMIN (root
// on gokrazy).
type KernelMounter struct {
	// Dir is where mount points are made, one private (0700) directory per
	// mount; it is created if missing. gokrazy mounts a tmpfs on /tmp.
	Dir string
}

// Mount mounts dev.DevPath read-only, trying each of FSTypes.
func (k KernelMounter) Mount(dev Device) (Medium, error) {
	if err := os.MkdirAll(k.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("usb: mount %s: %w", dev.Name, err)
	}
	dir, err := os.MkdirTemp(k.Dir, dev.Name+"-")
	if err != nil {
		return nil, fmt.Errorf("usb: mount %s: %w", dev.Name, err)
	}
	var errs []error
	for _, t := range FSTypes {
		err := unix.Mount(dev.DevPath, dir, t.Type, mountFlags, t.Options)
		if err == nil {
			m := &kernelMedium{dev: dev.DevPath, dir: dir, fstype: t.Type, options: t.Options}
			if m.root, err = os.OpenRoot(dir); err != nil {
				m.unmount()
				return nil, fmt.Errorf("usb: mount %s: %w", dev.Name, err)
			}
			return m, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", t.Type, err))
	}
	os.Remove(dir)
	return nil, fmt.Errorf("usb: mount %s: no usable file system: %w", dev.DevPath, joined(errs))
}

type kernelMedium struct {
	dev, dir, fstype, options string
	root                      *os.Root // confines every access to the mount, links included
}

func (m *kernelMedium) FS() fs.FS { return m.root.FS() }

func (m *kernelMedium) remount(flags uintptr) error {
	return unix.Mount(m.dev, m.dir, m.fstype, unix.MS_REMOUNT|flags, m.options)
}

func (m *kernelMedium) WriteFile(name string, data []byte) (err error) {
	if !fs.ValidPath(name) || name == "." {
		return fmt.Errorf("usb: write %s: invalid path", name)
	}
	if err := m.remount(unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC); err != nil {
		return fmt.Errorf("usb: write %s: remount read-write: %w", name, err)
	}
	defer func() {
		if rerr := m.remount(mountFlags); rerr != nil && err == nil {
			err = fmt.Errorf("usb: write %s: remount read-only: %w", name, rerr)
		}
	}()
	if err := m.write(name, data); err != nil {
		return fmt.Errorf("usb: write %s: %w", name, err)
	}
	return nil
}

// write replaces name through a temporary file, fsyncing the file and then
// its directory.
func (m *kernelMedium) write(name string, data []byte) error {
	tmp := name + ".tmp"
	f, err := m.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = m.root.Rename(tmp, name)
	}
	if err != nil {
		m.root.Remove(tmp)
		return err
	}
	d, err := m.root.Open(path.Dir(name))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func (m *kernelMedium) Close() error {
	var errs []error
	if d, err := os.Open(m.dir); err == nil {
		if err := unix.Syncfs(int(d.Fd())); err != nil {
			errs = append(errs, fmt.Errorf("sync: %w", err))
		}
		d.Close()
	}
	m.root.Close()
	if err := m.unmount(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("usb: close %s: %w", m.dev, err)
	}
	return nil
}

// unmount unmounts, lazily if something still holds the mount (a pulled
// stick must not leave the mount point stuck), and removes the mount point.
func (m *kernelMedium) unmount() error {
	err := unix.Unmount(m.dir, 0)
	if errors.Is(err, unix.EBUSY) {
		err = unix.Unmount(m.dir, unix.MNT_DETACH)
	}
	if err != nil {
		return fmt.Errorf("unmount %s: %w", m.dir, err)
	}
	return os.Remove(filepath.Clean(m.dir))
}

// joined is errors.Join on one line: "vfat: ...; exfat: ...; ext4: ...".
type joined []error

func (j joined) Error() string {
	s := make([]string, len(j))
	for i, e := range j {
		s[i] = e.Error()
	}
	return strings.Join(s, "; ")
}

func (j joined) Unwrap() []error { return j }
