package board

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tree writes files (relative path → content) below a new root; a
// content starting with "->" makes a symlink to the rest.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for rel, content := range files {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := strings.CutPrefix(content, "->"); ok {
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// pi4CPUInfo is /proc/cpuinfo of a Raspberry Pi 4 on a Raspberry Pi OS
// kernel (four identical processor blocks, shortened to two).
const pi4CPUInfo = `processor	: 0
BogoMIPS	: 108.00
Features	: fp asimd evtstrm crc32 cpuid
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: 0x0
CPU part	: 0xd08
CPU revision	: 3

processor	: 1
BogoMIPS	: 108.00
Features	: fp asimd evtstrm crc32 cpuid
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: 0x0
CPU part	: 0xd08
CPU revision	: 3

Hardware	: BCM2835
Revision	: c03114
Serial		: 10000000a1b2c3d4
Model		: Raspberry Pi 4 Model B Rev 1.4
`

// pi4 is a Raspberry Pi 4 under gokrazy: /proc/device-tree is a link into
// sysfs, strings end in NUL, and the upstream kernel's cpuinfo has no
// Serial/Model lines.
func pi4Files() map[string]string {
	return map[string]string{
		"proc/device-tree":                           "->../sys/firmware/devicetree/base",
		"sys/firmware/devicetree/base/model":         "Raspberry Pi 4 Model B Rev 1.4\x00",
		"sys/firmware/devicetree/base/serial-number": "10000000a1b2c3d4\x00",
		"sys/firmware/devicetree/base/compatible":    "raspberrypi,4-model-b\x00brcm,bcm2711\x00",
		"proc/cpuinfo":                               "processor\t: 0\nBogoMIPS\t: 108.00\nCPU part\t: 0xd08\n",
		"proc/sys/kernel/hostname":                   "gokrazy\n",
		"etc/hostname":                               "edge-01\n",
		"etc/machine-id":                             "5f1c0c2a6ab34a3c8e3e0b3d6f0f7a11\n",
	}
}

func TestIdentify(t *testing.T) {
	pi4 := Identity{Model: "Raspberry Pi 4 Model B Rev 1.4", Serial: "10000000a1b2c3d4", Hostname: "gokrazy"}
	for _, tt := range []struct {
		name  string
		files map[string]string
		want  Identity
	}{
		{"raspberry pi 4 under gokrazy", pi4Files(), pi4},
		{"device tree only in sysfs", without(pi4Files(), "proc/device-tree"), pi4},
		{"raspberry pi os kernel: cpuinfo", map[string]string{
			"proc/cpuinfo":             pi4CPUInfo,
			"proc/sys/kernel/hostname": "gokrazy\n",
		}, pi4},
		{"device tree model, cpuinfo serial", map[string]string{
			"proc/device-tree/model":   "Raspberry Pi Compute Module 4 Rev 1.0\x00",
			"proc/cpuinfo":             pi4CPUInfo,
			"proc/sys/kernel/hostname": "cm4\n",
		}, Identity{Model: "Raspberry Pi Compute Module 4 Rev 1.0", Serial: "10000000a1b2c3d4", Hostname: "cm4"}},
		{"pc with dmi", map[string]string{
			"sys/class/dmi/id/sys_vendor":     "LENOVO\n",
			"sys/class/dmi/id/product_name":   "20XWCTO1WW\n",
			"sys/class/dmi/id/product_serial": "PF2ABCDE\n",
			"sys/class/dmi/id/product_uuid":   "4c4c4544-0047-3510-8052-b4c04f4d4432\n",
			"etc/hostname":                    "laptop\n",
		}, Identity{Model: "LENOVO 20XWCTO1WW", Serial: "PF2ABCDE", Hostname: "laptop"}},
		{"dmi placeholders", map[string]string{
			"sys/class/dmi/id/sys_vendor":     "To Be Filled By O.E.M.\n",
			"sys/class/dmi/id/product_name":   "Dell Inc. OptiPlex 7080\n",
			"sys/class/dmi/id/product_serial": "System Serial Number\n",
			"sys/class/dmi/id/product_uuid":   "4c4c4544-0047-3510-8052-b4c04f4d4432\n",
		}, Identity{Model: "Dell Inc. OptiPlex 7080", Serial: "4c4c4544-0047-3510-8052-b4c04f4d4432"}},
		{"vendor not repeated", map[string]string{
			"sys/class/dmi/id/sys_vendor":   "Dell Inc.\n",
			"sys/class/dmi/id/product_name": "Dell Inc. OptiPlex 7080\n",
		}, Identity{Model: "Dell Inc. OptiPlex 7080"}},
		{"qemu: zero uuid, machine-id", map[string]string{
			"sys/class/dmi/id/sys_vendor":     "QEMU\n",
			"sys/class/dmi/id/product_name":   "Standard PC (Q35 + ICH9, 2009)\n",
			"sys/class/dmi/id/product_uuid":   "00000000-0000-0000-0000-000000000000\n",
			"etc/machine-id":                  "5f1c0c2a6ab34a3c8e3e0b3d6f0f7a11\n",
			"proc/sys/kernel/hostname":        "vm\n",
			"sys/class/dmi/id/product_family": "\n",
		}, Identity{Model: "QEMU Standard PC (Q35 + ICH9, 2009)", Serial: "5f1c0c2a6ab34a3c8e3e0b3d6f0f7a11", Hostname: "vm"}},
		{"control bytes and blanks cleaned", map[string]string{
			"proc/device-tree/model":         "  Odd\tBoard\x1b[31m  v2 \n\x00garbage after NUL",
			"proc/device-tree/serial-number": "\x00",
			"etc/machine-id":                 "abc\n",
		}, Identity{Model: "Odd Board [31m v2", Serial: "abc"}},
		{"nothing known", map[string]string{}, Identity{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := Identify(tree(t, tt.files)); got != tt.want {
				t.Errorf("Identify:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func without(m map[string]string, key string) map[string]string {
	delete(m, key)
	return m
}

// TestIdentifyHost reads this machine's real files: whatever it finds
// must be clean, printable text.
func TestIdentifyHost(t *testing.T) {
	id := Identify("/")
	for _, v := range []string{id.Model, id.Serial, id.Hostname} {
		if v != clean(v) {
			t.Errorf("Identify(/) field %q is not clean", v)
		}
	}
	if id.Hostname == "" {
		t.Error("Identify(/): no hostname")
	}
	t.Logf("this machine: %+v", id)
}
