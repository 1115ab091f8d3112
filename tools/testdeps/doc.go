// Package testdeps checks that every program the tests and tools run is
// installed by the project's own files: each name a Go file passes to
// testenv.NeedTool, exec.Command, exec.CommandContext or exec.LookPath has
// its Debian package in toolPackage, and that package is in
// tools/setup-test-deps's list (or is part of every Debian system, or of
// what CI starts from: Go and git). A new tool that only the developer's
// machine has fails here, not on CI's fresh machine. This is the quick,
// static half; tools/bare-run, which CI runs the tests in, is the whole
// check (data files, libraries, Recommends a tool needs).
package testdeps
