// Package build assembles gokrazy firmware images for edgebroker from pinned
// inputs: the kernel, device trees and Raspberry Pi firmware come from the Go
// modules pinned in image/pins/go.mod, /gokrazy/init is generated and built
// here, and /user/edgebroker is built from the main module.
//
// The disk is what gokrazy expects (see README.md): an MBR with a fixed disk
// signature, p1 boot (FAT16, one FAT, as gokrazy's updater reads it), p2 and
// p3 root A/B (SquashFS), p4 /perm (ext4). Partition tables are written with
// github.com/diskfs/go-diskfs; the file systems with host tools that make
// byte-for-byte reproducible output: mkfs.fat and mcopy (dosfstools,
// mtools), mksquashfs (squashfs-tools) and mkfs.ext4 (e2fsprogs).
//
// The same Config and the same pinned inputs give the same image bytes.
package build

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"edgebroker/provisioning/firmware"
)

// Target selects the kernel and boot files of an image.
type Target string

const (
	// TargetRPi is an SD-card image for Raspberry Pi 3, 4 and Zero 2 W
	// (arm64) with github.com/gokrazy/kernel.rpi and the Pi firmware.
	TargetRPi Target = "rpi"
	// TargetQEMU boots on QEMU's arm64 "virt" machine with
	// github.com/gokrazy/kernel.arm64.
	TargetQEMU Target = "qemu"
)

// Disk layout, in 512-byte sectors, as gokrazy's updater expects it.
const (
	SectorSize     = 512
	FirstSector    = 8192                   // p1 starts 4 MiB in
	BootSectors    = 100 << 20 / SectorSize // p1: 100 MiB
	RootSectors    = 500 << 20 / SectorSize // p2, p3: 500 MiB each
	DefaultSize    = 2 << 30                // whole image
	minPermSectors = 64 << 20 / SectorSize
)

// Config says what goes into an image. The zero value of every optional
// field has a documented default (see withDefaults).
type Config struct {
	Target Target // TargetRPi or TargetQEMU; "" means TargetRPi

	// MainDir is the root of the edgebroker module (holding go.mod);
	// /user/edgebroker is built from its ./appliance/cmd/edgebroker.
	MainDir string
	// PinsDir is the directory of image/pins/go.mod; "" means
	// MainDir/image/pins.
	PinsDir string
	// CacheDir holds build outputs keyed by their inputs; "" means no cache.
	CacheDir string

	// Hostname is written to /etc/hostname and picks the disk signature
	// (FNV-32a of the name, as gokrazy does); "" means "edgebroker".
	Hostname string
	// Password is the HTTP password of gokrazy's web and update interface
	// (user "gokrazy"), written to /etc/gokr-pw.txt, for development: with
	// it, gokrazy serves that interface, its unsigned update protocol
	// included, to the LAN on HTTPPort. "" (the default) writes no
	// password file: gokrazy then listens on its Unix socket only
	// (/run/gokrazy-http.sock, for the device's own programs), and
	// nothing on the LAN takes an update but edgebroker's signed one.
	Password string
	// HTTPPort is the port of gokrazy's web and update interface
	// (/etc/http-port.txt) when Password is set; 0 means 80.
	HTTPPort int
	// StatusAddr is edgebroker's -status address: its status page,
	// status.json, ca.crt, Prometheus /metrics, signed firmware updates
	// (/update/) and bundles (/bundle), over TLS with the device's own
	// certificate (-status-tls; Flags "-status-tls=false" serve plain
	// HTTP instead, without bundles). "" means
	// DefaultStatusAddr (":8080"); "off" serves none. Its port must differ
	// from HTTPPort (gokrazy's own web interface).
	StatusAddr string
	// Flags are extra edgebroker flags, appended to "-data /perm/edgebroker"
	// and the flags the fields above make.
	Flags []string
	// Env is extra environment for edgebroker (KEY=value).
	Env []string
	// TrustedKeys are files of provisioning public keys (as edgebroker's
	// -trust reads them). Each is installed as
	// /etc/edgebroker/trusted-keys-<n>.pub and passed with -trust, and
	// edgebroker gets -usb: it applies signed bundles from USB sticks.
	TrustedKeys [][]byte
	// Files are extra root file system files: absolute path in the image →
	// contents (e.g. the trusted provisioning keys). Mode 0444.
	Files map[string][]byte
	// CACerts is the host file copied to /etc/ssl/certs/ca-certificates.crt;
	// "" means /etc/ssl/certs/ca-certificates.crt.
	CACerts string
	// SerialConsole adds a serial console to the kernel command line:
	// "serial0,115200" on the Pi, "ttyAMA0,115200" on QEMU. "off" for none;
	// "" means the target's default.
	SerialConsole string

	// Version is the image's firmware version, dotted numbers
	// (provisioning/firmware); "" means the Epoch as YYYYMMDD.HHMMSS, as
	// mkimage sign's default. With TrustedKeys, edgebroker runs with
	// -firmware-version and -firmware-board (the Target) and takes signed
	// firmware updates.
	Version string

	// Epoch is the timestamp of every file and file system in the image
	// (usually SOURCE_DATE_EPOCH or the commit time); zero means the Unix
	// epoch.
	Epoch time.Time
	// Size is the image size in bytes; 0 means DefaultSize (2 GiB).
	Size int64

	// Progress receives one line per step with its duration and size;
	// nil means io.Discard.
	Progress io.Writer
}

func (c Config) withDefaults() (Config, error) {
	if c.Target == "" {
		c.Target = TargetRPi
	}
	if c.Target != TargetRPi && c.Target != TargetQEMU {
		return c, fmt.Errorf("build: unknown target %q (want %q or %q)", c.Target, TargetRPi, TargetQEMU)
	}
	if c.MainDir == "" {
		return c, errors.New("build: Config.MainDir is empty")
	}
	if c.PinsDir == "" {
		c.PinsDir = path.Join(c.MainDir, "image", "pins")
	}
	if c.Hostname == "" {
		c.Hostname = "edgebroker"
	}
	if !validHostname(c.Hostname) {
		return c, fmt.Errorf("build: hostname %q: want 1-63 letters, digits and '-'", c.Hostname)
	}
	if strings.ContainsAny(c.Password, "\r\n") {
		return c, errors.New("build: Config.Password contains a line break")
	}
	if c.HTTPPort == 0 {
		c.HTTPPort = 80
	}
	if c.HTTPPort < 1 || c.HTTPPort > 65535 {
		return c, fmt.Errorf("build: HTTPPort %d out of range", c.HTTPPort)
	}
	if c.StatusAddr == "" {
		c.StatusAddr = DefaultStatusAddr
	}
	if c.StatusAddr != "off" {
		_, port, err := net.SplitHostPort(c.StatusAddr)
		n, perr := strconv.Atoi(port)
		switch {
		case err != nil || perr != nil || n < 1 || n > 65535:
			return c, fmt.Errorf("build: StatusAddr %q: want host:port or :port (or \"off\")", c.StatusAddr)
		case n == c.HTTPPort:
			return c, fmt.Errorf("build: StatusAddr %q: port %d is gokrazy's web interface (HTTPPort)", c.StatusAddr, n)
		}
	}
	for _, e := range c.Env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			return c, fmt.Errorf("build: environment entry %q: want KEY=value", e)
		}
	}
	for p := range c.Files {
		if !path.IsAbs(p) || path.Clean(p) != p || p == "/" {
			return c, fmt.Errorf("build: file path %q: want a clean absolute path", p)
		}
		if reserved(p) {
			return c, fmt.Errorf("build: file path %q is generated by the builder", p)
		}
	}
	if c.CACerts == "" {
		c.CACerts = "/etc/ssl/certs/ca-certificates.crt"
	}
	if c.SerialConsole == "" {
		c.SerialConsole = "serial0,115200"
		if c.Target == TargetQEMU {
			c.SerialConsole = "ttyAMA0,115200"
		}
	}
	if strings.ContainsAny(c.SerialConsole, " \n") {
		return c, fmt.Errorf("build: serial console %q contains white space", c.SerialConsole)
	}
	if c.Epoch.IsZero() {
		c.Epoch = time.Unix(0, 0)
	}
	c.Epoch = c.Epoch.UTC().Truncate(time.Second)
	if c.Version == "" {
		c.Version = VersionOf(c.Epoch)
	}
	if _, err := firmware.ParseVersion(c.Version); err != nil {
		return c, fmt.Errorf("build: %w", err)
	}
	if c.Size == 0 {
		c.Size = DefaultSize
	}
	if c.Size%SectorSize != 0 || c.Size/SectorSize < FirstSector+BootSectors+2*RootSectors+minPermSectors {
		return c, fmt.Errorf("build: image size %d: want a multiple of 512 of at least %d MiB", c.Size, (FirstSector+BootSectors+2*RootSectors+minPermSectors)*SectorSize>>20)
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	return c, nil
}

// DefaultStatusAddr is where edgebroker serves its status page in an image
// unless Config.StatusAddr says otherwise: every interface, port 8080.
const DefaultStatusAddr = ":8080"

// trustedKeysPrefix starts the paths of Config.TrustedKeys in the image.
const trustedKeysPrefix = "/etc/edgebroker/trusted-keys-"

// trustedKeyPath is where Config.TrustedKeys[i] is installed.
func trustedKeyPath(i int) string { return fmt.Sprintf("%s%d.pub", trustedKeysPrefix, i) }

// edgebrokerArgs are the flags /gokrazy/init starts edgebroker with.
func (c Config) edgebrokerArgs() []string {
	args := []string{"-data", "/perm/edgebroker"}
	if c.StatusAddr != "" && c.StatusAddr != "off" {
		// Over TLS (the device's own certificate), with signed firmware
		// updates at /update/ and bundles at /bundle: plain HTTP only
		// when Flags ask for it with -status-tls=false (they come after).
		args = append(args, "-status", c.StatusAddr, "-status-tls")
	}
	for i := range c.TrustedKeys {
		args = append(args, "-trust", trustedKeyPath(i))
	}
	if len(c.TrustedKeys) > 0 {
		args = append(args, "-usb")
		if c.Version != "" {
			args = append(args, "-firmware-version", c.Version, "-firmware-board", string(c.Target))
		}
	}
	return append(args, c.Flags...)
}

// VersionOf is the default firmware version of an image built at epoch.
func VersionOf(epoch time.Time) string { return epoch.UTC().Format("20060102.150405") }

// reserved reports whether the builder writes p itself.
func reserved(p string) bool {
	if strings.HasPrefix(p, trustedKeysPrefix) {
		return true
	}
	return slices.Contains([]string{
		"/gokrazy", "/user", "/etc/hostname", "/etc/gokr-pw.txt",
		"/etc/http-port.txt", "/etc/ssl/certs/ca-certificates.crt",
	}, p) || strings.HasPrefix(p, "/gokrazy/") || strings.HasPrefix(p, "/user/")
}

func validHostname(h string) bool {
	if len(h) == 0 || len(h) > 63 || h[0] == '-' || h[len(h)-1] == '-' {
		return false
	}
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// DiskSignature is the MBR disk signature of an image for hostname: the
// FNV-32a hash of the name, as gokrazy's packer derives it. The kernel
// command line names the root partition as PARTUUID=<signature>-02.
func DiskSignature(hostname string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(hostname))
	return h.Sum32()
}

// RootPARTUUID is the root= value of the kernel command line for root
// partition n (2 or 3) of a disk with signature sig.
func RootPARTUUID(sig uint32, n int) string {
	return fmt.Sprintf("PARTUUID=%08x-%02d", sig, n)
}
