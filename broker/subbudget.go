package broker

// chargeSubLocked charges a new subscription to filter against the
// session's and the server's subscription memory limits; false, and
// nothing charged, when either would be exceeded. Callers hold ss.mu.
func (ss *session) chargeSubLocked(filter string) bool {
	s := ss.srv
	n := int64(len(filter)) + SubscriptionOverhead
	if ss.subBytes+n > s.lim.MaxSubscriptionBytes {
		return false
	}
	if s.subBytes.Add(n) > s.lim.MaxTotalSubscriptionBytes {
		s.subBytes.Add(-n)
		return false
	}
	ss.subBytes += n
	return true
}

// uncharge returns what a removed subscription to filter was charged.
// Callers hold ss.mu.
func (ss *session) uncharge(filter string) {
	n := int64(len(filter)) + SubscriptionOverhead
	ss.subBytes -= n
	ss.srv.subBytes.Add(-n)
}
