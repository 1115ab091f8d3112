package statestore

import (
	"fmt"
	"sync"

	"github.com/tidwall/buntdb"
)

// maxBatch bounds how many operations share one transaction and fsync.
const maxBatch = 4096

type opKind int

const (
	opSet opKind = iota
	opDel
	opVDel
	opExpire  // delete keys whose deadline passed
	opCompact // rewrite the file
	opGroup   // the writes of a Batch, committed together
)

type op struct {
	kind    opKind
	key     string
	value   []byte
	set     SetOptions
	fencing *HLC
	group   []*op // opGroup: its writes

	// results, valid after done is closed
	done    chan struct{}
	applied bool
	n       int
	version HLC
	err     error
}

// inflightSet holds the keys of the batch between its commit and its
// fsync, so that Get does not return a value that is not yet durable.
type inflightSet struct {
	mu   sync.Mutex
	keys map[string]struct{}
	done chan struct{}
}

func (in *inflightSet) begin(keys map[string]struct{}) {
	in.mu.Lock()
	in.keys, in.done = keys, make(chan struct{})
	in.mu.Unlock()
}

func (in *inflightSet) end() {
	in.mu.Lock()
	close(in.done)
	in.keys, in.done = nil, nil
	in.mu.Unlock()
}

// wait blocks until key is not part of a batch awaiting fsync.
func (in *inflightSet) wait(key string) {
	in.mu.Lock()
	_, ok := in.keys[key]
	done := in.done
	in.mu.Unlock()
	if ok {
		<-done
	}
}

// waitAll blocks until the batch awaiting fsync, if any, is done.
func (in *inflightSet) waitAll() {
	in.mu.Lock()
	done := in.done
	in.mu.Unlock()
	if done != nil {
		<-done
	}
}

// submit queues o and waits for its result.
func (s *Store) submit(o *op) error {
	o.done = make(chan struct{})
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return ErrClosed
	}
	s.queue <- o
	s.closeMu.RUnlock()
	<-o.done
	return o.err
}

func (s *Store) commitLoop() {
	defer close(s.done)
	batch := make([]*op, 0, maxBatch)
	for {
		var first *op
		select {
		case first = <-s.queue:
		case <-s.stop:
			// Close holds closeMu: nothing new can be queued.
			for {
				select {
				case o := <-s.queue:
					s.runBatch(o.appendTo(batch[:0]))
				default:
					return
				}
			}
		}
		batch = first.appendTo(batch[:0])
	fill:
		for len(batch) < maxBatch {
			select {
			case o := <-s.queue:
				batch = o.appendTo(batch)
			default:
				break fill
			}
		}
		s.runBatch(batch)
	}
}

// runBatch applies ops in one transaction, fsyncs once, then completes the
// ops and delivers their events.
func (s *Store) runBatch(batch []*op) {
	if err := s.failure(); err != nil {
		finish(batch, err)
		return
	}
	var writes []*op
	for _, o := range batch {
		if o.kind == opCompact {
			o.err = s.compact()
			close(o.done)
			continue
		}
		writes = append(writes, o)
	}
	if len(writes) == 0 {
		return
	}
	now := s.opts.Now().UnixMilli()
	keys := make(map[string]struct{}, len(writes))
	var expiring []string
	for _, o := range writes {
		if o.kind == opExpire {
			if expiring == nil {
				expiring = s.dueKeys(now, keys)
			}
			continue
		}
		keys[o.key] = struct{}{}
	}
	s.inflight.begin(keys)
	a := applier{s: s, now: now}
	s.dbmu.RLock()
	err := s.db.Update(func(tx *buntdb.Tx) error {
		a.tx = tx
		for _, k := range expiring {
			a.expire(k)
		}
		for _, o := range writes {
			a.apply(o)
			if a.err != nil {
				return a.err
			}
		}
		return nil
	})
	switch {
	case err != nil:
		err = fmt.Errorf("statestore: commit: %w", err)
	case a.changes > 0:
		if err = s.sync.Sync(); err != nil {
			// Before inflight.end: readers waiting for this batch
			// see the failure, never its writes.
			err = s.fail(fmt.Errorf("statestore: fsync: %w", err))
		}
	}
	s.dbmu.RUnlock()
	s.inflight.end()
	if err != nil {
		// The in-memory counters may be off after a failed transaction
		// (buntdb rolled it back).
		if s.failure() == nil {
			if rerr := s.rebuildIndex(); rerr != nil {
				s.fail(rerr)
			}
		}
		finish(writes, err)
		return
	}
	a.commitCounters()
	// Events go out before the writers are released, so a caller that
	// got its result knows its event has been delivered.
	if s.opts.OnChange != nil {
		for _, ev := range a.events {
			s.opts.OnChange(ev)
		}
	}
	for _, o := range writes {
		close(o.done)
	}
	s.batches++
	if s.batches%256 == 0 && s.needCompact(2) {
		if err := s.compact(); err != nil {
			s.log.Error("statestore: compaction failed", "err", err)
		}
	}
}

func finish(ops []*op, err error) {
	for _, o := range ops {
		o.applied, o.n, o.err = false, 0, err
		close(o.done)
	}
}

// dueKeys returns the keys whose deadline is at or before now, adding them
// to keys.
func (s *Store) dueKeys(now int64, keys map[string]struct{}) []string {
	due := []string{}
	for k, d := range s.deadlines {
		if now >= d {
			due = append(due, k)
			keys[k] = struct{}{}
		}
	}
	return due
}
