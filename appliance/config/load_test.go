package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

func loadValid(t *testing.T, paths ...string) *Set {
	t.Helper()
	s, err := Load(os.DirFS("testdata"), paths...)
	if err != nil {
		t.Fatalf("Load(%v):\n%v", paths, err)
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("Validate(%v):\n%v", paths, err)
	}
	return s
}

func refs(s *Set) []string {
	var out []string
	for _, r := range s.All() {
		out = append(out, r.Ref())
	}
	return out
}

func TestSeedExamples(t *testing.T) {
	t.Run("000 CA bootstrap and automatic TLS", func(t *testing.T) {
		s := loadValid(t, "seed000-ca")
		c := s.Certificate("selfsigned-ca-cert")
		if c == nil || !c.Spec.IsCA || c.Spec.PrivateKey != (CertificateKey{"ECDSA", 256, RotateAlways}) {
			t.Errorf("Certificate: %+v", c)
		}
		if got := s.Pending(); len(got) != 0 {
			t.Errorf("Pending() = %v, want none: Issuer/my-issuer's Secret test-ca is written by the Certificate", got)
		}
		spec := s.Listener("my-new-tls-listener").Spec.Ports[0].TLS.CertManagerCertificateSpec
		if spec.Duration != "2160h" || spec.IssuerRef.Group != CertManagerGroup || spec.PrivateKey.Algorithm != "Ec256" {
			t.Errorf("defaults not applied: %+v", spec)
		}
	})
	t.Run("000 loadbalancer-listener", func(t *testing.T) {
		s := loadValid(t, "seed000-loadbalancer")
		ports := s.Listener("loadbalancer-listener").Spec.Ports
		if len(ports) != 2 || ports[0].TLS != nil || ports[1].TLS == nil {
			t.Errorf("ports: %+v", ports)
		}
		// Beside the default configuration, its 18883 collides (SPEC §2's example).
		d := Default()
		d.Add(s.Listener("loadbalancer-listener"))
		err := d.Validate()
		want := "seed000-loadbalancer/listener.yaml:15: BrokerListener/loadbalancer-listener: spec.ports[1].port: 18883 already used by BrokerListener/default"
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v\nwant %s", err, want)
		}
	})
	t.Run("000 manual TLS waits for its secret", func(t *testing.T) {
		s := loadValid(t, "seed000-manual")
		got := s.Pending()
		want := "BrokerListener/manual-tls-listener: port 8885: Server certificate server-cert-secret not found. Awaiting creation of secret."
		if len(got) != 1 || got[0].String() != want {
			t.Errorf("Pending() = %v, want [%s]", got, want)
		}
		s = loadValid(t, "seed000-manual", "seed000-manual-secret.yaml")
		if got := s.Pending(); len(got) != 0 {
			t.Errorf("with the secret: Pending() = %v", got)
		}
	})
	t.Run("001 authorization rules", func(t *testing.T) {
		s := loadValid(t, "seed001")
		if got, want := refs(s), []string{"BrokerAuthorization/building-clients", "BrokerAuthorization/sat-group", "BrokerAuthorization/state-store"}; !slices.Equal(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
		ss := s.Authorization("state-store").Spec.AuthorizationPolicies.Rules[0].StateStoreResources
		if ss[1].KeyType != KeyTypeBinary || ss[1].Keys[0] != "xxxxxxxxxxxxxxxxxxxx" {
			t.Errorf("state store resources: %+v", ss)
		}
		if c := s.Authorization("sat-group").Spec.AuthorizationPolicies.Cache; c != CacheEnabled {
			t.Errorf("cache default: %q", c)
		}
	})
}

func TestRealAIOManifests(t *testing.T) {
	s := loadValid(t, "aio")
	l := s.Listener("default")
	if l.Metadata.Namespace != "azure-iot-operations" || l.Spec.ServiceName != "aio-broker" {
		t.Errorf("listener: %+v", l)
	}
	b := s.Broker()
	if b == nil || *b.Spec.Advanced.Clients.MaxReceiveMaximum != 64 || *b.Spec.Appliance.MaxConnections != 500 {
		t.Errorf("broker: %+v", b)
	}
	if b.Metadata.Labels["app.kubernetes.io/managed-by"] != "aio" {
		t.Errorf("labels: %v", b.Metadata.Labels)
	}
	got := s.Pending()
	if len(got) != 1 || got[0].Secret != "azure-iot-operations-aio-ca-certificate" {
		t.Errorf("Pending() = %v, want the ClusterIssuer's CA secret", got)
	}
	if f := s.Flows(); len(f) != 1 || f[0].Name != "aio-to-custom" || f[0].Remote.Hosts[0] != "broker.example.com:8883" {
		t.Errorf("Flows() = %+v, want aio-to-custom up to broker.example.com:8883", f)
	}
}

func TestLoadFolder(t *testing.T) {
	s := loadValid(t, "multidoc")
	want := []string{"BrokerListener/lan", "BrokerListener/local", "BrokerAuthorization/readers", "Issuer/selfsigned"}
	if got := refs(s); !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if file, line := s.Listener("local").Position(); file != "multidoc/01-listeners.yaml" || line != 15 {
		t.Errorf("Position() = %s:%d, want multidoc/01-listeners.yaml:15", file, line)
	}
	if p := s.Listener("local").Spec.Ports[0]; p.Protocol != ProtocolWebSockets {
		t.Errorf("port: %+v", p)
	}
}

func TestLoadPath(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.yaml"), []byte("apiVersion: v1\nkind: Secret\nmetadata: {name: x}\nspec: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadPath(dir)
	want := filepath.Join(dir, "a.yaml") + ":4: Secret/x: spec: unknown field"
	if err == nil || err.Error() != want {
		t.Errorf("LoadPath(dir): got %v, want %s", err, want)
	}
	_, err = LoadPath(filepath.Join(dir, "a.yaml"))
	if want := "a.yaml:4: Secret/x: spec: unknown field"; err == nil || err.Error() != want {
		t.Errorf("LoadPath(file): got %v, want %s", err, want)
	}
	if _, err := LoadPath(filepath.Join(dir, "missing")); err == nil {
		t.Error("LoadPath(missing): no error")
	}
	if _, err := Load(fstest.MapFS{"x.txt": {}}); err == nil || !strings.Contains(err.Error(), "no configuration documents") {
		t.Errorf("empty folder: got %v", err)
	}
}

func TestParseErrorsAreCollected(t *testing.T) {
	src := "kind: Foo\n---\napiVersion: v1\nkind: BrokerListener\nmetadata: {name: x}\n---\n" +
		"apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {k: '!!!'}\n---\n: bad: [\n"
	rs, err := Parse("p.yaml", []byte(src))
	if len(rs) != 0 {
		t.Errorf("got resources %v", rs)
	}
	var es Errors
	if !errors.As(err, &es) || len(es) != 4 {
		t.Fatalf("got %d errors: %v", len(es), err)
	}
	for i, want := range []string{
		`p.yaml:1: kind: unknown kind "Foo"`,
		`p.yaml:3: BrokerListener/x: apiVersion: "v1" does not serve BrokerListener (want mqttbroker.iotoperations.azure.com/v1 or mqttbroker.iotoperations.azure.com/v1beta1)`,
		`p.yaml:10: Secret/s: data[k]: not base64`,
		`p.yaml:12:`,
	} {
		if !strings.HasPrefix(es[i].Error(), want) {
			t.Errorf("error %d: got %q, want prefix %q", i, es[i], want)
		}
	}
	var e *Error
	if !errors.As(err, &e) || e.File != "p.yaml" {
		t.Errorf("errors.As *Error: %+v", e)
	}
}
