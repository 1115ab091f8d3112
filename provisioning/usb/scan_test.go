package usb_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"edgebroker/broker/testenv"
	"edgebroker/provisioning/usb"
	"edgebroker/provisioning/usb/usbtest"
)

// pi4Tree is a Raspberry Pi 4 booted from its SD card with loop and zram
// devices (gokrazy has neither, a desktop has both), an NVMe drive, a SATA
// disk, an empty USB card reader, and two sticks: one partitioned, one
// formatted without a partition table.
func pi4Tree(t *testing.T) string {
	root := t.TempDir()
	for _, d := range []usbtest.Disk{
		{Name: "mmcblk0", Bus: usbtest.MMC, Sectors: 62333952, Partitions: []int64{204800, 1024000, 1024000, 60000000}},
		{Name: "loop0", Bus: usbtest.Virtual, Sectors: 131072},
		{Name: "zram0", Bus: usbtest.Virtual, Sectors: 1048576},
		{Name: "nvme0n1", Bus: usbtest.NVMe, Sectors: 1000215216, Partitions: []int64{1000000}},
		{Name: "sdd", Bus: usbtest.SATA, Sectors: 1000215216, Partitions: []int64{1000000}},
		{Name: "sdc", Bus: usbtest.USB, Port: 3, Removable: true, Sectors: 0, Vendor: "Generic", Model: "STORAGE DEVICE"},
		{Name: "sda", Bus: usbtest.USB, Port: 1, Removable: true, Sectors: 60063744, Partitions: []int64{60061696, 2}, Vendor: "SanDisk", Model: "Cruzer Blade"},
		{Name: "sdb", Bus: usbtest.USB, Port: 2, Removable: false, Sectors: 15728640, Vendor: "Kingston", Model: "DataTraveler 3.0"},
	} {
		usbtest.AddDisk(t, root, d)
	}
	return root
}

func TestScan(t *testing.T) {
	root := pi4Tree(t)
	got, err := usb.Scan(root)
	if err != nil {
		t.Fatal(err)
	}
	want := []usb.Device{
		{Name: "sda1", DevPath: filepath.Join(root, "dev/sda1"), Disk: "sda", Partition: 1, Size: 60061696 * 512, Model: "SanDisk Cruzer Blade", USB: true},
		// sda2 (2 sectors: an extended-partition stub) is left out.
		{Name: "sdb", DevPath: filepath.Join(root, "dev/sdb"), Disk: "sdb", Partition: 0, Size: 15728640 * 512, Model: "Kingston DataTraveler 3.0", USB: true},
		// sdc: a card reader without a card (size 0) is left out.
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Scan (-want +got):\n%s", diff)
	}
}

// TestScanRemovable: a removable disk that is not on USB (an SD card in
// a laptop's PCI reader shows up as a removable sd disk) counts, and a
// removable optical drive does not.
func TestScanRemovable(t *testing.T) {
	root := t.TempDir()
	usbtest.AddDisk(t, root, usbtest.Disk{Name: "sde", Bus: usbtest.SATA, Removable: true, Sectors: 1000, Partitions: []int64{900}})
	usbtest.AddDisk(t, root, usbtest.Disk{Name: "sr0", Bus: usbtest.SATA, Removable: true, Sectors: 1000})
	got, err := usb.Scan(root)
	if err != nil {
		t.Fatal(err)
	}
	want := []usb.Device{{Name: "sde1", DevPath: filepath.Join(root, "dev/sde1"), Disk: "sde", Partition: 1, Size: 900 * 512}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Scan (-want +got):\n%s", diff)
	}
}

func TestScanNoSysfs(t *testing.T) {
	if _, err := usb.Scan(t.TempDir()); err == nil {
		t.Error("Scan of a tree without sys/block: no error")
	}
}

// TestScanVanishing: a disk whose files disappear between listing and
// reading (unplugged mid-scan) is skipped, not an error.
func TestScanVanishing(t *testing.T) {
	root := pi4Tree(t)
	dir, err := filepath.EvalSymlinks(filepath.Join(root, "sys/block/sda"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil { // the link in sys/block stays, dangling
		t.Fatal(err)
	}
	got, err := usb.Scan(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Name != "sdb" {
		t.Errorf("Scan: got %+v, want only sdb", got)
	}
}

// TestScanHost runs Scan on this machine's real /sys: it must not fail,
// and whatever it finds must be a USB or removable disk.
func TestScanHost(t *testing.T) {
	if _, err := os.Stat("/sys/block"); err != nil {
		testenv.Unavailable(t, "no /sys/block here")
	}
	devs, err := usb.Scan("/")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		rem, _ := os.ReadFile(filepath.Join("/sys/block", d.Disk, "removable"))
		if !d.USB && string(rem) != "1\n" {
			t.Errorf("Scan(/) found %+v: neither USB nor removable", d)
		}
	}
}
