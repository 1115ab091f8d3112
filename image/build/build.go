package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Result describes a written image.
type Result struct {
	Path      string // the image file
	SHA256    string // hex SHA-256 of the whole image
	Signature uint32 // MBR disk signature
	Cmdline   string // cmdline.txt, without its padding
	Cached    bool   // the file systems came from Config.CacheDir
}

// cacheVersion changes whenever the builder's output for the same inputs
// changes, so that stale cache entries are not reused.
const cacheVersion = "edgebroker-image-2"

// Build writes the image described by c to out (via a temporary file in the
// same directory, renamed into place at the end).
func Build(ctx context.Context, c Config, out string) (*Result, error) {
	c, err := c.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := checkTools(); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "edgebroker-image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	p := &progress{w: c.Progress, total: 6}
	sig := DiskSignature(c.Hostname)

	// 1. Pinned kernel and firmware modules.
	var dirs map[string]string
	mods := []string{kernelModule(c.Target)}
	if c.Target == TargetRPi {
		mods = append(mods, modFirmware, modEEPROM)
	}
	if err := p.step("pinned modules", func() (string, error) {
		dirs, err = moduleDirs(ctx, c.PinsDir, mods...)
		var s string
		for _, m := range mods {
			s += " " + filepath.Base(dirs[m])
		}
		return s[1:], err
	}); err != nil {
		return nil, err
	}

	// 2. /gokrazy/init and gokrazy's helpers; 3. /user/edgebroker.
	bin := filepath.Join(tmp, "bin")
	programs := map[string]string{}
	services := []service{}
	for _, h := range gokrazyHelpers {
		programs["/gokrazy/"+h] = filepath.Join(bin, h)
		services = append(services, service{Path: "/gokrazy/" + h})
	}
	services = append(services, service{
		Path: "/user/edgebroker",
		Args: c.edgebrokerArgs(),
		Env:  c.Env,
	})
	programs["/gokrazy/init"] = filepath.Join(bin, "init")
	programs["/user/edgebroker"] = filepath.Join(bin, "edgebroker")
	initSrc, err := generateInit(c.Epoch.Format(time.RFC3339), services)
	if err != nil {
		return nil, fmt.Errorf("build: generating init: %w", err)
	}
	if err := p.step("build /gokrazy/init, dhcp, heartbeat, ntp, randomd (linux/arm64)", func() (string, error) {
		if err := buildInit(ctx, c.PinsDir, tmp, bin, initSrc); err != nil {
			return "", err
		}
		return sizes(bin, "init", "dhcp", "heartbeat", "ntp", "randomd")
	}); err != nil {
		return nil, err
	}
	if err := p.step("build /user/edgebroker (linux/arm64)", func() (string, error) {
		if err := buildEdgebroker(ctx, c.MainDir, filepath.Join(bin, "edgebroker")); err != nil {
			return "", err
		}
		return sizes(bin, "edgebroker")
	}); err != nil {
		return nil, err
	}

	// 4. File systems, from the cache when the inputs are the same.
	key, err := cacheKey(c, dirs, programs)
	if err != nil {
		return nil, err
	}
	fsDir := filepath.Join(tmp, "fs")
	cached := false
	if c.CacheDir != "" {
		fsDir = filepath.Join(c.CacheDir, "fs-"+key[:32])
		_, err := os.Stat(filepath.Join(fsDir, "done"))
		cached = err == nil
	}
	layout := LayoutFor(c.Size)
	if err := p.step("file systems: boot (FAT16), root (SquashFS), /perm (ext4)", func() (string, error) {
		if cached {
			s, err := sizes(fsDir, "boot.fat", "root.squashfs", "perm.ext4")
			return "cached " + s, err
		}
		return makeFileSystems(ctx, c, dirs, programs, tmp, fsDir, layout.Size[PartPerm])
	}); err != nil {
		return nil, err
	}

	// 5. The disk image.
	res := &Result{Path: out, Signature: sig, Cached: cached}
	kernelCmdline, err := os.ReadFile(filepath.Join(dirs[kernelModule(c.Target)], "cmdline.txt"))
	if err != nil {
		return nil, err
	}
	res.Cmdline = cmdline(string(kernelCmdline), sig, c.SerialConsole)
	res.Cmdline = res.Cmdline[:len(res.Cmdline)-cmdlinePad]
	if err := p.step("disk image "+out, func() (string, error) {
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return "", err
		}
		part := out + ".part"
		if err := assemble(part, c.Size, sig, filepath.Join(fsDir, "boot.fat"), filepath.Join(fsDir, "root.squashfs"), filepath.Join(fsDir, "perm.ext4")); err != nil {
			os.Remove(part)
			return "", err
		}
		if err := os.Rename(part, out); err != nil {
			return "", err
		}
		return fmt.Sprintf("%s, MBR signature %08x, root=%s", human(c.Size), sig, RootPARTUUID(sig, PartRootA)), nil
	}); err != nil {
		return nil, err
	}

	// 6. Its hash.
	if err := p.step("sha256", func() (string, error) {
		res.SHA256, err = sparseSHA256(out)
		return res.SHA256, err
	}); err != nil {
		return nil, err
	}
	return res, nil
}

// makeFileSystems writes boot.fat, root.squashfs and perm.ext4 into fsDir
// (via a temporary directory renamed into place, marked with a "done" file).
func makeFileSystems(ctx context.Context, c Config, dirs, programs map[string]string, tmp, fsDir string, permSize int64) (string, error) {
	work := filepath.Join(tmp, "fs-work")
	gen := filepath.Join(tmp, "boot-gen")
	rootDir := filepath.Join(tmp, "root")
	for _, d := range []string{work, gen, rootDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", err
		}
	}
	files, err := bootFiles(c, dirs, gen)
	if err != nil {
		return "", err
	}
	if err := makeBootFS(ctx, c, files, filepath.Join(work, "boot.fat")); err != nil {
		return "", err
	}
	if err := stageRoot(c, rootDir, programs, dirs[kernelModule(c.Target)]); err != nil {
		return "", err
	}
	if err := makeRootFS(ctx, c, rootDir, filepath.Join(work, "root.squashfs")); err != nil {
		return "", err
	}
	if err := makePermFS(ctx, c, permSize, filepath.Join(work, "perm.ext4")); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(work, "done"), nil, 0o644); err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(fsDir), 0o755); err != nil {
		return "", err
	}
	os.RemoveAll(fsDir) // a half-written entry without "done"
	if err := os.Rename(work, fsDir); err != nil {
		// Another directory (e.g. the cache on another file system): copy.
		if err := copyTree(fsDir, work); err != nil {
			return "", err
		}
	}
	return sizes(fsDir, "boot.fat", "root.squashfs", "perm.ext4")
}

// cacheKey hashes everything the file systems depend on: the builder
// version, the configuration, the pinned module directories (their paths
// name their versions), the built programs and the CA certificates.
func cacheKey(c Config, dirs, programs map[string]string) (string, error) {
	h := sha256.New()
	cfg := c
	cfg.Progress, cfg.CacheDir = nil, ""
	b, err := json.Marshal(cfg)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(h, "%s\n%s\n", cacheVersion, b)
	for _, m := range slices.Sorted(mapKeys(dirs)) {
		fmt.Fprintf(h, "module %s %s\n", m, dirs[m])
	}
	for _, p := range append(slices.Sorted(mapKeys(programs)), c.CACerts) {
		src := c.CACerts
		if p != c.CACerts {
			src = programs[p]
		}
		sum, err := fileSHA256(src)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "file %s %s\n", p, sum)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func mapKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Linux lseek whence values that find data and holes in sparse files.
const (
	seekData = 3
	seekHole = 4
)

// sparseSHA256 hashes a sparse file, reading only its data: holes are
// hashed as zeros from memory.
func sparseSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	zeros := make([]byte, 1<<20)
	hashZeros := func(n int64) {
		for n > 0 {
			m := min(n, int64(len(zeros)))
			h.Write(zeros[:m])
			n -= m
		}
	}
	for off := int64(0); off < st.Size(); {
		data, err := f.Seek(off, seekData)
		if err != nil { // ENXIO: only a hole is left
			data = st.Size()
		}
		hashZeros(data - off)
		if data >= st.Size() {
			break
		}
		hole, err := f.Seek(data, seekHole)
		if err != nil {
			return "", err
		}
		if _, err := io.Copy(h, io.NewSectionReader(f, data, hole-data)); err != nil {
			return "", err
		}
		off = hole
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// sizes describes the sizes of files in dir ("init 9.1 MiB, dhcp 5.0 MiB").
// For sparse files, it gives the bytes in use.
func sizes(dir string, names ...string) (string, error) {
	var s string
	for i, n := range names {
		st, err := os.Stat(filepath.Join(dir, n))
		if err != nil {
			return "", err
		}
		if i > 0 {
			s += ", "
		}
		s += n + " " + human(st.Size())
	}
	return s, nil
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// progress prints one line per build step: "[2/6] what ... result (1.2s)".
type progress struct {
	w     io.Writer
	n     int
	total int
}

func (p *progress) step(what string, f func() (string, error)) error {
	p.n++
	fmt.Fprintf(p.w, "[%d/%d] %s ...\n", p.n, p.total, what)
	start := time.Now()
	res, err := f()
	if err != nil {
		fmt.Fprintf(p.w, "[%d/%d] %s: FAILED after %.1fs\n", p.n, p.total, what, time.Since(start).Seconds())
		return err
	}
	fmt.Fprintf(p.w, "      %s (%.1fs)\n", res, time.Since(start).Seconds())
	return nil
}
