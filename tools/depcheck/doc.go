// Package depcheck holds no code: its test, deps_test.go, enforces the
// module's import rules (the "Allowed import directions" in the style guide)
// by reading the package graph from `go list`, in the manner of tailscale's
// tstest/deptest. Adding a rule is one line in the rules table.
package depcheck
