package config

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// FuzzParse checks that Parse never panics, that Validate and Pending
// never panic on what it returns, and that a parsed file marshals and
// parses back to equal resources.
//
// Seeds are single documents: the fuzzer minimizes every input that finds
// new code, and a few hundred bytes minimize in a second where whole
// files kept it busy (and reporting 0 execs/s) for the whole run.
func FuzzParse(f *testing.F) {
	seed := func(b []byte) {
		for _, d := range splitDocuments(b) {
			if len(bytes.TrimSpace(d.data)) > 0 {
				f.Add(d.data)
			}
		}
	}
	seed(DefaultYAML())
	seed([]byte(common))
	filepath.WalkDir("testdata", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && isYAML(p) {
			if b, err := os.ReadFile(p); err == nil {
				seed(b)
			}
		}
		return nil
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := Parse("f.yaml", data)
		var s Set
		s.Add(rs...)
		_ = s.Validate()
		_ = s.Pending()
		if err != nil {
			return
		}
		out, err := Marshal(rs...)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		again, err := Parse("again.yaml", out)
		if err != nil {
			t.Fatalf("Parse(Marshal(...)): %v\n%s", err, out)
		}
		opts := cmp.Options{cmpopts.IgnoreUnexported(Object{}, Secret{}, ConfigMap{}), cmpopts.EquateNaNs(), cmpopts.EquateEmpty()}
		if diff := cmp.Diff(rs, again, opts); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s\nmarshalled:\n%s", diff, out)
		}
	})
}

func TestMarshalRoundTrip(t *testing.T) {
	d := Default()
	out, err := Marshal(d.All()...)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := Parse("again.yaml", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var s Set
	s.Add(rs...)
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	opts := cmpopts.IgnoreUnexported(Object{}, Secret{}, ConfigMap{})
	if diff := cmp.Diff(d.All(), s.All(), opts); diff != "" {
		t.Errorf("(-default +again):\n%s", diff)
	}
}
