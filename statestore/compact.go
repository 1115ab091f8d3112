package statestore

import (
	"bufio"
	"fmt"
	"os"
	"strconv"

	"github.com/tidwall/buntdb"
)

// Compact rewrites the database file with only the live keys.
func (s *Store) Compact() error {
	return s.submit(&op{kind: opCompact})
}

// needCompact reports whether the file is larger than factor × the live
// data (and than CompactMinSize). Only the committer (or Close) calls it.
func (s *Store) needCompact(factor int64) bool {
	fi, err := s.sync.Stat()
	if err != nil {
		return false
	}
	live := s.nbytes + int64(s.nkeys)*64 // record and RESP overhead, estimated
	return fi.Size() > s.opts.CompactMinSize && fi.Size() > factor*live
}

// compact writes the live records to statestore.db.compact, fsyncs it,
// renames it over the database, fsyncs the directory and reopens buntdb.
// It runs with no write in flight (on the committer, or in Close after the
// committer stopped) and excludes readers only for the swap.
func (s *Store) compact() error {
	tmp := s.path + ".compact"
	if err := s.writeSnapshot(tmp); err != nil {
		os.Remove(tmp)
		return err
	}
	s.dbmu.Lock()
	defer s.dbmu.Unlock()
	if err := s.closeDB(nil); err != nil {
		s.log.Error("statestore: close before compaction swap", "err", err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		os.Remove(tmp)
		// The old file is intact: reopen it.
		if oerr := s.openDB(); oerr != nil {
			s.fail(oerr)
		}
		return fmt.Errorf("statestore: compact: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		// The rename may not be durable: after a crash the old file
		// could come back without the writes made to the new one.
		// Refuse further writes rather than acknowledge them.
		s.fail(err)
	}
	if err := s.openDB(); err != nil {
		s.fail(err)
	}
	if err := s.failure(); err != nil {
		return err
	}
	s.log.Info("statestore: compacted", "keys", s.nkeys)
	return nil
}

func (s *Store) writeSnapshot(tmp string) error {
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("statestore: compact: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<16)
	var buf []byte
	s.dbmu.RLock()
	err = s.db.View(func(tx *buntdb.Tx) error {
		var werr error
		tx.Ascend("", func(k, v string) bool {
			buf = appendSetRecord(buf[:0], k, v)
			_, werr = w.Write(buf)
			return werr == nil
		})
		return werr
	})
	s.dbmu.RUnlock()
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("statestore: compact: %w", err)
	}
	return nil
}

// appendSetRecord appends the buntdb AOF record "set key value".
func appendSetRecord(b []byte, key, value string) []byte {
	b = append(b, "*3\r\n$3\r\nset\r\n"...)
	for _, s := range []string{key, value} {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(s)), 10)
		b = append(b, "\r\n"...)
		b = append(b, s...)
		b = append(b, "\r\n"...)
	}
	return b
}
