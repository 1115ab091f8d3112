// Command mkimage builds edgebroker firmware images and pushes updates to
// running devices.
//
//	mkimage [build flags] -o bin/edgebroker-rpi.img
//	mkimage -target qemu -o bin/edgebroker-qemu.img
//	mkimage sign -key site.key -target qemu bin/edgebroker-qemu.img
//	mkimage update -device https://edgebroker:8443 -ca ca.crt bin/edgebroker-qemu.fwupdate
//	mkimage update -device 127.0.0.1:8080 -password-file pw.txt bin/edgebroker-qemu.img   (legacy)
//	mkimage qemu [-forward 1883:11883] [-usb stick.img] bin/edgebroker-qemu.img
//
// See image/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"edgebroker/image/build"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	log.SetFlags(0)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var err error
	switch {
	case len(os.Args) > 1 && os.Args[1] == "update":
		err = updateMain(ctx, os.Args[2:])
	case len(os.Args) > 1 && os.Args[1] == "sign":
		err = signMain(ctx, os.Args[2:])
	case len(os.Args) > 1 && os.Args[1] == "qemu":
		err = qemuMain(ctx, os.Args[2:])
	default:
		err = buildMain(ctx, os.Args[1:])
	}
	if err != nil {
		log.Fatal("mkimage: ", err)
	}
}

func buildMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("mkimage", flag.ExitOnError)
	var c build.Config
	var flags, env, files, trust listFlag
	target := fs.String("target", "rpi", `"rpi" (Raspberry Pi 3/4/Zero 2 W, kernel.rpi) or "qemu" (QEMU virt, kernel.arm64)`)
	out := fs.String("o", "", "image file to write (default bin/edgebroker-<target>.img)")
	fs.StringVar(&c.MainDir, "main", ".", "root of the edgebroker module")
	fs.StringVar(&c.CacheDir, "cache", defaultCache(), `cache directory for file systems keyed by their inputs ("" for none)`)
	fs.StringVar(&c.Hostname, "hostname", "edgebroker", "device hostname (also picks the disk signature)")
	pwFile := fs.String("password-file", "", "development only: serve gokrazy's web interface and its unsigned update protocol to the LAN with the password in this file (user gokrazy; created with a random password if missing); without it, gokrazy listens on its Unix socket only and the device takes signed updates only")
	fs.IntVar(&c.HTTPPort, "http-port", 80, "port of gokrazy's web/update interface (with -password-file)")
	fs.StringVar(&c.StatusAddr, "status", build.DefaultStatusAddr, `edgebroker's status page, status.json, ca.crt and /metrics ("off" for none); not on -http-port`)
	fs.Var(&flags, "flag", "extra edgebroker flag, e.g. -flag=-listen -flag=0.0.0.0:1883; repeatable")
	fs.Var(&env, "env", "extra edgebroker environment KEY=value; repeatable")
	fs.Var(&trust, "trust", "file of provisioning public keys (as edgebroker -trust reads them): installed in the image, passed with -trust, and edgebroker gets -usb; repeatable")
	noTrust := fs.Bool("no-trust", false, "build an image without provisioning keys on purpose: it rejects every bundle and does not watch USB sticks")
	fs.Var(&files, "file", "extra root file /path/in/image=host-file; repeatable")
	fs.StringVar(&c.SerialConsole, "serial", "", `kernel serial console ("off" for none; default serial0,115200 on the Pi, ttyAMA0,115200 on QEMU)`)
	epoch := fs.String("epoch", os.Getenv("SOURCE_DATE_EPOCH"), "time stamp of every file, in Unix seconds (default $SOURCE_DATE_EPOCH, else the commit time of HEAD)")
	fs.Int64Var(&c.Size, "size", build.DefaultSize, "image size in bytes")
	fs.StringVar(&c.Version, "version", "", "firmware version, dotted numbers (default the -epoch as YYYYMMDD.HHMMSS, as mkimage sign's); with -trust, edgebroker takes signed updates newer than it")
	fs.Parse(args)
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err := checkTrust(trust, *noTrust); err != nil {
		return err
	}
	if *noTrust {
		fmt.Fprintln(os.Stderr, "mkimage: -no-trust: this image rejects every provisioning bundle and does not watch USB sticks")
	}
	c.Target = build.Target(*target)
	c.Flags, c.Env = flags, env
	if *out == "" {
		*out = filepath.Join("bin", "edgebroker-"+*target+".img")
	}
	if *pwFile != "" {
		pw, err := ensurePassword(*pwFile)
		if err != nil {
			return err
		}
		c.Password = pw
		fmt.Fprintf(os.Stderr, "mkimage: -password-file: gokrazy's web interface and unsigned update protocol are open to the LAN on port %d\n", c.HTTPPort)
	}
	for _, f := range trust {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		c.TrustedKeys = append(c.TrustedKeys, b)
	}
	for _, f := range files {
		dst, src, ok := strings.Cut(f, "=")
		if !ok {
			return fmt.Errorf("-file %q: want /path/in/image=host-file", f)
		}
		b, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		if c.Files == nil {
			c.Files = map[string][]byte{}
		}
		c.Files[dst] = b
	}
	var err error
	if c.Epoch, err = parseEpoch(ctx, *epoch, c.MainDir); err != nil {
		return err
	}
	c.Progress = os.Stderr
	start := time.Now()
	res, err := build.Build(ctx, c, *out)
	if err != nil {
		return err
	}
	version := c.Version
	if version == "" {
		version = build.VersionOf(c.Epoch)
	}
	fmt.Printf("%s: version %s, sha256 %s (%.1fs); update password in %s\n", res.Path, version, res.SHA256, time.Since(start).Seconds(), *pwFile)
	return nil
}

// errNoTrust: neither -trust nor -no-trust was given.
var errNoTrust = errors.New("no -trust: the image would reject every provisioning bundle and ignore USB sticks; " +
	"give -trust KEYS.pub (bin/edgebundle keygen -o site makes site.pub), or -no-trust to build such an image on purpose")

// checkTrust requires the provisioning keys, or -no-trust, and not both.
func checkTrust(trust []string, noTrust bool) error {
	switch {
	case len(trust) == 0 && !noTrust:
		return errNoTrust
	case len(trust) > 0 && noTrust:
		return errors.New("-trust and -no-trust contradict each other: give one")
	}
	return nil
}

// parseEpoch reads Unix seconds, or takes the commit time of HEAD in dir,
// or the Unix epoch outside a git checkout.
func parseEpoch(ctx context.Context, s, dir string) (time.Time, error) {
	if s == "" {
		s = commitTime(ctx, dir)
	}
	if s == "" {
		return time.Unix(0, 0), nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, fmt.Errorf("epoch %q: want Unix seconds", s)
	}
	return time.Unix(n, 0), nil
}

func defaultCache() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "edgebroker-image")
	}
	return ""
}

var errNoPassword = errors.New("empty password file")
