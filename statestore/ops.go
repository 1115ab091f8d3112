package statestore

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/tidwall/buntdb"
)

// Condition is a SET condition.
type Condition int

const (
	None Condition = iota // always set
	NX                    // only if the key is absent
	NEX                   // if absent, or the current value equals the new one
)

// SetOptions are the options of Set.
type SetOptions struct {
	Condition Condition
	// PX, if positive, makes the key expire PX after the SET (ms
	// precision). A SET without PX removes any expiry.
	PX time.Duration
	// Fencing is the request's __ft, nil if absent.
	Fencing *HLC
	// Timestamp is the request's __ts; the zero HLC means none was sent.
	Timestamp HLC
	// Owner is who writes (the principal), charged for the key (see
	// Quotas); "" for none.
	Owner string
}

// SetResult is the outcome of Set. Version is the new version if Applied,
// else the key's current version (the SDK expects it with ":-1").
type SetResult struct {
	Applied bool
	Version HLC
}

// Set stores value under key if opt's condition and fencing allow it.
func (s *Store) Set(key, value []byte, opt SetOptions) (SetResult, error) {
	if len(key) == 0 {
		return SetResult{}, ErrEmptyKey
	}
	if opt.Fencing != nil {
		if err := s.clock.CheckFuture(*opt.Fencing, ErrFencingFuture); err != nil {
			return SetResult{}, err
		}
	}
	o := &op{kind: opSet, key: string(key), value: bytes.Clone(value), set: opt, fencing: opt.Fencing}
	err := s.submit(o)
	return SetResult{Applied: o.applied, Version: o.version}, err
}

// Get returns key's value and version, or ErrNotFound. It never returns a
// value that is not yet durable, nor any value once the store failed (an
// error wrapping ErrFailed).
func (s *Store) Get(key []byte) ([]byte, HLC, error) {
	if err := s.failure(); err != nil {
		return nil, HLC{}, err
	}
	k := string(key)
	s.dbmu.RLock()
	var v string
	err := s.db.View(func(tx *buntdb.Tx) error {
		var err error
		v, err = tx.Get(k)
		return err
	})
	s.dbmu.RUnlock()
	switch {
	case errors.Is(err, buntdb.ErrNotFound):
		return nil, HLC{}, ErrNotFound
	case errors.Is(err, buntdb.ErrDatabaseClosed):
		return nil, HLC{}, ErrClosed
	case err != nil:
		return nil, HLC{}, fmt.Errorf("statestore: get: %w", err)
	}
	s.inflight.wait(k)
	if err := s.failure(); err != nil {
		return nil, HLC{}, err // v may be a write whose fsync failed
	}
	r, err := decodeRecord([]byte(v))
	if err != nil {
		return nil, HLC{}, err
	}
	if r.expired(s.opts.Now().UnixMilli()) {
		return nil, HLC{}, ErrNotFound
	}
	return r.Value, r.Version, nil
}

// Del deletes key, returning 1, or 0 if it was absent.
func (s *Store) Del(key []byte, fencing *HLC) (int, error) {
	n, _, err := s.del(opDel, key, nil, fencing)
	return n, err
}

// VDel deletes key if its value equals value: it returns 1 if deleted, 0
// if absent and -1 if the value differs.
func (s *Store) VDel(key, value []byte, fencing *HLC) (int, error) {
	n, _, err := s.del(opVDel, key, bytes.Clone(value), fencing)
	return n, err
}

// DelVersion is Del that also returns the version of the key it found
// (the zero HLC if it was absent); the protocol sends it as __ts.
func (s *Store) DelVersion(key []byte, fencing *HLC) (int, HLC, error) {
	return s.del(opDel, key, nil, fencing)
}

// VDelVersion is VDel that also returns the version of the key it found
// (the zero HLC if it was absent), deleted or not.
func (s *Store) VDelVersion(key, value []byte, fencing *HLC) (int, HLC, error) {
	return s.del(opVDel, key, bytes.Clone(value), fencing)
}

func (s *Store) del(kind opKind, key, value []byte, fencing *HLC) (int, HLC, error) {
	if len(key) == 0 {
		return 0, HLC{}, ErrEmptyKey
	}
	if fencing != nil {
		if err := s.clock.CheckFuture(*fencing, ErrFencingFuture); err != nil {
			return 0, HLC{}, err
		}
	}
	o := &op{kind: kind, key: string(key), value: value, fencing: fencing}
	err := s.submit(o)
	return o.n, o.version, err
}

// applier evaluates operations inside the batch transaction. Counter
// changes are kept aside until the transaction is durable.
type applier struct {
	s      *Store
	tx     *buntdb.Tx
	now    int64
	err    error // fatal: aborts the batch
	events []Event
	dkeys  int
	dbytes int64
	dlines map[string]int64 // deadline changes; 0 removes
	downer map[string]usage // per-owner changes
	// changes counts records written; a batch without any needs no
	// fsync, as everything it read was made durable by earlier batches.
	changes int
}

// load returns key's live record. An expired record is deleted on the way,
// with its delete event.
func (a *applier) load(key string) (record, bool) {
	v, err := a.tx.Get(key)
	if errors.Is(err, buntdb.ErrNotFound) {
		return record{}, false
	}
	if err == nil {
		var r record
		if r, err = decodeRecord([]byte(v)); err == nil {
			if r.expired(a.now) {
				a.remove(key, r)
				return record{}, false
			}
			return r, true
		}
	}
	a.err = fmt.Errorf("key %q: %w", key, err)
	return record{}, false
}

func (a *applier) remove(key string, r record) {
	if _, err := a.tx.Delete(key); err != nil {
		a.err = err
		return
	}
	a.changes++
	a.dkeys--
	a.dbytes -= int64(len(key) + len(r.Value))
	a.charge(r.Owner, -1, -int64(len(key)+len(r.Value)))
	a.setDeadline(key, 0)
	a.events = append(a.events, Event{Key: []byte(key), Kind: EventDelete, Version: a.s.clock.Now()})
}

func (a *applier) setDeadline(key string, d int64) {
	if a.dlines == nil {
		a.dlines = make(map[string]int64)
	}
	a.dlines[key] = d
}

// charge records a change of owner's usage.
func (a *applier) charge(owner string, keys int, bytes int64) {
	if owner == "" {
		return
	}
	if a.downer == nil {
		a.downer = make(map[string]usage)
	}
	u := a.downer[owner]
	a.downer[owner] = usage{keys: u.keys + keys, bytes: u.bytes + bytes}
}

// ownerUsage is owner's usage including the batch so far.
func (a *applier) ownerUsage(owner string) usage {
	u, d := a.s.owners[owner], a.downer[owner]
	return usage{keys: u.keys + d.keys, bytes: u.bytes + d.bytes}
}

// overOwnerQuota reports whether o's owner would exceed its quota by
// writing o's value over cur.
func (a *applier) overOwnerQuota(o *op, cur record, exists bool) bool {
	maxKeys, maxBytes := a.s.opts.MaxKeysPerOwner, a.s.opts.MaxBytesPerOwner
	owner := o.set.Owner
	if owner == "" || maxKeys <= 0 && maxBytes <= 0 {
		return false
	}
	// The owner gains the whole key, unless it already owns it.
	dk, db := 1, int64(len(o.key)+len(o.value))
	if exists && cur.Owner == owner {
		dk, db = 0, int64(len(o.value)-len(cur.Value))
	}
	u := a.ownerUsage(owner)
	return maxKeys > 0 && dk > 0 && u.keys+dk > maxKeys ||
		maxBytes > 0 && db > 0 && u.bytes+db > maxBytes
}

func (a *applier) expire(key string) { a.load(key) }

func (a *applier) apply(o *op) {
	switch o.kind {
	case opExpire:
	case opSet:
		a.set(o)
	default:
		a.delete(o)
	}
}

// checkFencing applies §5: a protected key needs a token >= its own.
func checkFencing(cur record, exists bool, ft *HLC) error {
	if !exists || cur.Fencing.IsZero() {
		return nil
	}
	if ft == nil {
		return ErrFencingRequired
	}
	if ft.Compare(cur.Fencing) < 0 {
		return ErrFencingLower
	}
	return nil
}

func (a *applier) set(o *op) {
	cur, exists := a.load(o.key)
	if a.err != nil {
		return
	}
	if o.err = checkFencing(cur, exists, o.fencing); o.err != nil {
		return
	}
	if exists && (o.set.Condition == NX || o.set.Condition == NEX && !bytes.Equal(cur.Value, o.value)) {
		o.version = cur.Version
		return
	}
	dk, db := 1, int64(len(o.key)+len(o.value))
	if exists {
		dk, db = 0, int64(len(o.value)-len(cur.Value))
	}
	if q := a.s.opts.MaxKeys; q > 0 && dk > 0 && a.s.nkeys+a.dkeys+dk > q ||
		a.s.opts.MaxBytes > 0 && db > 0 && a.s.nbytes+a.dbytes+db > a.s.opts.MaxBytes {
		o.err = ErrQuotaExceeded
		return
	}
	if a.overOwnerQuota(o, cur, exists) {
		o.err = ErrOwnerQuotaExceeded
		return
	}
	if o.set.Timestamp.IsZero() {
		o.version = a.s.clock.Now()
	} else if o.version, o.err = a.s.clock.Update(o.set.Timestamp); o.err != nil {
		return
	}
	r := record{Version: o.version, Fencing: cur.Fencing, Owner: o.set.Owner, Value: o.value}
	if o.fencing != nil && o.fencing.Compare(r.Fencing) > 0 {
		r.Fencing = *o.fencing
	}
	if o.set.PX > 0 {
		r.Deadline = a.now + o.set.PX.Milliseconds()
	}
	if _, _, err := a.tx.Set(o.key, string(r.append(nil)), nil); err != nil {
		a.err = err
		return
	}
	a.changes++
	a.dkeys += dk
	a.dbytes += db
	if exists {
		a.charge(cur.Owner, -1, -int64(len(o.key)+len(cur.Value)))
	}
	a.charge(r.Owner, 1, int64(len(o.key)+len(r.Value)))
	a.setDeadline(o.key, r.Deadline)
	o.applied = true
	a.events = append(a.events, Event{Key: []byte(o.key), Kind: EventSet, Value: o.value, Version: o.version})
}

func (a *applier) delete(o *op) {
	cur, exists := a.load(o.key)
	if a.err != nil || !exists {
		return
	}
	if o.err = checkFencing(cur, exists, o.fencing); o.err != nil {
		return
	}
	o.version = cur.Version
	if o.kind == opVDel && !bytes.Equal(cur.Value, o.value) {
		o.n = -1
		return
	}
	a.remove(o.key, cur)
	o.n = 1
}

// commitCounters publishes the batch's counter changes once it is durable.
func (a *applier) commitCounters() {
	s := a.s
	s.nkeys += a.dkeys
	s.nbytes += a.dbytes
	s.usedKeys.Store(int64(s.nkeys))
	s.usedBytes.Store(s.nbytes)
	for k, d := range a.dlines {
		if d == 0 {
			delete(s.deadlines, k)
		} else {
			s.deadlines[k] = d
		}
	}
	if len(a.downer) == 0 {
		return
	}
	s.ownersMu.Lock()
	for o, d := range a.downer {
		u := s.owners[o]
		u.keys += d.keys
		u.bytes += d.bytes
		if u.keys <= 0 {
			delete(s.owners, o)
		} else {
			s.owners[o] = u
		}
	}
	s.ownersMu.Unlock()
}
