package config

import (
	"strings"
	"testing"
)

// TestStarTopicWarning: a topic rule with '*' is valid (a literal '*')
// but warned about, with the wildcard topics it may have meant; '*' in a
// Connect clientIds glob and a state store key pattern is not.
func TestStarTopicWarning(t *testing.T) {
	yaml := hdrAZ + `metadata: {name: authz}
spec:
  authorizationPolicies:
    rules:
    - principals: {usernames: [a]}
      brokerResources:
      - method: Connect
        clientIds: ["building*"]
      - method: Publish
        topics: ["telemetry/*", "*/status", "sensor*", "a/+/#"]
      stateStoreResources:
      - {method: Read, keyType: Pattern, keys: ["colors/*"]}
`
	rs, err := Parse("t.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	var s Set
	s.Add(rs...)
	if err := s.Validate(); err != nil {
		t.Fatalf("Validate: %v (a warning is no error)", err)
	}
	const lit = `'*' is a literal character in MQTT topics, not a wildcard: MQTT wildcards are + (one level) and # (every level below)`
	p := "t.yaml:12: BrokerAuthorization/authz: spec.authorizationPolicies.rules[0].brokerResources[1].topics"
	want := []string{
		p + `[0]: "telemetry/*": ` + lit + `; did you mean "telemetry/+" or "telemetry/#"?`,
		p + `[1]: "*/status": ` + lit + `; did you mean "+/status"?`,
		p + `[2]: "sensor*": ` + lit,
	}
	if got := s.Warnings().Error(); got != strings.Join(want, "\n") {
		t.Errorf("Warnings:\n%s\nwant\n%s", got, strings.Join(want, "\n"))
	}
}

// TestSeed001StarWarning: seed 001's telemetry/* rule is warned about.
func TestSeed001StarWarning(t *testing.T) {
	s := loadValid(t, "seed001")
	got := s.Warnings().Error()
	if !strings.Contains(got, `authz.yaml:98: BrokerAuthorization/state-store: `) ||
		!strings.Contains(got, `"sensors/{principal.attributes.building}/{principal.clientId}/telemetry/*": '*' is a literal character`) {
		t.Errorf("Warnings:\n%s\nwant seed 001's telemetry/* at authz.yaml:98", got)
	}
}
