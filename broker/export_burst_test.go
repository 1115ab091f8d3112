package broker

// Hooks for burst.go's tests in package broker_test.

const (
	BurstConns  = burstConns
	BurstQuiet  = burstQuiet
	BurstMinGap = burstMinGap
)

// SetFreeOSMemory replaces debug.FreeOSMemory for s's scavenges (a
// synctest bubble's tests count them without collecting the test
// process's heap). Call it before Serve.
func SetFreeOSMemory(s *Server, f func()) { s.freeOSMemory = f }
