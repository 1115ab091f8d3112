package appliance

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"edgebroker/appliance/config"
)

// applyConf has a plain port and a Manual TLS port waiting for its
// Secret (so a certificate arrival re-applies it).
const applyConf = `apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: site
spec:
  serviceType: ClusterIp
  ports:
  - port: 1883
  - port: 8885
    tls:
      mode: Manual
      manual:
        secretRef: not-yet
`

// staleConf brings a certificate applyConf does not use.
const staleConf = `apiVersion: cert-manager.io/v1
kind: Issuer
metadata:
  name: self
spec:
  selfSigned: {}
---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: stale
spec:
  commonName: stale
  secretName: stale
  issuerRef:
    name: self
    kind: Issuer
`

func confDir(t *testing.T, yaml string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "conf.yaml"), []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestApplyConfigOnePath: a reload (SIGHUP), a bundle and a certificate
// arrival apply the same configuration alike: the same ports served and
// waiting, and certificates the configuration no longer uses are no
// longer renewed (refresh used to keep them). A bundle does not rewrite
// the Config Run was given (applyPath used to), yet a later reload
// re-reads the bundle.
func TestApplyConfigOnePath(t *testing.T) {
	confA := confDir(t, applyConf)
	confB := confDir(t, applyConf) // the same configuration, as a bundle brings it
	stale, err := config.LoadPath(confDir(t, staleConf))
	if err != nil {
		t.Fatal(err)
	}
	// Issued before Run: in Run, ensuring it loads it from disk, and no
	// certificate arrival (which prunes it) races with the paths below.
	data := t.TempDir()
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	if pending := newIssuers(data, log).ensureCertificates(stale); len(pending) > 0 {
		t.Fatalf("stale certificate not issued: %v", pending)
	}
	ctx, cancel := context.WithCancel(t.Context())
	started := make(chan *Appliance, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{DataDir: data, ConfigPath: confA, PortMap: map[int]int{1883: 0, 8885: 0},
			Logger: log, Started: func(a *Appliance) { started <- a }})
	}()
	var a *Appliance
	select {
	case a = <-started:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("appliance did not start")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	type outcome struct {
		listener string
		port     int
		serving  bool
	}
	result := func() []outcome {
		var out []outcome
		for _, p := range a.Status().Ports {
			out = append(out, outcome{p.Listener, p.Port, p.Serving})
		}
		return out
	}
	want := []outcome{{"site", 1883, true}, {"site", 8885, false}}
	paths := []struct {
		name     string
		apply    func() error
		wantPath string
	}{
		{"reload", a.Reload, confA},
		{"bundle", func() error { return a.applyBundle(t.Context(), confB) }, confB},
		{"certificate", func() error { a.refresh(); return nil }, confB},
		{"reload after bundle", a.Reload, confB},
	}
	for _, p := range paths {
		if pending := a.iss.ensureCertificates(stale); len(pending) > 0 {
			t.Fatalf("%s: stale certificate not loaded: %v", p.name, pending)
		}
		if _, ok := a.iss.m.Statuses()["stale"]; !ok {
			t.Fatalf("%s: the stale certificate is not managed", p.name)
		}
		if err := p.apply(); err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		if _, ok := a.iss.m.Statuses()["stale"]; ok {
			t.Errorf("%s: the certificate the configuration does not use is still renewed", p.name)
		}
		if got := result(); !equalOutcomes(got, want) {
			t.Errorf("%s: ports %v, want %v", p.name, got, want)
		}
		a.reloadMu.Lock()
		path := a.path
		a.reloadMu.Unlock()
		if path != p.wantPath {
			t.Errorf("%s: running configuration %s, want %s", p.name, path, p.wantPath)
		}
		if a.cfg.ConfigPath != confA {
			t.Errorf("%s: Config.ConfigPath rewritten to %s", p.name, a.cfg.ConfigPath)
		}
	}
	if got := a.running(); got != confB {
		t.Errorf("running: %q, want the bundle's %s", got, confB)
	}
}

func equalOutcomes[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
