package usb

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// Uevent is one kernel uevent as sent on NETLINK_KOBJECT_UEVENT: a header
// "ACTION@DEVPATH" followed by NUL-separated KEY=VALUE pairs.
type Uevent struct {
	Action    string            // "add", "remove", "change", "bind", ...
	DevPath   string            // sysfs path below /sys: "/devices/.../block/sda/sda1"
	Subsystem string            // "block", "usb", "scsi", ...
	DevName   string            // "sda1" (without /dev/); may be empty
	DevType   string            // "disk", "partition", ...
	Env       map[string]string // every KEY=VALUE pair, including the ones above
}

// maxUevent bounds a message: the kernel's own limit is 2048 bytes of
// environment plus the header (UEVENT_BUFFER_SIZE).
const maxUevent = 8192

// ParseUevent decodes one kernel uevent message. It rejects messages from
// udev ("libudev" magic) and anything without the "ACTION@DEVPATH" header
// or whose ACTION/DEVPATH pairs contradict the header.
func ParseUevent(b []byte) (Uevent, error) {
	if len(b) > maxUevent {
		return Uevent{}, fmt.Errorf("usb: uevent: %d bytes, more than %d", len(b), maxUevent)
	}
	if bytes.HasPrefix(b, []byte("libudev\x00")) {
		return Uevent{}, errors.New("usb: uevent: a udev message, not a kernel one")
	}
	fields := bytes.Split(bytes.TrimRight(b, "\x00"), []byte{0})
	action, devpath, ok := strings.Cut(string(fields[0]), "@")
	if !ok || action == "" || !strings.HasPrefix(devpath, "/") {
		return Uevent{}, fmt.Errorf("usb: uevent: header %q is not ACTION@DEVPATH", fields[0])
	}
	ev := Uevent{Action: action, DevPath: devpath, Env: make(map[string]string, len(fields)-1)}
	for _, f := range fields[1:] {
		k, v, ok := strings.Cut(string(f), "=")
		if !ok || k == "" {
			return Uevent{}, fmt.Errorf("usb: uevent %s: field %q is not KEY=VALUE", fields[0], f)
		}
		ev.Env[k] = v
	}
	if a, ok := ev.Env["ACTION"]; ok && a != action {
		return Uevent{}, fmt.Errorf("usb: uevent %s: ACTION=%s contradicts the header", fields[0], a)
	}
	if p, ok := ev.Env["DEVPATH"]; ok && p != devpath {
		return Uevent{}, fmt.Errorf("usb: uevent %s: DEVPATH=%s contradicts the header", fields[0], p)
	}
	ev.Subsystem = ev.Env["SUBSYSTEM"]
	ev.DevName = ev.Env["DEVNAME"]
	ev.DevType = ev.Env["DEVTYPE"]
	return ev, nil
}
