// Command edgebroker runs the edgebroker appliance: the MQTT broker and
// everything around it.
package main

import (
	"context"
	"crypto/ed25519"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"edgebroker/appliance"
	"edgebroker/board/netconf"
	"edgebroker/provisioning/bundle"
	"edgebroker/provisioning/fwupdate"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

const bundleName = bundle.FileName

// gokrazyInit is the init a gokrazy image (image/build) boots: its
// presence tells the device from a host.
const gokrazyInit = "/gokrazy/init"

// onGokrazy reports whether initPath, gokrazy's init, exists: the
// device, not a host.
func onGokrazy(initPath string) bool {
	fi, err := os.Stat(initPath)
	return err == nil && fi.Mode().IsRegular()
}

// defaultDataDir is -data's default: /perm/edgebroker where initPath
// exists (gokrazy), none elsewhere, so that a host never creates /perm.
func defaultDataDir(initPath string) string {
	if onGokrazy(initPath) {
		return "/perm/edgebroker"
	}
	return ""
}

func main() {
	var cfg appliance.Config
	cfg.MemoryLimit = true // the memory budget sets the Go runtime's soft limit (GOMEMLIMIT overrides)
	var listen listFlag
	flag.StringVar(&cfg.DataDir, "data", defaultDataDir(gokrazyInit), "state `DIR` (required off gokrazy; default on gokrazy /perm/edgebroker)")
	flag.StringVar(&cfg.ConfigPath, "config", "", "YAML resources (file or folder) that replace the embedded default; errors are printed with file:line and exit non-zero")
	flag.Var(&listen, "listen", "add a plain, anonymous MQTT port (host:port); repeatable")
	flag.StringVar(&cfg.Loopback, "loopback", appliance.DefaultLoopback, `address of the embedded default's device-local plain MQTT port ("off" to disable); ignored with -config`)
	portMap := map[int]int{}
	flag.Func("port-map", "bind a configured port elsewhere: FROM=TO (TO 0 = any free port); repeatable", func(v string) error {
		from, to, ok := strings.Cut(v, "=")
		f, err1 := strconv.Atoi(from)
		t, err2 := strconv.Atoi(to)
		if !ok || err1 != nil || err2 != nil || f < 1 || f > 65535 || t < 0 || t > 65535 {
			return fmt.Errorf("want FROM=TO port numbers, got %q", v)
		}
		portMap[f] = t
		return nil
	})
	flag.StringVar(&cfg.StatusAddr, "status", "", `serve the status page, status.json, ca.crt and Prometheus /metrics over HTTP on this address (e.g. ":8080"); "" for none`)
	flag.BoolVar(&cfg.StatusTLS, "status-tls", false, "serve -status over HTTPS only, with a certificate for the device's names from the on-device CA of the Automatic TLS ports (clients trust DATA/ca.crt), and accept signed bundles on it (POST /bundle, edgebundle push)")
	flag.StringVar(&cfg.ACMEHTTPAddr, "acme-http", ":80", `where ACME http-01 challenges are answered when an ACME issuer has an http01 solver ("off" for nowhere)`)
	var trust listFlag
	flag.Var(&trust, "trust", "a file of public keys (PEM, or base64 one per line, as edgebundle keygen writes) that bundles must be signed by; repeatable")
	useUSB := flag.Bool("usb", false, "apply bundles ("+bundleName+") from USB sticks as they are plugged in, and write a report back to the stick")
	flag.StringVar(&cfg.ACMETLSAddr, "acme-tls", "", `an extra port (e.g. ":443") answering only ACME tls-alpn-01 challenges; "" for none (MQTT TLS ports answer them anyway)`)
	applyBundle := flag.String("apply-bundle", "", "apply the bundle `FILE` to -data with the device's checks (-trust as the image has them), write the stick's report next to it and on stdout, and exit: 0 applied, 1 not")
	flag.BoolVar(&cfg.MDNS, "mdns", onGokrazy(gokrazyInit), "announce the broker on every LAN interface by mDNS/DNS-SD (_mqtt._tcp, _secure-mqtt._tcp, _http._tcp or with -status-tls _https._tcp); default on gokrazy")
	var fw appliance.FirmwareConfig
	flag.StringVar(&fw.Version, "firmware-version", "", "the image's version (mkimage bakes it in): take signed firmware updates at /update/ on -status and from USB sticks (with -usb), signed by a -trust key")
	flag.StringVar(&fw.Board, "firmware-board", "rpi", `the image's target for firmware updates: "rpi" or "qemu"`)
	flag.StringVar(&fw.Disk, "firmware-disk", "", "the disk firmware updates write (default /dev/mmcblk0 on rpi, /dev/vda on qemu)")
	trialDeadline := flag.Duration("firmware-trial", 5*time.Minute, "how long a new firmware has, on its trial boot, to become healthy before the device reboots into the previous one")
	verbose := flag.Bool("v", false, "debug logging")
	flag.Parse()
	if cfg.DataDir == "" {
		fmt.Fprintln(os.Stderr, "edgebroker: -data DIR is required (the state directory; only on gokrazy is the default /perm/edgebroker)")
		os.Exit(2)
	}
	if cfg.StatusTLS && cfg.StatusAddr == "" {
		fmt.Fprintln(os.Stderr, "edgebroker: -status-tls needs -status ADDR")
		os.Exit(2)
	}
	cfg.Listen = listen
	cfg.PortMap = portMap
	for _, f := range trust {
		data, err := os.ReadFile(f)
		var keys []ed25519.PublicKey
		if err == nil {
			keys, err = bundle.ParsePublicKeys(data)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "edgebroker: -trust %s: %v\n", f, err)
			os.Exit(2)
		}
		cfg.Trust = append(cfg.Trust, keys...)
	}
	if *applyBundle != "" && len(cfg.Trust) == 0 {
		fmt.Fprintln(os.Stderr, "edgebroker: -apply-bundle needs -trust (the keys the device's image trusts): without trusted keys every bundle is rejected")
		os.Exit(2)
	}
	if *useUSB {
		cfg.USB = new(appliance.USBConfig)
		if len(cfg.Trust) == 0 {
			fmt.Fprintln(os.Stderr, "edgebroker: -usb needs -trust: without trusted keys every bundle is rejected")
			os.Exit(2)
		}
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	rb := &rebooter{cancel: stop}
	var trial *fwupdate.Receiver // set on a trial boot
	trialSlot := 0
	if fw.Version != "" && *applyBundle == "" {
		if len(cfg.Trust) == 0 {
			fmt.Fprintln(os.Stderr, "edgebroker: -firmware-version needs -trust: without trusted keys every update is refused")
			os.Exit(2)
		}
		// A device whose disk cannot be read still serves MQTT: it only
		// takes no firmware update.
		if rc, boot, err := appliance.NewFirmware(fw, cfg.DataDir, appliance.TrustedKeys(cfg.DataDir, cfg.Trust), cfg.Logger); err != nil {
			cfg.Logger.Error("firmware updates are off", "err", err)
		} else {
			tryArg := "" // QEMU: the harness is to arm the trial (image/README.md)
			if fw.Board == "rpi" {
				tryArg = fwupdate.PiRebootArg
			}
			rc.Installed = func(fwupdate.Attempt) { rb.ask(tryArg) }
			cfg.Firmware = rc
			// The deadline counts from the boot, not from this process: a
			// trial whose edgebroker keeps restarting still ends.
			cfg.Trial = &fwupdate.Trial{Boot: boot, Deadline: appliance.SinceBoot(*trialDeadline, "/"),
				Reboot: func() error { rb.ask(""); return nil }}
			if st, err := boot.State(); err == nil && st.Trial {
				trial, trialSlot = rc, st.Running
			}
		}
	}
	if *applyBundle != "" {
		os.Exit(applyBundleFile(cfg, *applyBundle))
	}

	if onGokrazy(gokrazyInit) {
		// On gokrazy a Device resource's settings are applied with
		// gokrazy's own programs; on a host they are only shown.
		cfg.Device = &appliance.DeviceConfig{Applier: &netconf.Gokrazy{Dir: "/tmp/edgebroker-device", Log: cfg.Logger}}
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP) // re-read -config and apply it
	cfg.Reload = hup
	err := appliance.Run(ctx, cfg)
	if asked, _ := rb.requested(); err != nil && trial != nil && !asked && ctx.Err() == nil {
		// The new system cannot even start: back to the previous one.
		cfg.Logger.Error("firmware: the appliance does not start on a trial boot; rebooting into the previous system", "err", err)
		trial.RecordTrial(appliance.StartFailed(trialSlot, err))
		rb.ask("")
	}
	if asked, arg := rb.requested(); asked {
		cfg.Logger.Info("rebooting", "arg", arg, "run", err)
		if err := reboot(arg); err != nil {
			log.Fatal("edgebroker: reboot: ", err)
		}
	}
	if err != nil {
		log.Fatal(err)
	}
}

// applyBundleFile applies a bundle file to -data as a stick would, prints
// the stick's report and returns the exit code: 0 applied, 1 not (the
// report says why), 2 the attempt could not be made.
func applyBundleFile(cfg appliance.Config, file string) int {
	rep, err := appliance.ApplyBundleFile(context.Background(), cfg, file)
	if rep.Result.Time.IsZero() { // nothing was attempted
		fmt.Fprintf(os.Stderr, "edgebroker: -apply-bundle %s: %v\n", file, err)
		return 2
	}
	fmt.Print(rep.String())
	if err != nil {
		fmt.Fprintf(os.Stderr, "edgebroker: -apply-bundle %s: %v\n", file, err)
	}
	if !rep.Result.Applied {
		return 1
	}
	return 0
}
