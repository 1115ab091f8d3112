package main

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// reboot syncs the file systems and restarts the machine with arg.
func reboot(arg string) error {
	unix.Sync()
	if arg == "" {
		return unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	}
	b, err := unix.BytePtrFromString(arg)
	if err != nil {
		return err
	}
	_, _, errno := unix.Syscall6(unix.SYS_REBOOT, unix.LINUX_REBOOT_MAGIC1, unix.LINUX_REBOOT_MAGIC2,
		unix.LINUX_REBOOT_CMD_RESTART2, uintptr(unsafe.Pointer(b)), 0, 0)
	if errno != 0 {
		return syscall.Errno(errno)
	}
	return nil
}
