package main

import (
	"context"
	"crypto/ed25519"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"edgebroker/image/build"
	"edgebroker/image/update"
	"edgebroker/provisioning/firmware"
)

// signMain writes a signed firmware update (provisioning/firmware) of a
// built image's root and boot file systems.
func signMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("mkimage sign", flag.ContinueOnError)
	keyFile := fs.String("key", "", "ed25519 private key (PEM), the one that signs bundles: edgebundle keygen -o site writes site.key (required)")
	version := fs.String("version", "", "the image's version, dotted numbers (default: the -epoch as YYYYMMDD.HHMMSS)")
	target := fs.String("target", "rpi", `the board the image is for: "rpi" or "qemu" (as mkimage -target)`)
	epoch := fs.String("epoch", os.Getenv("SOURCE_DATE_EPOCH"), "build time, Unix seconds (default $SOURCE_DATE_EPOCH, else the commit time of HEAD)")
	downgrade := fs.Duration("allow-downgrade", 0, "let devices running a newer (or the same) version install this one, for this long from now (e.g. 72h); 0: no")
	out := fs.String("o", "", "update file to write (default: the image's name with .fwupdate)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: mkimage sign -key site.key [-target rpi|qemu] [-version V] [-o out.fwupdate] image.img")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *keyFile == "" || fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("sign: want -key and one image")
	}
	kb, err := os.ReadFile(*keyFile)
	if err != nil {
		return err
	}
	key, err := firmware.ParsePrivateKey(kb)
	if err != nil {
		return err
	}
	built, err := parseEpoch(ctx, *epoch, ".")
	if err != nil {
		return err
	}
	if *version == "" {
		*version = build.VersionOf(built)
	}
	m := firmware.Manifest{Version: *version, Built: built.UTC(), Board: *target}
	if *downgrade > 0 {
		m.AllowDowngrade, m.Expires = true, time.Now().Add(*downgrade).UTC().Truncate(time.Second)
	}
	img := fs.Arg(0)
	parts, err := update.ReadImage(img)
	if err != nil {
		return err
	}
	hdr, err := parts.Sign(m, key)
	if err != nil {
		return err
	}
	if *out == "" {
		*out = strings.TrimSuffix(img, filepath.Ext(img)) + ".fwupdate"
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if err := parts.WriteUpdate(f, hdr); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Printf("%s: version %s for %s, signed by key %s\n", *out, m.Version, m.Board, firmware.KeyID(key.Public().(ed25519.PublicKey)))
	return nil
}
