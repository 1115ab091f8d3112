//go:build !linux

package netconf

import "syscall"

func ntpProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
