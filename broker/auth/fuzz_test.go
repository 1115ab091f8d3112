package auth

import (
	"path"
	"strings"
	"testing"
	"unicode/utf8"

	"edgebroker/broker/topic"
)

var globTests = []struct {
	pattern, name string
	want          bool
}{
	{"colors/*", "colors/red", true},
	{"colors/*", "colors/red/dark", true}, // unlike path.Match
	{"colors/*", "colors", false},
	{"*", "", true},
	{"*", "a/b/c", true},
	{"?", "/", true},
	{"?", "é", true},
	{"??", "é", false},
	{"number[0-9]", "number5", true},
	{"number[0-9]", "number10", false},
	{"number[^0-9]", "numberx", true},
	{"number[^0-9]", "number1", false},
	{"a[/]b", "a/b", true},
	{`a\*`, "a*", true},
	{`a\*`, "ab", false},
	{"*a*b", "xxaxxbxb", true},
	{"*a*b", "xxaxxbx", false},
	{"a*b*c", "abc", true},
	{"", "", true},
	{"", "a", false},
}

func TestGlob(t *testing.T) {
	for _, tt := range globTests {
		if err := validGlob(tt.pattern); err != nil {
			t.Errorf("validGlob(%q): %v", tt.pattern, err)
		}
		if got := globMatch(tt.pattern, tt.name); got != tt.want {
			t.Errorf("globMatch(%q, %q): got %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}

// FuzzGlob checks globMatch against path.Match: they agree wherever '/'
// plays no part, path.Match's matches are always glob matches, and a
// literal escaped with globLiteral matches exactly itself.
func FuzzGlob(f *testing.F) {
	for _, tt := range globTests {
		f.Add(tt.pattern, tt.name)
	}
	f.Fuzz(func(t *testing.T, pattern, name string) {
		pm, err := path.Match(pattern, name)
		if (validGlob(pattern) == nil) != (err == nil) {
			t.Fatalf("validGlob(%q) disagrees with path.Match: %v", pattern, err)
		}
		if err != nil {
			return
		}
		gm := globMatch(pattern, name)
		if pm && !gm {
			t.Errorf("path.Match(%q, %q) but not globMatch", pattern, name)
		}
		if !strings.Contains(pattern, "/") && !strings.Contains(name, "/") && pm != gm {
			t.Errorf("globMatch(%q, %q) = %v, path.Match = %v", pattern, name, gm, pm)
		}
		lit, ok := globLiteral(pattern)
		if !ok {
			if utf8.ValidString(pattern) {
				t.Errorf("globLiteral(%q) refused a UTF-8 value", pattern)
			}
			return
		}
		if validGlob(lit) != nil || !globMatch(lit, pattern) || globMatch(lit, name) != (name == pattern) {
			t.Errorf("globLiteral(%q) = %q: does not match exactly itself (name %q)", pattern, lit, name)
		}
	})
}

// FuzzCompile compiles a rule from fuzzed topic, key and client ID
// templates. Whatever the principal's values, the grants of a policy that
// compiled must be valid, non-shared topic filters and valid globs, and the
// checks must not panic.
func FuzzCompile(f *testing.F) {
	f.Add("clients/{principal.clientId}/#", "clients/{principal.clientId}/*", "{principal.attributes.b}*", "d1", "u", "b7")
	f.Add("client-{principal.clientId}/#", "k[{principal.username}]", "*", "+", "", "$SYS")
	f.Add("{principal.attributes.site}/+/up", "rooms/{principal.attributes.room}", "x", "a/b", "#", "[")
	f.Fuzz(func(t *testing.T, topicT, keyT, idT, clientID, username, attr string) {
		pol, err := Compile([]Rule{{
			Principals: Principals{ClientIDs: []string{"{principal.clientId}"}},
			Broker: []BrokerResource{
				{Method: Connect, ClientIDs: []string{idT}},
				{Method: Publish, Topics: []string{topicT}},
				{Method: Subscribe, Topics: []string{topicT}},
			},
			StateStore: []StateStoreResource{{Method: ReadWrite, KeyType: Pattern, Keys: []string{keyT}}},
		}})
		if err != nil {
			if !strings.HasPrefix(err.Error(), "auth: rules[0].") {
				t.Fatalf("error without a field path: %v", err)
			}
			return
		}
		p := &Principal{ClientID: clientID, Username: username, Attributes: map[string]string{
			"b": attr, "site": attr, "room": attr,
		}}
		g := pol.For(p)
		for _, fl := range append(g.publish, g.subscribe...) {
			if err := topic.ValidFilter(fl); err != nil {
				t.Errorf("grant %q from %q: %v", fl, topicT, err)
			}
			if _, _, shared := topic.ParseShared(fl); shared {
				t.Errorf("grant %q from %q is a shared filter", fl, topicT)
			}
		}
		for _, k := range g.keys {
			if err := validGlob(k.key); err != nil {
				t.Errorf("key grant %q from %q: %v", k.key, keyT, err)
			}
		}
		g.AllowConnect()
		g.AllowPublish([]byte(topicT))
		g.AllowKey(ReadWrite, []byte(keyT))
	})
}
