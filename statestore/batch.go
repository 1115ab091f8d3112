package statestore

import (
	"errors"
	"fmt"
	"time"

	"github.com/tidwall/buntdb"
)

// Write is one change of a Batch: Key set to Value (expiring after PX if
// positive), or deleted when Delete is set.
type Write struct {
	Key    []byte
	Value  []byte
	PX     time.Duration
	Delete bool
}

// Batch applies writes as unconditional sets and deletes (no fencing, no
// conditions) in one transaction made durable by one fsync, in order: the
// last write to a key wins. It returns when they are durable, with the
// first error a write met (a quota) or the commit's error; writes without
// an error are applied either way. Batch does not keep writes' slices.
func (s *Store) Batch(writes []Write) error {
	if len(writes) == 0 {
		return nil
	}
	g := &op{kind: opGroup, group: make([]*op, len(writes))}
	for i, w := range writes {
		if len(w.Key) == 0 {
			return ErrEmptyKey
		}
		o := &op{kind: opSet, key: string(w.Key), done: make(chan struct{})}
		if w.Delete {
			o.kind = opDel
		} else {
			o.value = append([]byte{}, w.Value...)
			o.set.PX = w.PX
		}
		g.group[i] = o
	}
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return ErrClosed
	}
	s.queue <- g
	s.closeMu.RUnlock()
	var errs []error
	for _, o := range g.group {
		<-o.done
		if o.err != nil && len(errs) == 0 {
			errs = append(errs, fmt.Errorf("statestore: batch key %q: %w", o.key, o.err))
		}
	}
	return errors.Join(errs...)
}

// appendTo appends o to a batch, or the writes of a group.
func (o *op) appendTo(batch []*op) []*op {
	if o.kind == opGroup {
		return append(batch, o.group...)
	}
	return append(batch, o)
}

// Each calls fn with every live key and its value, in key order, until
// fn returns false. It is meant for loading at start: fn may see the
// writes of a batch whose fsync is under way; Each then waits for that
// fsync, and if it failed returns the failure (an error wrapping
// ErrFailed): discard what fn got then. fn must not call the Store; key
// and value are its own.
func (s *Store) Each(fn func(key, value []byte) bool) error {
	if err := s.failure(); err != nil {
		return err
	}
	now := s.opts.Now().UnixMilli()
	s.dbmu.RLock()
	var derr error
	err := s.db.View(func(tx *buntdb.Tx) error {
		return tx.Ascend("", func(k, v string) bool {
			r, err := decodeRecord([]byte(v))
			if err != nil {
				derr = fmt.Errorf("statestore: key %q: %w", k, err)
				return false
			}
			if r.expired(now) {
				return true
			}
			return fn([]byte(k), r.Value)
		})
	})
	s.dbmu.RUnlock()
	s.inflight.waitAll()
	switch ferr := s.failure(); {
	case ferr != nil:
		return ferr
	case derr != nil:
		return derr
	case errors.Is(err, buntdb.ErrDatabaseClosed):
		return ErrClosed
	case err != nil:
		return fmt.Errorf("statestore: each: %w", err)
	}
	return nil
}
