package statestore

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// errBadRecord marks bytes that are not a valid buntdb AOF record.
var errBadRecord = errors.New("statestore: invalid AOF record")

// scanAOF reads buntdb's append-only file format — a sequence of RESP
// arrays of bulk strings: "set key value", "set key value ex|ae n",
// "del key" or "flushdb", with NUL bytes between records ignored, as in
// buntdb's readLoad — and returns the offset just past the last complete,
// valid record. err is nil if the whole input is valid.
func scanAOF(r io.Reader, size int64) (good int64, err error) {
	br := bufio.NewReaderSize(r, 1<<16)
	var pos int64
	for {
		c, err := br.ReadByte()
		if err == io.EOF {
			return good, nil
		}
		if err != nil {
			return good, err
		}
		pos++
		if c == 0 {
			continue // buntdb skips NULs; they do not move good forward
		}
		if c != '*' {
			return good, fmt.Errorf("%w at offset %d: %q", errBadRecord, pos-1, c)
		}
		n, m, err := readCount(br)
		if err != nil {
			return good, recordErr(err, pos-1)
		}
		pos += m
		if n > 5 {
			return good, fmt.Errorf("%w at offset %d: %d arguments", errBadRecord, good, n)
		}
		args := make([][]byte, 0, n)
		for i := 0; i < n; i++ {
			arg, n, err := readBulk(br, size-pos)
			if err != nil {
				return good, recordErr(err, pos)
			}
			pos += n
			args = append(args, arg)
		}
		if err := checkCommand(args); err != nil {
			return good, recordErr(err, pos)
		}
		good = pos
	}
}

func recordErr(err error, off int64) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w at offset %d: torn record", errBadRecord, off)
	}
	return fmt.Errorf("%w at offset %d: %v", errBadRecord, off, err)
}

// readCount reads "<digits>\r\n" and returns the number and bytes read.
func readCount(br *bufio.Reader) (int, int64, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, int64(len(line)), err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return 0, 0, errors.New("bad length line")
	}
	n, err := strconv.ParseUint(string(line[:len(line)-2]), 10, 31)
	if err != nil {
		return 0, 0, err
	}
	return int(n), int64(len(line)), nil
}

// readBulk reads one bulk string of at most max bytes in all.
func readBulk(br *bufio.Reader, max int64) ([]byte, int64, error) {
	c, err := br.ReadByte()
	if err != nil {
		return nil, 0, err
	}
	if c != '$' {
		return nil, 0, errors.New("want bulk string")
	}
	n, size, err := readCount(br)
	if err != nil {
		return nil, 0, err
	}
	if int64(n) > max {
		return nil, 0, io.ErrUnexpectedEOF // longer than the rest of the file
	}
	buf := make([]byte, n+2)
	if _, err := io.ReadFull(br, buf); err != nil {
		return nil, 0, err
	}
	if buf[n] != '\r' || buf[n+1] != '\n' {
		return nil, 0, errors.New("bulk string not terminated by CRLF")
	}
	return buf[:n], 1 + size + int64(n) + 2, nil
}

func checkCommand(args [][]byte) error {
	if len(args) == 0 {
		return nil // buntdb skips empty arrays
	}
	switch cmd := string(bytes.ToLower(args[0])); {
	case cmd == "set" && len(args) == 3:
	case cmd == "set" && len(args) == 5:
		if opt := string(bytes.ToLower(args[3])); opt != "ex" && opt != "ae" {
			return fmt.Errorf("set option %q", args[3])
		}
		if _, err := strconv.ParseInt(string(args[4]), 10, 64); err != nil {
			return err
		}
	case cmd == "del" && len(args) == 2, cmd == "flushdb" && len(args) == 1:
	default:
		return fmt.Errorf("command %q with %d arguments", args[0], len(args))
	}
	return nil
}

// repair checks the file at path and, if its tail is torn or damaged,
// keeps a copy as path.damaged-<time>, truncates the file to its last good
// record and fsyncs both. buntdb itself would refuse a garbage tail
// ("invalid database") and silently truncate a torn one without fsync.
func repair(path string, now time.Time) (bool, string, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if os.IsNotExist(err) {
		return false, "", nil
	}
	if err != nil {
		return false, "", fmt.Errorf("statestore: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false, "", fmt.Errorf("statestore: %w", err)
	}
	good, scanErr := scanAOF(f, fi.Size())
	if scanErr != nil && !errors.Is(scanErr, errBadRecord) {
		return false, "", fmt.Errorf("statestore: read %s: %w", path, scanErr)
	}
	if good == fi.Size() {
		return false, "", nil
	}
	backup := fmt.Sprintf("%s.damaged-%s", path, now.UTC().Format("20060102T150405.000000000Z"))
	if err := copyFile(backup, f); err != nil {
		return false, "", err
	}
	if err := f.Truncate(good); err != nil {
		return false, "", fmt.Errorf("statestore: truncate: %w", err)
	}
	if err := f.Sync(); err != nil {
		return false, "", fmt.Errorf("statestore: fsync: %w", err)
	}
	why := "trailing NUL bytes"
	if scanErr != nil {
		why = scanErr.Error()
	}
	note := fmt.Sprintf("truncated %s from %d to %d bytes (%s); damaged file kept as %s",
		path, fi.Size(), good, why, backup)
	return true, note, nil
}

// copyFile copies src to a new file dst and makes it durable.
func copyFile(dst string, src *os.File) error {
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("statestore: backup: %w", err)
	}
	_, err = io.Copy(out, io.NewSectionReader(src, 0, 1<<62))
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(filepath.Dir(dst))
	}
	if err != nil {
		return fmt.Errorf("statestore: backup: %w", err)
	}
	return nil
}
