package netconf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// unconfigure takes off the interface called name what gokrazy's DHCP
// client puts on it for a static lease: the address addr and the default
// route through gw (if valid). What is already gone (the interface, the
// address, the route) is no error.
func unconfigure(name string, addr netip.Prefix, gw netip.Addr) error {
	index, err := ifindex(name)
	if err != nil || index == 0 {
		return err
	}
	var errs []error
	if gw.IsValid() {
		rt := make([]byte, unix.SizeofRtMsg)
		rt[0] = unix.AF_INET
		rt[4] = unix.RT_TABLE_MAIN
		rt[6] = unix.RT_SCOPE_NOWHERE // any scope, any metric (ip route del)
		rt = appendAttr(rt, unix.RTA_GATEWAY, gw.AsSlice())
		rt = appendAttr(rt, unix.RTA_OIF, binary.NativeEndian.AppendUint32(nil, uint32(index)))
		if err := rtnetlink(unix.RTM_DELROUTE, rt); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("netconf: %s: deleting the default route via %s: %w", name, gw, err))
		}
	}
	ifa := make([]byte, unix.SizeofIfAddrmsg)
	ifa[0] = unix.AF_INET
	ifa[1] = byte(addr.Bits())
	binary.NativeEndian.PutUint32(ifa[4:], uint32(index))
	ifa = appendAttr(ifa, unix.IFA_LOCAL, addr.Addr().AsSlice())
	ifa = appendAttr(ifa, unix.IFA_ADDRESS, addr.Addr().AsSlice())
	if err := rtnetlink(unix.RTM_DELADDR, ifa); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
		errs = append(errs, fmt.Errorf("netconf: %s: deleting the address %s: %w", name, addr, err))
	}
	return errors.Join(errs...)
}

// ifindex returns the index of the interface called name; 0 if there is
// none.
func ifindex(name string) (int, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return 0, fmt.Errorf("netconf: %w", err)
	}
	for _, ifi := range ifs {
		if ifi.Name == name {
			return ifi.Index, nil
		}
	}
	return 0, nil
}

// appendAttr appends a route attribute (struct rtattr and its data,
// padded to 4 bytes).
func appendAttr(b []byte, typ uint16, data []byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(unix.SizeofRtAttr+len(data)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, data...)
	for len(b)%unix.NLMSG_ALIGNTO != 0 {
		b = append(b, 0)
	}
	return b
}

// rtnetlink sends one request to the kernel's routing netlink and returns
// the error its acknowledgement carries.
func rtnetlink(typ uint16, body []byte) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	to := &unix.SockaddrNetlink{Family: unix.AF_NETLINK}
	if err := unix.Bind(fd, to); err != nil {
		return err
	}
	msg := binary.NativeEndian.AppendUint32(nil, uint32(unix.NLMSG_HDRLEN+len(body)))
	msg = binary.NativeEndian.AppendUint16(msg, typ)
	msg = binary.NativeEndian.AppendUint16(msg, unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	msg = binary.NativeEndian.AppendUint32(msg, 1) // sequence number
	msg = binary.NativeEndian.AppendUint32(msg, 0) // port: the kernel's
	msg = append(msg, body...)
	if err := unix.Sendto(fd, msg, 0, to); err != nil {
		return err
	}
	buf := make([]byte, 4096) // an error echoes the request: far less
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return err
		}
		for b := buf[:n]; len(b) >= unix.NLMSG_HDRLEN+4; {
			l := int(binary.NativeEndian.Uint32(b))
			if l < unix.NLMSG_HDRLEN || l > len(b) {
				return errors.New("netconf: a malformed netlink answer")
			}
			if binary.NativeEndian.Uint16(b[4:]) == unix.NLMSG_ERROR {
				if errno := int32(binary.NativeEndian.Uint32(b[unix.NLMSG_HDRLEN:])); errno != 0 {
					return unix.Errno(-errno)
				}
				return nil
			}
			next := (l + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1)
			if next >= len(b) {
				break
			}
			b = b[next:]
		}
	}
}
