package broker

// PendingTotal returns the bytes waiting in every connection's outbox.
func PendingTotal(s *Server) int {
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	n := 0
	for _, c := range conns {
		n += c.out.pending()
	}
	return n
}
