package testenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// ReadmeBlock returns the body of the first fenced block that opens with
// fence (e.g. "```yaml") after the first occurrence of after in the
// project's README.md (found from the working directory up to the module
// root), so that tests run what README shows and it cannot drift.
func ReadmeBlock(t testing.TB, after, fence string) string {
	t.Helper()
	_, rest, ok := strings.Cut(Readme(t), after)
	if !ok {
		t.Fatalf("README: no %q", after)
	}
	_, rest, ok = strings.Cut(rest, fence+"\n")
	if !ok {
		t.Fatalf("README: no %s block after %q", fence, after)
	}
	body, _, ok := strings.Cut(rest, "```\n")
	if !ok {
		t.Fatalf("README: unterminated %s block after %q", fence, after)
	}
	return body
}

// Readme returns the project's README.md.
func Readme(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if b, err := os.ReadFile(filepath.Join(dir, "README.md")); err == nil {
				return string(b)
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("README.md not found above the working directory")
		}
		dir = parent
	}
}
