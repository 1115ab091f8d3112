package usb_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"edgebroker/broker/testenv"
	"edgebroker/provisioning/usb"
)

// Captured from this kernel's NETLINK_KOBJECT_UEVENT socket after
// `echo change > /sys/block/loop0/uevent` (Debian 12, 6.1).
const capturedLoopChange = "change@/devices/virtual/block/loop0\x00ACTION=change\x00DEVPATH=/devices/virtual/block/loop0\x00SUBSYSTEM=block\x00SYNTH_UUID=0\x00MAJOR=7\x00MINOR=0\x00DEVNAME=loop0\x00DEVTYPE=disk\x00DISKSEQ=1\x00SEQNUM=822\x00"

// A stick's first partition arriving on a Raspberry Pi 4: the same layout
// with the Pi's xHCI device path and the partition fields the kernel adds.
const piStickAdd = "add@/devices/platform/scb/fd500000.pcie/pci0000:00/0000:00:00.0/0000:01:00.0/usb2/2-1/2-1:1.0/host0/target0:0:0/0:0:0:0/block/sda/sda1\x00ACTION=add\x00DEVPATH=/devices/platform/scb/fd500000.pcie/pci0000:00/0000:00:00.0/0000:01:00.0/usb2/2-1/2-1:1.0/host0/target0:0:0/0:0:0:0/block/sda/sda1\x00SUBSYSTEM=block\x00MAJOR=8\x00MINOR=1\x00DEVNAME=sda1\x00DEVTYPE=partition\x00DISKSEQ=9\x00PARTN=1\x00SEQNUM=2345\x00"

func TestParseUevent(t *testing.T) {
	for _, tt := range []struct {
		name string
		msg  string
		want usb.Uevent
	}{
		{"captured loop change", capturedLoopChange, usb.Uevent{
			Action: "change", DevPath: "/devices/virtual/block/loop0", Subsystem: "block", DevName: "loop0", DevType: "disk",
			Env: map[string]string{"ACTION": "change", "DEVPATH": "/devices/virtual/block/loop0", "SUBSYSTEM": "block", "SYNTH_UUID": "0",
				"MAJOR": "7", "MINOR": "0", "DEVNAME": "loop0", "DEVTYPE": "disk", "DISKSEQ": "1", "SEQNUM": "822"},
		}},
		{"pi stick partition add", piStickAdd, usb.Uevent{
			Action: "add", DevPath: "/devices/platform/scb/fd500000.pcie/pci0000:00/0000:00:00.0/0000:01:00.0/usb2/2-1/2-1:1.0/host0/target0:0:0/0:0:0:0/block/sda/sda1",
			Subsystem: "block", DevName: "sda1", DevType: "partition",
			Env: map[string]string{"ACTION": "add", "DEVPATH": "/devices/platform/scb/fd500000.pcie/pci0000:00/0000:00:00.0/0000:01:00.0/usb2/2-1/2-1:1.0/host0/target0:0:0/0:0:0:0/block/sda/sda1",
				"SUBSYSTEM": "block", "MAJOR": "8", "MINOR": "1", "DEVNAME": "sda1", "DEVTYPE": "partition", "DISKSEQ": "9", "PARTN": "1", "SEQNUM": "2345"},
		}},
		{"usb interface remove, no trailing NUL", "remove@/devices/platform/scb/fd500000.pcie/pci0000:00/0000:00:00.0/0000:01:00.0/usb2/2-1/2-1:1.0\x00ACTION=remove\x00SUBSYSTEM=usb\x00DEVTYPE=usb_interface", usb.Uevent{
			Action: "remove", DevPath: "/devices/platform/scb/fd500000.pcie/pci0000:00/0000:00:00.0/0000:01:00.0/usb2/2-1/2-1:1.0", Subsystem: "usb", DevType: "usb_interface",
			Env: map[string]string{"ACTION": "remove", "SUBSYSTEM": "usb", "DEVTYPE": "usb_interface"},
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := usb.ParseUevent([]byte(tt.msg))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseUevent (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseUeventErrors(t *testing.T) {
	for _, tt := range []struct {
		name, msg, want string
	}{
		{"empty", "", "not ACTION@DEVPATH"},
		{"no header", "ACTION=add\x00SUBSYSTEM=block\x00", "not ACTION@DEVPATH"},
		{"relative devpath", "add@devices/x\x00", "not ACTION@DEVPATH"},
		{"udev", "libudev\x00\xfe\xed\xca\xfe", "udev message"},
		{"field without =", "add@/devices/x\x00ACTION\x00", `field "ACTION" is not KEY=VALUE`},
		{"action contradicts", "add@/devices/x\x00ACTION=remove\x00", "ACTION=remove contradicts"},
		{"devpath contradicts", "add@/devices/x\x00DEVPATH=/devices/y\x00", "DEVPATH=/devices/y contradicts"},
		{"oversize", "add@/devices/x\x00X=" + strings.Repeat("a", 9000), "more than 8192"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := usb.ParseUevent([]byte(tt.msg))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseUevent(%q): got error %v, want one containing %q", tt.msg, err, tt.want)
			}
		})
	}
}

func FuzzParseUevent(f *testing.F) {
	f.Add([]byte(capturedLoopChange))
	f.Add([]byte(piStickAdd))
	f.Add([]byte("libudev\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := usb.ParseUevent(b)
		if err != nil {
			return
		}
		if ev.Action == "" || !strings.HasPrefix(ev.DevPath, "/") {
			t.Errorf("ParseUevent(%q) accepted %+v", b, ev)
		}
		if a, ok := ev.Env["ACTION"]; ok && a != ev.Action {
			t.Errorf("ParseUevent(%q): ACTION %q != header %q", b, a, ev.Action)
		}
	})
}

// TestOpenUevents receives a real kernel uevent: it asks the kernel for a
// synthetic "change" event of a loop device. It needs root and a writable
// /sys, and skips otherwise (fails under CI).
func TestOpenUevents(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "needs root to trigger a uevent")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ch, err := usb.OpenUevents(ctx)
	if err != nil {
		testenv.Unavailable(t, "no uevent socket here: %v", err)
	}
	if err := os.WriteFile("/sys/block/loop0/uevent", []byte("change"), 0); err != nil {
		testenv.Unavailable(t, "cannot trigger a uevent: %v", err)
	}
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatal("uevent channel closed before the event arrived")
			}
			if ev.Action == "change" && ev.DevName == "loop0" && ev.Subsystem == "block" {
				cancel()
				for range ch { // closed once ctx is done
				}
				return
			}
		case <-ctx.Done():
			t.Fatal("no uevent for loop0 within 10 s")
		}
	}
}
