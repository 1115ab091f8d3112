// Package pins keeps the pinned gokrazy modules in this module's build graph,
// so that `go mod tidy` here retains them. Nothing imports it.
package pins

import (
	_ "github.com/gokrazy/firmware"
	_ "github.com/gokrazy/gokrazy"
	_ "github.com/gokrazy/kernel.arm64"
	_ "github.com/gokrazy/kernel.rpi"
	_ "github.com/gokrazy/rpi-eeprom"
)
