package statestore

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// populate writes keys k0..k9 and closes the store, returning the file size.
func populate(t *testing.T, dir string) int64 {
	t.Helper()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		mustSet(t, s, "k"+string(rune('0'+i)), strings.Repeat("v", 100), SetOptions{})
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, DBFile))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func damagedCopies(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, DBFile+".damaged-*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRepair(t *testing.T) {
	for _, tt := range []struct {
		name   string
		damage func(path string, size int64) error
		keys   int // keys that must survive
	}{
		{"garbage tail", func(p string, _ int64) error {
			f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.WriteString("#!garbage\x01\x02 not RESP")
			return err
		}, 10},
		{"torn last record", func(p string, size int64) error {
			return os.Truncate(p, size-40)
		}, 9},
		{"bad bulk terminator", func(p string, _ int64) error {
			f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.WriteString("*3\r\n$3\r\nset\r\n$1\r\nx\r\n$1\r\nyZZ")
			return err
		}, 10},
		{"zero-filled tail", func(p string, size int64) error {
			return os.Truncate(p, size+4096)
		}, 10},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			size := populate(t, dir)
			path := filepath.Join(dir, DBFile)
			if err := tt.damage(path, size); err != nil {
				t.Fatal(err)
			}
			before, _ := os.ReadFile(path)
			s := openTest(t, dir, Options{})
			rec, note := s.Recovered()
			if !rec {
				t.Fatalf("Recovered = false")
			}
			t.Logf("recovery: %s", note)
			copies := damagedCopies(t, dir)
			if len(copies) != 1 {
				t.Fatalf("damaged copies: %v", copies)
			}
			if kept, _ := os.ReadFile(copies[0]); string(kept) != string(before) {
				t.Errorf("damaged copy differs from the damaged file")
			}
			for i := range 10 {
				k := "k" + string(rune('0'+i))
				if i < tt.keys {
					wantGet(t, s, k, strings.Repeat("v", 100))
				} else {
					wantMissing(t, s, k)
				}
			}
			// The repaired file takes new writes and reopens cleanly.
			mustSet(t, s, "new", "x", SetOptions{})
			s.Close()
			s = openTest(t, dir, Options{})
			if rec, note := s.Recovered(); rec {
				t.Errorf("second open recovered again: %s", note)
			}
			wantGet(t, s, "new", "x")
		})
	}
}

func TestScanAOFClean(t *testing.T) {
	var b []byte
	b = appendSetRecord(b, "a", "1")
	b = append(b, "*2\r\n$3\r\ndel\r\n$1\r\na\r\n*5\r\n$3\r\nset\r\n$1\r\nb\r\n$1\r\n2\r\n$2\r\nex\r\n$2\r\n10\r\n"...)
	good, err := scanAOF(strings.NewReader(string(b)), int64(len(b)))
	if err != nil || good != int64(len(b)) {
		t.Errorf("scanAOF = %d, %v; want %d, nil", good, err, len(b))
	}
}

// FuzzScanAOF checks that the scanner never reports more than it read and
// that its good prefix scans clean.
func FuzzScanAOF(f *testing.F) {
	rec := appendSetRecord(nil, "key", "value")
	f.Add(rec)
	f.Add(append(rec, "*2\r\n$3\r\ndel\r\n$3\r\nkey\r\n"...))
	f.Add(append(rec, "garbage"...))
	f.Add(rec[:len(rec)-3])
	f.Fuzz(func(t *testing.T, b []byte) {
		good, _ := scanAOF(strings.NewReader(string(b)), int64(len(b)))
		if good < 0 || good > int64(len(b)) {
			t.Fatalf("good = %d, len %d", good, len(b))
		}
		if g2, err := scanAOF(strings.NewReader(string(b[:good])), good); err != nil || g2 != good {
			t.Fatalf("prefix: %d, %v; want %d", g2, err, good)
		}
	})
}
