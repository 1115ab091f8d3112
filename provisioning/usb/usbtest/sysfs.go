package usbtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	diskfs "github.com/diskfs/go-diskfs"
)

// Bus says where a fake disk hangs; it decides the sysfs device path.
type Bus int

const (
	USB     Bus = iota // a USB mass-storage stick (Raspberry Pi 4 xHCI path)
	MMC                // the SD card slot (mmcblk0)
	NVMe               // an NVMe drive
	SATA               // an ATA disk
	Virtual            // loop, zram: no "device" link
)

// Disk describes a block device to put into a fake sysfs tree.
type Disk struct {
	Name       string  // "sda", "mmcblk0", "nvme0n1", "loop0"
	Bus        Bus     //
	Port       int     // USB port (1-based) for Bus == USB; 0 means 1
	Removable  bool    // the "removable" file; sticks are usually 1
	Sectors    int64   // disk size in 512-byte sectors
	Partitions []int64 // partition sizes in sectors: Name+"1", Name+"2"... ("p1" after a digit)
	Vendor     string  // device/vendor
	Model      string  // device/model
}

// devicePath returns the disk's directory below /sys/devices and the
// relative target of its "device" link ("" for none).
func (d Disk) devicePath() (dir, link string) {
	switch d.Bus {
	case USB:
		port := max(d.Port, 1)
		host := port - 1
		scsi := fmt.Sprintf("%d:0:0:0", host)
		return fmt.Sprintf("devices/platform/scb/fd500000.pcie/pci0000:00/0000:00:00.0/0000:01:00.0/usb2/2-%d/2-%d:1.0/host%d/target%d:0:0/%s/block/%s", port, port, host, host, scsi, d.Name), "../../../" + scsi
	case MMC:
		return "devices/platform/emmc2bus/fe340000.mmc/mmc_host/mmc0/mmc0:aaaa/block/" + d.Name, "../../../mmc0:aaaa"
	case NVMe:
		return "devices/pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0/" + d.Name, "../../nvme0"
	case SATA:
		return "devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/" + d.Name, "../../../0:0:0:0"
	default:
		return "devices/virtual/block/" + d.Name, ""
	}
}

// PartitionName returns the kernel name of partition n of disk:
// "sda1", but "mmcblk0p1" and "nvme0n1p1" after a digit.
func PartitionName(disk string, n int) string {
	if c := disk[len(disk)-1]; c >= '0' && c <= '9' {
		return disk + "p" + strconv.Itoa(n)
	}
	return disk + strconv.Itoa(n)
}

// AddDisk creates d in the fake sysfs tree at root the way the kernel lays
// it out: root/sys/devices/.../block/NAME with size, removable, device
// link (vendor, model) and one subdirectory per partition (partition,
// start, size), and the root/sys/block/NAME link to it. It also creates
// empty device nodes stand-ins under root/dev.
func AddDisk(t testing.TB, root string, d Disk) {
	t.Helper()
	if err := addDisk(root, d); err != nil {
		t.Fatalf("usbtest: AddDisk %s: %v", d.Name, err)
	}
}

func addDisk(root string, d Disk) error {
	rel, link := d.devicePath()
	dir := filepath.Join(root, "sys", rel)
	files := map[string]string{
		"size":      strconv.FormatInt(d.Sectors, 10),
		"removable": "0",
		"ro":        "0",
		"dev":       "8:0",
	}
	if d.Removable {
		files["removable"] = "1"
	}
	if err := writeFiles(dir, files); err != nil {
		return err
	}
	if link != "" {
		target := filepath.Join(dir, link)
		if err := writeFiles(target, map[string]string{"vendor": fmt.Sprintf("%-8s", d.Vendor), "model": fmt.Sprintf("%-16s", d.Model)}); err != nil {
			return err
		}
		if err := os.Symlink(link, filepath.Join(dir, "device")); err != nil {
			return err
		}
	}
	start := int64(PartitionStart)
	for i, sectors := range d.Partitions {
		name := PartitionName(d.Name, i+1)
		if err := writeFiles(filepath.Join(dir, name), map[string]string{
			"partition": strconv.Itoa(i + 1),
			"start":     strconv.FormatInt(start, 10),
			"size":      strconv.FormatInt(sectors, 10),
		}); err != nil {
			return err
		}
		start += sectors
		if err := touch(filepath.Join(root, "dev", name)); err != nil {
			return err
		}
	}
	if err := touch(filepath.Join(root, "dev", d.Name)); err != nil {
		return err
	}
	block := filepath.Join(root, "sys", "block")
	if err := os.MkdirAll(block, 0o755); err != nil {
		return err
	}
	return os.Symlink(filepath.Join("..", rel), filepath.Join(block, d.Name))
}

// RemoveDisk takes a disk out of the fake tree, as unplugging does: the
// /sys/block link first, then its device directory and /dev nodes.
func RemoveDisk(t testing.TB, root, name string) {
	t.Helper()
	link := filepath.Join(root, "sys", "block", name)
	dir, err := filepath.EvalSymlinks(link)
	if err != nil {
		t.Fatalf("usbtest: RemoveDisk %s: %v", name, err)
	}
	if err := os.Remove(link); err != nil {
		t.Fatalf("usbtest: RemoveDisk %s: %v", name, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatalf("usbtest: RemoveDisk %s: %v", name, err)
	}
	nodes, _ := filepath.Glob(filepath.Join(root, "dev", name+"*"))
	for _, n := range nodes {
		os.Remove(n)
	}
}

// AddStick puts the image at img into the fake tree at root as USB disk
// name ("sda"), with the partitions of the image's partition table. Mount
// what usb.Scan then finds with Mounter{Images: map[string]string{name:
// img}}.
func AddStick(t testing.TB, root, name, img string) {
	t.Helper()
	d, err := diskfs.Open(img, diskfs.WithOpenMode(diskfs.ReadOnly), diskfs.WithSectorSize(diskfs.SectorSize512))
	if err != nil {
		t.Fatalf("usbtest: AddStick: %v", err)
	}
	defer d.Close()
	spec := Disk{Name: name, Bus: USB, Removable: true, Sectors: d.Size / 512, Vendor: "usbtest", Model: "FAT32 image"}
	if table, err := d.GetPartitionTable(); err == nil {
		for _, p := range table.GetPartitions() {
			spec.Partitions = append(spec.Partitions, p.GetSize()/512)
		}
	}
	AddDisk(t, root, spec)
}

func writeFiles(dir string, files map[string]string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content+"\n"), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func touch(p string) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, nil, 0o600)
}
