package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"edgebroker/image/update"
)

// updateMain sends an update to a running device: a signed update file
// (mkimage sign) over TLS to edgebroker's receiver, checking the device
// with -ca or -fingerprint; or, the legacy way, the file systems of a
// built image over gokrazy's plain HTTP protocol with its password.
func updateMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("mkimage update", flag.ExitOnError)
	device := fs.String("device", "", "the device: https://host:port (edgebroker's TLS status server) for a signed update, or host[:port] of gokrazy's interface for -password-file (required)")
	caFile := fs.String("ca", "", "the device's CA certificates (PEM; DATA/ca.crt, the status page's /ca.crt, or the stick's edgebroker-ca.crt)")
	fingerprint := fs.String("fingerprint", "", "SHA-256 of the device's certificate (hex, colons allowed), instead of -ca")
	pwFile := fs.String("password-file", "", "legacy: gokrazy's update password the image was built with; sends an image over plain HTTP")
	reboot := fs.Bool("reboot", true, "legacy: reboot into the new root partition after the update")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: mkimage update -device https://host:port (-ca ca.crt | -fingerprint HEX) update.fwupdate")
		fmt.Fprintln(fs.Output(), "       mkimage update -device host:port -password-file file image.img   (legacy, plain HTTP)")
		fs.PrintDefaults()
	}
	fs.Parse(args)
	if *device == "" || fs.NArg() != 1 {
		fs.Usage()
		os.Exit(2)
	}
	if *pwFile != "" {
		return legacyUpdate(ctx, *device, *pwFile, fs.Arg(0), *reboot)
	}
	sd := &update.SecureDevice{BaseURL: *device}
	switch {
	case *fingerprint != "":
		fp, err := update.ParseFingerprint(*fingerprint)
		if err != nil {
			return err
		}
		sd.Fingerprint = fp
	case *caFile != "":
		b, err := os.ReadFile(*caFile)
		if err != nil {
			return err
		}
		sd.CA = x509.NewCertPool()
		if !sd.CA.AppendCertsFromPEM(b) {
			return fmt.Errorf("%s: no PEM certificate", *caFile)
		}
	default:
		return errors.New("update: give -ca or -fingerprint to check the device (or -password-file for gokrazy's legacy protocol)")
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	start := time.Now()
	o, err := update.PushSigned(ctx, sd, f, st.Size())
	if err != nil {
		return err
	}
	fmt.Printf("%s installed version %s from %s in %.1fs; it boots it on trial at its next reboot\n", *device, o.Version, fs.Arg(0), time.Since(start).Seconds())
	return nil
}

// legacyUpdate pushes the root and boot file systems of a built image
// over gokrazy's HTTP protocol and reboots the device into the new root.
func legacyUpdate(ctx context.Context, device, pwFile, img string, reboot bool) error {
	b, err := os.ReadFile(pwFile)
	if err != nil {
		return err
	}
	base := device
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	parts, err := update.ReadImage(img)
	if err != nil {
		return err
	}
	start := time.Now()
	d := &update.Device{BaseURL: base, Password: strings.TrimSpace(string(b))}
	if err := update.Push(ctx, d, parts, reboot, os.Stderr); err != nil {
		return err
	}
	fmt.Printf("updated %s from %s in %.1fs\n", base, img, time.Since(start).Seconds())
	return nil
}
