package build

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// mountPoints are the empty directories gokrazy mounts file systems on.
var mountPoints = []string{"dev", "etc", "lib", "mnt", "perm", "proc", "run", "sys", "tmp"}

// stageRoot lays out the root file system in dir: the programs (image path
// → host path), /etc, the kernel's modules and the mount points. Modes are
// set explicitly so that the host's umask does not leak into the image.
func stageRoot(c Config, dir string, programs map[string]string, kernelDir string) error {
	for _, d := range mountPoints {
		if err := mkdir(filepath.Join(dir, d)); err != nil {
			return err
		}
	}
	for dst, src := range programs {
		if err := copyFile(filepath.Join(dir, dst), src, 0o755); err != nil {
			return err
		}
	}
	caCerts, err := os.ReadFile(c.CACerts)
	if err != nil {
		return fmt.Errorf("build: CA certificates: %w", err)
	}
	files := map[string]struct {
		data []byte
		mode os.FileMode
	}{
		"/etc/hostname":                      {[]byte(c.Hostname), 0o444},
		"/etc/hosts":                         {[]byte("127.0.0.1 localhost\n::1 localhost\n"), 0o444},
		"/etc/http-port.txt":                 {[]byte(strconv.Itoa(c.HTTPPort)), 0o444},
		"/etc/ssl/certs/ca-certificates.crt": {caCerts, 0o444},
	}
	if c.Password != "" { // else gokrazy serves its interface on its Unix socket only
		files["/etc/gokr-pw.txt"] = struct {
			data []byte
			mode os.FileMode
		}{[]byte(c.Password), 0o400}
	}
	for i, b := range c.TrustedKeys {
		files[trustedKeyPath(i)] = struct {
			data []byte
			mode os.FileMode
		}{b, 0o444}
	}
	for p, b := range c.Files {
		files[p] = struct {
			data []byte
			mode os.FileMode
		}{b, 0o444}
	}
	for p, f := range files {
		if err := writeFile(filepath.Join(dir, p), f.data, f.mode); err != nil {
			return err
		}
	}
	for link, target := range map[string]string{
		"/etc/resolv.conf":       "/tmp/resolv.conf",
		"/etc/ssl/ca-bundle.pem": "/etc/ssl/certs/ca-certificates.crt",
		"/var":                   "/perm/var",
	} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			return err
		}
	}
	modules := filepath.Join(kernelDir, "lib", "modules")
	if _, err := os.Stat(modules); err == nil {
		if err := copyTree(filepath.Join(dir, "lib", "modules"), modules); err != nil {
			return fmt.Errorf("build: kernel modules: %w", err)
		}
	}
	return nil
}

func mkdir(p string) error {
	if err := os.MkdirAll(p, 0o755); err != nil {
		return err
	}
	return os.Chmod(p, 0o755)
}

func writeFile(p string, b []byte, mode os.FileMode) error {
	if err := mkdir(filepath.Dir(p)); err != nil {
		return err
	}
	if err := os.WriteFile(p, b, mode); err != nil {
		return err
	}
	return os.Chmod(p, mode)
}

func copyFile(dst, src string, mode os.FileMode) error {
	if err := mkdir(filepath.Dir(dst)); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, mode)
}

// copyTree copies the regular files and directories below src to dst
// (read-only files, as in a module cache).
func copyTree(dst, src string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil || strings.HasPrefix(rel, "..") {
			return fmt.Errorf("build: %s is outside %s", p, src)
		}
		switch {
		case d.IsDir():
			return mkdir(filepath.Join(dst, rel))
		case d.Type().IsRegular():
			return copyFile(filepath.Join(dst, rel), p, 0o444)
		default:
			return fmt.Errorf("build: %s: not a regular file or directory", p)
		}
	})
}
