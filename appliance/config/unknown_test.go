package config

import (
	"strings"
	"testing"
)

// TestUnknownFieldsAllAtOnce: every unknown field of every document is
// reported in one run, each at its line, with "did you mean" for a near
// miss of a field name at that place (not of a name elsewhere).
func TestUnknownFieldsAllAtOnce(t *testing.T) {
	yaml := `apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: one
  lables: {a: b}
spec:
  serviceTyp: ClusterIp
  ports:
  - port: 1883
    authenticationref: pw
    tsl: {mode: Manual}
  - port: 1884
    colour: red
---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthorization
metadata:
  name: authz
spec:
  authorizationPolicies:
    rules:
    - principals: {usernames: [a]}
      brokerResources:
      - method: Publish
        topic: [x]
`
	_, err := Parse("t.yaml", []byte(yaml))
	if err == nil {
		t.Fatal("Parse: no error")
	}
	want := []string{
		`t.yaml:5: BrokerListener/one: metadata.lables: unknown field (did you mean "labels"?)`,
		`t.yaml:7: BrokerListener/one: spec.serviceTyp: unknown field (did you mean "serviceType"?)`,
		`t.yaml:10: BrokerListener/one: spec.ports[0].authenticationref: unknown field (did you mean "authenticationRef"?)`,
		`t.yaml:11: BrokerListener/one: spec.ports[0].tsl: unknown field (did you mean "tls"?)`,
		`t.yaml:13: BrokerListener/one: spec.ports[1].colour: unknown field`,
		`t.yaml:25: BrokerAuthorization/authz: spec.authorizationPolicies.rules[0].brokerResources[0].topic: unknown field (did you mean "topics"?)`,
	}
	if got := err.Error(); got != strings.Join(want, "\n") {
		t.Errorf("Parse:\n%s\nwant\n%s", got, strings.Join(want, "\n"))
	}
}

func TestSuggest(t *testing.T) {
	known := []string{"authenticationRef", "authorizationRef", "nodePort", "port", "protocol", "tls"}
	for key, want := range map[string]string{
		"tsl":                    "tls",
		"Port":                   "port",
		"prot":                   "port",
		"protocl":                "protocol",
		"authorisationRef":       "authorizationRef",
		"authnRef":               "",
		"colour":                 "",
		"x":                      "",
		strings.Repeat("a", 100): "",
	} {
		if got := suggest(key, known); got != want {
			t.Errorf("suggest(%q) = %q, want %q", key, got, want)
		}
	}
}
