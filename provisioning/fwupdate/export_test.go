package fwupdate

import "testing"

// SetTestWrite makes f see every write to a disk (and to a staged boot
// file system) before it is made, for the rest of t; an error from f
// drops the write, as a power cut would.
func SetTestWrite(t testing.TB, f func(path string, off int64, b []byte) error) {
	testWrite = f
	t.Cleanup(func() { testWrite = nil })
}
