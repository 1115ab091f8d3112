package depcheck

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// module is the module path of the tree under test.
const module = "edgebroker"

// firmware is the main package of the appliance: its dependency graph is
// what ships on the device.
const firmware = module + "/appliance/cmd/edgebroker"

// rule forbids packages matched by from to import packages matched by bad.
type rule struct {
	name string
	from func(p *pkg) bool // packages the rule constrains
	bad  func(p *pkg) bool // imports they must not have
	// tests makes the rule cover the constrained packages' _test.go imports
	// too; otherwise it covers only the code that ships.
	tests bool
	// deep makes the rule cover everything the constrained packages reach
	// through non-test imports, not only their direct imports.
	deep bool
}

// rules is the table of import rules. Add a rule as one line.
var rules = []rule{
	{name: "broker stays free of the appliance layers", from: under("broker"), tests: true, deep: true,
		bad: anyOf(under("statestore"), under("provisioning"), under("board"), under("appliance"), path("github.com/gokrazy/..."))},
	{name: "only appliance imports appliance", from: not(anyOf(under("appliance"), under("tools"), under("image"))), tests: true, bad: under("appliance")},
	{name: "image imports appliance only in tests (the QEMU test reads its status and reports)", from: under("image"), bad: under("appliance")},
	{name: "tools import only appliance/config (the linter is the appliance's own validator)", from: under("tools"), tests: true, bad: all(under("appliance"), not(under("appliance/config")))},
	{name: "no testing in shipped code", from: all(inModule, not(testPackage)), bad: anyOf(path("testing/..."), path("github.com/stretchr/testify/..."))},
	{name: "no testify, even in tests", from: inModule, tests: true, bad: path("github.com/stretchr/testify/...")},
	{name: "test helper packages only from _test.go", from: all(inModule, not(testPackage)), bad: all(inModule, testPackage)},
	{name: "packet and topic are stdlib-only leaves", from: anyOf(under("broker/packet"), under("broker/topic")),
		bad: all(not(standard), not(under("broker/packet")), not(under("broker/topic")))},
	{name: "no reflection-based codecs in packet and topic", from: anyOf(under("broker/packet"), under("broker/topic")),
		bad: anyOf(path("reflect"), path("encoding/json"))},
	{name: "firmware excludes host-only code", from: path(firmware), deep: true,
		bad: anyOf(under("image"), under("tools"), path("testing/..."), path("github.com/stretchr/testify/..."))},
	{name: "only appliance and board import gokrazy", from: all(inModule, not(anyOf(under("appliance"), under("board"), under("image"), under("tools")))),
		tests: true, bad: path("github.com/gokrazy/gokrazy/...")},
	{name: "go-diskfs is host/test-only", from: path(firmware), deep: true, bad: path("github.com/diskfs/go-diskfs/...")},
}

// pkg is the part of `go list -json` output the rules need.
type pkg struct {
	ImportPath   string
	Name         string
	Standard     bool
	DepOnly      bool
	Imports      []string
	TestImports  []string
	XTestImports []string
	Error        *struct{ Err string }
}

// Predicates over packages, for the rules table.

// path matches one import path, or with a trailing "/..." that path and
// everything below it.
func path(p string) func(*pkg) bool {
	if prefix, ok := strings.CutSuffix(p, "/..."); ok {
		return func(q *pkg) bool {
			return q.ImportPath == prefix || strings.HasPrefix(q.ImportPath, prefix+"/")
		}
	}
	return func(q *pkg) bool { return q.ImportPath == p }
}

// under matches a module folder (relative to the module root) and all below.
func under(dir string) func(*pkg) bool { return path(module + "/" + dir + "/...") }

func inModule(p *pkg) bool    { return path(module + "/...")(p) }
func standard(p *pkg) bool    { return p.Standard }
func testPackage(p *pkg) bool { return strings.HasSuffix(p.Name, "test") } // brokertest, packettest

func not(f func(*pkg) bool) func(*pkg) bool { return func(p *pkg) bool { return !f(p) } }

func anyOf(fs ...func(*pkg) bool) func(*pkg) bool {
	return func(p *pkg) bool { return slices.ContainsFunc(fs, func(f func(*pkg) bool) bool { return f(p) }) }
}

func all(fs ...func(*pkg) bool) func(*pkg) bool {
	return func(p *pkg) bool { return !slices.ContainsFunc(fs, func(f func(*pkg) bool) bool { return !f(p) }) }
}

// graph maps import paths to packages: the module's packages and everything
// they import (test-only imports may be missing).
type graph map[string]*pkg

// get returns the package for an import path; one that go list did not
// describe gets a stub that knows only its path.
func (g graph) get(importPath string) *pkg {
	if p, ok := g[importPath]; ok {
		return p
	}
	return &pkg{ImportPath: importPath}
}

// violations checks one rule and returns one line per forbidden import:
// the constrained package, the forbidden import, and the import chain.
func (g graph) violations(r rule) []string {
	var out []string
	for _, root := range sortedKeys(g) {
		p := g[root]
		if p.DepOnly || !r.from(p) {
			continue
		}
		first := p.Imports
		if r.tests {
			first = slices.Concat(p.Imports, p.TestImports, p.XTestImports)
		}
		out = append(out, g.search(r, root, first)...)
	}
	return out
}

// search walks from root (breadth first, so each chain is a shortest one)
// and reports every forbidden package it reaches once.
func (g graph) search(r rule, root string, first []string) []string {
	var out []string
	prev := map[string]string{root: ""}
	queue := []string{}
	for _, imp := range first {
		if _, seen := prev[imp]; !seen {
			prev[imp] = root
			queue = append(queue, imp)
		}
	}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		q := g.get(cur)
		if r.bad(q) {
			out = append(out, fmt.Sprintf("%s imports %s%s", root, cur, chain(prev, cur)))
			continue
		}
		if !r.deep {
			continue
		}
		for _, imp := range q.Imports {
			if _, seen := prev[imp]; !seen {
				prev[imp] = cur
				queue = append(queue, imp)
			}
		}
	}
	return out
}

// chain renders the import path that led to cur, if longer than one hop.
func chain(prev map[string]string, cur string) string {
	var hops []string
	for p := cur; p != ""; p = prev[p] {
		hops = append(hops, p)
	}
	if len(hops) <= 2 {
		return ""
	}
	slices.Reverse(hops)
	return " (via " + strings.Join(hops, " -> ") + ")"
}

func sortedKeys(g graph) []string {
	keys := make([]string, 0, len(g))
	for k := range g {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// moduleRoot walks up from the working directory to the folder with go.mod.
func moduleRoot(t *testing.T) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// load lists the module's packages and their dependencies as built for the
// firmware (linux/arm64, no cgo), so build-tagged files count as on the device.
// With -e, a package that does not compile yet is still listed with the
// imports go list could read, so rules keep working while others edit.
func load(t *testing.T) graph {
	root := moduleRoot(t)
	cmd := exec.Command("go", "list", "-e", "-deps", "-json=ImportPath,Name,Standard,DepOnly,Imports,TestImports,XTestImports,Error", "./...")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0", "GOWORK=off")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list in %s: %v\n%s", root, err, stderr.Bytes())
	}
	g := graph{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		p := new(pkg)
		if err := dec.Decode(p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		if p.Error != nil && !p.DepOnly {
			t.Logf("note: %s does not build yet; checking the imports go list could read: %s", p.ImportPath, p.Error.Err)
		}
		g[p.ImportPath] = p
	}
	if !slices.ContainsFunc(sortedKeys(g), func(k string) bool { return inModule(g[k]) }) {
		t.Fatalf("go list found no packages of module %s in %s", module, root)
	}
	return g
}

func TestImportRules(t *testing.T) {
	g := load(t)
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			constrained := 0
			for _, p := range g {
				if !p.DepOnly && r.from(p) {
					constrained++
				}
			}
			if constrained == 0 {
				t.Skip("no package in the tree matches this rule yet")
			}
			for _, v := range g.violations(r) {
				t.Error(v)
			}
		})
	}
}

// TestRulesCatchViolations checks the rule machinery on a made-up graph, so a
// typo in a predicate cannot turn a rule into one that never fires.
func TestRulesCatchViolations(t *testing.T) {
	m := func(s string) string { return module + "/" + s }
	g := graph{}
	add := func(p *pkg) { g[p.ImportPath] = p }
	add(&pkg{ImportPath: m("broker"), Name: "broker", Imports: []string{m("internal/x")}})
	add(&pkg{ImportPath: m("internal/x"), Name: "x", Imports: []string{m("statestore")}})
	add(&pkg{ImportPath: m("statestore"), Name: "statestore"})
	add(&pkg{ImportPath: m("broker/packet"), Name: "packet", Imports: []string{"reflect", "github.com/foo/bar"}})
	add(&pkg{ImportPath: m("broker/brokertest"), Name: "brokertest", Imports: []string{"testing"}})
	add(&pkg{ImportPath: m("broker/retain"), Name: "retain", Imports: []string{"testing"}})
	add(&pkg{ImportPath: m("broker/session"), Name: "session", Imports: []string{m("broker/brokertest")},
		TestImports: []string{"github.com/stretchr/testify/assert"}})
	add(&pkg{ImportPath: firmware, Name: "main", Imports: []string{m("broker"), m("tools/gen")}})
	add(&pkg{ImportPath: m("tools/gen"), Name: "gen"})
	add(&pkg{ImportPath: "reflect", Name: "reflect", Standard: true, DepOnly: true})
	add(&pkg{ImportPath: "testing", Name: "testing", Standard: true, DepOnly: true})
	add(&pkg{ImportPath: "github.com/foo/bar", Name: "bar", DepOnly: true})

	want := map[string][]string{
		"broker stays free of the appliance layers": {
			m("broker") + " imports " + m("statestore") + " (via " + m("broker") + " -> " + m("internal/x") + " -> " + m("statestore") + ")",
		},
		"no testing in shipped code":                     {m("broker/retain") + " imports testing"},
		"no testify, even in tests":                      {m("broker/session") + " imports github.com/stretchr/testify/assert"},
		"test helper packages only from _test.go":        {m("broker/session") + " imports " + m("broker/brokertest")},
		"packet and topic are stdlib-only leaves":        {m("broker/packet") + " imports github.com/foo/bar"},
		"no reflection-based codecs in packet and topic": {m("broker/packet") + " imports reflect"},
		"firmware excludes host-only code":               {firmware + " imports " + m("tools/gen")},
	}
	for _, r := range rules {
		w, ok := want[r.name]
		if !ok {
			continue
		}
		if got := g.violations(r); !slices.Equal(got, w) {
			t.Errorf("rule %q:\n got %q\nwant %q", r.name, got, w)
		}
	}
}
