package netconf

import "golang.org/x/sys/unix"

// sethostname sets the kernel's host name.
func sethostname(name string) error { return unix.Sethostname([]byte(name)) }
