package config

import (
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

// aioDefaultListener is AIO's default listener as AIO installs it: it
// refers to the built-in BrokerAuthentication default and ClusterIssuer
// azure-iot-operations-aio-certificate-issuer, and defines neither.
const aioDefaultListener = `apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: default
  namespace: azure-iot-operations
spec:
  serviceType: ClusterIp
  serviceName: aio-broker
  ports:
  - port: 18883
    authenticationRef: default
    protocol: Mqtt
    tls:
      mode: Automatic
      certManagerCertificateSpec:
        issuerRef: {name: azure-iot-operations-aio-certificate-issuer, kind: ClusterIssuer, group: cert-manager.io}
        privateKey: {algorithm: Ec256, rotationPolicy: Always}
`

func loadMap(t *testing.T, files map[string]string) (*Set, error) {
	t.Helper()
	fsys := fstest.MapFS{}
	for name, body := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(body)}
	}
	s, err := Load(fsys)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return s, s.Validate()
}

// TestBuiltinsResolve: AIO's default listener loads as written; the
// built-ins are the embedded default's quick-start CA and password
// authentication, and every port using authentication default is warned
// about what it means here.
func TestBuiltinsResolve(t *testing.T) {
	s, err := loadMap(t, map[string]string{"listener.yaml": aioDefaultListener})
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	var got []string
	for _, r := range s.BuiltIns() {
		got = append(got, r.Ref())
	}
	want := []string{"BrokerAuthentication/default", "ClusterIssuer/" + BuiltinIssuer,
		"Issuer/quickstart-selfsigned-issuer", "Certificate/" + QuickstartCASecret, "Secret/" + QuickstartPasswords}
	if !slices.Equal(got, want) {
		t.Errorf("built-ins %v, want %v", got, want)
	}
	is := s.Issuer("ClusterIssuer", BuiltinIssuer)
	if is.Spec.CA == nil || is.Spec.CA.SecretName != QuickstartCASecret {
		t.Errorf("ClusterIssuer spec %+v, want ca: quickstart-root-ca", is.Spec)
	}
	c := s.Certificate(QuickstartCASecret)
	if d := Default().Certificate(QuickstartCASecret); !c.Spec.IsCA || c.Spec.CommonName != d.Spec.CommonName || c.Spec.PrivateKey != d.Spec.PrivateKey {
		t.Errorf("quick-start CA %+v, want the embedded default's %+v", c.Spec, d.Spec)
	}
	m := s.Authentication("default").Spec.AuthenticationMethods
	if len(m) != 1 || m[0].Method != MethodUsernamePassword || m[0].UsernamePasswordSettings.PasswordFileSecretRef != QuickstartPasswords {
		t.Errorf("built-in default authentication: %+v", m)
	}
	ws := s.Warnings()
	if len(ws) != 1 {
		t.Fatalf("warnings %v, want one for the port using the built-in default", ws)
	}
	w := ws[0].Error()
	for _, part := range []string{"listener.yaml:11: BrokerListener/default: spec.ports[0].authenticationRef:", "UsernamePassword", "Secret quickstart-passwords", "nobody can log in", "service account tokens"} {
		if !strings.Contains(w, part) {
			t.Errorf("warning %q does not say %q", w, part)
		}
	}
	t.Logf("warning, as the user sees it: %s", w)
}

// TestBuiltinsOverridden: a configuration defining its own default
// authentication, password Secret or ClusterIssuer uses its own, and
// gets nothing built in for it.
func TestBuiltinsOverridden(t *testing.T) {
	own := aioDefaultListener + `---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthentication
metadata: {name: default}
spec:
  authenticationMethods:
  - method: UsernamePassword
    usernamePasswordSettings: {passwordFileSecretRef: mine}
---
apiVersion: v1
kind: Secret
metadata: {name: mine}
stringData: {passwords: ""}
---
apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata: {name: azure-iot-operations-aio-certificate-issuer}
spec: {selfSigned: {}}
`
	s, err := loadMap(t, map[string]string{"all.yaml": own})
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if b := s.BuiltIns(); len(b) != 0 {
		t.Errorf("built-ins %v, want none", b)
	}
	if a := s.Authentication("default"); a.Spec.AuthenticationMethods[0].UsernamePasswordSettings.PasswordFileSecretRef != "mine" {
		t.Errorf("default authentication is not the configuration's: %+v", a.Spec)
	}
	if is := s.Issuer("ClusterIssuer", BuiltinIssuer); is.Spec.SelfSigned == nil {
		t.Errorf("ClusterIssuer is not the configuration's: %+v", is.Spec)
	}
	if ws := s.Warnings(); len(ws) != 0 {
		t.Errorf("warnings %v, want none", ws)
	}

	// Users brought for the built-in authentication: no "nobody can log in".
	s, err = loadMap(t, map[string]string{"l.yaml": aioDefaultListener, "users.yaml": `apiVersion: v1
kind: Secret
metadata: {name: quickstart-passwords}
stringData:
  passwords: "sensor:$7$101$cGFzc3dvcmRzYWx0$Zm9vYmFyYmF6"
`})
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if sec := s.Secret(QuickstartPasswords); sec.BuiltIn() {
		t.Error("the configuration's Secret quickstart-passwords was replaced by the built-in")
	}
	if ws := s.Warnings(); len(ws) != 1 || strings.Contains(ws[0].Error(), "nobody") {
		t.Errorf("warnings %v, want one without \"nobody can log in\"", ws)
	}
}

// TestBuiltinsOnlyWhenReferred: nothing is added to a configuration that
// does not refer to the built-ins, and an Issuer (not ClusterIssuer) of
// that name is not AIO's.
func TestBuiltinsOnlyWhenReferred(t *testing.T) {
	s, err := loadMap(t, map[string]string{"l.yaml": "apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: BrokerListener\nmetadata: {name: plain}\nspec:\n  ports:\n  - port: 1883\n"})
	if err != nil || len(s.BuiltIns()) != 0 {
		t.Errorf("Validate: %v; built-ins %v, want none", err, s.BuiltIns())
	}
	_, err = loadMap(t, map[string]string{"l.yaml": strings.Replace(aioDefaultListener, "kind: ClusterIssuer", "kind: Issuer", 1)})
	if err == nil || !strings.Contains(err.Error(), "Issuer/"+BuiltinIssuer+" not found") {
		t.Errorf("Validate: %v; want Issuer/%s not found", err, BuiltinIssuer)
	}
}
