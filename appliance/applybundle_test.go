package appliance_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"edgebroker/appliance"
	"edgebroker/provisioning/bundle"
)

// provisioningState is what a bundle changes on the data directory: the
// store's state file and its configuration folders (history.json records
// every attempt, on the device too).
func provisioningState(t *testing.T, data string) string {
	t.Helper()
	dir := filepath.Join(data, appliance.ProvisioningDir)
	st, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		t.Fatalf("state.json: %v", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return string(st) + "\n" + strings.Join(names, " ")
}

// TestApplyBundleFile: a signed bundle applied to a data directory from
// a file (no stick, no running broker) passes the device's checks, is
// stored, and the broker started on that directory runs its
// configuration: AIO's default listener with the quick-start CA staged,
// whose DATA/ca.crt (also written next to the bundle) verifies the
// server. A replayed and an untrusted bundle are refused with the
// device's reasons, and nothing stored changes.
func TestApplyBundleFile(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	_, other, _ := ed25519.GenerateKey(nil)
	data := filepath.Join(t.TempDir(), "data")
	cfg := func() appliance.Config {
		return appliance.Config{DataDir: data, Trust: []ed25519.PublicKey{pub}, Logger: testLogger(t)}
	}
	files := map[string]string{"listener.yaml": aioDefaultListener, "secrets/quickstart-passwords/passwords": "alice:" + string(pwHash) + "\n"}
	stick := t.TempDir()
	file := filepath.Join(stick, bundle.FileName)
	if err := os.WriteFile(file, packBundle(t, key, 1, files, nil), 0o644); err != nil {
		t.Fatal(err)
	}

	rep, err := appliance.ApplyBundleFile(context.Background(), cfg(), file)
	if err != nil || !rep.Result.Applied {
		t.Fatalf("ApplyBundleFile: %v; result %+v", err, rep.Result)
	}
	text, err := os.ReadFile(filepath.Join(stick, appliance.ReportFile))
	if err != nil || !bytes.Equal(text, []byte(rep.String())) {
		t.Fatalf("%s next to the bundle: %v\n%s", appliance.ReportFile, err, text)
	}
	for _, want := range []string{"APPLIED: bundle serial 1", "running: bundle serial 1", "default/18883: not served: " + appliance.StagedMessage} {
		if !strings.Contains(string(text), want) {
			t.Errorf("report does not say %q:\n%s", want, text)
		}
	}
	if _, err := os.Stat(filepath.Join(stick, appliance.ReportJSONFile)); err != nil {
		t.Errorf("%s: %v", appliance.ReportJSONFile, err)
	}
	caPEM, err := os.ReadFile(filepath.Join(data, appliance.CAFile))
	if err != nil {
		t.Fatalf("DATA/ca.crt not staged: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(stick, appliance.ReportCAFile)); err != nil || !bytes.Equal(b, caPEM) {
		t.Errorf("%s next to the bundle is not DATA/ca.crt: %v", appliance.ReportCAFile, err)
	}
	t.Logf("report, as the user sees it:\n%s", text)
	stored := provisioningState(t, data)

	// A key that does not match its server certificate passes validation
	// but cannot be built: the device rolls back to serial 1.
	root, leaf := seedTLS()
	badKey := map[string]string{"listener.yaml": aioDefaultListener, "secrets/quickstart-passwords/passwords": files["secrets/quickstart-passwords/passwords"],
		"lan.yaml": "apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: BrokerListener\nmetadata: {name: lan}\nspec:\n  serviceType: LoadBalancer\n  ports:\n  - port: 8883\n    tls: {mode: Manual, manual: {secretRef: bad}}\n",
		"bad.yaml": tlsSecret("bad", leaf.CertPEM(), root.KeyPEM())}
	for _, tt := range []struct {
		name     string
		bundle   []byte
		want     error  // in the result; nil: not a bundle error
		reason   string // in the report
		rollback bool
	}{
		{"replayed", packBundle(t, key, 1, files, nil), bundle.ErrReplay, bundle.ErrReplay.Error(), false},
		{"untrusted", packBundle(t, other, 2, files, nil), bundle.ErrUntrusted, bundle.ErrUntrusted.Error(), false},
		{"cannot come up", packBundle(t, key, 2, badKey, nil), nil, "Secret/bad", true},
	} {
		if err := os.WriteFile(file, tt.bundle, 0o644); err != nil {
			t.Fatal(err)
		}
		rep, err := appliance.ApplyBundleFile(context.Background(), cfg(), file)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if res := rep.Result; res.Applied || res.RolledBack != tt.rollback || res.Err == nil || (tt.want != nil && !errors.Is(res.Err, tt.want)) {
			t.Errorf("%s: result %+v, want rejected with %v, rolled back %v", tt.name, res, tt.want, tt.rollback)
		}
		text, _ := os.ReadFile(filepath.Join(stick, appliance.ReportFile))
		head := "REJECTED: nothing was changed"
		if tt.rollback {
			head = "ROLLED BACK: bundle serial 2"
		}
		if !strings.Contains(string(text), head) || !strings.Contains(string(text), tt.reason) || !strings.Contains(string(text), "running: bundle serial 1") {
			t.Errorf("%s: report does not give the device's outcome %q and reason %q:\n%s", tt.name, head, tt.reason, text)
		}
		if got := provisioningState(t, data); got != stored {
			t.Errorf("%s: the stored configuration changed:\n%s\nwas\n%s", tt.name, got, stored)
		}
	}

	// The broker on the data directory runs the bundle's configuration.
	a, err := runAt(t, "", data, map[int]int{18883: 0})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	addr := served(t, a, "default", 18883)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	c := pahoClient(t, mqtt.NewClientOptions().AddBroker("tls://localhost:"+portOf(addr)).SetClientID("alice").
		SetUsername("alice").SetPassword("pw").SetTLSConfig(&tls.Config{RootCAs: pool}))
	c.Disconnect(0)
	if st := a.Status().Provisioning; st.Serial != 1 {
		t.Errorf("provisioning serial %d, want 1", st.Serial)
	}
}

// TestApplyBundleFileLocked: a data directory a broker runs on is
// refused (the running broker would not see the bundle) and the bundle
// is not looked at.
func TestApplyBundleFileLocked(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	data := t.TempDir()
	_, _, stop := launch(t, appliance.Config{DataDir: data, Loopback: "127.0.0.1:0", PortMap: map[int]int{18883: 0}})
	defer stop()
	file := filepath.Join(t.TempDir(), bundle.FileName)
	os.WriteFile(file, packBundle(t, key, 1, map[string]string{"l.yaml": siteListener(1883)}, nil), 0o644)
	rep, err := appliance.ApplyBundleFile(context.Background(), appliance.Config{DataDir: data, Trust: []ed25519.PublicKey{pub}, Logger: testLogger(t)}, file)
	if err == nil || !rep.Result.Time.IsZero() {
		t.Fatalf("ApplyBundleFile on a running broker's data directory: %v, result %+v; want refused", err, rep.Result)
	}
	t.Logf("refused: %v", err)
}
