package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"edgebroker/image/update"
)

// updateMain pushes the root and boot file systems of a built image to a
// running device and reboots it into the new root.
func updateMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("mkimage update", flag.ExitOnError)
	device := fs.String("device", "", "the device's web/update interface: host[:port] or http://host:port (required)")
	pwFile := fs.String("password-file", "", "file holding the update password the image was built with (required)")
	reboot := fs.Bool("reboot", true, "reboot into the new root partition after the update")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: mkimage update -device host:port -password-file file image.img")
		fs.PrintDefaults()
	}
	fs.Parse(args)
	if *device == "" || *pwFile == "" || fs.NArg() != 1 {
		fs.Usage()
		os.Exit(2)
	}
	b, err := os.ReadFile(*pwFile)
	if err != nil {
		return err
	}
	base := *device
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	parts, err := update.ReadImage(fs.Arg(0))
	if err != nil {
		return err
	}
	start := time.Now()
	d := &update.Device{BaseURL: base, Password: strings.TrimSpace(string(b))}
	if err := update.Push(ctx, d, parts, *reboot, os.Stderr); err != nil {
		return err
	}
	fmt.Printf("updated %s from %s in %.1fs\n", base, fs.Arg(0), time.Since(start).Seconds())
	return nil
}
