// Package brokerstate is the store in which versions before the journal
// (broker/journal) kept the broker's retained messages and persistent
// sessions: the appliance reads it once (Each), imports it into the
// journal and removes it. Its writing side (RetainedChanged,
// SessionChanged) is kept to make such stores in tests. What follows
// describes what that store promised.
//
// The broker reports changes with its locks held, so recording one costs a
// map insert: the last change per retained topic or client identifier
// replaces the one before (memory is bounded by the number of topics and
// sessions, not by the rate of changes). A writer goroutine waits
// FlushInterval after the first change, or until MaxPending keys changed,
// then writes everything pending as one statestore Batch: one
// transaction, one fsync.
//
// # What a power cut loses
//
//   - Every change reported in the last FlushInterval (100 ms by default)
//     before the cut, plus those of a batch whose write and fsync had not
//     finished: a retained message set, replaced or deleted then comes
//     back as it was before; a session created, resumed, subscribed or
//     unsubscribed then comes back as it was before (or not at all, if it
//     is new); a session that ended then comes back (and expires, or is
//     resumed, as usual).
//   - Every message queued or in flight for a session since the last
//     clean shutdown: they are saved only by a clean shutdown (broker
//     Shutdown or Close, then Close here). A queue saved then stays on
//     disk until the client reconnects, so a cut before that loses
//     nothing of it; a cut within FlushInterval after the reconnection
//     can deliver those messages a second time after the restart (QoS 1
//     and 2 alike).
//   - Delayed will messages (never saved). A session online at the cut
//     comes back offline with its whole expiry counted from the restart.
//
// A cut never leaves a half-written record: each key is either its old or
// its new value, and the statestore truncates a torn tail at the next Open.
package brokerstate

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"edgebroker/broker"
	"edgebroker/statestore"
)

// Key prefixes in the store.
const (
	retainedPrefix = "r"
	sessionPrefix  = "s"
)

// maxBatch bounds the writes of one statestore Batch.
const maxBatch = 4096

// Options configures a Store. The zero value is usable.
type Options struct {
	// FlushInterval is how long changes gather before they are written
	// (default 100 ms): at most this much is lost in a power cut.
	FlushInterval time.Duration
	// MaxPending changed keys are written without waiting for the
	// interval (default 1024).
	MaxPending int
	Logger     *slog.Logger     // nil: discard
	Now        func() time.Time // nil: time.Now
}

// Store is the legacy store of broker state. Its methods are safe
// for concurrent use.
type Store struct {
	st   *statestore.Store
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	pending map[string]change
	closed  bool

	kick chan struct{} // the first change is pending
	full chan struct{} // MaxPending changes are pending
	stop chan struct{}
	done chan struct{}
	err  error // the first write error; owned by the writer until done

	writes, batches atomic.Int64 // keys written, Batch calls
}

// change is the latest state of one key: a message, a session, or
// neither (deleted).
type change struct {
	msg  *broker.StoredMessage
	sess *broker.StoredSession
}

// Open opens (creating if needed) the store in dir, which it holds
// exclusively until Close.
func Open(dir string, opts Options) (*Store, error) {
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 100 * time.Millisecond
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = 1024
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st, err := statestore.Open(dir, statestore.Options{Node: "BrokerState", Logger: log, Now: opts.Now})
	if err != nil {
		return nil, fmt.Errorf("brokerstate: %w", err)
	}
	if rec, note := st.Recovered(); rec {
		log.Warn("brokerstate: repaired at start", "detail", note)
	}
	s := &Store{
		st: st, opts: opts, log: log,
		pending: make(map[string]change),
		kick:    make(chan struct{}, 1),
		full:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	go s.run()
	return s, nil
}

// Load returns what the store holds. Call it before the broker reports
// changes (its result feeds broker.Server.Restore). A record that does not
// decode is logged, skipped and deleted. Load holds everything in memory
// at once; Each does not.
func (s *Store) Load() (retained []broker.StoredMessage, sessions []broker.StoredSession, err error) {
	err = s.Each(func(m *broker.StoredMessage) { retained = append(retained, *m) },
		func(ss *broker.StoredSession) { sessions = append(sessions, *ss) })
	if err != nil {
		return nil, nil, err
	}
	return retained, sessions, nil
}

// Each decodes the stored records one at a time and hands them to
// retained and session (retained messages first, in topic order): only
// one record is decoded at a time, so a restore can stop taking them at
// its limits without the whole store in memory twice. The callbacks may
// report changes (RetainedChanged, SessionChanged) but must not call Each, Load or
// Close. A record that does not decode is logged, skipped and deleted.
func (s *Store) Each(retained func(*broker.StoredMessage), session func(*broker.StoredSession)) error {
	var bad []string
	err := s.st.Each(func(k, v []byte) bool {
		key := string(k)
		var derr error
		prefix, name := "", ""
		if key != "" {
			prefix, name = key[:1], key[1:]
		}
		switch prefix {
		case retainedPrefix:
			var m broker.StoredMessage
			if derr = m.UnmarshalBinary(v); derr == nil && string(m.Topic) != name {
				derr = fmt.Errorf("topic %q under the key of %q", m.Topic, name)
			}
			if derr == nil {
				retained(&m)
			}
		case sessionPrefix:
			var ss broker.StoredSession
			if derr = ss.UnmarshalBinary(v); derr == nil && ss.ID != name {
				derr = fmt.Errorf("session %q under the key of %q", ss.ID, name)
			}
			if derr == nil {
				session(&ss)
			}
		default:
			derr = errors.New("unknown key")
		}
		if derr != nil {
			s.log.Warn("brokerstate: dropping a bad record", "key", key, "err", derr)
			bad = append(bad, key)
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("brokerstate: load: %w", err)
	}
	for _, k := range bad {
		s.record(k, change{})
	}
	return nil
}

// RetainedChanged records the retained message of topic .
func (s *Store) RetainedChanged(topic string, m *broker.StoredMessage) {
	s.record(retainedPrefix+topic, change{msg: m})
}

// SessionChanged records the session of client id .
func (s *Store) SessionChanged(id string, ss *broker.StoredSession) {
	s.record(sessionPrefix+id, change{sess: ss})
}

// record makes c the pending state of key without blocking.
func (s *Store) record(key string, c change) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.log.Warn("brokerstate: change after Close dropped", "key", key)
		return
	}
	s.pending[key] = c
	n := len(s.pending)
	s.mu.Unlock()
	if n == 1 {
		signal(s.kick)
	}
	if n >= s.opts.MaxPending {
		signal(s.full)
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// run is the writer: after the first change it waits FlushInterval (or
// until MaxPending changed) and writes what is pending.
func (s *Store) run() {
	defer close(s.done)
	for {
		select {
		case <-s.kick:
		case <-s.full:
		case <-s.stop:
			s.flush()
			return
		}
		s.mu.Lock()
		n := len(s.pending)
		s.mu.Unlock()
		if n < s.opts.MaxPending {
			t := time.NewTimer(s.opts.FlushInterval)
			select {
			case <-t.C:
			case <-s.full:
			case <-s.stop:
			}
			t.Stop()
		}
		s.flush()
	}
}

// flush writes every pending change in batches of at most maxBatch.
func (s *Store) flush() {
	s.mu.Lock()
	pending := s.pending
	if len(pending) == 0 {
		s.mu.Unlock()
		return
	}
	s.pending = make(map[string]change, len(pending))
	s.mu.Unlock()
	now := s.opts.Now()
	ws := make([]statestore.Write, 0, min(len(pending), maxBatch))
	for k, c := range pending {
		ws = append(ws, s.encode(k, c, now))
		if len(ws) == maxBatch {
			s.write(ws)
			ws = ws[:0]
		}
	}
	s.write(ws)
}

// encode turns a change into a write. A retained message expires in the
// store when it expires for the broker.
func (s *Store) encode(key string, c change, now time.Time) statestore.Write {
	w := statestore.Write{Key: []byte(key)}
	var err error
	switch {
	case c.msg != nil:
		if !c.msg.Expires.IsZero() {
			if w.PX = c.msg.Expires.Sub(now); w.PX <= 0 {
				w.Delete = true
				return w
			}
		}
		w.Value, err = c.msg.MarshalBinary()
	case c.sess != nil:
		w.Value, err = c.sess.MarshalBinary()
	default:
		w.Delete = true
	}
	if err != nil { // the encoders do not fail
		s.log.Error("brokerstate: encode", "key", key, "err", err)
		w.Delete, w.Value = true, nil
	}
	return w
}

func (s *Store) write(ws []statestore.Write) {
	if len(ws) == 0 {
		return
	}
	if err := s.st.Batch(ws); err != nil {
		s.log.Error("brokerstate: write failed: broker state changes lost", "keys", len(ws), "err", err)
		if s.err == nil {
			s.err = err
		}
	}
	// Counted once the batch is durable: a test that awaits the count
	// then reads what was written.
	s.batches.Add(1)
	s.writes.Add(int64(len(ws)))
}

// Close writes everything pending, waits until it is durable, and closes
// the store. It returns the first write error since Open, if any.
// Changes reported after Close are dropped.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("brokerstate: %w", statestore.ErrClosed)
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	<-s.done
	err := s.err
	if cerr := s.st.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("brokerstate: %w", cerr))
	}
	return err
}
