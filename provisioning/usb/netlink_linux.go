package usb

import (
	"context"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// OpenUevents subscribes to the kernel's uevent multicast group
// (NETLINK_KOBJECT_UEVENT, group 1) and delivers every message that parses
// until ctx is done; then the channel is closed. Messages not sent by the
// kernel (sender port id != 0) are dropped. An error is returned only when
// the socket cannot be opened.
func OpenUevents(ctx context.Context) (<-chan Uevent, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_KOBJECT_UEVENT)
	if err != nil {
		return nil, fmt.Errorf("usb: uevent socket: %w", err)
	}
	// A burst of events (a hub with several sticks) must not overflow the
	// default buffer; ENOBUFS would lose events (polling still catches up).
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("usb: uevent socket: bind: %w", err)
	}
	f := os.NewFile(uintptr(fd), "uevent") // non-blocking: reads park in the poller and Close wakes them
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("usb: uevent socket: %w", err)
	}
	ch := make(chan Uevent, 16)
	go func() {
		<-ctx.Done()
		f.Close()
	}()
	go func() {
		defer close(ch)
		buf := make([]byte, maxUevent)
		for {
			var (
				n    int
				from unix.Sockaddr
				rerr error
			)
			err := rc.Read(func(fd uintptr) bool {
				n, from, rerr = unix.Recvfrom(int(fd), buf, 0)
				return !errors.Is(rerr, unix.EAGAIN)
			})
			if err != nil {
				return // closed
			}
			if rerr != nil {
				if errors.Is(rerr, unix.ENOBUFS) {
					continue // overflow: events lost; the periodic scan catches up
				}
				return
			}
			if nl, ok := from.(*unix.SockaddrNetlink); !ok || nl.Pid != 0 {
				continue
			}
			ev, err := ParseUevent(buf[:n])
			if err != nil {
				continue
			}
			select {
			case ch <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch, nil
}
