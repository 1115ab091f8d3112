package config

import (
	"strings"
	"testing"
)

// TestAIOFieldsUnsupported: AIO fields the appliance does not support
// are refused with what to do instead, not as a typo ("unknown field");
// a typo next to them still is one.
func TestAIOFieldsUnsupported(t *testing.T) {
	yaml := hdrB + `metadata: {name: default}
spec:
  persistence: {maxSize: 1G}
  diskBackedMessageBuffer: {maxSize: 1G}
  memoryProfil: Low
---
` + hdrAN + `metadata: {name: x509}
spec:
  authenticationMethods:
  - method: X509
    x509Settings:
      trustedClientCaCert: client-ca
      additionalValidation: AzureDeviceRegistry
---
` + hdrL + `metadata: {name: tls}
spec:
  ports:
  - port: 8883
    tls:
      mode: Manual
      manual: {secretName: server-cert, secretNamespace: azure-iot-operations}
`
	_, err := Parse("t.yaml", []byte(yaml))
	want := []string{
		`t.yaml:5: Broker/default: spec.persistence: AIO field spec.persistence is not supported on the appliance (the appliance always keeps retained messages, sessions and the state store on disk under -data; remove it)`,
		`t.yaml:7: Broker/default: spec.memoryProfil: unknown field (did you mean "memoryProfile"?)`,
		`t.yaml:17: BrokerAuthentication/x509: spec.authenticationMethods[0].x509Settings.additionalValidation: AIO field spec.authenticationMethods[0].x509Settings.additionalValidation is not supported on the appliance (Azure Device Registry is a cloud service the device does not consult; trust client certificates with trustedClientCaCert and authorizationAttributes, and remove it)`,
		`t.yaml:27: BrokerListener/tls: spec.ports[0].tls.manual.secretName: AIO field spec.ports[0].tls.manual.secretName is not supported on the appliance (secretName is the ARM API's spelling; a manifest names the Secret with manual: {secretRef: NAME})`,
		`t.yaml:27: BrokerListener/tls: spec.ports[0].tls.manual.secretNamespace: AIO field spec.ports[0].tls.manual.secretNamespace is not supported on the appliance (the appliance has no namespaces; remove it)`,
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Errorf("Parse:\n%v\nwant\n%s", err, strings.Join(want, "\n"))
	}
}

// TestAIOClusterFieldsWarned: AIO's cluster fields of a Broker (an
// exported AIO Broker carries them) are accepted, ignored and warned
// about, never silently.
func TestAIOClusterFieldsWarned(t *testing.T) {
	yaml := hdrB + `metadata: {name: default}
spec:
  cardinality:
    backendChain: {partitions: 2, redundancyFactor: 2, workers: 2}
    frontend: {replicas: 2, workers: 2}
  diagnostics:
    selfCheck: {mode: Enabled}
  memoryProfile: Low
  advanced:
    encryptInternalTraffic: Enabled
`
	rs, err := Parse("t.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	var s Set
	s.Add(rs...)
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`t.yaml:5: Broker/default: spec.cardinality: AIO field spec.cardinality is not supported on the appliance (one broker process on one device: no frontend or backend replicas); ignored`,
		`t.yaml:8: Broker/default: spec.diagnostics: AIO field spec.diagnostics is not supported on the appliance (the appliance's metrics are at the status endpoint's /metrics; it has no self-check pods or traces); ignored`,
		`t.yaml:12: Broker/default: spec.advanced.encryptInternalTraffic: AIO field spec.advanced.encryptInternalTraffic is not supported on the appliance (one process: no internal traffic to encrypt); ignored`,
	}
	if got := s.Warnings().Error(); got != strings.Join(want, "\n") {
		t.Errorf("Warnings:\n%s\nwant\n%s", got, strings.Join(want, "\n"))
	}
}

// TestDiskBackedMessageBuffer: AIO's diskBackedMessageBuffer.maxSize is
// the journal's disk budget; its volume claims are cluster fields,
// warned about and ignored; a missing, bad or tiny maxSize is an error
// naming the field.
func TestDiskBackedMessageBuffer(t *testing.T) {
	load := func(spec string) (*Set, error) {
		rs, err := Parse("t.yaml", []byte(hdrB+"metadata: {name: default}\nspec:\n"+spec))
		if err != nil {
			return nil, err
		}
		var s Set
		s.Add(rs...)
		return &s, s.Validate()
	}
	s, err := load("  diskBackedMessageBuffer:\n    maxSize: 2G\n    ephemeralVolumeClaimSpec: {resources: {requests: {storage: 2G}}}\n")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.DiskBufferBytes(); got != 2e9 {
		t.Errorf("DiskBufferBytes = %d, want 2e9", got)
	}
	want := `t.yaml:7: Broker/default: spec.diskBackedMessageBuffer.ephemeralVolumeClaimSpec: AIO field spec.diskBackedMessageBuffer.ephemeralVolumeClaimSpec is not supported on the appliance (the journal lives under -data on the device's own disk; maxSize is its budget); ignored`
	if got := s.Warnings().Error(); got != want {
		t.Errorf("Warnings:\n%s\nwant\n%s", got, want)
	}
	if s, err := load("  memoryProfile: Low\n"); err != nil || s.DiskBufferBytes() != DefaultDiskBufferBytes {
		t.Errorf("without the field: %v, %d", err, s.DiskBufferBytes())
	}
	for spec, msg := range map[string]string{
		"  diskBackedMessageBuffer: {maxSize: 1M}\n":   "1M is below the minimum of 64Mi",
		"  diskBackedMessageBuffer: {maxSize: lots}\n": "spec.diskBackedMessageBuffer.maxSize: ",
		"  diskBackedMessageBuffer: {}\n":              "spec.diskBackedMessageBuffer.maxSize: required",
	} {
		if _, err := load(spec); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: %v, want %q", spec, err, msg)
		}
	}
}

// TestBrokerRef: spec.brokerRef "default" (AIO's one Broker) is accepted
// quietly; any other name is warned about, and the resource still applies.
func TestBrokerRef(t *testing.T) {
	doc := func(ref string) string {
		return "apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: BrokerAuthorization\nmetadata: {name: authz}\nspec:\n  brokerRef: " + ref +
			"\n  authorizationPolicies:\n    rules:\n    - principals: {usernames: [a]}\n      brokerResources:\n      - {method: Connect}\n"
	}
	for ref, warn := range map[string]bool{"default": false, "broker2": true} {
		rs, err := Parse("t.yaml", []byte(doc(ref)))
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		var s Set
		s.Add(rs...)
		if err := s.Validate(); err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		got := s.Warnings().Error()
		if has := strings.Contains(got, `spec.brokerRef: "broker2" names no broker`); has != warn {
			t.Errorf("brokerRef %s: warnings %q", ref, got)
		}
		if s.Authorization("authz") == nil {
			t.Errorf("brokerRef %s: the resource was not kept", ref)
		}
	}
}
