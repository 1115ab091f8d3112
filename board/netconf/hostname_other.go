//go:build !linux

package netconf

import "errors"

func sethostname(string) error { return errors.New("setting the host name needs Linux") }
