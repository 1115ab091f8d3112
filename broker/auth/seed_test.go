package auth

import (
	"encoding/base64"
	"testing"
)

// expect lists what one principal may and may not do under a policy.
type expect struct {
	name    string
	p       Principal
	connect bool
	pub     []string // allowed PUBLISH topic names
	noPub   []string
	sub     []string // allowed SUBSCRIBE filters
	noSub   []string
	read    []string // state store keys (raw bytes as strings)
	noRead  []string
	write   []string
	noWrite []string
}

func checkPolicy(t *testing.T, rules []Rule, cases []expect) {
	t.Helper()
	pol, err := Compile(rules)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := pol.For(&c.p)
			if got := g.AllowConnect(); got != c.connect {
				t.Errorf("AllowConnect: got %v, want %v", got, c.connect)
			}
			if got := pol.AllowConnect(&c.p); got != c.connect {
				t.Errorf("Policy.AllowConnect: got %v, want %v", got, c.connect)
			}
			each := func(what string, list []string, want bool, f func([]byte) bool) {
				for _, s := range list {
					if got := f([]byte(s)); got != want {
						t.Errorf("%s(%q): got %v, want %v", what, s, got, want)
					}
				}
			}
			each("AllowPublish", c.pub, true, g.AllowPublish)
			each("AllowPublish", c.noPub, false, g.AllowPublish)
			each("AllowSubscribe", c.sub, true, g.AllowSubscribe)
			each("AllowSubscribe", c.noSub, false, g.AllowSubscribe)
			read := func(k []byte) bool { return g.AllowKey(Read, k) }
			write := func(k []byte) bool { return g.AllowKey(Write, k) }
			each("AllowKey(Read)", c.read, true, read)
			each("AllowKey(Read)", c.noRead, false, read)
			each("AllowKey(Write)", c.write, true, write)
			each("AllowKey(Write)", c.noWrite, false, write)
		})
	}
}

func attrs(kv ...string) map[string]string {
	m := make(map[string]string)
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// TestSeedUsernamesAndAttributes is the first example of seed 001, described
// there in prose; its YAML, from the same AIO page:
//
//	rules:
//	- principals:
//	    clientIds: ["temperature-sensor", "humidity-sensor"]
//	    attributes:
//	    - city: "seattle"
//	      organization: "contoso"
//	  brokerResources:
//	  - method: Connect
//	  - method: Publish
//	    topics: ["/telemetry/{principal.clientId}", "/telemetry/{principal.attributes.organization}"]
//	  - method: Subscribe
//	    topics: ["/commands/{principal.attributes.organization}"]
func TestSeedUsernamesAndAttributes(t *testing.T) {
	rules := []Rule{{
		Principals: Principals{
			ClientIDs:  []string{"temperature-sensor", "humidity-sensor"},
			Attributes: []map[string]string{{"city": "seattle", "organization": "contoso"}},
		},
		Broker: []BrokerResource{
			{Method: Connect},
			{Method: Publish, Topics: []string{"/telemetry/{principal.clientId}", "/telemetry/{principal.attributes.organization}"}},
			{Method: Subscribe, Topics: []string{"/commands/{principal.attributes.organization}"}},
		},
	}}
	checkPolicy(t, rules, []expect{{
		// "temperature-sensor can publish to /telemetry/temperature-sensor
		// and /telemetry/contoso ... can subscribe to /commands/contoso"
		name:    "temperature-sensor",
		p:       Principal{ClientID: "temperature-sensor", Attributes: attrs("organization", "contoso")},
		connect: true,
		pub:     []string{"/telemetry/temperature-sensor", "/telemetry/contoso"},
		noPub:   []string{"/telemetry/humidity-sensor", "/telemetry/fabrikam", "/telemetry", "/commands/contoso"},
		sub:     []string{"/commands/contoso", "$share/g//commands/contoso"},
		noSub:   []string{"/commands/+", "/commands/#", "/telemetry/contoso"},
		noRead:  []string{"anything"},
	}, {
		name:    "humidity-sensor",
		p:       Principal{ClientID: "humidity-sensor", Attributes: attrs("organization", "contoso")},
		connect: true,
		pub:     []string{"/telemetry/humidity-sensor", "/telemetry/contoso"},
		noPub:   []string{"/telemetry/temperature-sensor"},
	}, {
		name:    "temperature-sensor without attributes",
		p:       Principal{ClientID: "temperature-sensor"},
		connect: true,
		pub:     []string{"/telemetry/temperature-sensor"},
		noPub:   []string{"/telemetry/contoso"},
		noSub:   []string{"/commands/contoso"},
	}, {
		// "some-other-username can publish to /telemetry/contoso": it
		// matches through both attributes.
		name:    "some-other-username",
		p:       Principal{ClientID: "some-other-client", Username: "some-other-username", Attributes: attrs("city", "seattle", "organization", "contoso")},
		connect: true,
		pub:     []string{"/telemetry/contoso", "/telemetry/some-other-client"},
		noPub:   []string{"/telemetry/temperature-sensor"},
		sub:     []string{"/commands/contoso"},
	}, {
		name:  "organization without city", // one map is an AND of its pairs
		p:     Principal{ClientID: "lamp", Attributes: attrs("organization", "contoso")},
		noPub: []string{"/telemetry/contoso", "/telemetry/lamp"},
		noSub: []string{"/commands/contoso"},
	}, {
		name:  "other organization",
		p:     Principal{ClientID: "lamp", Attributes: attrs("city", "seattle", "organization", "fabrikam")},
		noPub: []string{"/telemetry/fabrikam"},
	}, {
		name: "username is not a client ID",
		p:    Principal{ClientID: "x", Username: "temperature-sensor"},
	}})
}

// TestSeedClientIDPrefix is seed 001's "restrict access by client ID":
//
//	[{"brokerResources": [
//	    {"clientIds": ["{principal.attributes.building}*"], "method": "Connect", "topics": []},
//	    {"clientIds": [], "method": "Publish",
//	     "topics": ["sensors/{principal.attributes.building}/{principal.clientId}/telemetry"]}],
//	  "principals": {"attributes": [{"building": "building22"}, {"building": "building23"}]}}]
func TestSeedClientIDPrefix(t *testing.T) {
	rules := func(connectIDs []string) []Rule {
		return []Rule{{
			Principals: Principals{Attributes: []map[string]string{{"building": "building22"}, {"building": "building23"}}},
			Broker: []BrokerResource{
				{Method: Connect, ClientIDs: connectIDs, Topics: []string{}},
				{Method: Publish, ClientIDs: []string{}, Topics: []string{"sensors/{principal.attributes.building}/{principal.clientId}/telemetry"}},
			},
		}}
	}
	b22 := attrs("building", "building22")
	checkPolicy(t, rules([]string{"{principal.attributes.building}*"}), []expect{{
		name:    "building22 client",
		p:       Principal{ClientID: "building22-sensor1", Attributes: b22},
		connect: true,
		pub:     []string{"sensors/building22/building22-sensor1/telemetry"},
		noPub:   []string{"sensors/building23/building22-sensor1/telemetry", "sensors/building22/building22-sensor2/telemetry", "sensors/building22/building22-sensor1/telemetry/x"},
		noSub:   []string{"sensors/building22/building22-sensor1/telemetry"},
	}, {
		name:    "building23 client",
		p:       Principal{ClientID: "building23", Attributes: attrs("building", "building23")},
		connect: true,
		pub:     []string{"sensors/building23/building23/telemetry"},
	}, {
		// "only clients whose client ID starts with building22 or
		// building23 can connect"
		name: "client ID without the building prefix",
		p:    Principal{ClientID: "sensor1", Attributes: b22},
	}, {
		name: "client ID of the other building",
		p:    Principal{ClientID: "building23-x", Attributes: b22},
	}, {
		name:  "building24",
		p:     Principal{ClientID: "building24-x", Attributes: attrs("building", "building24")},
		noPub: []string{"sensors/building24/building24-x/telemetry"},
	}})
	// "Without clientIds on Connect, a client with the building attribute
	// building22 or building23 can connect whatever its client ID."
	checkPolicy(t, rules(nil), []expect{{
		name:    "any client ID",
		p:       Principal{ClientID: "sensor1", Attributes: b22},
		connect: true,
		pub:     []string{"sensors/building22/sensor1/telemetry"},
	}, {
		name: "building24 still denied",
		p:    Principal{ClientID: "building24-x", Attributes: attrs("building", "building24")},
	}})
}

// TestSeedSATAttribute is seed 001's rule for the SAT annotation
// aio-broker-auth/group=authz-sat:
//
//	[{"brokerResources": [
//	    {"clientIds": [], "method": "Connect", "topics": []},
//	    {"clientIds": [], "method": "Publish", "topics": ["odd-numbered-orders"]},
//	    {"clientIds": [], "method": "Subscribe", "topics": ["orders"]}],
//	  "principals": {"attributes": [{"group": "authz-sat"}]}}]
func TestSeedSATAttribute(t *testing.T) {
	rules := []Rule{{
		Principals: Principals{Attributes: []map[string]string{{"group": "authz-sat"}}},
		Broker: []BrokerResource{
			{Method: Connect, ClientIDs: []string{}, Topics: []string{}},
			{Method: Publish, ClientIDs: []string{}, Topics: []string{"odd-numbered-orders"}},
			{Method: Subscribe, ClientIDs: []string{}, Topics: []string{"orders"}},
		},
	}}
	checkPolicy(t, rules, []expect{{
		name:    "group authz-sat",
		p:       Principal{ClientID: "anything", Attributes: attrs("group", "authz-sat", "extra", "1")},
		connect: true,
		pub:     []string{"odd-numbered-orders"},
		noPub:   []string{"orders", "even-numbered-orders", "odd-numbered-orders/1"},
		sub:     []string{"orders", "$share/workers/orders"},
		noSub:   []string{"odd-numbered-orders", "orders/#", "#", "+"},
	}, {
		name:  "other group",
		p:     Principal{ClientID: "anything", Attributes: attrs("group", "authz-other")},
		noPub: []string{"odd-numbered-orders"},
		noSub: []string{"orders"},
	}, {
		name: "no attributes",
		p:    Principal{ClientID: "anything", Username: "authz-sat"},
	}})
}

// seedBinaryKey is the Binary key of seed 001's state store example; the
// seed writes it as base64, and it decodes to 15 bytes.
const seedBinaryKey = "xxxxxxxxxxxxxxxxxxxx"

// TestSeedStateStore is seed 001's state store example:
//
//	[{"brokerResources": [
//	    {"clientIds": ["{principal.attributes.building}*"], "method": "Connect"},
//	    {"method": "Publish", "topics": ["sensors/{principal.attributes.building}/{principal.clientId}/telemetry/*"]},
//	    {"method": "Subscribe", "topics": ["commands/{principal.attributes.organization}"]}],
//	  "principals": {
//	    "attributes": [{"building": "17", "organization": "contoso"}],
//	    "usernames": ["temperature-sensor", "humidity-sensor"]},
//	  "stateStoreResources": [
//	    {"method": "Read", "keyType": "Pattern",
//	     "keys": ["myreadkey", "myotherkey?", "mynumerickeysuffix[0-9]", "clients/{principal.clientId}/*"]},
//	    {"method": "ReadWrite", "keyType": "Binary", "keys": ["xxxxxxxxxxxxxxxxxxxx"]}]}]
func TestSeedStateStore(t *testing.T) {
	rules := []Rule{{
		Principals: Principals{
			Attributes: []map[string]string{{"building": "17", "organization": "contoso"}},
			Usernames:  []string{"temperature-sensor", "humidity-sensor"},
		},
		Broker: []BrokerResource{
			{Method: Connect, ClientIDs: []string{"{principal.attributes.building}*"}},
			{Method: Publish, Topics: []string{"sensors/{principal.attributes.building}/{principal.clientId}/telemetry/*"}},
			{Method: Subscribe, Topics: []string{"commands/{principal.attributes.organization}"}},
		},
		StateStore: []StateStoreResource{
			{Method: Read, KeyType: Pattern, Keys: []string{"myreadkey", "myotherkey?", "mynumerickeysuffix[0-9]", "clients/{principal.clientId}/*"}},
			{Method: ReadWrite, KeyType: Binary, Keys: []string{seedBinaryKey}},
		},
	}}
	bin, err := base64.StdEncoding.DecodeString(seedBinaryKey)
	if err != nil || len(bin) != 15 {
		t.Fatalf("seed binary key: %v, %d bytes", err, len(bin))
	}
	checkPolicy(t, rules, []expect{{
		name:    "building 17 contoso",
		p:       Principal{ClientID: "17-thermostat", Attributes: attrs("building", "17", "organization", "contoso")},
		connect: true,
		// In MQTT '*' is an ordinary character, so the grant is for the
		// literal level "*".
		pub:     []string{"sensors/17/17-thermostat/telemetry/*"},
		noPub:   []string{"sensors/17/17-thermostat/telemetry/temperature", "sensors/17/other/telemetry/*"},
		sub:     []string{"commands/contoso"},
		noSub:   []string{"commands/+", "commands/fabrikam"},
		read:    []string{"myreadkey", "myotherkeyA", "myotherkey?", "mynumerickeysuffix7", "clients/17-thermostat/a", "clients/17-thermostat/a/b", string(bin)},
		noRead:  []string{"myreadkey2", "myotherkey", "myotherkeyAB", "mynumerickeysuffix10", "mynumerickeysuffixA", "clients/other/a", "clients/17-thermostat", seedBinaryKey, string(bin[:14])},
		write:   []string{string(bin)},
		noWrite: []string{"myreadkey", "clients/17-thermostat/a"},
	}, {
		// A username principal without the building attribute: the Connect
		// clientIds pattern needs {principal.attributes.building}, which is
		// missing, so the pattern matches nothing and the client cannot
		// connect; token-free keys are still granted.
		name:    "username without attributes",
		p:       Principal{ClientID: "17-ts", Username: "temperature-sensor"},
		noPub:   []string{"sensors/17/17-ts/telemetry/*", "sensors//17-ts/telemetry/*"},
		noSub:   []string{"commands/contoso", "commands/"},
		read:    []string{"myreadkey", "clients/17-ts/x", string(bin)},
		write:   []string{string(bin)},
		noWrite: []string{"myreadkey"},
	}, {
		name:    "username with building attribute",
		p:       Principal{ClientID: "17-hs", Username: "humidity-sensor", Attributes: attrs("building", "17")},
		connect: true,
		pub:     []string{"sensors/17/17-hs/telemetry/*"},
		noSub:   []string{"commands/contoso"},
	}, {
		name:   "building 17 without organization",
		p:      Principal{ClientID: "17-x", Attributes: attrs("building", "17")},
		noRead: []string{"myreadkey", string(bin)},
	}})
}

// TestSeedKeyExamples covers the key examples in seed 001's description of
// stateStoreResources: globs ("colors/*", "number[0-9]", "char?", "*"),
// tokens ("clients/{principal.clientId}/*", "usernames/{principal.username}/*",
// "rooms/{principal.attributes.room}/*"), and the lower-case spellings of its
// schema snippet ("method": read|write|readwrite, "keyType":
// string|pattern|binary).
func TestSeedKeyExamples(t *testing.T) {
	kt := func(s string) KeyType {
		typ, err := ParseKeyType(s)
		if err != nil {
			t.Fatal(err)
		}
		return typ
	}
	km := func(s string) KeyMethod {
		m, err := ParseKeyMethod(s)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	connect := []BrokerResource{{Method: Connect}}
	rules := []Rule{{
		Principals: Principals{Usernames: []string{"globber"}},
		Broker:     connect,
		StateStore: []StateStoreResource{
			{Method: km("read"), KeyType: kt("pattern"), Keys: []string{"colors/*", "number[0-9]", "char?"}},
			{Method: km("write"), KeyType: kt("string"), Keys: []string{"colors/*"}},
		},
	}, {
		Principals: Principals{Usernames: []string{"admin"}},
		Broker:     connect,
		StateStore: []StateStoreResource{{Method: km("readwrite"), KeyType: kt(""), Keys: []string{"*"}}},
	}, {
		Principals: Principals{Attributes: []map[string]string{{"role": "tenant"}}},
		Broker:     connect,
		StateStore: []StateStoreResource{{Method: ReadWrite, KeyType: Pattern, Keys: []string{
			"clients/{principal.clientId}/*", "usernames/{principal.username}/*", "rooms/{principal.attributes.room}/*",
		}}},
	}, {
		Principals: Principals{Usernames: []string{"binary"}},
		Broker:     connect,
		// The ARM reference's example key.
		StateStore: []StateStoreResource{{Method: km("Read"), KeyType: kt("binary"), Keys: []string{"MTE2IDEwMSAxMTUgMTE2"}}},
	}}
	checkPolicy(t, rules, []expect{{
		name:    "globs",
		p:       Principal{ClientID: "c", Username: "globber"},
		connect: true,
		read:    []string{"colors/red", "colors/red/dark", "colors/", "number0", "number9", "charA", "char?"},
		noRead:  []string{"colors", "number", "number10", "numberA", "char", "charAB"},
		write:   []string{"colors/*"},
		noWrite: []string{"colors/red", "number0"},
	}, {
		name:    "all keys",
		p:       Principal{ClientID: "c", Username: "admin"},
		connect: true,
		read:    []string{"a", "a/b/c", "\x00\xff"},
		write:   []string{"a", "a/b/c"},
	}, {
		name:    "tokens",
		p:       Principal{ClientID: "dev1", Username: "bob", Attributes: attrs("role", "tenant", "room", "r101")},
		connect: true,
		read:    []string{"clients/dev1/x", "usernames/bob/x", "rooms/r101/temp"},
		write:   []string{"clients/dev1/x", "usernames/bob/x/y", "rooms/r101/temp"},
		noRead:  []string{"clients/dev2/x", "usernames/alice/x", "rooms/r102/temp", "rooms//temp"},
	}, {
		// Token values match literally: a client ID of "*" gets the key
		// "clients/*/..." only, not every client's keys.
		name:    "wildcard in token value",
		p:       Principal{ClientID: "*", Attributes: attrs("role", "tenant", "room", "[0-9]")},
		connect: true,
		read:    []string{"clients/*/x", "rooms/[0-9]/x"},
		noRead:  []string{"clients/dev1/x", "rooms/5/x", "usernames//x"},
	}, {
		name:    "binary",
		p:       Principal{ClientID: "c", Username: "binary"},
		connect: true,
		read:    []string{"116 101 115 116"},
		noRead:  []string{"MTE2IDEwMSAxMTUgMTE2"},
		noWrite: []string{"116 101 115 116"},
	}})
}

// TestStateStoreProtocolTopics grants the MQTT topics the AIO state store
// protocol needs, as the AIO docs suggest.
func TestStateStoreProtocolTopics(t *testing.T) {
	const svc = "statestore/v1/FA9AE35F-2F64-47CD-9BFF-08E2B32A0FE8/command/invoke"
	rules := []Rule{{
		Principals: Principals{Usernames: []string{"{principal.clientId}"}},
		Broker: []BrokerResource{
			{Method: Connect},
			{Method: Publish, Topics: []string{svc}},
			{Method: Subscribe, Topics: []string{"clients/{principal.clientId}/services/" + svc + "/response/#"}},
		},
	}}
	checkPolicy(t, rules, []expect{{
		name:    "username equals client ID",
		p:       Principal{ClientID: "app1", Username: "app1"},
		connect: true,
		pub:     []string{svc},
		sub:     []string{"clients/app1/services/" + svc + "/response/#", "clients/app1/services/" + svc + "/response/x"},
		noSub:   []string{"clients/app2/services/" + svc + "/response/#", "clients/+/services/" + svc + "/response/#"},
	}, {
		name: "username differs",
		p:    Principal{ClientID: "app1", Username: "app2"},
	}, {
		name: "no username",
		p:    Principal{ClientID: "app1"},
	}})
}
