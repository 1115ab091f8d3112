// Package depcheck holds no code: its test, deps_test.go, enforces the
// module's import rules (the "Allowed import directions" in the style guide)
// by reading the package graph from `go list`, in the manner of tailscale's
// tstest/deptest. The layering is one table, floors (which folder stands on
// which); finer rules are one line each in the rules table, and every rule
// has a case in TestRulesCatchViolations proving it fires.
package depcheck
