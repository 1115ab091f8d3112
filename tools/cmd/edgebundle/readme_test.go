package main

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"edgebroker/broker/testenv"
)

// TestReadmeBundleWalkthrough runs README's bundle walkthrough (the sh
// block of "Provisioning from a USB stick") on the files of README's
// configuration Example: every mkdir and cp into the configuration folder,
// then every edgebundle command (lint, pack, verify, inspect), each of
// which must succeed. The host files the walkthrough copies are made
// here: the Example's config/broker.yaml as README shows it, a server
// certificate and key, and a mosquitto_passwd file.
func TestReadmeBundleWalkthrough(t *testing.T) {
	brokerYAML := testenv.ReadmeBlock(t, "and `config/broker.yaml`:", "```yaml")
	walk := testenv.ReadmeBlock(t, "## Provisioning from a USB stick", "```sh")

	host := t.TempDir()
	crt, key := tlsPair(t)
	writeTree(t, host, map[string]string{
		"config/broker.yaml": brokerYAML,
		"server.crt":         string(crt),
		"server.key":         string(key),
		"passwords":          "sensor-17:" + pbkdf2Like(t) + "\ndashboard:" + pbkdf2Like(t) + "\n",
	})
	t.Chdir(host)
	ran := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(walk))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		switch {
		case len(f) == 0, f[0] == "go":
		case f[0] == "mkdir" && f[1] == "-p":
			for _, d := range f[2:] {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
		case f[0] == "cp":
			dst := f[len(f)-1]
			if !strings.HasPrefix(dst, "cfg/") {
				continue // to the stick
			}
			for _, src := range f[1 : len(f)-1] {
				b, err := os.ReadFile(src)
				if err != nil {
					t.Fatalf("README walkthrough %q: %v", line, err)
				}
				to := dst
				if strings.HasSuffix(dst, "/") {
					to = filepath.Join(dst, filepath.Base(src))
				}
				if err := os.WriteFile(to, b, 0o600); err != nil {
					t.Fatalf("README walkthrough %q: %v", line, err)
				}
			}
		case f[0] == "bin/edgebundle":
			code, out, errOut := edgebundle(t, f[1:]...)
			if code != 0 {
				t.Fatalf("README walkthrough %q: exit %d\n%s%s", strings.TrimSpace(line), code, out, errOut)
			}
			ran[f[1]] = true
		default:
			t.Fatalf("README walkthrough: a line this test does not know: %q", line)
		}
	}
	for _, c := range []string{"keygen", "lint", "pack", "verify", "inspect"} {
		if !ran[c] {
			t.Errorf("README walkthrough: no edgebundle %s", c)
		}
	}
}

// fenced returns the body of the first code block opening with fence

// pbkdf2Like returns a well-formed mosquitto_passwd $7$ hash (random
// salt and digest: lint checks the form, not a password).
func pbkdf2Like(t *testing.T) string {
	salt, sum := make([]byte, 12), make([]byte, 64)
	rand.Read(salt)
	rand.Read(sum)
	return "$7$101$" + base64.StdEncoding.EncodeToString(salt) + "$" + base64.StdEncoding.EncodeToString(sum)
}
