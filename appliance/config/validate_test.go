package config

import (
	"encoding/base64"
	"os"
	"strings"
	"testing"
)

// Documents the cases below refer to. Each case's own YAML comes first,
// so its line numbers start at 1.
const (
	hdrL  = "apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: BrokerListener\n"
	hdrAN = "apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: BrokerAuthentication\n"
	hdrAZ = "apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: BrokerAuthorization\n"
	hdrB  = "apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: Broker\n"
	hdrCM = "apiVersion: cert-manager.io/v1\n"

	common = `
---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthentication
metadata: {name: users}
spec:
  authenticationMethods:
  - method: UsernamePassword
    usernamePasswordSettings: {passwordFileSecretRef: pw}
---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthentication
metadata: {name: certs}
spec:
  authenticationMethods:
  - method: X509
---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthorization
metadata: {name: authz}
spec:
  authorizationPolicies:
    rules:
    - principals: {usernames: [a]}
      brokerResources: [{method: Connect}]
---
apiVersion: v1
kind: Secret
metadata: {name: pw}
stringData: {passwords: "a:$7$101$abc"}
---
apiVersion: v1
kind: Secret
metadata: {name: opaque}
stringData: {x: y}
---
apiVersion: cert-manager.io/v1
kind: Issuer
metadata: {name: iss}
spec: {selfSigned: {}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: client-ca}
data:
  ca.pem: |
    -----BEGIN CERTIFICATE-----
    MIIB
    -----END CERTIFICATE-----
`
)

func tlsSecret(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("testdata/seed000-manual-secret.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return "\n---\n" + strings.Replace(string(b), "name: server-cert-secret", "name: tls", 1)
}

func TestValidateErrors(t *testing.T) {
	crt := "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
	for _, tc := range []struct{ name, yaml, want string }{
		{"broker name", hdrL + "metadata: {name: Ab}\nspec: {ports: [{port: 1}]}\n",
			`t.yaml:3: BrokerListener/Ab: metadata.name: "Ab" is not a valid name`},
		{"secret name", "apiVersion: v1\nkind: Secret\nmetadata: {name: a_b}\n",
			`t.yaml:3: Secret/a_b: metadata.name: "a_b" is not a valid name`},
		{"duplicate", hdrL + "metadata: {name: one}\nspec: {ports: [{port: 1}]}\n---\n" + hdrL + "metadata: {name: one}\nspec: {serviceType: NodePort, serviceName: x, ports: [{port: 2}]}\n",
			`t.yaml:8: BrokerListener/one: metadata.name: BrokerListener/one already defined at t.yaml:3`},
		{"one listener per service type", hdrL + "metadata: {name: one}\nspec: {ports: [{port: 1}]}\n---\n" + hdrL + "metadata: {name: two}\nspec:\n  serviceType: ClusterIp\n  ports: [{port: 2}]\n",
			`t.yaml:10: BrokerListener/two: spec.serviceType: ClusterIp already used by BrokerListener/one`},
		{"unique service name", hdrL + "metadata: {name: one}\nspec: {serviceName: svc, ports: [{port: 1}]}\n---\n" + hdrL + "metadata: {name: two}\nspec:\n  serviceType: NodePort\n  serviceName: svc\n  ports: [{port: 2}]\n",
			`t.yaml:11: BrokerListener/two: spec.serviceName: "svc" already used by BrokerListener/one`},
		{"port across listeners", hdrL + "metadata: {name: default}\nspec: {ports: [{port: 18883}]}\n---\n" + hdrL + "metadata: {name: loadbalancer-listener}\nspec:\n  serviceType: LoadBalancer\n  ports:\n  - port: 1883\n  - port: 18883\n",
			`t.yaml:13: BrokerListener/loadbalancer-listener: spec.ports[1].port: 18883 already used by BrokerListener/default`},
		{"port within listener", hdrL + "metadata: {name: one}\nspec:\n  ports:\n  - port: 1883\n  - port: 1883\n",
			`t.yaml:7: BrokerListener/one: spec.ports[1].port: 1883 already used by spec.ports[0]`},
		{"port range", hdrL + "metadata: {name: one}\nspec:\n  ports:\n  - port: 0\n",
			`t.yaml:6: BrokerListener/one: spec.ports[0].port: 0 is not a port number (1..65535)`},
		{"port too big", hdrL + "metadata: {name: one}\nspec:\n  ports:\n  - port: 65536\n",
			`t.yaml:6: BrokerListener/one: spec.ports[0].port: 65536 is not a port number`},
		{"no ports", hdrL + "metadata: {name: one}\nspec: {serviceType: ClusterIp}\n",
			`t.yaml:4: BrokerListener/one: spec.ports: at least one port is required`},
		{"service type enum", hdrL + "metadata: {name: one}\nspec:\n  serviceType: clusterIp\n  ports: [{port: 1}]\n",
			`t.yaml:5: BrokerListener/one: spec.serviceType: "clusterIp" is not valid; did you mean "ClusterIp"?`},
		{"protocol enum", hdrL + "metadata: {name: one}\nspec:\n  ports:\n  - port: 1\n    protocol: Http\n",
			`t.yaml:7: BrokerListener/one: spec.ports[0].protocol: "Http" is not valid (want one of Mqtt, WebSockets)`},
		{"nodePort on ClusterIp", hdrL + "metadata: {name: one}\nspec:\n  ports:\n  - port: 1\n    nodePort: 30001\n",
			`t.yaml:7: BrokerListener/one: spec.ports[0].nodePort: only a NodePort listener has node ports`},
		{"authorization without authentication", hdrL + "metadata: {name: one}\nspec:\n  ports:\n  - port: 1\n    authorizationRef: authz\n",
			`t.yaml:7: BrokerListener/one: spec.ports[0].authorizationRef: authorization needs authentication on the same port`},
		{"authenticationRef missing", hdrL + "metadata: {name: one}\nspec:\n  ports:\n  - port: 1\n    authenticationRef: nope\n",
			`t.yaml:7: BrokerListener/one: spec.ports[0].authenticationRef: BrokerAuthentication/nope not found`},
		{"authorizationRef missing", hdrL + "metadata: {name: one}\nspec:\n  ports:\n  - port: 1\n    authenticationRef: users\n    authorizationRef: nope\n",
			`t.yaml:8: BrokerListener/one: spec.ports[0].authorizationRef: BrokerAuthorization/nope not found`},
		{"X509 needs TLS", hdrL + "metadata: {name: one}\nspec:\n  ports:\n  - port: 1\n    authenticationRef: certs\n",
			`t.yaml:7: BrokerListener/one: spec.ports[0].authenticationRef: BrokerAuthentication/certs uses X509 client certificates, which need tls on this port`},
		{"tls mode", hdrL + "metadata: {name: one}\nspec:\n  ports:\n  - port: 1\n    tls: {mode: Auto}\n",
			`t.yaml:7: BrokerListener/one: spec.ports[0].tls.mode: "Auto" is not valid (want one of Automatic, Manual)`},
		{"Automatic needs spec", hdrL + "metadata: {name: one}\nspec:\n  ports:\n  - port: 1\n    tls:\n      mode: Automatic\n",
			`t.yaml:7: BrokerListener/one: spec.ports[0].tls.certManagerCertificateSpec: mode Automatic needs certManagerCertificateSpec`},
		{"Manual needs secretRef", hdrL + "metadata: {name: one}\nspec:\n  ports:\n  - port: 1\n    tls:\n      mode: Manual\n",
			`t.yaml:7: BrokerListener/one: spec.ports[0].tls.manual.secretRef: mode Manual needs the name of a kubernetes.io/tls Secret`},
		{"Manual secret type", hdrL + "metadata: {name: one}\nspec:\n  ports:\n  - port: 1\n    tls:\n      mode: Manual\n      manual: {secretRef: opaque}\n",
			`t.yaml:9: BrokerListener/one: spec.ports[0].tls.manual.secretRef: Secret/opaque has type Opaque, want kubernetes.io/tls`},
		{"issuer not found", hdrL + "metadata: {name: one}\nspec:\n  ports:\n  - port: 1\n    tls:\n      mode: Automatic\n      certManagerCertificateSpec:\n        issuerRef: {name: iss, kind: ClusterIssuer}\n",
			`t.yaml:10: BrokerListener/one: spec.ports[0].tls.certManagerCertificateSpec.issuerRef.name: ClusterIssuer/iss not found`},
		{"issuer kind required", hdrL + "metadata: {name: one}\nspec:\n  ports:\n  - port: 1\n    tls:\n      mode: Automatic\n      certManagerCertificateSpec:\n        issuerRef: {name: iss}\n",
			`t.yaml:10: BrokerListener/one: spec.ports[0].tls.certManagerCertificateSpec.issuerRef.kind: required (one of Issuer, ClusterIssuer)`},
		{"issuer group", hdrL + "metadata: {name: one}\nspec:\n  ports:\n  - port: 1\n    tls:\n      mode: Automatic\n      certManagerCertificateSpec:\n        issuerRef: {name: iss, kind: Issuer, group: example.com}\n",
			`t.yaml:10: BrokerListener/one: spec.ports[0].tls.certManagerCertificateSpec.issuerRef.group: "example.com" is not served (want cert-manager.io)`},
		{"duration", hdrL + "metadata: {name: one}\nspec:\n  ports:\n  - port: 1\n    tls:\n      mode: Automatic\n      certManagerCertificateSpec:\n        issuerRef: {name: iss, kind: Issuer}\n        duration: 90d\n",
			`t.yaml:11: BrokerListener/one: spec.ports[0].tls.certManagerCertificateSpec.duration: "90d" is not a duration`},
		{"renewBefore not shorter", hdrL + "metadata: {name: one}\nspec:\n  ports:\n  - port: 1\n    tls:\n      mode: Automatic\n      certManagerCertificateSpec:\n        issuerRef: {name: iss, kind: Issuer}\n        duration: 240h\n        renewBefore: 240h\n",
			`t.yaml:12: BrokerListener/one: spec.ports[0].tls.certManagerCertificateSpec.renewBefore: 240h must be shorter than duration 240h`},
		{"key algorithm", hdrL + "metadata: {name: one}\nspec:\n  ports:\n  - port: 1\n    tls:\n      mode: Automatic\n      certManagerCertificateSpec:\n        issuerRef: {name: iss, kind: Issuer}\n        privateKey: {algorithm: ECDSA}\n",
			`t.yaml:11: BrokerListener/one: spec.ports[0].tls.certManagerCertificateSpec.privateKey.algorithm: "ECDSA" is not valid (want one of Ec256, Ec384, Ec521, Ed25519, Rsa2048, Rsa4096, Rsa8192)`},
		{"rotation policy", hdrL + "metadata: {name: one}\nspec:\n  ports:\n  - port: 1\n    tls:\n      mode: Automatic\n      certManagerCertificateSpec:\n        issuerRef: {name: iss, kind: Issuer}\n        privateKey: {algorithm: Ec256, rotationPolicy: Sometimes}\n",
			`spec.ports[0].tls.certManagerCertificateSpec.privateKey.rotationPolicy: "Sometimes" is not valid`},
		{"SAN ip", hdrL + "metadata: {name: one}\nspec:\n  ports:\n  - port: 1\n    tls:\n      mode: Automatic\n      certManagerCertificateSpec:\n        issuerRef: {name: iss, kind: Issuer}\n        san:\n          ip: [10.0.0.1, 10.0.0.300]\n",
			`t.yaml:12: BrokerListener/one: spec.ports[0].tls.certManagerCertificateSpec.san.ip[1]: "10.0.0.300" is not an IP address`},
		{"SAN dns", hdrL + "metadata: {name: one}\nspec:\n  ports:\n  - port: 1\n    tls:\n      mode: Automatic\n      certManagerCertificateSpec:\n        issuerRef: {name: iss, kind: Issuer}\n        san:\n          dns:\n          - ok.example\n          - bad_name\n",
			`t.yaml:14: BrokerListener/one: spec.ports[0].tls.certManagerCertificateSpec.san.dns[1]: "bad_name" is not a DNS name`},
		{"ServiceAccountToken", hdrAN + "metadata: {name: sat}\nspec:\n  authenticationMethods:\n  - method: ServiceAccountToken\n    serviceAccountTokenSettings: {audiences: [aio-internal]}\n",
			`t.yaml:6: BrokerAuthentication/sat: spec.authenticationMethods[0].method: ServiceAccountToken needs Kubernetes service accounts, which do not exist on the appliance; use X509 (client certificates) or UsernamePassword`},
		{"method enum", hdrAN + "metadata: {name: authn}\nspec:\n  authenticationMethods:\n  - method: Password\n",
			`t.yaml:6: BrokerAuthentication/authn: spec.authenticationMethods[0].method: "Password" is not valid (want one of Custom, ServiceAccountToken, X509, UsernamePassword)`},
		{"settings of another method", hdrAN + "metadata: {name: authn}\nspec:\n  authenticationMethods:\n  - method: X509\n    customSettings: {endpoint: https://auth}\n",
			`t.yaml:7: BrokerAuthentication/authn: spec.authenticationMethods[0].customSettings: only for method Custom, not X509`},
		{"trusted CA ConfigMap missing", hdrAN + "metadata: {name: authn}\nspec:\n  authenticationMethods:\n  - method: X509\n    x509Settings: {trustedClientCaCert: my-ca}\n",
			`t.yaml:7: BrokerAuthentication/authn: spec.authenticationMethods[0].x509Settings.trustedClientCaCert: ConfigMap/my-ca not found`},
		{"trusted CA without certificates", hdrAN + "metadata: {name: authn}\nspec:\n  authenticationMethods:\n  - method: X509\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: client-ca}\ndata: {ca.pem: nothing}\n",
			`t.yaml:6: BrokerAuthentication/authn: spec.authenticationMethods[0].x509Settings.trustedClientCaCert: ConfigMap/client-ca holds no PEM CERTIFICATE`},
		{"x509 subject", hdrAN + "metadata: {name: authn}\nspec:\n  authenticationMethods:\n  - method: X509\n    x509Settings:\n      authorizationAttributes:\n        fan: {subject: smart-fan, attributes: {a: b}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: client-ca}\ndata: {ca.pem: \"" + strings.ReplaceAll(crt, "\n", `\n`) + "\"}\n",
			`t.yaml:9: BrokerAuthentication/authn: spec.authenticationMethods[0].x509Settings.authorizationAttributes[fan].subject: "smart-fan" is not a subject DN`},
		{"Custom https only", hdrAN + "metadata: {name: authn}\nspec:\n  authenticationMethods:\n  - method: Custom\n    customSettings:\n      endpoint: http://auth.local:8080\n",
			`t.yaml:8: BrokerAuthentication/authn: spec.authenticationMethods[0].customSettings.endpoint: "http://auth.local:8080" must use https`},
		{"Custom needs settings", hdrAN + "metadata: {name: authn}\nspec:\n  authenticationMethods:\n  - method: Custom\n",
			`spec.authenticationMethods[0].customSettings: method Custom needs customSettings with an endpoint`},
		{"Custom client cert secret", hdrAN + "metadata: {name: authn}\nspec:\n  authenticationMethods:\n  - method: Custom\n    customSettings:\n      endpoint: https://auth\n      auth: {x509: {secretRef: nope}}\n",
			`t.yaml:9: BrokerAuthentication/authn: spec.authenticationMethods[0].customSettings.auth.x509.secretRef: Secret/nope not found`},
		{"password secret missing", hdrAN + "metadata: {name: authn}\nspec:\n  authenticationMethods:\n  - method: UsernamePassword\n    usernamePasswordSettings: {passwordFileSecretRef: nope}\n",
			`t.yaml:7: BrokerAuthentication/authn: spec.authenticationMethods[0].usernamePasswordSettings.passwordFileSecretRef: Secret/nope not found`},
		{"password settings missing", hdrAN + "metadata: {name: authn}\nspec:\n  authenticationMethods:\n  - method: UsernamePassword\n",
			`spec.authenticationMethods[0].usernamePasswordSettings.passwordFileSecretRef: method UsernamePassword needs the name of a Secret`},
		{"password key missing", hdrAN + "metadata: {name: authn}\nspec:\n  authenticationMethods:\n  - method: UsernamePassword\n    usernamePasswordSettings: {passwordFileSecretRef: opaque}\n",
			`t.yaml:7: BrokerAuthentication/authn: spec.authenticationMethods[0].usernamePasswordSettings.key: Secret/opaque has no key "passwords"`},
		{"password file not hashed", "apiVersion: v1\nkind: Secret\nmetadata: {name: plain}\nstringData:\n  passwords: |\n    bob:secret\n---\n" + hdrAN + "metadata: {name: authn}\nspec:\n  authenticationMethods:\n  - method: UsernamePassword\n    usernamePasswordSettings: {passwordFileSecretRef: plain}\n",
			`t.yaml:5: Secret/plain: stringData[passwords]: password file: line 1: user bob: the password is not hashed`},
		{"user attributes for unknown user", hdrAN + "metadata: {name: authn}\nspec:\n  authenticationMethods:\n  - method: UsernamePassword\n    usernamePasswordSettings:\n      passwordFileSecretRef: pw\n      userAttributes:\n        bob: {building: \"17\"}\n",
			`t.yaml:10: BrokerAuthentication/authn: spec.authenticationMethods[0].usernamePasswordSettings.userAttributes[bob]: no user "bob" in Secret/pw`},
		{"no methods", hdrAN + "metadata: {name: authn}\nspec:\n  authenticationMethods: []\n",
			`t.yaml:5: BrokerAuthentication/authn: spec.authenticationMethods: at least one method is required`},
		{"authz method enum", hdrAZ + "metadata: {name: azr}\nspec:\n  authorizationPolicies:\n    rules:\n    - principals: {clientIds: [a]}\n      brokerResources:\n      - method: Read\n",
			`t.yaml:9: BrokerAuthorization/azr: spec.authorizationPolicies.rules[0].brokerResources[0].method: "Read" is not valid (want one of Connect, Publish, Subscribe)`},
		{"publish needs topics", hdrAZ + "metadata: {name: azr}\nspec:\n  authorizationPolicies:\n    rules:\n    - principals: {clientIds: [a]}\n      brokerResources:\n      - method: Publish\n",
			`t.yaml:9: BrokerAuthorization/azr: spec.authorizationPolicies.rules[0].brokerResources[0].topics: Publish needs at least one topic`},
		{"subscribe needs topics", hdrAZ + "metadata: {name: azr}\nspec:\n  authorizationPolicies:\n    rules:\n    - principals: {clientIds: [a]}\n      brokerResources:\n      - {method: Subscribe, topics: []}\n",
			`spec.authorizationPolicies.rules[0].brokerResources[0].topics: Subscribe needs at least one topic`},
		{"token not whole level", hdrAZ + "metadata: {name: azr}\nspec:\n  authorizationPolicies:\n    rules:\n    - principals: {clientIds: [a]}\n      brokerResources:\n      - method: Publish\n        topics:\n        - client-{principal.clientId}/#\n",
			`t.yaml:11: BrokerAuthorization/azr: spec.authorizationPolicies.rules[0].brokerResources[0].topics[0]: "client-{principal.clientId}/#": bad token client-{principal.clientId} (a token must be a whole topic level)`},
		{"clientIds only on Connect", hdrAZ + "metadata: {name: azr}\nspec:\n  authorizationPolicies:\n    rules:\n    - principals: {clientIds: [a]}\n      brokerResources:\n      - {method: Publish, topics: [t], clientIds: [x]}\n",
			`spec.authorizationPolicies.rules[0].brokerResources[0].clientIds: only Connect takes clientIds`},
		{"empty principals", hdrAZ + "metadata: {name: azr}\nspec:\n  authorizationPolicies:\n    rules:\n    - principals: {}\n      brokerResources: [{method: Connect}]\n",
			`t.yaml:7: BrokerAuthorization/azr: spec.authorizationPolicies.rules[0].principals: matches no client`},
		{"state store enums", hdrAZ + "metadata: {name: azr}\nspec:\n  authorizationPolicies:\n    rules:\n    - principals: {clientIds: [a]}\n      brokerResources: [{method: Connect}]\n      stateStoreResources:\n      - {method: read, keyType: Glob, keys: [k]}\n",
			`t.yaml:10: BrokerAuthorization/azr: spec.authorizationPolicies.rules[0].stateStoreResources[0].method: "read" is not valid; did you mean "Read"?`},
		{"binary keys base64", hdrAZ + "metadata: {name: azr}\nspec:\n  authorizationPolicies:\n    rules:\n    - principals: {clientIds: [a]}\n      brokerResources: [{method: Connect}]\n      stateStoreResources:\n      - method: ReadWrite\n        keyType: Binary\n        keys: [\"not base64!\"]\n",
			`t.yaml:12: BrokerAuthorization/azr: spec.authorizationPolicies.rules[0].stateStoreResources[0].keys[0]: binary keys are base64`},
		{"tokens only in Pattern keys", hdrAZ + "metadata: {name: azr}\nspec:\n  authorizationPolicies:\n    rules:\n    - principals: {clientIds: [a]}\n      brokerResources: [{method: Connect}]\n      stateStoreResources:\n      - method: Read\n        keyType: String\n        keys: [\"clients/{principal.clientId}\"]\n",
			`stateStoreResources[0].keys[0]: tokens are substituted only in keyType Pattern`},
		{"cache enum", hdrAZ + "metadata: {name: azr}\nspec:\n  authorizationPolicies:\n    cache: true\n",
			`t.yaml:6: BrokerAuthorization/azr: spec.authorizationPolicies.cache: "true" is not valid (want one of Enabled, Disabled)`},
		{"broker limits", hdrB + "metadata: {name: default}\nspec:\n  advanced:\n    clients:\n      maxPacketSizeBytes: 0\n      maxReceiveMaximum: 70000\n",
			`t.yaml:8: Broker/default: spec.advanced.clients.maxReceiveMaximum: 70000 is out of range 1..65535`},
		{"state store per principal within the total", hdrB + "metadata: {name: default}\nspec:\n  appliance:\n    stateStoreMaxKeys: 100\n    stateStoreMaxKeysPerPrincipal: 200\n",
			`t.yaml:7: Broker/default: spec.appliance.stateStoreMaxKeysPerPrincipal: 200 is out of range 1..100`},
		{"state store per principal bytes", hdrB + "metadata: {name: default}\nspec:\n  appliance:\n    stateStoreMaxBytesPerPrincipal: 100\n",
			`spec.appliance.stateStoreMaxBytesPerPrincipal: 100 is out of range 1024..67108864`},
		{"broker queue strategy", hdrB + "metadata: {name: default}\nspec:\n  advanced:\n    clients:\n      subscriberQueueLimit: {length: 10, strategy: DropNewest}\n",
			`spec.advanced.clients.subscriberQueueLimit.strategy: "DropNewest" is not valid (want one of None, DropOldest)`},
		{"memory profile", hdrB + "metadata: {name: default}\nspec:\n  memoryProfile: tiny\n",
			`t.yaml:5: Broker/default: spec.memoryProfile: "tiny" is not valid; did you mean "Tiny"?`},
		{"memory budget", hdrB + "metadata: {name: default}\nspec:\n  appliance:\n    memoryBudget: 256MB\n",
			`t.yaml:6: Broker/default: spec.appliance.memoryBudget: "256MB" is not a quantity of bytes (want e.g. 256Mi or 1Gi)`},
		{"memory budget minimum", hdrB + "metadata: {name: default}\nspec:\n  appliance:\n    memoryBudget: 1Mi\n",
			`spec.appliance.memoryBudget: 1Mi is below the minimum of 16Mi`},
		{"budget limits", hdrB + "metadata: {name: default}\nspec:\n  appliance:\n    maxConnectSize: 10\n",
			`spec.appliance.maxConnectSize: 10 is out of range 64..268435456`},
		{"one broker", hdrB + "metadata: {name: one}\n---\n" + hdrB + "metadata: {name: two}\n",
			`t.yaml:7: Broker/two: metadata.name: only one Broker resource is allowed`},
		{"issuer exactly one type", hdrCM + "kind: Issuer\nmetadata: {name: i}\nspec: {selfSigned: {}, ca: {secretName: x}}\n",
			`t.yaml:4: Issuer/i: spec: want exactly one of selfSigned, ca and acme`},
		{"acme server", hdrCM + "kind: ClusterIssuer\nmetadata: {name: le}\nspec:\n  acme:\n    server: http://acme\n    privateKeySecretRef: {name: acct}\n",
			`t.yaml:6: ClusterIssuer/le: spec.acme.server: "http://acme" is not an https URL`},
		{"acme dns01", hdrCM + "kind: ClusterIssuer\nmetadata: {name: le}\nspec:\n  acme:\n    server: https://acme/dir\n    privateKeySecretRef: {name: acct}\n    solvers:\n    - dns01: {cloudflare: {}}\n",
			`t.yaml:9: ClusterIssuer/le: spec.acme.solvers[0].dns01: dns01 is not supported on the appliance`},
		{"acme EAB secret", hdrCM + "kind: ClusterIssuer\nmetadata: {name: le}\nspec:\n  acme:\n    server: https://acme/dir\n    privateKeySecretRef: {name: acct}\n    externalAccountBinding: {keyID: k, keySecretRef: {name: eab, key: secret}}\n",
			`spec.acme.externalAccountBinding.keySecretRef.name: Secret/eab not found`},
		{"certificate key size", hdrCM + "kind: Certificate\nmetadata: {name: c}\nspec:\n  commonName: x\n  secretName: c\n  issuerRef: {name: iss}\n  privateKey: {algorithm: ECDSA, size: 2048}\n",
			`t.yaml:8: Certificate/c: spec.privateKey.size: 2048 is not a ECDSA key size (want one of [256 384 521])`},
		{"certificate issuer", hdrCM + "kind: Certificate\nmetadata: {name: c}\nspec:\n  commonName: x\n  secretName: c\n  issuerRef: {name: nope}\n",
			`t.yaml:7: Certificate/c: spec.issuerRef.name: Issuer/nope not found`},
		{"certificate lifetime", hdrCM + "kind: Certificate\nmetadata: {name: c}\nspec:\n  commonName: x\n  secretName: c\n  issuerRef: {name: iss}\n  duration: 24h\n  renewBefore: 48h\n",
			`t.yaml:9: Certificate/c: spec.renewBefore: 48h must be shorter than duration 24h`},
		{"ca issuer secret not a CA", hdrCM + "kind: Certificate\nmetadata: {name: c}\nspec:\n  commonName: x\n  secretName: leaf\n  issuerRef: {name: iss}\n---\n" + hdrCM + "kind: Issuer\nmetadata: {name: ca}\nspec:\n  ca: {secretName: leaf}\n",
			`t.yaml:13: Issuer/ca: spec.ca.secretName: Certificate/c writes leaf but is not a CA`},
		{"TLS secret needs key", "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: x\n",
			`t.yaml:6: Secret/s: stringData[tls.crt]: no PEM CERTIFICATE`},
		{"TLS secret needs tls.key", "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: kubernetes.io/tls\nstringData: {}\n",
			`t.yaml:5: Secret/s: stringData: a kubernetes.io/tls Secret needs tls.key`},
		{"TLS secret bad key PEM", "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: kubernetes.io/tls\ndata:\n  tls.key: " + base64.StdEncoding.EncodeToString([]byte(crt)) + "\n",
			`t.yaml:6: Secret/s: data[tls.key]: PEM block is CERTIFICATE, want PRIVATE KEY`},
		{"secret type", "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: kubernetes.io/basic-auth\n",
			`t.yaml:4: Secret/s: type: "kubernetes.io/basic-auth" is not valid (want one of Opaque, kubernetes.io/tls)`},
		{"configmap key twice", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: m}\ndata: {a: x}\nbinaryData: {a: eA==}\n",
			`t.yaml:5: ConfigMap/m: binaryData[a]: key "a" is also in data`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := Parse("t.yaml", []byte(tc.yaml+common))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			var s Set
			s.Add(rs...)
			err = s.Validate()
			if err == nil {
				t.Fatalf("Validate: no error, want %s", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate:\n%v\nwant substring\n%s", err, tc.want)
			}
		})
	}
}

func TestCommonIsValid(t *testing.T) {
	rs, err := Parse("t.yaml", []byte(common[5:]+tlsSecret(t)))
	if err != nil {
		t.Fatal(err)
	}
	var s Set
	s.Add(rs...)
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestParseStrict(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown field", hdrL + "metadata: {name: one}\nspec:\n  ports:\n  - port: 1\n    tsl: {mode: Manual}\n",
			`t.yaml:7: BrokerListener/one: spec.ports[0].tsl: unknown field`},
		{"unknown metadata field", hdrL + "metadata:\n  name: one\n  colour: red\n",
			`t.yaml:5: BrokerListener/one: metadata.colour: unknown field`},
		{"unknown top-level field", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: m}\nspec: {}\n",
			`t.yaml:4: ConfigMap/m: spec: unknown field`},
		{"wrong type", hdrL + "metadata: {name: one}\nspec:\n  ports:\n  - port: [1]\n",
			`t.yaml:6: BrokerListener/one: spec.ports[0].port: want an integer`},
		{"unknown kind", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n",
			`t.yaml:2: kind: unknown kind "Pod"`},
		{"no kind", "apiVersion: v1\nmetadata: {name: p}\n",
			`t.yaml:2: kind: required`},
		{"unknown apiVersion", "apiVersion: cert-manager.io/v1alpha2\nkind: Issuer\nmetadata: {name: p}\n",
			`t.yaml:1: Issuer/p: apiVersion: "cert-manager.io/v1alpha2" does not serve Issuer (want cert-manager.io/v1)`},
		{"no name", "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n",
			`t.yaml:3: ConfigMap: metadata.name: required`},
		{"not a mapping", "- a\n- b\n",
			`t.yaml:1: a document must be a mapping`},
		{"syntax", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: m\n",
			`t.yaml:`},
		{"duplicate key", "apiVersion: v1\nkind: ConfigMap\nkind: Secret\nmetadata: {name: m}\n",
			`t.yaml:3: mapping key "kind" already defined at line 2`},
		{"second document line numbers", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: m}\n---\n" + hdrL + "metadata: {name: one}\nspec:\n  porrts: []\n",
			`t.yaml:9: BrokerListener/one: spec.porrts: unknown field`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse:\n%v\nwant substring\n%s", err, tc.want)
			}
		})
	}
}
