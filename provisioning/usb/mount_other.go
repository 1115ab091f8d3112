//go:build !linux

package usb

import "errors"

// KernelMounter mounts devices with mount(2); only on Linux.
type KernelMounter struct {
	Dir string
}

// Mount fails: mounting is only implemented on Linux.
func (k KernelMounter) Mount(dev Device) (Medium, error) {
	return nil, errors.New("usb: mount " + dev.Name + ": not supported on this system")
}
