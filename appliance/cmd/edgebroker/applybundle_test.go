package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"edgebroker/provisioning/bundle"
)

// TestApplyBundleFlag: -apply-bundle applies a signed bundle file to
// -data, prints the stick's report and exits 0; the same bundle again is
// a replay: the device's reason and exit 1. Without -trust it is a usage
// error (2).
func TestApplyBundleFlag(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	dir := t.TempDir()
	trust := filepath.Join(dir, "site.pub")
	if err := os.WriteFile(trust, bundle.MarshalPublicKey(pub), 0o644); err != nil {
		t.Fatal(err)
	}
	listener := "apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: BrokerListener\nmetadata: {name: site}\nspec:\n  ports:\n  - port: 1883\n"
	var b bytes.Buffer
	if _, err := bundle.Pack(&b, fstest.MapFS{"l.yaml": {Data: []byte(listener)}},
		bundle.PackOptions{Key: key, Serial: 7, Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, bundle.FileName)
	if err := os.WriteFile(file, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	run := func(args ...string) (int, string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, testBinary(t), args...).CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), string(out)
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}
	code, out := run("-data", data, "-trust", trust, "-apply-bundle", file)
	if code != 0 || !strings.Contains(out, "APPLIED: bundle serial 7") || !strings.Contains(out, "site/1883: not served: staged") {
		t.Fatalf("exit %d, want 0 and the report:\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "edgebroker-report.txt")); err != nil {
		t.Errorf("no report next to the bundle: %v", err)
	}
	code, out = run("-data", data, "-trust", trust, "-apply-bundle", file)
	if code != 1 || !strings.Contains(out, "REJECTED: nothing was changed") || !strings.Contains(out, "replayed serial: serial 7 is not above 7") {
		t.Errorf("replay: exit %d, want 1 and the device's reason:\n%s", code, out)
	}
	code, out = run("-data", data, "-apply-bundle", file)
	if code != 2 || !strings.Contains(out, "-apply-bundle needs -trust") {
		t.Errorf("without -trust: exit %d, want 2:\n%s", code, out)
	}
}
