package mqttapi

// SetHold makes s's workers call hold before they execute a request (a
// slow store).
func SetHold(s *Service, hold func()) { s.hold.Store(&hold) }

// Watches is how many keys clientID watches.
func Watches(s *Service, clientID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.clients[clientID])
}

// Queued is how many requests of connections wait for or are in a worker.
func Queued(s *Service) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, k := range s.pending {
		n += k
	}
	return n
}
