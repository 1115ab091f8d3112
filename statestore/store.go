// Package statestore implements the durable core of edgebroker's state
// store, compatible with the Azure IoT Operations state store protocol:
// binary-safe keys and values with HLC versions, NX/NEX conditions,
// millisecond PX expiry, fencing tokens, quotas and change events.
//
// # Durability
//
// Data lives in one buntdb append-only file, dir/statestore.db, opened with
// SyncPolicy Never and auto-shrink disabled. The store does its own fsync:
// a single committer goroutine takes every pending write (group commit),
// applies the batch in one buntdb transaction — one write(2) appending one
// RESP record per changed key — and then calls fsync once on a second
// *os.File opened on the same path. fsync works on the inode, not on the
// file descriptor: it flushes every dirty page and the size of the file,
// whichever descriptor wrote them, and since Linux 4.13 a writeback error is
// reported to every descriptor that was open when it happened (the second
// descriptor is read-only; Linux allows fsync on it). A write is
// acknowledged (and its change event delivered) only after that fsync
// returned nil. If fsync fails the store fails closed: the failing batch and
// every later write, and every later read (Get, Each), return an error
// wrapping ErrFailed, because buntdb's memory then holds writes that may
// never reach the disk and the page cache state is unknown (fsyncgate).
// Rolling the writes back in memory would need writing to the same file;
// reopening would read the same page cache. The store stays failed until
// it is closed and opened again (the appliance's watchdog reads it, so a
// failed store restarts the appliance); what Open then reads is the truth,
// with or without the writes that were never acknowledged, as after a
// crash.
//
// Readers never observe a value that is not yet durable: a Get of a key in
// the batch being synced waits for the fsync, and returns the failure if it
// failed.
//
// # Quotas
//
// MaxKeys and MaxBytes bound the whole store; MaxKeysPerOwner and
// MaxBytesPerOwner bound each owner (SetOptions.Owner: for the MQTT
// service, the principal). A key is charged to the owner that wrote its
// current value, which is stored in its record (so usage survives
// restarts: Open recomputes it): overwriting another owner's key moves
// the whole key to the writer's account, and a delete frees its owner's
// share, whoever deletes it. Keys written without an owner (in-process
// writes, Batch, records from before owners were stored) count only
// toward the totals.
//
// Compaction (Compact) does not use buntdb's Shrink, which renames its
// temporary file without fsyncing it: a crash right after the rename can
// leave a renamed but empty file. Instead the store writes the live records
// to a temporary file, fsyncs it, renames it over the database, fsyncs the
// directory, and reopens buntdb, all while no write is in flight.
//
// An exclusive flock on dir/statestore.lock prevents a second process (or a
// second Open) from appending to the same file; buntdb has no locking.
package statestore

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/buntdb"
	"golang.org/x/sys/unix"
)

// File names inside the store directory.
const (
	DBFile   = "statestore.db"
	LockFile = "statestore.lock"
)

// Options configures a Store. The zero value is usable.
type Options struct {
	// Node is the HLC node id of this store (default "StateStore").
	Node string
	// MaxKeys and MaxBytes (sum of key and value lengths) limit the store;
	// 0 means unlimited. Writes beyond them fail with ErrQuotaExceeded.
	MaxKeys  int
	MaxBytes int64
	// MaxKeysPerOwner and MaxBytesPerOwner limit what one owner holds
	// (see Quotas); 0 means unlimited. Writes beyond them fail with
	// ErrOwnerQuotaExceeded, which is also an ErrQuotaExceeded.
	MaxKeysPerOwner  int
	MaxBytesPerOwner int64
	// OnChange is called after a change is durable, in commit order, on
	// the committer goroutine, before the writer's Set/Del/VDel returns.
	// It must not block for long and must not call Set, Del, VDel, Sweep
	// or Compact (Get is fine). The event's slices must not be modified.
	OnChange func(Event)
	// SweepInterval is how often expired keys are deleted (default 100ms).
	SweepInterval time.Duration
	// CompactMinSize: automatic compaction runs when the file is larger
	// than this (default 4 MiB) and than twice the live data.
	CompactMinSize int64
	// Now is the wall clock; nil means time.Now.
	Now func() time.Time
	// Logger receives recovery and compaction messages; nil discards.
	Logger *slog.Logger

	// wrapSync, if set, wraps the file the store fsyncs (tests inject
	// fsync failures).
	wrapSync func(*os.File) syncFile
}

// syncFile is the handle the committer fsyncs: an *os.File opened
// read-only on the database file.
type syncFile interface {
	Sync() error
	Stat() (os.FileInfo, error)
	Close() error
}

// EventKind says what happened to a key.
type EventKind int

const (
	EventSet EventKind = iota + 1
	EventDelete
)

func (k EventKind) String() string {
	if k == EventSet {
		return "SET"
	}
	return "DELETE"
}

// Event describes a durable change: a SET, or a delete by DEL, VDEL or
// expiry. Version is the new version for a set and the deletion
// timestamp for a delete.
type Event struct {
	Key     []byte
	Kind    EventKind
	Value   []byte // nil for deletes
	Version HLC
}

// Store is a durable key-value store. Its methods are safe for concurrent
// use.
type Store struct {
	dir   string
	path  string
	opts  Options
	clock *Clock
	log   *slog.Logger

	lock *os.File // flock holder

	dbmu sync.RWMutex // guards db and sync (exclusive while compacting)
	db   *buntdb.DB
	sync syncFile

	queue    chan *op
	stop     chan struct{}
	done     chan struct{}
	closeMu  sync.RWMutex
	closed   bool
	inflight inflightSet
	// failed is set (once) by the committer, or Close, when a write could
	// not be made durable: every later write and read returns it.
	failed atomic.Pointer[error]

	// owned by the committer goroutine
	nkeys     int
	nbytes    int64
	deadlines map[string]int64
	// usedKeys and usedBytes mirror nkeys and nbytes for Usage.
	usedKeys, usedBytes atomic.Int64
	batches             int
	// owners is each owner's usage. The committer writes it under
	// ownersMu and reads it without; OwnerUsage reads under ownersMu.
	owners   map[string]usage
	ownersMu sync.RWMutex

	recovered    bool
	recoveryNote string
}

// Open opens (creating if needed) the store in dir. It fails with ErrLocked
// if another Store holds dir. A damaged file is repaired first (see
// Recovered).
func Open(dir string, opts Options) (*Store, error) {
	if opts.Node == "" {
		opts.Node = "StateStore"
	}
	if opts.SweepInterval <= 0 {
		opts.SweepInterval = 100 * time.Millisecond
	}
	if opts.CompactMinSize <= 0 {
		opts.CompactMinSize = 4 << 20
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Store{
		dir:       dir,
		path:      filepath.Join(dir, DBFile),
		opts:      opts,
		clock:     NewClock(opts.Node, opts.Now),
		log:       opts.Logger,
		queue:     make(chan *op, 1024),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		deadlines: make(map[string]int64),
		owners:    make(map[string]usage),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if err := s.acquireLock(); err != nil {
		return nil, err
	}
	if err := s.openFiles(); err != nil {
		s.lock.Close()
		return nil, err
	}
	go s.commitLoop()
	go s.sweepLoop()
	return s, nil
}

func (s *Store) acquireLock() error {
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return fmt.Errorf("statestore: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(s.dir, LockFile), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("statestore: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("%w: %s", ErrLocked, s.dir)
		}
		return fmt.Errorf("statestore: flock %s: %w", f.Name(), err)
	}
	s.lock = f
	return nil
}

// openFiles repairs the file if needed, opens buntdb and the sync handle and
// rebuilds the in-memory indexes (key count, bytes, deadlines).
func (s *Store) openFiles() error {
	_, statErr := os.Stat(s.path)
	os.Remove(s.path + ".compact") // left by a crash during compaction
	rec, note, err := repair(s.path, s.opts.Now())
	if err != nil {
		return err
	}
	if rec {
		s.recovered, s.recoveryNote = true, note
		s.log.Warn("statestore: repaired damaged database", "detail", note)
	}
	if err := s.openDB(); err != nil {
		return err
	}
	if os.IsNotExist(statErr) {
		// Make the new file's directory entry durable.
		if err := s.sync.Sync(); err != nil {
			return s.closeDB(fmt.Errorf("statestore: fsync: %w", err))
		}
		if err := syncDir(s.dir); err != nil {
			return s.closeDB(err)
		}
	}
	return s.rebuildIndex()
}

func (s *Store) openDB() error {
	db, err := buntdb.Open(s.path)
	if err != nil {
		return fmt.Errorf("statestore: open %s: %w", s.path, err)
	}
	cfg := buntdb.Config{SyncPolicy: buntdb.Never, AutoShrinkDisabled: true}
	if err := db.SetConfig(cfg); err != nil {
		db.Close()
		return fmt.Errorf("statestore: config: %w", err)
	}
	f, err := os.OpenFile(s.path, os.O_RDONLY, 0)
	if err != nil {
		db.Close()
		return fmt.Errorf("statestore: %w", err)
	}
	s.db, s.sync = db, f
	if s.opts.wrapSync != nil {
		s.sync = s.opts.wrapSync(f)
	}
	return nil
}

func (s *Store) closeDB(cause error) error {
	err := s.db.Close()
	if cerr := s.sync.Close(); err == nil {
		err = cerr
	}
	if cause != nil {
		return cause
	}
	if err != nil {
		return fmt.Errorf("statestore: close: %w", err)
	}
	return nil
}

func (s *Store) rebuildIndex() error {
	s.nkeys, s.nbytes = 0, 0
	clear(s.deadlines)
	owners := make(map[string]usage)
	defer func() {
		s.ownersMu.Lock()
		s.owners = owners
		s.ownersMu.Unlock()
	}()
	var newest HLC
	defer func() { s.clock.observe(newest) }()
	return s.db.View(func(tx *buntdb.Tx) error {
		var err error
		tx.Ascend("", func(k, v string) bool {
			var r record
			if r, err = decodeRecord([]byte(v)); err != nil {
				err = fmt.Errorf("statestore: key %q: %w", k, err)
				return false
			}
			if r.Version.Compare(newest) > 0 {
				newest = r.Version
			}
			s.nkeys++
			s.nbytes += int64(len(k) + len(r.Value))
			if r.Owner != "" {
				u := owners[r.Owner]
				owners[r.Owner] = usage{keys: u.keys + 1, bytes: u.bytes + int64(len(k)+len(r.Value))}
			}
			if r.Deadline != 0 {
				s.deadlines[k] = r.Deadline
			}
			return true
		})
		s.usedKeys.Store(int64(s.nkeys))
		s.usedBytes.Store(s.nbytes)
		return err
	})
}

// Usage returns how many keys the store holds and the bytes of their keys
// and values, as of the last durable commit (the figures quotas apply to).
func (s *Store) Usage() (keys int, bytes int64) {
	return int(s.usedKeys.Load()), s.usedBytes.Load()
}

// OwnerUsage returns how many keys owner holds and the bytes of their keys
// and values, as of the last durable commit.
func (s *Store) OwnerUsage(owner string) (keys int, bytes int64) {
	s.ownersMu.RLock()
	u := s.owners[owner]
	s.ownersMu.RUnlock()
	return u.keys, u.bytes
}

// usage is what one owner holds.
type usage struct {
	keys  int
	bytes int64
}

// failure returns the error that failed the store, or nil.
func (s *Store) failure() error {
	if p := s.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// fail marks the store failed by cause (the first cause stays) and
// returns the failure.
func (s *Store) fail(cause error) error {
	err := fmt.Errorf("%w: %w", ErrFailed, cause)
	s.failed.CompareAndSwap(nil, &err)
	return s.failure()
}

// Recovered reports whether Open had to repair the database file, and
// what it did.
func (s *Store) Recovered() (bool, string) { return s.recovered, s.recoveryNote }

// Clock returns the store's HLC clock.
func (s *Store) Clock() *Clock { return s.clock }

// Close waits for pending writes, compacts the file if worthwhile, and
// releases the database and the lock.
func (s *Store) Close() error {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return ErrClosed
	}
	s.closed = true
	close(s.stop)
	s.closeMu.Unlock()
	<-s.done
	var err error
	if s.failure() == nil && s.needCompact(1) {
		err = s.compact()
	}
	s.dbmu.Lock()
	defer s.dbmu.Unlock()
	err = errors.Join(err, s.closeDB(nil))
	return errors.Join(err, s.lock.Close())
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("statestore: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("statestore: fsync %s: %w", dir, err)
	}
	return nil
}
