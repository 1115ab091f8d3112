package config

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// hostile are inputs that once took hundreds of megabytes to gigabytes
// (go-yaml stores the path from the root with every node), each with the
// error it must now get.
var hostile = []struct {
	name, data, err string
}{
	{"flow nesting", strings.Repeat("a: [", 10000), "h.yaml:1: nesting deeper than 64"},
	{"bracket nesting", strings.Repeat("[", 40000), "h.yaml:1: nesting deeper than 64"},
	{"block nesting", blockNest(200), "h.yaml:65: nesting deeper than 64"},
	{"list nesting", strings.Repeat("- ", 20000), "h.yaml:1: nesting deeper than 64"},
	{"alias bomb", aliasBomb(9), "h.yaml:11: alias *a0 inside the value of anchor &a1"},
	{"many aliases", "a: &a x\nb: [" + strings.Repeat("*a, ", 200) + "]\n", "h.yaml:2: more than 128 aliases"},
	{"long key", strings.Repeat("k", 2000) + ": 1\n", "h.yaml:1: mapping key longer than 1024 bytes"},
	{"values under long keys", longKeys(), "too many values under long keys or deep nesting"},
	{"long key flow", strings.Repeat("k", 1000) + ": [" + strings.Repeat("1,", 30000) + "]", "h.yaml:1: too many values under long keys"},
	{"many tokens", strings.Repeat("- a/b/c\n", 100000), "more than 65536 YAML tokens"},
	{"many documents", strings.Repeat("---\n", 2000), "h.yaml:1025: more than 1024 documents"},
	{"oversize", "a: " + strings.Repeat("QUFB", 300000), "h.yaml: larger than 1048576 bytes"},
	{"complex key", "? [a]\n: b\n", "h.yaml:1: explicit mapping keys"},
}

func blockNest(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(strings.Repeat(" ", i) + "a:\n")
	}
	return b.String()
}

// aliasBomb is the billion laughs: level n holds ten aliases of level n-1.
func aliasBomb(levels int) string {
	var b strings.Builder
	b.WriteString("apiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata: {name: x}\nspec:\n  acme:\n" +
		"    server: https://ca.example/\n    privateKeySecretRef: {name: k}\n    solvers:\n    - http01:\n")
	b.WriteString("        x0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < levels; i++ {
		fmt.Fprintf(&b, "        x%d: &a%d [%s*a%d]\n", i, i, strings.Repeat(fmt.Sprintf("*a%d, ", i-1), 9), i-1)
	}
	return b.String()
}

// longKeys nests 60 keys of 1000 bytes and puts many values below them.
func longKeys() string {
	var b strings.Builder
	for i := range 60 {
		b.WriteString(strings.Repeat(" ", i) + strings.Repeat("k", 1000) + ":\n")
	}
	for b.Len() < 1<<20-100 {
		b.WriteString(strings.Repeat(" ", 60) + "- 1\n")
	}
	return b.String()
}

// TestParseLimits checks that hostile files are refused with an error
// naming file, line and limit, while allocating little: before the
// limits the flow nesting case alone took 1.4 GB and over a second.
func TestParseLimits(t *testing.T) {
	for _, tc := range hostile {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			alloc := allocated(func() { _, err = Parse("h.yaml", []byte(tc.data)) })
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("Parse: %v, want an error containing %q", err, tc.err)
			}
			if limit := uint64(32 << 20); alloc > limit {
				t.Errorf("Parse allocated %d MB, want at most %d MB", alloc>>20, limit>>20)
			}
		})
	}
}

// allocated returns the bytes f allocates.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestParseAnchors checks that anchors and aliases that do not nest, as a
// person writing a configuration uses them, still load.
func TestParseAnchors(t *testing.T) {
	const doc = `apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthorization
metadata:
  name: anchors
spec:
  authorizationPolicies:
    rules:
    - principals:
        usernames: &people [alice, bob]
      brokerResources:
      - method: Connect
      - method: Publish
        topics: &topics
        - sensors/#
    - principals:
        clientIds: *people
      brokerResources:
      - method: Subscribe
        topics: *topics
`
	rs, err := Parse("anchors.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	rules := rs[0].(*BrokerAuthorization).Spec.AuthorizationPolicies.Rules
	if got := rules[1].Principals.ClientIDs; len(got) != 2 || got[1] != "bob" {
		t.Errorf("clientIds = %q, want the aliased [alice bob]", got)
	}
	if got := rules[1].BrokerResources[0].Topics; len(got) != 1 || got[0] != "sensors/#" {
		t.Errorf("topics = %q, want the aliased [sensors/#]", got)
	}
}

// TestParseDefaultWithinLimits checks that the embedded default and the
// test configurations are far from the limits.
func TestParseDefaultWithinLimits(t *testing.T) {
	var st scanState
	for _, d := range splitDocuments(DefaultYAML()) {
		if _, err := scanDocument(d.data, &st); err != nil {
			t.Fatal(err)
		}
	}
	if st.tokens > MaxTokens/16 || st.paths > maxPathBytes/256 {
		t.Errorf("default configuration: %d tokens, %d path bytes: near the limits", st.tokens, st.paths)
	}
}
