package auth

import (
	"testing"
)

func mustCompile(t testing.TB, rules []Rule) *Policy {
	t.Helper()
	pol, err := Compile(rules)
	if err != nil {
		t.Fatal(err)
	}
	return pol
}

// perClientRules gives every client a namespace named after its client ID,
// username and site attribute.
var perClientRules = []Rule{{
	Principals: Principals{Attributes: []map[string]string{{"role": "device"}}},
	Broker: []BrokerResource{
		{Method: Connect},
		{Method: Publish, Topics: []string{"clients/{principal.clientId}/#", "users/{principal.username}/out", "{principal.attributes.site}/+/up"}},
		{Method: Subscribe, Topics: []string{"clients/{principal.clientId}/#", "broadcast/+"}},
	},
}}

func TestTokenValues(t *testing.T) {
	dev := func(clientID, username string) Principal {
		return Principal{ClientID: clientID, Username: username, Attributes: attrs("role", "device", "site", "s1")}
	}
	checkPolicy(t, perClientRules, []expect{{
		name:    "ordinary",
		p:       dev("d1", "alice"),
		connect: true,
		pub:     []string{"clients/d1", "clients/d1/a/b", "users/alice/out", "s1/x/up"},
		noPub:   []string{"clients/d2/a", "users/bob/out", "s2/x/up", "clients", "$SYS/x"},
		sub:     []string{"clients/d1/#", "clients/d1/+/x", "$share/g/clients/d1/a", "broadcast/+", "broadcast/x"},
		noSub:   []string{"clients/#", "clients/+/a", "broadcast/#", "#", "$share/g/#"},
	}, {
		// Values that would widen a filter make it match nothing.
		name:    "client ID is a wildcard",
		p:       dev("+", "alice"),
		connect: true,
		pub:     []string{"users/alice/out"},
		noPub:   []string{"clients/d1/a", "clients/+/a"},
		noSub:   []string{"clients/+/#", "clients/d1/#"},
	}, {
		name:    "client ID is #",
		p:       dev("#", ""),
		connect: true,
		noPub:   []string{"clients/x", "users//out"},
	}, {
		name:    "client ID with a slash",
		p:       dev("a/b", "u"),
		connect: true,
		noPub:   []string{"clients/a/b", "clients/a/b/c"},
	}, {
		name:    "dollar attribute",
		p:       Principal{ClientID: "d", Attributes: attrs("role", "device", "site", "$SYS")},
		connect: true,
		noPub:   []string{"$SYS/x/up"},
	}, {
		name:    "missing username",
		p:       dev("d1", ""),
		connect: true,
		pub:     []string{"clients/d1/x"},
		noPub:   []string{"users//out", "users/+/out"},
	}})
}

func TestGrantsDeduplicate(t *testing.T) {
	rules := []Rule{
		{Principals: Principals{Usernames: []string{"u"}}, Broker: []BrokerResource{{Method: Publish, Topics: []string{"a/{principal.username}", "a/u"}}}},
		{Principals: Principals{ClientIDs: []string{"c"}}, Broker: []BrokerResource{{Method: Publish, Topics: []string{"a/u", "b"}}}},
	}
	g := mustCompile(t, rules).For(&Principal{ClientID: "c", Username: "u"})
	if got, want := len(g.publish), 2; got != want {
		t.Errorf("publish filters: got %q, want %d", g.publish, want)
	}
	if g.AllowConnect() {
		t.Errorf("AllowConnect without a Connect resource: got true")
	}
}

func TestConnectClientIDs(t *testing.T) {
	rules := []Rule{{
		Principals: Principals{Usernames: []string{"{principal.clientId}", "ops"}},
		Broker: []BrokerResource{{Method: Connect, ClientIDs: []string{
			"{principal.attributes.building}*", "*-{principal.username}", "fixed", "a*b*c",
		}}},
	}}
	pol := mustCompile(t, rules)
	tests := []struct {
		p    Principal
		want bool
	}{
		{Principal{ClientID: "fixed", Username: "fixed"}, true},
		{Principal{ClientID: "fixed", Username: "ops"}, true},
		{Principal{ClientID: "fixed2", Username: "ops"}, false},
		{Principal{ClientID: "x-ops", Username: "ops"}, true},
		{Principal{ClientID: "-ops", Username: "ops"}, true},
		{Principal{ClientID: "x-opsy", Username: "ops"}, false},
		{Principal{ClientID: "b7-dev", Username: "ops", Attributes: attrs("building", "b7")}, true},
		{Principal{ClientID: "b8-dev", Username: "ops", Attributes: attrs("building", "b7")}, false},
		// A token value is literal: building "*" does not match everything.
		{Principal{ClientID: "b8-dev", Username: "ops", Attributes: attrs("building", "*")}, false},
		{Principal{ClientID: "*b8", Username: "ops", Attributes: attrs("building", "*")}, true},
		{Principal{ClientID: "abc", Username: "ops"}, true},
		{Principal{ClientID: "aXbYc", Username: "ops"}, true},
		{Principal{ClientID: "abcb", Username: "ops"}, false},
		{Principal{ClientID: "ac", Username: "ops"}, false},
		{Principal{ClientID: "fixed", Username: "other"}, false},
		{Principal{ClientID: "", Username: ""}, false},
	}
	for _, tt := range tests {
		if got := pol.AllowConnect(&tt.p); got != tt.want {
			t.Errorf("AllowConnect(%+v): got %v, want %v", tt.p, got, tt.want)
		}
	}
}

func TestAllowKeyMethods(t *testing.T) {
	rules := []Rule{{
		Principals: Principals{ClientIDs: []string{"c"}},
		Broker:     []BrokerResource{{Method: Connect}},
		StateStore: []StateStoreResource{
			{Method: Read, Keys: []string{"k*"}},
			{Method: Write, KeyType: String, Keys: []string{"k1"}},
		},
	}}
	g := mustCompile(t, rules).For(&Principal{ClientID: "c"})
	tests := []struct {
		m    KeyMethod
		key  string
		want bool
	}{
		{Read, "k1", true}, {Read, "k2", true}, {Write, "k1", true}, {Write, "k2", false},
		{ReadWrite, "k1", true}, {ReadWrite, "k2", false}, {0, "k1", false}, {4, "k1", false},
	}
	for _, tt := range tests {
		if got := g.AllowKey(tt.m, []byte(tt.key)); got != tt.want {
			t.Errorf("AllowKey(%v, %q): got %v, want %v", tt.m, tt.key, got, tt.want)
		}
	}
}

func hotGrants(t testing.TB) *Grants {
	p := &Principal{ClientID: "d1", Username: "alice", Attributes: attrs("role", "device", "site", "s1")}
	return mustCompile(t, perClientRules).For(p)
}

func TestGrantsAllocs(t *testing.T) {
	g := hotGrants(t)
	name, other := []byte("s1/dev/up"), []byte("clients/d2/x")
	filter, shared := []byte("clients/d1/+/x"), []byte("$share/g/broadcast/x")
	if n := testing.AllocsPerRun(100, func() {
		if !g.AllowPublish(name) || g.AllowPublish(other) {
			t.Fatal("AllowPublish: wrong answer")
		}
	}); n != 0 {
		t.Errorf("AllowPublish allocs: got %v, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() {
		if !g.AllowSubscribe(filter) || !g.AllowSubscribe(shared) || g.AllowSubscribe(name) {
			t.Fatal("AllowSubscribe: wrong answer")
		}
	}); n != 0 {
		t.Errorf("AllowSubscribe allocs: got %v, want 0", n)
	}
}

func BenchmarkAllowPublish(b *testing.B) {
	g := hotGrants(b)
	name := []byte("clients/d1/telemetry/temperature")
	b.ReportAllocs()
	for b.Loop() {
		g.AllowPublish(name)
	}
}

func BenchmarkAllowSubscribe(b *testing.B) {
	g := hotGrants(b)
	filter := []byte("$share/g/clients/d1/+/x")
	b.ReportAllocs()
	for b.Loop() {
		g.AllowSubscribe(filter)
	}
}

// TestKeyTokenNotUTF8 checks that a token value that is not UTF-8 (a
// username with a byte 0xff, found by FuzzCompile) grants no key, where it
// used to make a malformed glob inside "[...]", and that UTF-8 values
// still match literally.
func TestKeyTokenNotUTF8(t *testing.T) {
	rules := []Rule{{
		Principals: Principals{Usernames: []string{"{principal.username}"}},
		Broker:     []BrokerResource{{Method: Connect}},
		StateStore: []StateStoreResource{{Method: ReadWrite, KeyType: Pattern,
			Keys: []string{"k[{principal.username}]", "users/{principal.username}/*"}}},
	}}
	pol := mustCompile(t, rules)
	g := pol.For(&Principal{ClientID: "c", Username: "\xff"})
	for _, k := range g.keys {
		t.Errorf("key grant %q for a username that is not UTF-8", k.key)
	}
	if g.AllowKey(ReadWrite, []byte("users/\xff/x")) || g.AllowKey(ReadWrite, []byte("k\xff")) {
		t.Error("a key allowed for a username that is not UTF-8")
	}
	g = pol.For(&Principal{ClientID: "c", Username: "é*"})
	for _, k := range g.keys {
		if err := validGlob(k.key); err != nil {
			t.Errorf("key grant %q: %v", k.key, err)
		}
	}
	for key, want := range map[string]bool{"ké": true, "k*": true, "kx": false, "users/é*/a": true, "users/éx/a": false} {
		if got := g.AllowKey(ReadWrite, []byte(key)); got != want {
			t.Errorf("AllowKey(%q) = %v, want %v", key, got, want)
		}
	}
}
