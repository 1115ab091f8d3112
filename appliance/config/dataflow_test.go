package config

import (
	"encoding/base64"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const (
	hdrDE = "apiVersion: connectivity.iotoperations.azure.com/v1\nkind: DataflowEndpoint\n"
	hdrDF = "apiVersion: connectivity.iotoperations.azure.com/v1\nkind: Dataflow\n"
)

// TestDataflowContract: issue #15's example loads as written (the client
// certificate from the secrets folder, the CA from a ConfigMap), gets the
// built-in endpoint default, warns about nothing and resolves to one flow
// up with every setting.
func TestDataflowContract(t *testing.T) {
	s := loadValid(t, "dataflow")
	if w := s.Warnings(); len(w) != 0 {
		t.Errorf("Warnings:\n%v", w)
	}
	if b := s.BuiltIns(); len(b) != 1 || b[0].Ref() != "DataflowEndpoint/default" {
		t.Errorf("BuiltIns() = %v, want [DataflowEndpoint/default]", b)
	}
	crt, err := os.ReadFile("testdata/dataflow/secrets/site1-client/tls.crt")
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile("testdata/dataflow/secrets/site1-client/tls.key")
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := s.ConfigMap("cloud-ca").Bytes("ca.crt")
	want := []ResolvedFlow{{
		Name:      "up",
		Direction: FlowUp,
		Remote: ResolvedEndpoint{
			Name: "cloud", Hosts: []string{"mqtt.example.net:8883"}, TLS: true, CAPEM: ca,
			AuthMethod: EndpointX509Certificate, ClientCertPEM: crt, ClientKeyPEM: key,
			ClientIDPrefix: "site1", QoS: 1, SessionExpirySeconds: 3600, KeepAliveSeconds: 60,
			MaxInflightMessages: 100, RetainKeep: true, Protocol: ProtocolMqtt,
		},
		Sources:     []string{"telemetry/#"},
		Destination: "site1/${inputTopic}",
	}}
	if diff := cmp.Diff(want, s.Flows()); diff != "" {
		t.Errorf("Flows() (-want +got):\n%s", diff)
	}
}

// TestFlowsResolve: defaults, both directions, a host list, AIO's X.509
// Secret layout (intermediates after the leaf), a password Secret and
// AIO's $shared/ prefix; a Disabled flow is validated but not listed.
func TestFlowsResolve(t *testing.T) {
	crt, key := testTLS(t)
	inter, _ := testTLS(t)
	b64 := base64.StdEncoding.EncodeToString
	yaml := hdrDE + `metadata: {name: hub}
spec:
  endpointType: Mqtt
  mqttSettings:
    host: "a.example:8883, [fd00::1]:8883"
    authentication:
      method: X509Certificate
      x509CertificateSettings: {secretRef: aio-client}
---
` + hdrDE + `metadata: {name: plain}
spec:
  endpointType: Mqtt
  mqttSettings:
    host: 192.0.2.7:1883
    authentication:
      method: UsernamePassword
      usernamePasswordSettings: {secretRef: login}
    tls: {mode: Disabled}
    qos: 0
    retain: Never
    keepAliveSeconds: 0
    sessionExpirySeconds: 0
    maxInflightMessages: 10
---
` + hdrDF + `metadata: {name: up}
spec:
  operations:
  - operationType: Destination
    destinationSettings: {endpointRef: hub, dataDestination: "site1/${inputTopic.2}"}
  - operationType: Source
    sourceSettings: {endpointRef: default, dataSources: ["$shared/up/telemetry/+/#", "alarms/#"]}
---
` + hdrDF + `metadata: {name: down}
spec:
  operations:
  - operationType: Source
    sourceSettings: {endpointRef: plain, dataSources: [commands/site1/#]}
  - operationType: Destination
    destinationSettings: {endpointRef: default, dataDestination: "${inputTopic}"}
---
` + hdrDF + `metadata: {name: off}
spec:
  mode: Disabled
  operations:
  - operationType: Source
    sourceSettings: {endpointRef: default, dataSources: [x]}
  - operationType: Destination
    destinationSettings: {endpointRef: hub, dataDestination: x}
---
apiVersion: v1
kind: Secret
metadata: {name: aio-client}
data:
  client_cert.pem: ` + b64(crt) + `
  client_key.pem: ` + b64(key) + `
  client_intermediate_certs.pem: ` + b64(inter) + `
---
apiVersion: v1
kind: Secret
metadata: {name: login}
stringData: {username: site1, password: "s3cret"}
`
	s, err := loadMap(t, map[string]string{"t.yaml": yaml})
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	chain := append(append(slices.Clone(crt), '\n'), inter...)
	want := []ResolvedFlow{{
		Name:      "up",
		Direction: FlowUp,
		Remote: ResolvedEndpoint{
			Name: "hub", Hosts: []string{"a.example:8883", "[fd00::1]:8883"}, TLS: true,
			AuthMethod: EndpointX509Certificate, ClientCertPEM: chain, ClientKeyPEM: key,
			QoS: 1, SessionExpirySeconds: 3600, KeepAliveSeconds: 60, MaxInflightMessages: 100,
			RetainKeep: true, Protocol: ProtocolMqtt,
		},
		Sources:     []string{"$share/up/telemetry/+/#", "alarms/#"},
		Destination: "site1/${inputTopic.2}",
	}, {
		Name:      "down",
		Direction: FlowDown,
		Remote: ResolvedEndpoint{
			Name: "plain", Hosts: []string{"192.0.2.7:1883"},
			AuthMethod: MethodUsernamePassword, Username: "site1", Password: []byte("s3cret"),
			MaxInflightMessages: 10, Protocol: ProtocolMqtt,
		},
		Sources:     []string{"commands/site1/#"},
		Destination: "${inputTopic}",
	}}
	if diff := cmp.Diff(want, s.Flows()); diff != "" {
		t.Errorf("Flows() (-want +got):\n%s", diff)
	}
	if got := s.Dataflow("off").Enabled(); got {
		t.Errorf("Dataflow off: Enabled() = true")
	}
}

// ep is a DataflowEndpoint e of type Mqtt; body (mqttSettings' fields,
// indented by 4) starts at line 7.
func ep(body string) string {
	return hdrDE + "metadata: {name: e}\nspec:\n  endpointType: Mqtt\n  mqttSettings:\n" + body
}

// df is a Dataflow f; ops (the operations list, indented by 2) starts at
// line 6.
func df(ops string) string { return hdrDF + "metadata: {name: f}\nspec:\n  operations:\n" + ops }

func src(ref, sources string) string {
	return "  - operationType: Source\n    sourceSettings: {endpointRef: " + ref + ", dataSources: [" + sources + "]}\n"
}

func dst(ref, dest string) string {
	return "  - operationType: Destination\n    destinationSettings: {endpointRef: " + ref + ", dataDestination: \"" + dest + "\"}\n"
}

// anon is a valid mqttSettings body: host (line 7), authentication (8).
const anon = "    host: h.example:8883\n    authentication: {method: Anonymous}\n"

// TestDataflowErrors: every refusal of a DataflowEndpoint or Dataflow is
// one line naming file, line, resource, field and problem.
func TestDataflowErrors(t *testing.T) {
	crt, key := testTLS(t)
	_, other := testTLS(t)
	b64 := base64.StdEncoding.EncodeToString
	dfCommon := `
---
` + hdrDE + `metadata: {name: cloud}
spec:
  endpointType: Mqtt
  mqttSettings:
    host: mqtt.example.net:8883
    authentication: {method: Anonymous}
---
apiVersion: v1
kind: Secret
metadata: {name: client-tls}
type: kubernetes.io/tls
data: {tls.crt: ` + b64(crt) + `, tls.key: ` + b64(key) + `}
---
apiVersion: v1
kind: Secret
metadata: {name: mismatch}
type: kubernetes.io/tls
data: {tls.crt: ` + b64(crt) + `, tls.key: ` + b64(other) + `}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: empty-ca}
data: {x: y}
`
	const (
		mqttOnly = "the appliance bridges MQTT only: use endpointType Mqtt with mqttSettings (Azure Event Grid's MQTT broker, AIO's broker or any MQTT broker)"
		instead  = "use X509Certificate (a client certificate Secret; Azure Event Grid's MQTT broker accepts them) or UsernamePassword (a Secret with username and password) instead"
		hostport = "not host:port (want e.g. mqtt.example.net:8883, or [fd00::1]:8883)"
		exactly  = "a Dataflow has exactly one Source and one Destination"
		e        = "DataflowEndpoint/e: spec.mqttSettings."
		auth     = "    host: h.example:8883\n    authentication:\n" // method at line 9, settings at 10
		up       = "  - operationType: Source\n    sourceSettings: {endpointRef: default, dataSources: [t]}\n"
	)
	for _, tc := range []struct{ name, yaml, want string }{
		// DataflowEndpoint
		{"Kafka", hdrDE + "metadata: {name: k}\nspec:\n  endpointType: Kafka\n  kafkaSettings: {host: 'x.servicebus.windows.net:9093'}\n",
			`t.yaml:5: DataflowEndpoint/k: spec.endpointType: Kafka endpoints (Kafka, Event Hubs, Fabric Real-Time Intelligence) are not supported on the appliance; ` + mqttOnly},
		{"storage", hdrDE + "metadata: {name: k}\nspec:\n  endpointType: DataLakeStorage\n  dataLakeStorageSettings: {host: 'a.blob.core.windows.net'}\n",
			`t.yaml:5: DataflowEndpoint/k: spec.endpointType: DataLakeStorage is a storage endpoint, which the appliance does not write to; ` + mqttOnly},
		{"OpenTelemetry", hdrDE + "metadata: {name: k}\nspec:\n  endpointType: OpenTelemetry\n",
			`t.yaml:5: DataflowEndpoint/k: spec.endpointType: OpenTelemetry endpoints are not supported on the appliance; ` + mqttOnly},
		{"endpointType spelling", hdrDE + "metadata: {name: k}\nspec:\n  endpointType: mqtt\n",
			`t.yaml:5: DataflowEndpoint/k: spec.endpointType: "mqtt" is not valid; did you mean "Mqtt"? (spelling is case-sensitive)`},
		{"endpointType required", hdrDE + "metadata: {name: k}\nspec:\n  mqttSettings: {host: 'h.example:1'}\n",
			`t.yaml:4: DataflowEndpoint/k: spec.endpointType: required (one of Mqtt, Kafka, DataLakeStorage, FabricOneLake, DataExplorer, LocalStorage, OpenTelemetry)`},
		{"mqttSettings required", hdrDE + "metadata: {name: k}\nspec:\n  endpointType: Mqtt\n",
			`t.yaml:4: DataflowEndpoint/k: spec.mqttSettings: endpointType Mqtt needs mqttSettings with host and authentication`},
		{"settings of another type", ep(anon) + "  kafkaSettings: {host: 'k:9093'}\n",
			`t.yaml:9: DataflowEndpoint/e: spec.kafkaSettings: only for endpointType Kafka, not Mqtt`},
		{"host required", ep("    authentication: {method: Anonymous}\n"),
			`t.yaml:6: ` + e + `host: required: the broker as host:port (e.g. mqtt.example.net:8883), or several, comma-separated, tried in turn`},
		{"host without port", ep("    host: mqtt.example.net\n    authentication: {method: Anonymous}\n"),
			`t.yaml:7: ` + e + `host: "mqtt.example.net": ` + hostport},
		{"host list entry", ep("    host: 'a.example:8883, b.example'\n    authentication: {method: Anonymous}\n"),
			`t.yaml:7: ` + e + `host: "b.example" (entry 2): ` + hostport},
		{"host list empty entry", ep("    host: 'a.example:8883,'\n    authentication: {method: Anonymous}\n"),
			`t.yaml:7: ` + e + `host: "" (entry 2): empty entry (want host:port)`},
		{"host twice", ep("    host: a.example:8883,a.example:8883\n    authentication: {method: Anonymous}\n"),
			`t.yaml:7: ` + e + `host: "a.example:8883" (entry 2) is listed twice`},
		{"host name", ep("    host: bad_host:8883\n    authentication: {method: Anonymous}\n"),
			`t.yaml:7: ` + e + `host: "bad_host:8883": host "bad_host" is neither a DNS name nor an IP address`},
		{"host port", ep("    host: h.example:0\n    authentication: {method: Anonymous}\n"),
			`t.yaml:7: ` + e + `host: "h.example:0": port "0" is not a port number (1..65535)`},
		{"authentication required", ep("    host: h.example:8883\n"),
			`t.yaml:6: ` + e + `authentication: required: method Anonymous, X509Certificate (a client certificate Secret) or UsernamePassword (a Secret with username and password)`},
		{"ServiceAccountToken", ep(auth + "      method: ServiceAccountToken\n      serviceAccountTokenSettings: {audience: aio-internal}\n"),
			`t.yaml:9: ` + e + `authentication.method: ServiceAccountToken needs Kubernetes service accounts, which do not exist on the appliance; ` + instead},
		{"system-assigned identity", ep(auth + "      method: SystemAssignedManagedIdentity\n      systemAssignedManagedIdentitySettings: {}\n"),
			`t.yaml:9: ` + e + `authentication.method: SystemAssignedManagedIdentity needs an Azure managed identity, which the appliance does not have; ` + instead},
		{"user-assigned identity", ep(auth + "      method: UserAssignedManagedIdentity\n      userAssignedManagedIdentitySettings: {clientId: c, tenantId: t}\n"),
			`t.yaml:9: ` + e + `authentication.method: UserAssignedManagedIdentity needs an Azure managed identity, which the appliance does not have; ` + instead},
		{"method enum", ep(auth + "      method: Password\n"),
			`t.yaml:9: ` + e + `authentication.method: "Password" is not valid (want one of Anonymous, X509Certificate, UsernamePassword, ServiceAccountToken, SystemAssignedManagedIdentity, UserAssignedManagedIdentity)`},
		{"settings of another method", ep(auth + "      method: Anonymous\n      x509CertificateSettings: {secretRef: client-tls}\n"),
			`t.yaml:10: ` + e + `authentication.x509CertificateSettings: only for method X509Certificate, not Anonymous`},
		{"X509 secretRef required", ep(auth + "      method: X509Certificate\n"),
			`t.yaml:8: ` + e + `authentication.x509CertificateSettings.secretRef: method X509Certificate needs the name of a kubernetes.io/tls Secret with the client certificate (tls.crt) and key (tls.key)`},
		{"X509 Secret not found", ep(auth + "      method: X509Certificate\n      x509CertificateSettings: {secretRef: nope}\n"),
			`t.yaml:10: ` + e + `authentication.x509CertificateSettings.secretRef: Secret/nope not found`},
		{"X509 needs TLS", ep(auth + "      method: X509Certificate\n      x509CertificateSettings: {secretRef: client-tls}\n    tls: {mode: Disabled}\n"),
			`t.yaml:9: ` + e + `authentication.method: X509Certificate needs tls.mode Enabled: the client certificate is presented in the TLS handshake`},
		{"X509 Secret layout", ep(auth + "      method: X509Certificate\n      x509CertificateSettings: {secretRef: opaque}\n"),
			`t.yaml:10: ` + e + `authentication.x509CertificateSettings.secretRef: Secret/opaque has type Opaque without client_cert.pem and client_key.pem: want a kubernetes.io/tls Secret (tls.crt, tls.key) or AIO's layout (client_cert.pem, client_key.pem, optionally client_intermediate_certs.pem)`},
		{"X509 key of another certificate", ep(auth + "      method: X509Certificate\n      x509CertificateSettings: {secretRef: mismatch}\n"),
			`t.yaml:10: ` + e + `authentication.x509CertificateSettings.secretRef: Secret/mismatch: the client certificate and key do not go together: tls: private key does not match public key`},
		{"password Secret not found", ep(auth + "      method: UsernamePassword\n      usernamePasswordSettings: {secretRef: nope}\n"),
			`t.yaml:10: ` + e + `authentication.usernamePasswordSettings.secretRef: Secret/nope not found`},
		{"password Secret keys", ep(auth + "      method: UsernamePassword\n      usernamePasswordSettings: {secretRef: opaque}\n"),
			`t.yaml:10: ` + e + `authentication.usernamePasswordSettings.secretRef: Secret/opaque has no key "password"`},
		{"tls mode", ep(anon + "    tls: {mode: enabled}\n"),
			`t.yaml:9: ` + e + `tls.mode: "enabled" is not valid; did you mean "Enabled"? (spelling is case-sensitive)`},
		{"CA ConfigMap not found", ep(anon + "    tls: {mode: Enabled, trustedCaCertificateConfigMapRef: nope}\n"),
			`t.yaml:9: ` + e + `tls.trustedCaCertificateConfigMapRef: ConfigMap/nope not found (it holds the PEM CA certificates the broker's certificate must chain to)`},
		{"CA ConfigMap without certificates", ep(anon + "    tls: {mode: Enabled, trustedCaCertificateConfigMapRef: empty-ca}\n"),
			`t.yaml:9: ` + e + `tls.trustedCaCertificateConfigMapRef: ConfigMap/empty-ca holds no PEM CERTIFICATE`},
		{"CA without TLS", ep(anon + "    tls: {mode: Disabled, trustedCaCertificateConfigMapRef: client-ca}\n"),
			`t.yaml:9: ` + e + `tls.trustedCaCertificateConfigMapRef: only for mode Enabled`},
		{"qos", ep(anon + "    qos: 2\n"),
			`t.yaml:9: ` + e + `qos: 2 is not valid (want 0 or 1: AIO's dataflows use QoS 0 or 1)`},
		{"keepAliveSeconds", ep(anon + "    keepAliveSeconds: 70000\n"),
			`t.yaml:9: ` + e + `keepAliveSeconds: 70000 is out of range 0..65535`},
		{"maxInflightMessages", ep(anon + "    maxInflightMessages: 0\n"),
			`t.yaml:9: ` + e + `maxInflightMessages: 0 is out of range 1..65535`},
		{"sessionExpirySeconds", ep(anon + "    sessionExpirySeconds: -1\n"),
			`t.yaml:9: ` + e + `sessionExpirySeconds: -1 is out of range 0..2147483647`},
		{"retain", ep(anon + "    retain: keep\n"),
			`t.yaml:9: ` + e + `retain: "keep" is not valid; did you mean "Keep"? (spelling is case-sensitive)`},
		{"protocol", ep(anon + "    protocol: Websockets\n"),
			`t.yaml:9: ` + e + `protocol: "Websockets" is not valid; did you mean "WebSockets"? (spelling is case-sensitive)`},
		{"path without WebSockets", ep("    host: h.example:443/mqtt\n    authentication: {method: Anonymous}\n"),
			`t.yaml:7: ` + e + `host: "h.example:443/mqtt": a path is only for protocol WebSockets (want host:port)`},
		{"WebSocket path", ep("    host: 'a.example:443, h.example:443/mqtt?x=1'\n    authentication: {method: Anonymous}\n    protocol: WebSockets\n"),
			`t.yaml:7: ` + e + `host: "h.example:443/mqtt?x=1" (entry 2): path "/mqtt?x=1" is not a URL path (letters, digits and -._~!$&'()*+,;=:@/%)`},
		{"WebSocket host", ep("    host: h.example/mqtt\n    authentication: {method: Anonymous}\n    protocol: WebSockets\n"),
			`t.yaml:7: ` + e + `host: "h.example/mqtt": ` + hostport},
		{"CreateOrRemap", ep(anon + "    cloudEventAttributes: CreateOrRemap\n"),
			`t.yaml:9: ` + e + `cloudEventAttributes: CreateOrRemap is not supported on the appliance: flows forward messages with their user properties as they are (Propagate); remove it or use Propagate`},
		{"clientIdPrefix", ep(anon + "    clientIdPrefix: site 1\n"),
			`t.yaml:9: ` + e + `clientIdPrefix: "site 1" is not a valid client id prefix: use at most 64 letters, digits, '-', '_' and '.', starting with a letter or digit`},
		{"endpoint name", hdrDE + "metadata: {name: Cloud}\nspec:\n  endpointType: Mqtt\n  mqttSettings: {host: 'h.example:1', authentication: {method: Anonymous}}\n",
			`t.yaml:3: DataflowEndpoint/Cloud: metadata.name: "Cloud" is not a valid name: use lower-case letters, digits, '-' and '.' (a DNS-1123 subdomain of at most 253 characters)`},
		// Dataflow
		{"mode", hdrDF + "metadata: {name: f}\nspec:\n  mode: disabled\n  operations:\n" + up + dst("cloud", "x"),
			`t.yaml:5: Dataflow/f: spec.mode: "disabled" is not valid; did you mean "Disabled"? (spelling is case-sensitive)`},
		{"no Source", hdrDF + "metadata: {name: f}\nspec:\n  operations: []\n",
			`t.yaml:5: Dataflow/f: spec.operations: no Source operation; ` + exactly},
		{"no Destination", df(up),
			`t.yaml:5: Dataflow/f: spec.operations: no Destination operation; ` + exactly},
		{"two Sources", df(up + up + dst("cloud", "x")),
			`t.yaml:8: Dataflow/f: spec.operations[1].operationType: a second Source (the first is spec.operations[0]); ` + exactly},
		{"two Destinations", df(up + dst("cloud", "x") + dst("cloud", "y")),
			`t.yaml:10: Dataflow/f: spec.operations[2].operationType: a second Destination (the first is spec.operations[1]); ` + exactly},
		{"BuiltInTransformation", df(up + "  - operationType: BuiltInTransformation\n    builtInTransformationSettings: {map: [{inputs: ['*'], output: '*'}]}\n" + dst("cloud", "x")),
			`t.yaml:8: Dataflow/f: spec.operations[1].operationType: BuiltInTransformation is not supported on the appliance: a flow forwards messages as they are; remove the operation, and map, filter or enrich in a program on the device that subscribes and republishes`},
		{"operationType spelling", df("  - operationType: source\n    sourceSettings: {endpointRef: default, dataSources: [t]}\n" + dst("cloud", "x")),
			`t.yaml:6: Dataflow/f: spec.operations[0].operationType: "source" is not valid; did you mean "Source"? (spelling is case-sensitive)`},
		{"settings of another operation", df(up + "  - operationType: Destination\n    sourceSettings: {endpointRef: cloud, dataSources: [t]}\n    destinationSettings: {endpointRef: cloud, dataDestination: x}\n"),
			`t.yaml:9: Dataflow/f: spec.operations[1].sourceSettings: only for operationType Source, not Destination`},
		{"destinationSettings required", df(up + "  - operationType: Destination\n"),
			`t.yaml:8: Dataflow/f: spec.operations[1].destinationSettings: operationType Destination needs destinationSettings with endpointRef and dataDestination`},
		{"endpoint not found", df(up + dst("nope", "x")),
			`t.yaml:9: Dataflow/f: spec.operations[1].destinationSettings.endpointRef: DataflowEndpoint/nope not found`},
		{"endpointRef required", df(up + "  - operationType: Destination\n    destinationSettings: {dataDestination: x}\n"),
			`t.yaml:9: Dataflow/f: spec.operations[1].destinationSettings.endpointRef: required: a DataflowEndpoint, or default for the appliance's own broker`},
		{"neither end default", df(src("cloud", "t") + dst("cloud", "x")),
			`t.yaml:5: Dataflow/f: spec.operations: neither endpoint is default: one end of every Dataflow is the appliance's own broker (endpointRef: default), as in AIO`},
		{"both ends default", df(up + dst("default", "x")),
			`t.yaml:9: Dataflow/f: spec.operations[1].destinationSettings.endpointRef: source and destination are both default, the appliance's own broker: a flow copies between it and a remote DataflowEndpoint`},
		{"dataSources required", df(src("default", "") + dst("cloud", "x")),
			`t.yaml:7: Dataflow/f: spec.operations[0].sourceSettings.dataSources: at least one topic filter is required`},
		{"dataSources '#'", df(src("default", "a/#/b") + dst("cloud", "x")),
			`t.yaml:7: Dataflow/f: spec.operations[0].sourceSettings.dataSources[0]: "a/#/b": '#' must be the last level`},
		{"dataSources '+'", df(src("default", "a+/b") + dst("cloud", "x")),
			`t.yaml:7: Dataflow/f: spec.operations[0].sourceSettings.dataSources[0]: "a+/b": '+' and '#' must be a whole level`},
		{"dataSources empty filter", df(src("default", `""`) + dst("cloud", "x")),
			`t.yaml:7: Dataflow/f: spec.operations[0].sourceSettings.dataSources[0]: "": empty topic filter`},
		{"shared subscription", df(src("default", "$share/g") + dst("cloud", "x")),
			`t.yaml:7: Dataflow/f: spec.operations[0].sourceSettings.dataSources[0]: "$share/g": a shared subscription is $share/GROUP/FILTER`},
		{"shared group", df(src("default", "$shared/g+/t") + dst("cloud", "x")),
			`t.yaml:7: Dataflow/f: spec.operations[0].sourceSettings.dataSources[0]: "$shared/g+/t": the group name of a shared subscription has no wildcards`},
		{"dataSources twice", df(src("default", "a/b, a/b") + dst("cloud", "x")),
			`t.yaml:7: Dataflow/f: spec.operations[0].sourceSettings.dataSources[1]: "a/b" already listed at dataSources[0]`},
		{"dataDestination required", df(up + dst("cloud", "")),
			`t.yaml:9: Dataflow/f: spec.operations[1].destinationSettings.dataDestination: required: the topic to publish to, e.g. site1/${inputTopic}`},
		{"dataDestination wildcard", df(up + dst("cloud", "site1/#")),
			`t.yaml:9: Dataflow/f: spec.operations[1].destinationSettings.dataDestination: "site1/#": wildcards ('+', '#') are not allowed in a destination topic`},
		{"dataDestination substitution", df(up + dst("cloud", "site1/${topic}")),
			`t.yaml:9: Dataflow/f: spec.operations[1].destinationSettings.dataDestination: "site1/${topic}": unknown substitution ${topic} (want ${inputTopic} or ${inputTopic.N}, N ≥ 1)`},
		{"dataDestination level 0", df(up + dst("cloud", "x/${inputTopic.0}")),
			`t.yaml:9: Dataflow/f: spec.operations[1].destinationSettings.dataDestination: "x/${inputTopic.0}": ${inputTopic.0}: levels count from 1`},
		{"operation name", df("  - operationType: Source\n    name: " + strings.Repeat("s", 65) + "\n    sourceSettings: {endpointRef: default, dataSources: [t]}\n" + dst("cloud", "x")),
			`t.yaml:7: Dataflow/f: spec.operations[0].name: longer than 64 characters`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := Parse("t.yaml", []byte(tc.yaml+dfCommon+common))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			var s Set
			s.Add(rs...)
			err = s.Validate()
			if err == nil {
				t.Fatalf("Validate: no error, want\n%s", tc.want)
			}
			if !slices.Contains(strings.Split(err.Error(), "\n"), tc.want) {
				t.Errorf("Validate:\n%v\nwant the line\n%s", err, tc.want)
			}
		})
	}
}

// TestDataflowCommonIsValid: what TestDataflowErrors' cases are built on
// is valid without them.
func TestDataflowCommonIsValid(t *testing.T) {
	rs, err := Parse("t.yaml", []byte(ep(anon)+"---\n"+df(src("default", "t")+dst("e", "x"))))
	if err != nil {
		t.Fatal(err)
	}
	var s Set
	s.Add(rs...)
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestDataflowParseStrict: unknown fields of the new kinds get "did you
// mean", AIO's destination headers are refused as an AIO feature, and
// only the connectivity group's v1 and v1beta1 serve them.
func TestDataflowParseStrict(t *testing.T) {
	yaml := hdrDE + `metadata: {name: cloud}
spec:
  endpointType: Mqtt
  mqttSetings:
    host: x.example:1
---
` + hdrDE + `metadata: {name: cloud2}
spec:
  endpointType: Mqtt
  mqttSettings:
    host: x.example:1
    authentication: {method: Anonymous}
    tls: {mode: Enabled, trustedCaCertificateConfigMap: ca}
    keepAlive: 60
---
` + hdrDF + `metadata: {name: up}
spec:
  operations:
  - operationType: Source
    sourceSettings: {endpointRef: default, dataSource: ["a/#"]}
  - operationType: Destination
    destinationSettings:
      endpointRf: cloud
      dataDestination: x
      headers:
      - {actionType: AddOrReplace, key: site, value: "1"}
---
apiVersion: connectivity.iotoperations.azure.com/v2
kind: Dataflow
metadata: {name: v2}
`
	_, err := Parse("t.yaml", []byte(yaml))
	want := []string{
		`t.yaml:6: DataflowEndpoint/cloud: spec.mqttSetings: unknown field (did you mean "mqttSettings"?)`,
		`t.yaml:17: DataflowEndpoint/cloud2: spec.mqttSettings.tls.trustedCaCertificateConfigMap: unknown field (did you mean "trustedCaCertificateConfigMapRef"?)`,
		`t.yaml:18: DataflowEndpoint/cloud2: spec.mqttSettings.keepAlive: unknown field`,
		`t.yaml:26: Dataflow/up: spec.operations[0].sourceSettings.dataSource: unknown field (did you mean "dataSources"?)`,
		`t.yaml:29: Dataflow/up: spec.operations[1].destinationSettings.endpointRf: unknown field (did you mean "endpointRef"?)`,
		`t.yaml:31: Dataflow/up: spec.operations[1].destinationSettings.headers: AIO field spec.operations[1].destinationSettings.headers is not supported on the appliance (a flow forwards each message with its user properties as they are and adds or removes none; remove it)`,
		`t.yaml:34: Dataflow/v2: apiVersion: "connectivity.iotoperations.azure.com/v2" does not serve Dataflow (want connectivity.iotoperations.azure.com/v1 or connectivity.iotoperations.azure.com/v1beta1)`,
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Errorf("Parse:\n%v\nwant\n%s", err, strings.Join(want, "\n"))
	}
}

// TestDataflowAIOFieldsWarned: an AIO (v1beta1) flow down with the fields
// AIO manifests carry loads; profileRef is dropped silently as brokerRef
// is, the cloud's and the cluster's fields are warned about and ignored,
// and so are a password without TLS and $inputTopic without braces.
func TestDataflowAIOFieldsWarned(t *testing.T) {
	yaml := `apiVersion: connectivity.iotoperations.azure.com/v1beta1
kind: DataflowEndpoint
metadata: {name: cloud}
spec:
  endpointType: Mqtt
  hostType: CustomMqtt
  mqttSettings:
    host: mqtt.example.net:1883
    authentication:
      method: UsernamePassword
      usernamePasswordSettings: {secretRef: login}
    tls: {mode: Disabled}
---
apiVersion: connectivity.iotoperations.azure.com/v1beta1
kind: Dataflow
metadata: {name: down, namespace: azure-iot-operations}
spec:
  profileRef: default
  mode: Enabled
  requestDiskPersistence: Enabled
  operations:
  - operationType: Source
    name: source1
    sourceSettings:
      endpointRef: cloud
      assetRef: thermostat
      serializationFormat: Json
      schemaRef: aio-sr://ns/schema:1
      dataSources: [commands/site1/#]
  - operationType: Destination
    destinationSettings: {endpointRef: default, dataDestination: "cmd/$inputTopic.3"}
---
apiVersion: v1
kind: Secret
metadata: {name: login}
stringData: {username: site1, password: secret}
`
	s, err := loadMap(t, map[string]string{"t.yaml": yaml})
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	const ignored = " is not supported on the appliance ("
	src := "spec.operations[0].sourceSettings."
	want := []string{
		`t.yaml:6: DataflowEndpoint/cloud: spec.hostType: AIO field spec.hostType` + ignored + `it tells AIO's portal what kind of broker the endpoint is; the appliance reads endpointType and host); ignored`,
		`t.yaml:12: DataflowEndpoint/cloud: spec.mqttSettings.tls.mode: Disabled: the password crosses the network in clear text; use mode Enabled`,
		`t.yaml:20: Dataflow/down: spec.requestDiskPersistence: AIO field spec.requestDiskPersistence` + ignored + `a flow's session on the appliance's broker is kept as every persistent session is, in the journal under -data); ignored`,
		`t.yaml:26: Dataflow/down: ` + src + `assetRef: AIO field ` + src + `assetRef` + ignored + `Azure Device Registry assets are cloud resources the device does not consult; the flow subscribes to dataSources); ignored`,
		`t.yaml:27: Dataflow/down: ` + src + `serializationFormat: AIO field ` + src + `serializationFormat` + ignored + `a flow forwards payloads as they are, without decoding them); ignored`,
		`t.yaml:28: Dataflow/down: ` + src + `schemaRef: AIO field ` + src + `schemaRef` + ignored + `a flow forwards payloads as they are, without decoding them); ignored`,
		`t.yaml:31: Dataflow/down: spec.operations[1].destinationSettings.dataDestination: "cmd/$inputTopic.3": $inputTopic without braces is literal text in a topic; did you mean "cmd/${inputTopic.3}"?`,
	}
	if got := s.Warnings().Error(); got != strings.Join(want, "\n") {
		t.Errorf("Warnings:\n%s\nwant\n%s", got, strings.Join(want, "\n"))
	}
	if f := s.Flows(); len(f) != 1 || f[0].Direction != FlowDown || f[0].Remote.Password == nil {
		t.Errorf("Flows() = %+v, want the flow down with its password", f)
	}
}

// TestDefaultEndpointDefined: AIO's own DataflowEndpoint default, as
// exported from a cluster (a service account token, AIO's trust bundle),
// is accepted: its settings are ignored with a warning, as default is the
// appliance's broker whatever it says, and no built-in is added.
func TestDefaultEndpointDefined(t *testing.T) {
	yaml := `apiVersion: connectivity.iotoperations.azure.com/v1
kind: DataflowEndpoint
metadata: {name: default, namespace: azure-iot-operations}
spec:
  endpointType: Mqtt
  mqttSettings:
    host: aio-broker:18883
    authentication:
      method: ServiceAccountToken
      serviceAccountTokenSettings: {audience: aio-internal}
    tls: {mode: Enabled, trustedCaCertificateConfigMapRef: azure-iot-operations-aio-ca-trust-bundle}
---
` + ep(anon) + "---\n" + df(src("default", "t")+dst("e", "x"))
	s, err := loadMap(t, map[string]string{"t.yaml": yaml})
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	want := `t.yaml:6: DataflowEndpoint/default: spec.mqttSettings: DataflowEndpoint/default is the appliance's own broker, which flows use in process: its mqttSettings (in AIO, aio-broker:18883 with a service account token) are ignored`
	if got := s.Warnings().Error(); got != want {
		t.Errorf("Warnings:\n%s\nwant\n%s", got, want)
	}
	if b := s.BuiltIns(); len(b) != 0 {
		t.Errorf("BuiltIns() = %v, want none", b)
	}
	if f := s.Flows(); len(f) != 1 || f[0].Remote.Name != "e" || f[0].Direction != FlowUp {
		t.Errorf("Flows() = %+v, want f up to e", f)
	}
}

// TestDefaultEndpointBuiltin: a configuration without flows gets no
// built-in endpoint; one whose flows name default gets it, and it is valid
// without settings.
func TestDefaultEndpointBuiltin(t *testing.T) {
	s, err := loadMap(t, map[string]string{"t.yaml": ep(anon)})
	if err != nil || len(s.BuiltIns()) != 0 {
		t.Errorf("without flows: %v, built-ins %v", err, s.BuiltIns())
	}
	s, err = loadMap(t, map[string]string{"t.yaml": ep(anon) + "---\n" + df(dst("default", "${inputTopic}")+src("e", `"#"`))})
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if d := s.DataflowEndpoint(DefaultEndpoint); d == nil || !d.BuiltIn() {
		t.Errorf("DataflowEndpoint(default) = %+v, want the built-in", d)
	}
}

func TestTopicTemplate(t *testing.T) {
	for _, tc := range []struct {
		template, topic, want string
		ok                    bool
	}{
		{"site1/${inputTopic}", "telemetry/a", "site1/telemetry/a", true},
		{"processed/factory/${inputTopic.2}", "factory/1/data", "processed/factory/1", true},
		{"processed/factory/${inputTopic.2}", "/factory/1/data/", "processed/factory/1", true}, // leading and trailing '/' ignored
		{"${inputTopic.3}/${inputTopic.1}", "a/b/c", "c/a", true},
		{"x-${inputTopic.1}-y", "a/b", "x-a-y", true},
		{"${inputTopic}", "/a", "/a", true}, // the whole topic as it is
		{"fixed", "a/b", "fixed", true},
		{"$inputTopic.2/{x}", "a/b", "$inputTopic.2/{x}", true}, // '$' and braces are literal text
		{"${inputTopic.4}", "a/b/c", "", false},                 // no such level: dropped
		{"${inputTopic.1}", "/", "", false},                     // empty result: dropped
	} {
		tt, err := ParseTopicTemplate(tc.template)
		if err != nil {
			t.Errorf("ParseTopicTemplate(%q): %v", tc.template, err)
			continue
		}
		got, ok := tt.Expand(tc.topic)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%q.Expand(%q) = %q, %v; want %q, %v", tc.template, tc.topic, got, ok, tc.want, tc.ok)
		}
	}
	for template, want := range map[string]string{
		"":                  "empty topic",
		"a/+/b":             "wildcards ('+', '#') are not allowed in a destination topic",
		"x/${inputTopic":    `unterminated "${inputTopic" (want ${inputTopic} or ${inputTopic.N})`,
		"${inputTopic.x}":   "${inputTopic.x}: the level must be a number, ${inputTopic.N} with N ≥ 1",
		"${inputTopic.01}":  "${inputTopic.01}: the level must be a number, ${inputTopic.N} with N ≥ 1",
		"${inputTopic.-1}":  "${inputTopic.-1}: the level must be a number, ${inputTopic.N} with N ≥ 1",
		"${inputTopic.}":    "${inputTopic.}: the level must be a number, ${inputTopic.N} with N ≥ 1",
		"${inputTopic.0}":   "${inputTopic.0}: levels count from 1",
		"${InputTopic}":     "unknown substitution ${InputTopic} (want ${inputTopic} or ${inputTopic.N}, N ≥ 1)",
		"a/${}/b":           "unknown substitution ${} (want ${inputTopic} or ${inputTopic.N}, N ≥ 1)",
		"${outputTopic}/x":  "unknown substitution ${outputTopic} (want ${inputTopic} or ${inputTopic.N}, N ≥ 1)",
		"${inputTopic}${x}": "unknown substitution ${x} (want ${inputTopic} or ${inputTopic.N}, N ≥ 1)",
	} {
		if _, err := ParseTopicTemplate(template); err == nil || err.Error() != want {
			t.Errorf("ParseTopicTemplate(%q): %v, want %s", template, err, want)
		}
	}
}

func TestFlowDirectionString(t *testing.T) {
	for d, want := range map[FlowDirection]string{FlowUp: "up", FlowDown: "down", 7: "FlowDirection(7)"} {
		if got := d.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(d), got, want)
		}
	}
}

// TestWebSocketsEndpoint: protocol WebSockets resolves with its hosts as
// written, a path or none (the bridge then uses /mqtt), and TLS.
func TestWebSocketsEndpoint(t *testing.T) {
	yaml := ep("    host: 'a.example:443/ws/mqtt, [fd00::1]:8443'\n    authentication: {method: Anonymous}\n    protocol: WebSockets\n") +
		"---\n" + df(src("default", "t/#")+dst("e", "site1/${inputTopic}"))
	s, err := loadMap(t, map[string]string{"t.yaml": yaml})
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	want := ResolvedEndpoint{Name: "e", Hosts: []string{"a.example:443/ws/mqtt", "[fd00::1]:8443"}, TLS: true,
		AuthMethod: EndpointAnonymous, QoS: 1, SessionExpirySeconds: 3600, KeepAliveSeconds: 60, MaxInflightMessages: 100,
		RetainKeep: true, Protocol: ProtocolWebSockets}
	flows := s.Flows()
	if len(flows) != 1 {
		t.Fatalf("Flows() = %v, want one", flows)
	}
	if diff := cmp.Diff(want, flows[0].Remote); diff != "" {
		t.Errorf("Flows()[0].Remote (-want +got):\n%s", diff)
	}
}
