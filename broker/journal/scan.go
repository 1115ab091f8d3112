package journal

import (
	"encoding/binary"
	"errors"
	"io"
	"os"
)

// scanChunk is how much of a segment replay and compaction read at a
// time: a segment (16 MiB by default) is never read whole into memory.
const scanChunk = 256 << 10

// scanner reads a segment's records in order, scanChunk bytes at a time
// (a record larger than that: its own size at once). Its owner is the
// one goroutine that scans.
type scanner struct {
	f    *os.File
	size int64 // where reading stops: the file's size, or a segment's end
	buf  []byte
	// buf[:k] holds the file from offset start; off is the next record's.
	start, k, off int64
	err           error // a read failed; next returned false
}

func newScanner(f *os.File, size int64) *scanner {
	return &scanner{f: f, size: size, buf: make([]byte, min(max(size, headerLen), scanChunk))}
}

// next returns the next record, header and body (valid until the next
// call), at offset s.off before the call. false at the end: a record
// whose length is zero (unwritten space) or that runs past size, or a
// read error (s.err); s.off is then where the records ended.
func (s *scanner) next() ([]byte, bool) {
	for {
		rel := s.off - s.start
		if s.off+headerLen > s.size {
			return nil, false
		}
		if rel+headerLen <= s.k {
			n := int64(binary.LittleEndian.Uint32(s.buf[rel:]))
			size := headerLen + n
			if n == 0 || s.off+size > s.size {
				return nil, false
			}
			if rel+size <= s.k {
				s.off += size
				return s.buf[rel : rel+size], true
			}
			if size > int64(len(s.buf)) {
				s.buf = make([]byte, size)
			}
		}
		s.start, s.k = s.off, min(int64(len(s.buf)), s.size-s.off)
		if _, err := s.f.ReadAt(s.buf[:s.k], s.start); err != nil && !errors.Is(err, io.EOF) {
			s.err = err
			return nil, false
		}
	}
}

// zeroFrom reports whether the file holds only zero bytes from off to
// size.
func (s *scanner) zeroFrom(off int64) (bool, error) {
	for off < s.size {
		k := min(int64(len(s.buf)), s.size-off)
		if _, err := s.f.ReadAt(s.buf[:k], off); err != nil && !errors.Is(err, io.EOF) {
			return false, err
		}
		if !allZero(s.buf[:k]) {
			return false, nil
		}
		off += k
	}
	return true, nil
}
