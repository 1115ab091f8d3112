package appliance

import (
	"testing"
	"time"
)

// SetUploadWriteTimeout makes d the time an upload's report may take to
// write, until t ends. Tests that change it must not run in parallel.
func SetUploadWriteTimeout(t testing.TB, d time.Duration) {
	old := uploadWriteTimeout
	uploadWriteTimeout = d
	t.Cleanup(func() { uploadWriteTimeout = old })
}
