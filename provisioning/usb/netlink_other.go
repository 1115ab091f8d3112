//go:build !linux

package usb

import (
	"context"
	"errors"
)

// OpenUevents is only implemented on Linux; elsewhere Watch polls.
func OpenUevents(ctx context.Context) (<-chan Uevent, error) {
	return nil, errors.New("usb: uevent socket: not supported on this system")
}
