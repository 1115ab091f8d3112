package auth

import (
	"errors"
	"strings"
	"testing"
)

func TestCompileErrors(t *testing.T) {
	pub := func(topics ...string) []BrokerResource {
		return []BrokerResource{{Method: Publish, Topics: topics}}
	}
	keys := func(typ KeyType, keys ...string) []StateStoreResource {
		return []StateStoreResource{{Method: Read, KeyType: typ, Keys: keys}}
	}
	tests := []struct {
		name  string
		rule  Rule
		wants []string // each a whole error line, after "auth: rules[0]."
	}{
		{"token not a whole level", Rule{Broker: pub("client-{principal.clientId}/#")},
			[]string{"brokerResources[0].topics[0]: token must fill a whole topic level"}},
		{"token followed by text", Rule{Broker: pub("a/{principal.username}x")},
			[]string{"brokerResources[0].topics[0]: token must fill a whole topic level"}},
		{"two tokens in a level", Rule{Broker: pub("{principal.clientId}{principal.username}")},
			[]string{"brokerResources[0].topics[0]: token must fill a whole topic level"}},
		{"unknown token", Rule{Broker: pub("a/{principal.email}")},
			[]string{"brokerResources[0].topics[0]: unknown token {principal.email} (want {principal.clientId}, {principal.username} or {principal.attributes.NAME})"}},
		{"empty attribute name", Rule{Broker: pub("a/{principal.attributes.}")},
			[]string{"brokerResources[0].topics[0]: unknown token {principal.attributes.} (want {principal.clientId}, {principal.username} or {principal.attributes.NAME})"}},
		{"unmatched brace", Rule{Broker: pub("a/{principal.clientId")},
			[]string{"brokerResources[0].topics[0]: unmatched '{' (curly braces are reserved for tokens)"}},
		{"stray close brace", Rule{Broker: pub("a/b}")},
			[]string{"brokerResources[0].topics[0]: unmatched '}' (curly braces are reserved for tokens)"}},
		{"bad filter", Rule{Broker: pub("ok/#", "a/#/b", "")},
			[]string{
				"brokerResources[0].topics[1]: invalid topic filter: topic: malformed wildcard in topic filter",
				"brokerResources[0].topics[2]: invalid topic filter: topic: empty topic name or filter",
			}},
		{"shared grant", Rule{Broker: pub("$share/g/a")},
			[]string{"brokerResources[0].topics[0]: a grant cannot be a shared subscription filter; $share/{group}/ is stripped before checking"}},
		{"connect with topics", Rule{Broker: []BrokerResource{{Method: Connect, Topics: []string{"a"}}}},
			[]string{"brokerResources[0].topics: not allowed with method Connect"}},
		{"publish without topics", Rule{Broker: []BrokerResource{{Method: Publish}, {Method: Subscribe, Topics: []string{}}}},
			[]string{"brokerResources[0].topics: required with method Publish", "brokerResources[1].topics: required with method Subscribe"}},
		{"clientIds on subscribe", Rule{Broker: []BrokerResource{{Method: Subscribe, ClientIDs: []string{"x"}, Topics: []string{"a"}}}},
			[]string{"brokerResources[0].clientIds: only allowed with method Connect"}},
		{"bad connect clientId", Rule{Broker: []BrokerResource{{Method: Connect, ClientIDs: []string{"b-*", "{building}*"}}}},
			[]string{"brokerResources[0].clientIds[1]: unknown token {building} (want {principal.clientId}, {principal.username} or {principal.attributes.NAME})"}},
		{"no method", Rule{Broker: []BrokerResource{{Topics: []string{"a"}}}},
			[]string{"brokerResources[0].method: unknown method Method(0) (want Connect, Publish or Subscribe)"}},
		{"no broker resources", Rule{StateStore: keys(Pattern, "a")},
			[]string{"brokerResources: required"}},
		{"principals", Rule{
			Principals: Principals{ClientIDs: []string{"", "ok"}, Usernames: []string{"{principal.name}"}, Attributes: []map[string]string{{"a": "b"}, {}}},
			Broker:     pub("a"),
		}, []string{
			"principals.clientIds[0]: empty",
			"principals.usernames[0]: unknown token {principal.name} (want {principal.clientId}, {principal.username} or {principal.attributes.NAME})",
			"principals.attributes[1]: empty attribute map",
		}},
		{"bad glob", Rule{Broker: pub("a"), StateStore: keys(Pattern, "ok*", "number[0-9", `trailing\`, "[]")},
			[]string{
				`stateStoreResources[0].keys[1]: malformed glob pattern (syntax as path.Match: '*', '?', '[...]', '\' escapes)`,
				`stateStoreResources[0].keys[2]: malformed glob pattern (syntax as path.Match: '*', '?', '[...]', '\' escapes)`,
				`stateStoreResources[0].keys[3]: malformed glob pattern (syntax as path.Match: '*', '?', '[...]', '\' escapes)`,
			}},
		{"token in string key", Rule{Broker: pub("a"), StateStore: keys(String, "a*?[", "clients/{principal.clientId}")},
			[]string{"stateStoreResources[0].keys[1]: tokens are only allowed with keyType Pattern"}},
		{"bad base64", Rule{Broker: pub("a"), StateStore: keys(Binary, "dGVzdA==", "not base64!", "")},
			[]string{
				"stateStoreResources[0].keys[1]: binary key is not valid base64: illegal base64 data at input byte 3",
				"stateStoreResources[0].keys[2]: empty key",
			}},
		{"bad state store resource", Rule{Broker: pub("a"), StateStore: []StateStoreResource{{KeyType: Pattern}, {Method: Read, KeyType: 9, Keys: []string{"a"}}}},
			[]string{
				"stateStoreResources[0].method: unknown method KeyMethod(0) (want Read, Write or ReadWrite)",
				"stateStoreResources[0].keys: required",
				"stateStoreResources[1].keyType: unknown key type KeyType(9) (want Pattern, String or Binary)",
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Put a valid rule first so that paths carry index 1.
			ok := Rule{Principals: Principals{Usernames: []string{"u"}}, Broker: []BrokerResource{{Method: Connect}}}
			_, err := Compile([]Rule{ok, tt.rule})
			if err == nil {
				t.Fatal("Compile: got nil error")
			}
			var want []string
			for _, w := range tt.wants {
				want = append(want, "auth: rules[1]."+w)
			}
			if got, want := err.Error(), strings.Join(want, "\n"); got != want {
				t.Errorf("Compile error:\ngot  %s\nwant %s", got, want)
			}
			var fe *FieldError
			if !errors.As(err, &fe) || !strings.HasPrefix(fe.Path, "rules[1].") {
				t.Errorf("errors.As(*FieldError): got %v", fe)
			}
		})
	}
}

func TestCompileValid(t *testing.T) {
	rules := []Rule{{
		Principals: Principals{Usernames: []string{"{principal.clientId}"}, ClientIDs: []string{"dev-{principal.attributes.n}"}},
		Broker: []BrokerResource{
			{Method: Connect, ClientIDs: []string{"*", "{principal.attributes.building}*", "x{principal.username}y*z"}},
			{Method: Publish, Topics: []string{"clients/{principal.clientId}/#", "{principal.username}", "+/{principal.attributes.a}/+", "#", "$SYS/x", "/"}},
			{Method: Subscribe, Topics: []string{"{principal.attributes.site-name}/{principal.clientId}/{principal.username}"}},
		},
		StateStore: []StateStoreResource{
			{Method: ReadWrite, KeyType: Pattern, Keys: []string{"a[{principal.clientId}]", "k{principal.attributes.x}*"}},
			{Method: Write, KeyType: String, Keys: []string{"{literal}", "*"}},
			{Method: Read, KeyType: Binary, Keys: []string{"AA==", "MTE2IDEwMSAxMTUgMTE2"}},
		},
	}}
	if _, err := Compile(rules); err != nil {
		t.Fatalf("Compile: %v", err)
	}
}

func TestEmptyPolicyDeniesAll(t *testing.T) {
	for _, rules := range [][]Rule{nil, {}} {
		pol, err := Compile(rules)
		if err != nil {
			t.Fatalf("Compile(%v): %v", rules, err)
		}
		p := &Principal{ClientID: "c", Username: "u"}
		g := pol.For(p)
		if pol.AllowConnect(p) || g.AllowConnect() || g.AllowPublish([]byte("a")) || g.AllowSubscribe([]byte("#")) || g.AllowKey(Read, []byte("k")) {
			t.Errorf("empty policy allowed something")
		}
	}
	var nilPol *Policy
	var nilGrants *Grants
	if nilPol.AllowConnect(&Principal{}) || nilPol.For(&Principal{}).AllowPublish([]byte("a")) ||
		nilGrants.AllowConnect() || nilGrants.AllowPublish([]byte("a")) || nilGrants.AllowSubscribe([]byte("a")) || nilGrants.AllowKey(Read, []byte("a")) {
		t.Errorf("nil policy or grants allowed something")
	}
}

func TestParseNames(t *testing.T) {
	for _, s := range []string{"connect", "Connect", "PUBLISH", "subscribe"} {
		if _, err := ParseMethod(s); err != nil {
			t.Errorf("ParseMethod(%q): %v", s, err)
		}
	}
	if m, err := ParseKeyMethod("readwrite"); err != nil || m != ReadWrite {
		t.Errorf("ParseKeyMethod(readwrite): got %v, %v", m, err)
	}
	if k, err := ParseKeyType("Binary"); err != nil || k != Binary {
		t.Errorf("ParseKeyType(Binary): got %v, %v", k, err)
	}
	for _, err := range []error{
		func() error { _, err := ParseMethod("Delete"); return err }(),
		func() error { _, err := ParseKeyMethod("Execute"); return err }(),
		func() error { _, err := ParseKeyType("Regex"); return err }(),
	} {
		if err == nil || !strings.HasPrefix(err.Error(), "auth: ") {
			t.Errorf("got error %v, want one starting with auth: ", err)
		}
	}
}
