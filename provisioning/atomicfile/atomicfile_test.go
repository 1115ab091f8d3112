package atomicfile

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFile(t *testing.T) {
	for _, tt := range []struct {
		name    string
		old     []byte // nil: no previous file
		oldPerm os.FileMode
		data    []byte
		perm    os.FileMode
	}{
		{name: "create key", data: []byte("secret"), perm: 0o600},
		{name: "create cert", data: []byte("public"), perm: 0o644},
		{name: "create empty", data: nil, perm: 0o644},
		{name: "replace", old: []byte("old contents, longer"), oldPerm: 0o644, data: []byte("new"), perm: 0o644},
		{name: "replace narrows perm", old: []byte("old"), oldPerm: 0o644, data: []byte("key"), perm: 0o600},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "f")
			if tt.old != nil {
				if err := os.WriteFile(path, tt.old, tt.oldPerm); err != nil {
					t.Fatal(err)
				}
			}
			if err := WriteFile(path, tt.data, tt.perm); err != nil {
				t.Fatalf("WriteFile: %v", err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.data) {
				t.Errorf("contents: got %q, want %q", got, tt.data)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := fi.Mode().Perm(), tt.perm; got != want {
				t.Errorf("perm: got %v, want %v", got, want)
			}
			assertNoTemp(t, dir, "f")
		})
	}
}

func TestWriteFileMissingDir(t *testing.T) {
	dir := t.TempDir()
	err := WriteFile(filepath.Join(dir, "missing", "f"), []byte("x"), 0o600)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("WriteFile into a missing dir: got %v, want fs.ErrNotExist", err)
	}
}

func TestWriteFileFailureKeepsOld(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	// A directory at the target makes the rename fail after the temp
	// file was written: the target must stay and the temp file go.
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(path, "inner"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, []byte("new"), 0o600); err == nil {
		t.Fatal("WriteFile over a non-empty directory: got nil error")
	}
	if fi, err := os.Stat(path); err != nil || !fi.IsDir() {
		t.Errorf("target after failed write: %v, %v; want the old directory", fi, err)
	}
	assertNoTemp(t, dir, "f")
}

func assertNoTemp(t *testing.T, dir string, want ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != len(want) {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("dir holds %q, want %q (a temp file was left behind)", names, want)
	}
}
