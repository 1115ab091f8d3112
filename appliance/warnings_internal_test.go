package appliance

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadConfigLogsWarnings: the appliance accepts a configuration with
// a warning and logs it, naming the file under -config and the line.
func TestLoadConfigLogsWarnings(t *testing.T) {
	dir := t.TempDir()
	err := os.WriteFile(filepath.Join(dir, "authz.yaml"), []byte(`apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthorization
metadata: {name: authz}
spec:
  authorizationPolicies:
    rules:
    - principals: {usernames: [a]}
      brokerResources:
      - {method: Subscribe, topics: ["telemetry/*"]}
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := loadConfig(dir, slog.New(slog.NewTextHandler(&buf, nil))); err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	want := filepath.Join(dir, "authz.yaml") + `:9: BrokerAuthorization/authz: spec.authorizationPolicies.rules[0].brokerResources[0].topics[0]: \"telemetry/*\": '*' is a literal character`
	if got := buf.String(); !strings.Contains(got, "level=WARN") || !strings.Contains(got, want) {
		t.Errorf("log:\n%s\nwant a warning containing\n%s", got, want)
	}
}
