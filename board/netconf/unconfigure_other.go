//go:build !linux

package netconf

import (
	"errors"
	"net/netip"
)

func unconfigure(string, netip.Prefix, netip.Addr) error {
	return errors.New("netconf: taking back a static address needs Linux")
}
