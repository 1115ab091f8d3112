package config

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// testTLS returns a self-signed certificate and its key, as PEM.
func testTLS(t *testing.T) (crt, key []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gateway"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

const manualListener = hdrL + `metadata: {name: manual-tls}
spec:
  ports:
  - port: 8885
    tls:
      mode: Manual
      manual: {secretRef: server-cert}
`

func TestSecretsDir(t *testing.T) {
	crt, key := testTLS(t)
	binary := []byte{0, 1, 2, 0xff, '\n'}
	fsys := fstest.MapFS{
		"listener.yaml":                 {Data: []byte(manualListener)},
		"secrets/server-cert/tls.crt":   {Data: crt},
		"secrets/server-cert/tls.key":   {Data: key},
		"secrets/server-cert/ca.crt":    {Data: crt},
		"secrets/server-cert/.DS_Store": {Data: []byte("junk")},
		"secrets/pw/passwords.txt":      {Data: []byte("alice:$2a$10$hash\n")},
		"secrets/pw/blob":               {Data: binary},
		"secrets/pw/config.yaml":        {Data: []byte("not: [a document")}, // a key, not a document
		"secrets/half/tls.crt":          {Data: crt},
		"secrets/..data/tls.crt":        {Data: []byte("Kubernetes' atomic writer folder")},
	}
	s, err := Load(fsys)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if got := s.Pending(); len(got) != 0 {
		t.Errorf("Pending() = %v; the listener's Secret comes from secrets/server-cert", got)
	}
	for _, tt := range []struct {
		name, typ string
		key       string
		want      []byte
	}{
		{"server-cert", SecretTypeTLS, "tls.key", key},
		{"server-cert", SecretTypeTLS, "ca.crt", crt},
		{"pw", SecretTypeOpaque, "passwords.txt", []byte("alice:$2a$10$hash\n")},
		{"pw", SecretTypeOpaque, "blob", binary},
		{"pw", SecretTypeOpaque, "config.yaml", []byte("not: [a document")},
		{"half", SecretTypeOpaque, "tls.crt", crt},
	} {
		sec := s.Secret(tt.name)
		if sec == nil {
			t.Errorf("Secret %s missing; got %v", tt.name, refs(s))
			continue
		}
		if sec.Type != tt.typ {
			t.Errorf("Secret %s: type %q, want %q", tt.name, sec.Type, tt.typ)
		}
		if got, ok := sec.Bytes(tt.key); !ok || !bytes.Equal(got, tt.want) {
			t.Errorf("Secret %s: %s = %q, %v; want %q", tt.name, tt.key, got, ok, tt.want)
		}
	}
	if sec := s.Secret("server-cert"); len(sec.Data) != 3 {
		t.Errorf("server-cert keys: %v, want hidden files skipped", sec.Data)
	}
	if got := len(s.Secrets); got != 3 {
		t.Errorf("%d Secrets, want 3 (..data skipped): %v", got, refs(s))
	}
	// Marshal and Parse round-trip a folder Secret as an inline one.
	out, err := Marshal(s.Secret("pw"))
	if err != nil {
		t.Fatal(err)
	}
	rs, err := Parse("pw.yaml", out)
	if err != nil || len(rs) != 1 {
		t.Fatalf("Parse(Marshal): %v", err)
	}
	if got, _ := rs[0].(*Secret).Bytes("blob"); !bytes.Equal(got, binary) {
		t.Errorf("round trip: blob = %q", got)
	}
}

func TestSecretsDirErrors(t *testing.T) {
	crt, _ := testTLS(t)
	dupDoc := "apiVersion: v1\nkind: Secret\nmetadata:\n  name: dup\nstringData: {a: b}\n"
	for _, tt := range []struct {
		name     string
		fsys     fstest.MapFS
		load     string // wanted Load error
		validate string // wanted Validate error
	}{
		{"same name as a document", fstest.MapFS{
			"secrets.yaml":      {Data: []byte(dupDoc)},
			"secrets/dup/a.txt": {Data: []byte("x")},
		}, "secrets/dup: Secret/dup: defined twice: by the folder secrets/dup and by the document at secrets.yaml:4", ""},
		{"file directly in secrets", fstest.MapFS{
			"l.yaml":          {Data: []byte(manualListener)},
			"secrets/tls.crt": {Data: crt},
		}, "secrets/tls.crt: a file directly in secrets/ is not read", ""},
		{"nested folder", fstest.MapFS{
			"secrets/x/sub/k": {Data: []byte("v")},
		}, "secrets/x/sub: Secret/x: a Secret folder holds only files", ""},
		{"secrets is a file", fstest.MapFS{
			"l.yaml":  {Data: []byte(manualListener)},
			"secrets": {Data: []byte("x")},
		}, "secrets: must be a folder of Secret folders", ""},
		{"oversize file", fstest.MapFS{
			"secrets/x/big": {Data: make([]byte, MaxFileSize+1)},
		}, "secrets/x/big: Secret/x: larger than 1048576 bytes", ""},
		{"invalid key", fstest.MapFS{
			"secrets/x/bad key": {Data: []byte("v")},
		}, "", `secrets/x: Secret/x: data[bad key]: "bad key" is not a valid key`},
		{"invalid name", fstest.MapFS{
			"secrets/Server_Cert/k": {Data: []byte("v")},
		}, "", `secrets/Server_Cert: Secret/Server_Cert: metadata.name: "Server_Cert" is not a valid name`},
		{"invalid certificate", fstest.MapFS{
			"secrets/srv/tls.crt": {Data: []byte("not a certificate")},
			"secrets/srv/tls.key": {Data: []byte("not a key")},
		}, "", "secrets/srv: Secret/srv: data[tls.crt]: no PEM CERTIFICATE"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Load(tt.fsys)
			if tt.load != "" {
				if err == nil || !strings.Contains(err.Error(), tt.load) {
					t.Fatalf("Load: got %v\nwant %s", err, tt.load)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			err = s.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.validate) {
				t.Errorf("Validate: got %v\nwant %s", err, tt.validate)
			}
		})
	}
}

// TestSecretsDirLoadPath: a folder on disk, as the appliance loads an
// extracted bundle. (Validate names files relative to the folder, as it
// does for documents.)
func TestSecretsDirLoadPath(t *testing.T) {
	dir := t.TempDir()
	for name, data := range map[string]string{
		"listener.yaml":               manualListener,
		"secrets/server-cert/tls.crt": "not a certificate",
		"secrets/server-cert/tls.key": "not a key",
	} {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s, err := LoadPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Validate()
	want := "secrets/server-cert: Secret/server-cert: data[tls.key]: not a PEM private key"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Validate: got %v\nwant %s", err, want)
	}
}
