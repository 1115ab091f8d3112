package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEnsurePassword(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "gokr-pw.txt")
	pw, err := ensurePassword(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(pw) != 32 {
		t.Errorf("generated password %q; want 32 hex digits", pw)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("password file: %v, %v; want mode 0600", st.Mode(), err)
	}
	again, err := ensurePassword(path)
	if err != nil || again != pw {
		t.Errorf("second call: %q, %v; want the stored %q", again, err, pw)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	if _, err := ensurePassword(empty); !errors.Is(err, errNoPassword) {
		t.Errorf("empty file: %v; want errNoPassword", err)
	}
}

func TestParseEpoch(t *testing.T) {
	ctx := context.Background()
	if e, err := parseEpoch(ctx, "1700000000", "/"); err != nil || e.Unix() != 1700000000 {
		t.Errorf("parseEpoch(1700000000) = %v, %v", e, err)
	}
	if _, err := parseEpoch(ctx, "yesterday", "/"); err == nil {
		t.Error("parseEpoch(yesterday) succeeded")
	}
	// Outside a git checkout and without SOURCE_DATE_EPOCH: the Unix epoch.
	if e, err := parseEpoch(ctx, "", t.TempDir()); err != nil || e.Unix() != 0 {
		t.Errorf("parseEpoch outside git = %v, %v; want the Unix epoch", e, err)
	}
}

// TestBuildNeedsTrust: without -trust mkimage refuses to build an image
// that cannot be provisioned unless -no-trust says so; both together are
// refused too. (-epoch bad stops the build right after the check.)
func TestBuildNeedsTrust(t *testing.T) {
	ctx := context.Background()
	base := func(more ...string) []string {
		dir := t.TempDir()
		return append([]string{"-cache", "", "-o", filepath.Join(dir, "x.img"), "-password-file", filepath.Join(dir, "pw"), "-epoch", "bad"}, more...)
	}
	if err := buildMain(ctx, base()); !errors.Is(err, errNoTrust) {
		t.Errorf("no -trust: %v; want errNoTrust", err)
	}
	keys := filepath.Join(t.TempDir(), "site.pub")
	os.WriteFile(keys, []byte("key\n"), 0o600)
	if err := buildMain(ctx, base("-trust", keys, "-no-trust")); err == nil || !strings.Contains(err.Error(), "contradict") {
		t.Errorf("-trust and -no-trust: %v; want a contradiction", err)
	}
	for _, args := range [][]string{base("-no-trust"), base("-trust", keys)} {
		if err := buildMain(ctx, args); err == nil || !strings.Contains(err.Error(), `epoch "bad"`) {
			t.Errorf("%q: %v; want to get past the trust check to the bad epoch", args[len(args)-2:], err)
		}
	}
}
