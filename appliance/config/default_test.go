package config

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestDefaultValidates(t *testing.T) {
	s := Default()
	if err := s.Validate(); err != nil {
		t.Fatalf("Default().Validate():\n%v", err)
	}
	if got := s.Pending(); len(got) != 0 {
		t.Errorf("Default().Pending() = %v, want none", got)
	}
	l := s.Listener(DefaultListener)
	if l == nil || len(l.Spec.Ports) != 1 || l.Spec.Ports[0].Port != 18883 {
		t.Fatalf("default listener: %+v", l)
	}
	p := l.Spec.Ports[0]
	if p.TLS == nil || p.TLS.Mode != TLSAutomatic || p.AuthenticationRef == "" || p.AuthorizationRef != "" {
		t.Errorf("port 18883 = %+v, want TLS Automatic, authentication, no authorization", p)
	}
	if got, want := p.TLS.CertManagerCertificateSpec.IssuerRef.Name, QuickstartCAIssuer; got != want {
		t.Errorf("issuer: got %q, want %q", got, want)
	}
	var loop *ListenerPort
	for _, l := range s.Listeners {
		for i, p := range l.Spec.Ports {
			if p.Port == DefaultLoopbackPort {
				if l.Spec.ServiceType != ServiceClusterIP {
					t.Errorf("port 1883 on a %s listener, want ClusterIp (loopback)", l.Spec.ServiceType)
				}
				loop = &l.Spec.Ports[i]
			}
		}
	}
	if loop == nil || loop.TLS != nil || loop.AuthenticationRef != "" {
		t.Errorf("loopback port = %+v, want plain and anonymous", loop)
	}
	if c := s.caWriter(QuickstartCASecret); c == nil || !c.Spec.IsCA {
		t.Errorf("no CA Certificate writes %s", QuickstartCASecret)
	}
	// Fresh copies: changing one does not change the next.
	s.Listeners[0].Metadata.Name = "changed"
	if Default().Listener(DefaultListener) == nil {
		t.Error("Default() shares state between calls")
	}
}

func TestDefaultErrorsNameTheEmbeddedFile(t *testing.T) {
	s := Default()
	s.Listener(DefaultListener).Spec.Ports[0].Port = 70000
	err := s.Validate()
	if err == nil || !strings.Contains(err.Error(), "default.yaml:") || !strings.Contains(err.Error(), "spec.ports[0].port: 70000") {
		t.Errorf("got %v", err)
	}
}

// TestStateStoreQuotaDefaults: per-principal quotas default to a share of
// the totals, and each can be set.
func TestStateStoreQuotaDefaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec string
		want StateStoreQuota
	}{
		{"no Broker", "", StateStoreQuota{DefaultStateStoreMaxKeys, DefaultStateStoreMaxBytes,
			DefaultStateStoreMaxKeys / DefaultStateStorePrincipalShare, DefaultStateStoreMaxBytes / DefaultStateStorePrincipalShare}},
		{"totals set", "    stateStoreMaxKeys: 100\n    stateStoreMaxBytes: 8192\n", StateStoreQuota{100, 8192, 25, 2048}},
		{"small totals", "    stateStoreMaxKeys: 2\n    stateStoreMaxBytes: 1024\n", StateStoreQuota{2, 1024, 1, 1024}},
		{"per principal set", "    stateStoreMaxKeysPerPrincipal: 7\n    stateStoreMaxBytesPerPrincipal: 4096\n",
			StateStoreQuota{DefaultStateStoreMaxKeys, DefaultStateStoreMaxBytes, 7, 4096}},
	} {
		set := new(Set)
		if tc.spec != "" {
			doc := "apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: Broker\nmetadata: {name: default}\nspec:\n  appliance:\n" + tc.spec
			var err error
			if set, err = Load(fstest.MapFS{"t.yaml": {Data: []byte(doc)}}); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if err := set.Validate(); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
		}
		if got := set.StateStoreQuota(); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
