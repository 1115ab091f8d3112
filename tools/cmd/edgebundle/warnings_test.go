package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestLintWarnsStarTopic: lint passes a topic rule with '*' (it is
// valid: a literal '*') but prints a warning on stderr naming file:line
// and that MQTT wildcards are + and #.
func TestLintWarnsStarTopic(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"authz.yaml": `apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthorization
metadata: {name: authz}
spec:
  authorizationPolicies:
    rules:
    - principals: {usernames: [a]}
      brokerResources:
      - method: Publish
        topics:
        - telemetry/*
`})
	code, out, errOut := edgebundle(t, "lint", dir)
	if code != 0 || !strings.Contains(out, "1 resources valid") {
		t.Fatalf("lint: exit %d, stdout %q, stderr %q; want 0 and valid", code, out, errOut)
	}
	want := "warning: " + filepath.Join(dir, "authz.yaml") + `:11: BrokerAuthorization/authz: spec.authorizationPolicies.rules[0].brokerResources[0].topics[0]: "telemetry/*": '*' is a literal character in MQTT topics, not a wildcard: MQTT wildcards are + (one level) and # (every level below)`
	if !strings.Contains(errOut, want) {
		t.Errorf("lint stderr:\n%s\nwant\n%s", errOut, want)
	}
}

// TestLintBuiltins: AIO's default listener, which refers to AIO's
// built-in ClusterIssuer and BrokerAuthentication default, lints valid;
// lint says which built-ins the appliance supplies, counts only the
// resources written, and warns what authentication default means here.
func TestLintBuiltins(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"listener.yaml": `apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata: {name: default}
spec:
  ports:
  - port: 18883
    authenticationRef: default
    tls:
      mode: Automatic
      certManagerCertificateSpec:
        issuerRef: {name: azure-iot-operations-aio-certificate-issuer, kind: ClusterIssuer}
`})
	code, out, errOut := edgebundle(t, "lint", dir)
	if code != 0 || !strings.Contains(out, "\n1 resources valid") {
		t.Fatalf("lint: exit %d, stdout %q, stderr %q; want 0 and 1 resource valid", code, out, errOut)
	}
	for _, want := range []string{"note: ClusterIssuer/azure-iot-operations-aio-certificate-issuer is AIO's built-in", "note: BrokerAuthentication/default is AIO's built-in"} {
		if !strings.Contains(out, want) {
			t.Errorf("lint stdout:\n%s\nwant %q", out, want)
		}
	}
	if want := filepath.Join(dir, "listener.yaml") + ":7: BrokerListener/default: spec.ports[0].authenticationRef: BrokerAuthentication/default is not defined"; !strings.Contains(errOut, want) {
		t.Errorf("lint stderr:\n%s\nwant %q", errOut, want)
	}
}
