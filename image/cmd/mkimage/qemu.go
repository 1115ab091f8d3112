package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"edgebroker/image/qemu"
)

// qemuMain boots a QEMU image until it powers off, reboots (then it boots
// again, reading cmdline.txt anew) or the user interrupts.
func qemuMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("mkimage qemu", flag.ExitOnError)
	var forwards listFlag
	fs.Var(&forwards, "forward", "GUEST:HOST forwards 127.0.0.1:HOST to the guest's TCP port GUEST; repeatable (default 80:8080, 8080:18080 and 1883:11883: gokrazy, edgebroker's status page, MQTT)")
	usb := fs.String("usb", "", "raw image to attach as a USB stick")
	log := fs.String("log", "qemu-serial.log", "file receiving the serial console")
	timeout := fs.Duration("timeout", time.Hour, "stop QEMU after this long")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: mkimage qemu [-forward 1883:11883] [-usb stick.img] bin/edgebroker-qemu.img")
		fs.PrintDefaults()
	}
	fs.Parse(args)
	if fs.NArg() != 1 {
		fs.Usage()
		os.Exit(2)
	}
	if len(forwards) == 0 {
		forwards = listFlag{"80:8080", "8080:18080", "1883:11883"}
	}
	fwd := map[int]int{}
	for _, f := range forwards {
		g, h, ok := strings.Cut(f, ":")
		gp, err1 := strconv.Atoi(g)
		hp, err2 := strconv.Atoi(h)
		if !ok || err1 != nil || err2 != nil || gp < 1 || gp > 65535 || hp < 0 || hp > 65535 {
			return fmt.Errorf("-forward %q: want GUEST:HOST port numbers", f)
		}
		fwd[gp] = hp
	}
	for {
		vm, err := qemu.Start(ctx, qemu.Options{Image: fs.Arg(0), Forward: fwd, USBStick: *usb, Log: *log, Timeout: *timeout})
		if err != nil {
			return err
		}
		for g, h := range vm.Ports {
			fmt.Fprintf(os.Stderr, "guest port %d on 127.0.0.1:%d\n", g, h)
		}
		fmt.Fprintf(os.Stderr, "QEMU pid %d, serial console in %s\n", vm.PID(), *log)
		select {
		case <-ctx.Done():
			return vm.Stop()
		case <-vm.Done():
		}
		if err := vm.Err(); err != nil {
			return err
		}
		fmt.Fprintln(os.Stderr, "guest rebooted; booting again")
	}
}
