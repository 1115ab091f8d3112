package broker

import "time"

// Hooks for the tests in package broker_test.

// ParkedConns counts the connections parked in the reactor: no reader
// goroutine owns them.
func ParkedConns(s *Server) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for c := range s.conns {
		if c.parked.Load() {
			n++
		}
	}
	return n
}

// SetReaderIdle sets how long a reader waits without input before it
// parks its connection. Call it before Serve.
func SetReaderIdle(s *Server, d time.Duration) { s.readerIdle = d }

// Connecting counts the sockets that have not finished CONNECT.
func Connecting(s *Server) int64 { return s.connecting.Load() }

// QueuedBytes is the bytes queued for every session.
func QueuedBytes(s *Server) int64 { return s.queuedBytes.Load() }

// ReadBuffers is the bytes of read buffers grown for large packets.
func ReadBuffers(s *Server) int64 { return s.bigReads.Load() }
