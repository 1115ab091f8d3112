package statestore

import "time"

// sweepLoop periodically queues an expiry pass. The pass runs on the
// committer like any write, so expiry deletes are durable before their
// delete events are delivered. Deadlines are part of the stored records,
// so keys that expired while the store was down are deleted (with events)
// by the first pass after Open.
func (s *Store) sweepLoop() {
	t := time.NewTicker(s.opts.SweepInterval)
	defer t.Stop()
	for {
		if err := s.Sweep(); err == ErrClosed {
			return
		}
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}

// Sweep deletes every key whose PX deadline has passed and delivers their
// delete events. It runs automatically every Options.SweepInterval.
func (s *Store) Sweep() error {
	return s.submit(&op{kind: opExpire})
}
