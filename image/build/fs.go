package build

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"edgebroker/provisioning/firmware"
)

// The trial boot's files in the boot file system, as
// provisioning/fwupdate names them (TryConfig, TryCmdline).
const (
	tryConfig  = "tryboot.txt"
	tryCmdline = "cmdtry.txt"
)

// cmdlinePad is the white space after the kernel command line: gokrazy's
// updater rewrites cmdline.txt in place and needs room to grow it.
const cmdlinePad = 64

var rootArg = regexp.MustCompile(`root=[^ ]+`)

// cmdline returns cmdline.txt for the kernel's template: the serial
// console, root=PARTUUID=<sig>-02 and the padding gokrazy's updater needs.
func cmdline(tmpl string, sig uint32, serial string) string {
	s := strings.TrimSpace(tmpl)
	s = rootArg.ReplaceAllLiteralString(s, "root="+RootPARTUUID(sig, 2))
	if !strings.Contains(s, "root=") {
		s = "root=" + RootPARTUUID(sig, 2) + " " + s
	}
	if serial != "off" {
		s = "console=" + serial + " " + s
	}
	s = "console=tty1 " + s
	return s + strings.Repeat(" ", cmdlinePad)
}

// configTxt returns config.txt for the kernel's template: the UART is on
// when the serial console is.
func configTxt(tmpl string, serial string) string {
	if serial != "off" {
		tmpl = strings.ReplaceAll(tmpl, "enable_uart=0", "enable_uart=1")
	}
	return strings.TrimRight(tmpl, "\n") + "\n"
}

// bootFile is one file of the boot file system.
type bootFile struct {
	dst string // path in the FAT, e.g. /overlays/foo.dtbo
	src string // host path
}

// bootFiles lists the boot partition's files: the kernel and device trees,
// and on the Pi the firmware and the EEPROM update files. gen is a
// directory for generated files.
func bootFiles(c Config, dirs map[string]string, gen string) ([]bootFile, error) {
	var files []bootFile
	glob := func(dir, pattern, dstDir string) error {
		m, err := filepath.Glob(filepath.Join(dir, pattern))
		if err != nil {
			return err
		}
		slices.Sort(m)
		for _, f := range m {
			files = append(files, bootFile{dstDir + filepath.Base(f), f})
		}
		return nil
	}
	kernel := dirs[kernelModule(c.Target)]
	if err := glob(kernel, "vmlinuz", "/"); err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("build: no vmlinuz in %s", kernel)
	}
	if c.Target == TargetRPi {
		for _, g := range []struct{ dir, pat, dst string }{
			{kernel, "*.dtb", "/"},
			{kernel, "overlays/*.dtbo", "/overlays/"},
			{kernel, "overlays/overlay_map.dtb", "/overlays/"},
			{dirs[modFirmware], "*.bin", "/"},
			{dirs[modFirmware], "*.dat", "/"},
			{dirs[modFirmware], "*.elf", "/"},
		} {
			if err := glob(g.dir, g.pat, g.dst); err != nil {
				return nil, err
			}
		}
		eeprom, err := eepromFiles(dirs[modEEPROM], gen)
		if err != nil {
			return nil, err
		}
		files = append(files, eeprom...)
	}
	sig := DiskSignature(c.Hostname)
	gens := map[string]string{}
	for name, tmpl := range map[string]func(string) string{
		"cmdline.txt": func(s string) string { return cmdline(s, sig, c.SerialConsole) },
		"config.txt":  func(s string) string { return configTxt(s, c.SerialConsole) },
	} {
		b, err := os.ReadFile(filepath.Join(kernel, name))
		if err != nil {
			return nil, fmt.Errorf("build: kernel template: %w", err)
		}
		gens[name] = tmpl(string(b))
	}
	// The trial boot's files (provisioning/fwupdate.FileBoot, which
	// rewrites them in place on the device and cannot create them): the
	// Pi firmware reads tryboot.txt instead of config.txt on a tryboot,
	// and it names cmdtry.txt as the kernel command line.
	gens[tryCmdline] = gens["cmdline.txt"]
	gens[tryConfig] = gens["config.txt"] + "\n[all]\ncmdline=" + tryCmdline + "\n"
	for _, name := range slices.Sorted(maps.Keys(gens)) {
		p := filepath.Join(gen, name)
		if err := os.WriteFile(p, []byte(gens[name]), 0o644); err != nil {
			return nil, err
		}
		files = append(files, bootFile{"/" + name, p})
	}
	slices.SortFunc(files, func(a, b bootFile) int {
		return cmp.Or(cmp.Compare(controlRank(a.dst), controlRank(b.dst)), strings.Compare(a.dst, b.dst))
	})
	return files, nil
}

// controlRank puts firmware.BootControlFiles first, in their order, so
// that they take the same clusters in every image; then the rest.
func controlRank(dst string) int {
	if i := slices.Index(firmware.BootControlFiles, strings.TrimPrefix(dst, "/")); i >= 0 {
		return i
	}
	return len(firmware.BootControlFiles)
}

func kernelModule(t Target) string {
	if t == TargetQEMU {
		return modKernelARM64
	}
	return modKernelRPi
}

// eepromFiles picks the newest Pi 4 bootloader EEPROM and VL805 (USB)
// firmware for the Pi's boot-time EEPROM update, each with a .sig file
// holding its SHA-256, plus recovery.bin that applies them.
func eepromFiles(dir, gen string) ([]bootFile, error) {
	var files []bootFile
	for _, e := range []struct{ pat, dst string }{
		{"pieeprom-*.bin", "/pieeprom.upd"},
		{"vl805-*.bin", "/vl805.bin"},
	} {
		m, err := filepath.Glob(filepath.Join(dir, e.pat))
		if err != nil {
			return nil, err
		}
		if len(m) == 0 {
			return nil, fmt.Errorf("build: no %s in %s", e.pat, dir)
		}
		slices.Sort(m)
		newest := m[len(m)-1]
		b, err := os.ReadFile(newest)
		if err != nil {
			return nil, err
		}
		sigName := strings.TrimSuffix(filepath.Base(e.dst), filepath.Ext(e.dst)) + ".sig"
		sigPath := filepath.Join(gen, sigName)
		if err := os.WriteFile(sigPath, fmt.Appendf(nil, "%x\n", sha256.Sum256(b)), 0o644); err != nil {
			return nil, err
		}
		files = append(files, bootFile{e.dst, newest}, bootFile{"/" + sigName, sigPath})
	}
	files = append(files, bootFile{"/recovery.bin", filepath.Join(dir, "recovery.bin")})
	return files, nil
}

// makeBootFS writes the boot file system image to out: FAT16 with a single
// FAT, which is what gokrazy's updater reads to rewrite cmdline.txt.
// SOURCE_DATE_EPOCH fixes the time stamps mtools writes.
func makeBootFS(ctx context.Context, c Config, files []bootFile, out string) error {
	if err := createSized(out, BootSectors*SectorSize); err != nil {
		return err
	}
	env := append(os.Environ(), "SOURCE_DATE_EPOCH="+strconv.FormatInt(c.Epoch.Unix(), 10), "MTOOLS_SKIP_CHECK=1")
	sig := DiskSignature(c.Hostname)
	if err := run(ctx, "", env, "mkfs.fat", "-F", "16", "-f", "1", "-S", "512", "-h", strconv.Itoa(FirstSector),
		"--invariant", "-i", fmt.Sprintf("%08x", sig), "-n", "GOKRAZY", out); err != nil {
		return err
	}
	made := map[string]bool{"/": true}
	// One mcopy per run of files that keep their names in one directory.
	for i := 0; i < len(files); {
		d := filepath.Dir(files[i].dst)
		if !made[d] {
			if err := run(ctx, "", env, "mmd", "-i", out, "::"+d); err != nil {
				return err
			}
			made[d] = true
		}
		args := []string{"-i", out}
		j := i
		for ; j < len(files) && filepath.Dir(files[j].dst) == d && filepath.Base(files[j].src) == filepath.Base(files[j].dst); j++ {
			args = append(args, files[j].src)
		}
		if j == i { // renamed on the way in
			args = append(args, files[i].src, "::"+files[i].dst)
			j = i + 1
		} else {
			args = append(args, "::"+strings.TrimSuffix(d, "/")+"/")
		}
		if err := run(ctx, "", env, "mcopy", args...); err != nil {
			return err
		}
		i = j
	}
	return nil
}

// makeRootFS writes the SquashFS image of the staging directory dir to out.
func makeRootFS(ctx context.Context, c Config, dir, out string) error {
	epoch := strconv.FormatInt(c.Epoch.Unix(), 10)
	// mksquashfs refuses SOURCE_DATE_EPOCH together with -all-time.
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "SOURCE_DATE_EPOCH=") {
			env = append(env, e)
		}
	}
	if err := run(ctx, "", env, "mksquashfs", dir, out, "-noappend", "-comp", "gzip",
		"-all-root", "-no-xattrs", "-mkfs-time", epoch, "-all-time", epoch,
		"-quiet", "-no-progress"); err != nil {
		return err
	}
	st, err := os.Stat(out)
	if err != nil {
		return err
	}
	if st.Size() > RootSectors*SectorSize {
		return fmt.Errorf("build: root file system is %d bytes, more than the %d of a root partition", st.Size(), RootSectors*SectorSize)
	}
	return nil
}

// mke2fsConf replaces the host's /etc/mke2fs.conf so that the features of
// /perm do not depend on the build machine.
const mke2fsConf = `[defaults]
	base_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
	default_mntopts = acl,user_xattr
	blocksize = 4096
	inode_size = 256
	inode_ratio = 16384

[fs_types]
	ext4 = {
		features = has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize
	}
`

// makePermFS writes an empty ext4 file system of size bytes to out, with a
// UUID and hash seed derived from the disk signature and fixed times.
func makePermFS(ctx context.Context, c Config, size int64, out string) error {
	if err := createSized(out, size); err != nil {
		return err
	}
	uuid := fmt.Sprintf("%08x-6564-4765-8000-00000000e004", DiskSignature(c.Hostname))
	conf := out + ".mke2fs.conf"
	if err := os.WriteFile(conf, []byte(mke2fsConf), 0o644); err != nil {
		return err
	}
	defer os.Remove(conf)
	env := append(os.Environ(), "E2FSPROGS_FAKE_TIME="+strconv.FormatInt(c.Epoch.Unix(), 10), "MKE2FS_CONFIG="+conf)
	return run(ctx, "", env, "mkfs.ext4", "-q", "-F", "-t", "ext4", "-L", "perm", "-U", uuid,
		"-E", "root_owner=0:0,hash_seed="+uuid+",lazy_itable_init=1,lazy_journal_init=1", out)
}

// createSized creates (or truncates) a sparse file of size bytes.
func createSized(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// isZero reports whether b holds only zero bytes.
func isZero(b []byte) bool {
	return len(bytes.Trim(b, "\x00")) == 0
}
