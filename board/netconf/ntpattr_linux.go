package netconf

import "syscall"

// ntpProcAttr puts the ntp Gokrazy runs in its own process group and has
// the kernel kill it when edgebroker's thread that started it ends, so a
// restarted edgebroker never finds an old one running.
func ntpProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
