package broker

import (
	"fmt"
	"time"

	"edgebroker/broker/journal"
)

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

// SetWriterIdle sets how long a writer goroutine waits before it parks.
// Call it before Serve.
func SetWriterIdle(s *Server, d time.Duration) { s.writerIdle = d }

// Connecting counts the sockets that have not finished CONNECT.
func Connecting(s *Server) int64 { return s.connecting.Load() }

// QueuedBytes is the bytes queued for every session.
func QueuedBytes(s *Server) int64 { return s.queuedBytes.Load() }

// ReadBuffers is the bytes of read buffers grown for large packets.
func ReadBuffers(s *Server) int64 { return s.bigReads.Load() }

// AppendDeliveryBody appends the body of the journal's delivery record
// for sd (its QoS, retain flag and subscription identifiers), as the
// broker writes it: for tests that write a journal by hand.
func AppendDeliveryBody(b []byte, sd *StoredDelivery) []byte {
	d := delivery{qos: sd.QoS, retain: sd.Retain}
	for _, id := range sd.SubIDs {
		d.addID(id)
	}
	return appendDeliveryBody(b, &d)
}

// DecodeJournalSession decodes a session the journal holds as
// RestoreJournal does; an error if its record or one of its deliveries
// does not decode.
func DecodeJournalSession(js *journal.Session) (*StoredSession, error) {
	st := new(StoredSession)
	bad, err := decodeJournalSession(js, st)
	if err == nil && len(bad) > 0 {
		err = fmt.Errorf("session %q: %d deliveries do not decode", js.ID, len(bad))
	}
	return st, err
}
