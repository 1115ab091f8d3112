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

// floors is the module's layering: every top-level folder, its floor, and
// the folders below it that it stands on. A package may import its own
// folder, the folders it stands on and the shared packages; nothing else
// of the module. Ground subsystems stand on nothing: broker, provisioning
// and board do not know each other.
var floors = []floor{
	{0, "broker", nil},
	{0, "provisioning", nil},
	{0, "board", nil},
	{1, "statestore", []string{"broker"}}, // serves over the broker's MQTT
	{2, "appliance", []string{"broker", "provisioning", "board", "statestore"}},          // wiring: knows every subsystem
	{3, "tools", []string{"broker", "provisioning", "board", "statestore", "appliance"}}, // host-only programs, on top
}

// floor is one line of the floors table.
type floor struct {
	level int      // 0 is the ground
	dir   string   // top-level folder
	on    []string // folders it may import, each on a lower floor
}

// apart is the folder outside the floors: host-only image building, which
// builds the firmware from source rather than importing it. Its code
// imports no other folder; its tests drive the whole product (the QEMU test).
const apart = "image"

// shared lists the small packages every floor may import, sideways across
// the ground included. They must be stdlib-only leaves, so importing one
// never drags a subsystem along.
var shared = []string{
	"broker/testenv",        // NeedTool, Eventually, Poll: for every floor's tests
	"provisioning/firmware", // the signed firmware update format: the device and image/ (host) share it
}

// testClients are packages of a higher floor that any floor's tests may use
// as a real client of the product (never its code).
var testClients = []string{
	"tools/ssclient", // the state store client of the AIO SDK
}

// rule forbids packages matched by from to import packages matched by bad.
type rule struct {
	name string
	from func(p *pkg) bool // packages the rule constrains
	bad  func(p *pkg) bool // imports they must not have
	// tests makes the rule cover the constrained packages' _test.go imports
	// too; otherwise it covers only the code that ships.
	tests bool
	// testOK exempts imports reached from _test.go files only (nil: none).
	testOK func(p *pkg) bool
	// deep makes the rule cover everything the constrained packages reach
	// through non-test imports, not only their direct imports.
	deep bool
}

// rules is the table of import rules: the floors, then the finer rules.
// Add a rule as one line.
var rules = append(floorRules(), []rule{
	{name: "shared packages are stdlib-only leaves", from: anyUnder(shared), bad: not(standard)},
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
	{name: "firmware stays within its dependency budget", from: path(firmware), deep: true, bad: all(not(standard), not(inModule), not(inBudget))},
}...)

// firmwareBudget is the firmware's dependency budget (the style guide's):
// the modules outside the standard library the device's binary may link,
// each with its reason. A module that is not here fails the rule "firmware
// stays within its dependency budget": add it with its reason, and give
// the reason in the commit message too.
var firmwareBudget = []struct{ module, why string }{
	{"golang.org/x/crypto", "ACME client, bcrypt password files"},
	{"golang.org/x/sys", "unix: mounts, uevents, device files"},
	{"golang.org/x/sync", "errgroup, semaphore"},
	{"github.com/tidwall", "buntdb (the state store) and its tidwall dependencies"},
	{"github.com/goccy/go-yaml", "the configuration's YAML"},
	{"github.com/coder/websocket", "MQTT over WebSockets: the dataflow client (broker/bridge)"},
	{"github.com/gobwas/ws", "MQTT over WebSockets: the server's upgrade and frame masking (broker/wsnet), low-level so idle connections park"},
	{"github.com/gobwas/httphead", "HTTP header parsing, for gobwas/ws"},
	{"github.com/gokrazy/gokrazy", "the platform"},
	{"github.com/libp2p/zeroconf/v2", "the mDNS/DNS-SD responder (appliance/announce says why this one): +0.85 MB on arm64 with the two below"},
	{"github.com/miekg/dns", "DNS messages, for zeroconf"},
	{"golang.org/x/net", "ipv4/ipv6 multicast sockets, for zeroconf"},
}

// inBudget matches the packages of the modules in firmwareBudget.
func inBudget(p *pkg) bool {
	return slices.ContainsFunc(firmwareBudget, func(b struct{ module, why string }) bool {
		return path(b.module + "/...")(p)
	})
}

// floorRules turns the floors into one rule per folder (code and tests),
// and one for the folder apart (code only).
func floorRules() []rule {
	var out []rule
	for _, f := range floors {
		out = append(out, rule{
			name:   fmt.Sprintf("floor %d: %s imports only %s", f.level, f.dir, strings.Join(slices.Concat([]string{f.dir}, f.on, []string{"shared packages"}), ", ")),
			from:   under(f.dir),
			tests:  true,
			testOK: anyUnder(testClients),
			bad:    all(inModule, not(under(f.dir)), not(anyUnder(f.on)), not(anyUnder(shared))),
		})
	}
	return append(out, rule{
		name: fmt.Sprintf("%s stands apart: its code imports no other folder", apart),
		from: under(apart),
		bad:  all(inModule, not(under(apart)), not(anyUnder(shared))),
	})
}

// homeless returns the module's packages outside the floors and the folder
// apart: the top-level folders are fixed.
func (g graph) homeless() []string {
	known := []string{apart}
	for _, f := range floors {
		known = append(known, f.dir)
	}
	var out []string
	for _, k := range sortedKeys(g) {
		if p := g[k]; !p.DepOnly && inModule(p) && !anyUnder(known)(p) {
			out = append(out, k+" is on no floor (tools/depcheck: floors)")
		}
	}
	return out
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

// anyUnder matches any of the module folders dirs.
func anyUnder(dirs []string) func(*pkg) bool {
	fs := make([]func(*pkg) bool, len(dirs))
	for i, d := range dirs {
		fs[i] = under(d)
	}
	return anyOf(fs...)
}

func inModule(p *pkg) bool { return path(module + "/...")(p) }
func standard(p *pkg) bool { return p.Standard }

// testPackage matches test helper packages: brokertest, packettest, testenv.
func testPackage(p *pkg) bool {
	return strings.HasSuffix(p.Name, "test") || strings.HasPrefix(p.Name, "test")
}

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
		var tests []string
		if r.tests {
			tests = slices.Concat(p.TestImports, p.XTestImports)
		}
		out = append(out, g.search(r, root, p.Imports, tests)...)
	}
	return out
}

// search walks from root (breadth first, so each chain is a shortest one,
// code imports before test imports) and reports every forbidden package it
// reaches once.
func (g graph) search(r rule, root string, code, tests []string) []string {
	var out []string
	prev := map[string]string{root: ""}
	viaTest := map[string]bool{} // reached only through a _test.go import
	queue := []string{}
	for i, imp := range slices.Concat(code, tests) {
		if _, seen := prev[imp]; !seen {
			prev[imp] = root
			viaTest[imp] = i >= len(code)
			queue = append(queue, imp)
		}
	}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		q := g.get(cur)
		if r.bad(q) && !(viaTest[cur] && r.testOK != nil && r.testOK(q)) {
			out = append(out, fmt.Sprintf("%s imports %s%s", root, cur, chain(prev, cur)))
			continue
		}
		if !r.deep {
			continue
		}
		for _, imp := range q.Imports {
			if _, seen := prev[imp]; !seen {
				prev[imp] = cur
				viaTest[imp] = viaTest[cur]
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
	t.Run("every package is on a floor", func(t *testing.T) {
		for _, v := range g.homeless() {
			t.Error(v)
		}
	})
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			constrained := 0
			for _, p := range g {
				if !p.DepOnly && r.from(p) {
					constrained++
				}
			}
			if constrained == 0 {
				t.Fatal("the rule constrains no package of the tree: a typo in its from predicate, or a rule to delete")
			}
			for _, v := range g.violations(r) {
				t.Error(v)
			}
		})
	}
}

// TestFloorsPointDown checks the floors table itself: every folder stands
// only on folders of lower floors, so the table cannot declare a sideways or
// upward import, and no folder is listed twice.
func TestFloorsPointDown(t *testing.T) {
	level := map[string]int{}
	for _, f := range floors {
		if _, dup := level[f.dir]; dup || f.dir == apart {
			t.Errorf("floors: %s listed twice", f.dir)
		}
		level[f.dir] = f.level
	}
	for _, f := range floors {
		for _, on := range f.on {
			if l, ok := level[on]; !ok || l >= f.level {
				t.Errorf("floors: %s (floor %d) stands on %s, which is not on a lower floor", f.dir, f.level, on)
			}
		}
	}
}

// m names a package of the module, for the made-up graphs below.
func m(s string) string { return module + "/" + s }

// fake builds a made-up graph: the module packages given, and a stub for
// every import they name that is not given (standard if it has no dot).
func fake(pkgs ...*pkg) graph {
	g := graph{}
	for _, p := range pkgs {
		if p.Name == "" {
			p.Name = p.ImportPath[strings.LastIndex(p.ImportPath, "/")+1:]
		}
		g[p.ImportPath] = p
	}
	for _, p := range pkgs {
		for _, imp := range slices.Concat(p.Imports, p.TestImports, p.XTestImports) {
			if _, ok := g[imp]; !ok {
				name := imp[strings.LastIndex(imp, "/")+1:]
				std := !strings.Contains(strings.SplitN(imp, "/", 2)[0], ".") && !strings.HasPrefix(imp, module+"/")
				g[imp] = &pkg{ImportPath: imp, Name: name, Standard: std, DepOnly: !strings.HasPrefix(imp, module+"/")}
			}
		}
	}
	return g
}

// TestRulesCatchViolations proves every rule fires: each gets a made-up
// graph with the violations it must report (feeding the checker synthetic
// package lists, so no real bad import is needed). A rule added to the
// table without a case here fails, so does a typo that makes a rule blind.
func TestRulesCatchViolations(t *testing.T) {
	floor := func(level int, dir string) string {
		for _, r := range rules {
			if strings.HasPrefix(r.name, fmt.Sprintf("floor %d: %s ", level, dir)) {
				return r.name
			}
		}
		t.Fatalf("no floor rule for %s", dir)
		return ""
	}
	type tc struct {
		g    graph
		want []string
	}
	cases := map[string]tc{
		floor(0, "broker"): {fake(
			&pkg{ImportPath: m("broker/auth"), Imports: []string{m("provisioning/certs")}},
			&pkg{ImportPath: m("broker"), TestImports: []string{m("statestore"), m("broker/testenv")}, XTestImports: []string{m("tools/ssclient"), m("board/led")}},
		), []string{
			m("broker") + " imports " + m("statestore"),
			m("broker") + " imports " + m("board/led"),
			m("broker/auth") + " imports " + m("provisioning/certs"),
		}},
		floor(0, "provisioning"): {fake(
			&pkg{ImportPath: m("provisioning/certs"), Imports: []string{m("broker"), m("provisioning/atomicfile")}, XTestImports: []string{m("appliance")}},
		), []string{
			m("provisioning/certs") + " imports " + m("broker"),
			m("provisioning/certs") + " imports " + m("appliance"),
		}},
		floor(0, "board"): {fake(
			&pkg{ImportPath: m("board"), Imports: []string{m("provisioning"), m("image/build")}},
		), []string{
			m("board") + " imports " + m("provisioning"),
			m("board") + " imports " + m("image/build"),
		}},
		floor(1, "statestore"): {fake(
			&pkg{ImportPath: m("statestore"), Imports: []string{m("provisioning"), m("broker")}, TestImports: []string{m("appliance")}},
		), []string{
			m("statestore") + " imports " + m("provisioning"),
			m("statestore") + " imports " + m("appliance"),
		}},
		floor(2, "appliance"): {fake(
			&pkg{ImportPath: m("appliance"), Imports: []string{m("tools/ssclient"), m("internal/x"), m("statestore"), m("board")}},
		), []string{
			m("appliance") + " imports " + m("tools/ssclient"), // a test client, not for code
			m("appliance") + " imports " + m("internal/x"),
		}},
		floor(3, "tools"): {fake(
			&pkg{ImportPath: m("tools/gen"), Imports: []string{m("image/build"), m("appliance/config")}},
		), []string{
			m("tools/gen") + " imports " + m("image/build"),
		}},
		"image stands apart: its code imports no other folder": {fake(
			&pkg{ImportPath: m("image/build"), Imports: []string{m("appliance")}, XTestImports: []string{m("tools/ssclient"), m("provisioning")}},
		), []string{
			m("image/build") + " imports " + m("appliance"),
		}},
		"shared packages are stdlib-only leaves": {fake(
			&pkg{ImportPath: m("broker/testenv"), Name: "testenv", Imports: []string{"testing", m("broker"), "github.com/foo/bar"}},
		), []string{
			m("broker/testenv") + " imports " + m("broker"),
			m("broker/testenv") + " imports github.com/foo/bar",
		}},
		"tools import only appliance/config (the linter is the appliance's own validator)": {fake(
			&pkg{ImportPath: m("tools/lint"), Imports: []string{m("appliance/config")}, TestImports: []string{m("appliance")}},
		), []string{
			m("tools/lint") + " imports " + m("appliance"),
		}},
		"no testing in shipped code": {fake(
			&pkg{ImportPath: m("broker/retain"), Imports: []string{"testing"}},
			&pkg{ImportPath: m("broker/testenv"), Name: "testenv", Imports: []string{"testing"}},
			&pkg{ImportPath: m("broker/brokertest"), Imports: []string{"testing/synctest"}},
		), []string{
			m("broker/retain") + " imports testing",
		}},
		"no testify, even in tests": {fake(
			&pkg{ImportPath: m("broker/session"), TestImports: []string{"github.com/stretchr/testify/assert"}},
		), []string{
			m("broker/session") + " imports github.com/stretchr/testify/assert",
		}},
		"test helper packages only from _test.go": {fake(
			&pkg{ImportPath: m("broker/session"), Imports: []string{m("broker/brokertest")}, TestImports: []string{m("broker/testenv")}},
			&pkg{ImportPath: m("provisioning/usb"), Imports: []string{m("broker/testenv")}},
			&pkg{ImportPath: m("broker/brokertest"), Imports: []string{m("broker/testenv")}},
			&pkg{ImportPath: m("broker/testenv"), Name: "testenv"},
		), []string{
			m("broker/session") + " imports " + m("broker/brokertest"),
			m("provisioning/usb") + " imports " + m("broker/testenv"),
		}},
		"packet and topic are stdlib-only leaves": {fake(
			&pkg{ImportPath: m("broker/packet"), Imports: []string{"github.com/foo/bar", "bytes", m("broker/topic")}},
		), []string{
			m("broker/packet") + " imports github.com/foo/bar",
		}},
		"no reflection-based codecs in packet and topic": {fake(
			&pkg{ImportPath: m("broker/topic"), Imports: []string{"reflect", "encoding/json", "bytes"}},
		), []string{
			m("broker/topic") + " imports reflect",
			m("broker/topic") + " imports encoding/json",
		}},
		"firmware excludes host-only code": {fake(
			&pkg{ImportPath: firmware, Name: "main", Imports: []string{m("appliance")}},
			&pkg{ImportPath: m("appliance"), Imports: []string{m("tools/gen")}},
		), []string{
			firmware + " imports " + m("tools/gen") + " (via " + firmware + " -> " + m("appliance") + " -> " + m("tools/gen") + ")",
		}},
		"only appliance and board import gokrazy": {fake(
			&pkg{ImportPath: m("broker"), TestImports: []string{"github.com/gokrazy/gokrazy"}},
			&pkg{ImportPath: m("board"), Imports: []string{"github.com/gokrazy/gokrazy"}},
		), []string{
			m("broker") + " imports github.com/gokrazy/gokrazy",
		}},
		"firmware stays within its dependency budget": {fake(
			&pkg{ImportPath: firmware, Name: "main", Imports: []string{m("appliance"), "golang.org/x/net/ipv4"}},
			&pkg{ImportPath: m("appliance"), Imports: []string{"github.com/foo/bar", "github.com/tidwall/buntdb", "net"}},
		), []string{
			firmware + " imports github.com/foo/bar (via " + firmware + " -> " + m("appliance") + " -> github.com/foo/bar)",
		}},
		"go-diskfs is host/test-only": {fake(
			&pkg{ImportPath: firmware, Name: "main", Imports: []string{m("provisioning/usb")}},
			&pkg{ImportPath: m("provisioning/usb"), Imports: []string{"github.com/diskfs/go-diskfs/disk"}},
		), []string{
			firmware + " imports github.com/diskfs/go-diskfs/disk (via " + firmware + " -> " + m("provisioning/usb") + " -> github.com/diskfs/go-diskfs/disk)",
		}},
	}
	for _, r := range rules {
		c, ok := cases[r.name]
		if !ok {
			t.Errorf("rule %q has no case here proving it catches a violation", r.name)
			continue
		}
		delete(cases, r.name)
		got := c.g.violations(r)
		slices.Sort(got)
		slices.Sort(c.want)
		if !slices.Equal(got, c.want) {
			t.Errorf("rule %q:\n got %q\nwant %q", r.name, got, c.want)
		}
	}
	for name := range cases {
		t.Errorf("case %q names no rule", name)
	}
}

// TestFloorsAllowTheHouse: the imports the layering allows (each floor on
// the ones it stands on, the shared test package from every floor's tests,
// the state store client from tests) break no rule.
func TestFloorsAllowTheHouse(t *testing.T) {
	g := fake(
		&pkg{ImportPath: m("broker"), Imports: []string{m("broker/packet")}, TestImports: []string{m("broker/testenv")}},
		&pkg{ImportPath: m("broker/packet"), Imports: []string{"bytes"}},
		&pkg{ImportPath: m("broker/testenv"), Name: "testenv", Imports: []string{"testing", "os/exec"}},
		&pkg{ImportPath: m("provisioning/usb"), TestImports: []string{m("broker/testenv")}},
		&pkg{ImportPath: m("board/led"), XTestImports: []string{m("broker/testenv")}},
		&pkg{ImportPath: m("statestore"), Imports: []string{m("broker")}, XTestImports: []string{m("tools/ssclient"), m("broker/testenv")}},
		&pkg{ImportPath: m("appliance"), Imports: []string{m("broker"), m("provisioning/usb"), m("board/led"), m("statestore"), "github.com/gokrazy/gokrazy"},
			XTestImports: []string{m("tools/ssclient"), m("provisioning/usb/usbtest")}},
		&pkg{ImportPath: m("provisioning/usb/usbtest"), Imports: []string{"testing", m("broker/testenv")}},
		&pkg{ImportPath: firmware, Name: "main", Imports: []string{m("appliance"), m("provisioning/bundle")}},
		&pkg{ImportPath: m("tools/cmd/edgebundle"), Name: "main", Imports: []string{m("appliance/config"), m("provisioning/bundle")}},
		&pkg{ImportPath: m("tools/ssclient"), Imports: []string{"github.com/Azure/iot-operations-sdks/go/mqtt"}},
		&pkg{ImportPath: m("image/build"), Imports: []string{"github.com/diskfs/go-diskfs/partition/mbr"}, TestImports: []string{m("broker/testenv")}},
		&pkg{ImportPath: m("image/qemu"), XTestImports: []string{m("appliance"), m("provisioning/bundle"), m("tools/ssclient")}},
	)
	if h := g.homeless(); len(h) > 0 {
		t.Errorf("homeless: %q", h)
	}
	for _, r := range rules {
		if v := g.violations(r); len(v) > 0 {
			t.Errorf("rule %q: %q", r.name, v)
		}
	}
	if h := fake(&pkg{ImportPath: m("internal/x")}).homeless(); len(h) != 1 {
		t.Errorf("a package outside the floors: homeless %q, want it named", h)
	}
}
