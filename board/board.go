// Package board reads facts about the hardware the appliance runs on:
// the model and serial number that identify a gateway in provisioning
// reports, bundle device selectors and the status page.
//
// Everything is read below a root directory ("/" on the device) so tests
// use a fake tree. Nothing here needs udev, root privileges or gokrazy.
package board

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Identity says which board this is. Empty fields are unknown.
type Identity struct {
	Model    string // "Raspberry Pi 4 Model B Rev 1.4"; "QEMU Standard PC (Q35 + ICH9, 2009)"
	Serial   string // "10000000a1b2c3d4" on a Pi; DMI serial or UUID, else /etc/machine-id
	Hostname string // the kernel's host name, else /etc/hostname
}

// Identify reads the board's identity below root, taking each field from
// the first source that has it:
//
//   - model: device tree (/proc/device-tree/model, then
//     /sys/firmware/devicetree/base/model), the "Model" line of
//     /proc/cpuinfo (Raspberry Pi OS kernels), DMI
//     (/sys/class/dmi/id/sys_vendor + product_name);
//   - serial: device tree serial-number, the "Serial" line of
//     /proc/cpuinfo, DMI product_serial, then product_uuid, then
//     /etc/machine-id;
//   - hostname: /proc/sys/kernel/hostname, then /etc/hostname.
//
// Placeholders firmware vendors leave in DMI ("To Be Filled By O.E.M.",
// "Default string", all zeros) count as missing.
func Identify(root string) Identity {
	p := func(rel string) string { return filepath.Join(root, rel) }
	cpu := cpuinfo(p("proc/cpuinfo"))
	vendor, product := dmi(p("sys/class/dmi/id/sys_vendor")), dmi(p("sys/class/dmi/id/product_name"))
	dmiModel := strings.TrimSpace(vendor + " " + product)
	if vendor != "" && strings.HasPrefix(product, vendor) {
		dmiModel = product // "Dell Inc." + "Dell Inc. XPS": no stutter
	}
	return Identity{
		Model: first(
			read(p("proc/device-tree/model")),
			read(p("sys/firmware/devicetree/base/model")),
			cpu["Model"],
			dmiModel,
		),
		Serial: first(
			read(p("proc/device-tree/serial-number")),
			read(p("sys/firmware/devicetree/base/serial-number")),
			placeholder(cpu["Serial"]),
			dmi(p("sys/class/dmi/id/product_serial")),
			dmi(p("sys/class/dmi/id/product_uuid")),
			read(p("etc/machine-id")),
		),
		Hostname: first(
			read(p("proc/sys/kernel/hostname")),
			read(p("etc/hostname")),
		),
	}
}

func first(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// read returns the printable content of a small file: device-tree strings
// end in NUL, sysfs and /etc files in a newline. Missing files give "".
func read(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return ""
	}
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return clean(string(b))
}

// clean keeps printable ASCII and collapses white space, so a value can
// go into a report or a log line as it is.
func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

// dmi reads a DMI field, dropping vendor placeholders.
func dmi(path string) string { return placeholder(read(path)) }

var placeholders = []string{
	"to be filled by o.e.m.", "default string", "system serial number", "system product name",
	"not specified", "not applicable", "none", "0", "0123456789", "123456789", "n/a", "unknown",
	"03000200-0400-0500-0006-000700080009",
}

func placeholder(v string) string {
	l := strings.ToLower(v)
	if strings.Trim(l, "0-:") == "" || strings.Trim(l, "f-:") == "" {
		return "" // all zeros, all ones
	}
	for _, p := range placeholders {
		if l == p {
			return ""
		}
	}
	return v
}

// cpuinfo returns the "Key : value" lines of /proc/cpuinfo that are not
// per-CPU (Serial, Model, Hardware, Revision); the last one of a key wins.
func cpuinfo(path string) map[string]string {
	m := map[string]string{}
	f, err := os.Open(path)
	if err != nil {
		return m
	}
	defer f.Close()
	s := bufio.NewScanner(io.LimitReader(f, 1<<20))
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), ":")
		if !ok {
			continue
		}
		m[strings.TrimSpace(k)] = clean(v)
	}
	return m
}
