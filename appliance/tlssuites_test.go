package appliance_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"edgebroker/broker/testenv"
)

// TestTLSCipherSuitesOpenSSL connects with Debian's openssl s_client to
// two ports of a running appliance, one with an ECDSA and one with an RSA
// certificate: TLS 1.2 offers ECDHE with AES-GCM or ChaCha20-Poly1305
// only (CBC and SHA-1 suites, and RSA key exchange, fail the handshake);
// TLS 1.3 works.
func TestTLSCipherSuitesOpenSSL(t *testing.T) {
	openssl := testenv.NeedTool(t, "openssl")
	dir := writeConfig(t, map[string]string{
		"ca.yaml":        seed000CA,
		"issuer-ca.yaml": seed000Issuer,
		"ec.yaml":        automaticListener("ecdsa-port", 18884, "my-issuer", ""),
		// The RSA port has an RSA CA: a chain mixing EC and RSA is refused.
		"ca-rsa.yaml": strings.NewReplacer("selfsigned-ca-issuer", "rsa-selfsigned", "selfsigned-ca-cert", "rsa-ca-cert",
			"test-ca", "rsa-ca", "algorithm: ECDSA", "algorithm: RSA", "size: 256", "size: 2048").Replace(seed000CA),
		"issuer-rsa.yaml": strings.NewReplacer("my-issuer", "rsa-issuer", "test-ca", "rsa-ca").Replace(seed000Issuer),
		"rsa.yaml": strings.NewReplacer("Ec256", "Rsa2048", "LoadBalancer", "NodePort").
			Replace(automaticListener("rsa-port", 18885, "rsa-issuer", "")),
	})
	a, err := runAt(t, dir, t.TempDir(), map[int]int{18884: 0, 18885: 0})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	ports := map[string]string{
		"ec":  "127.0.0.1:" + portOf(served(t, a, "ecdsa-port", 18884)),
		"rsa": "127.0.0.1:" + portOf(served(t, a, "rsa-port", 18885)),
	}
	tests := []struct {
		port string
		args []string
		ok   bool
	}{
		{"ec", []string{"-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA"}, false},
		{"ec", []string{"-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-SHA384"}, false},
		{"ec", []string{"-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"}, true},
		{"ec", []string{"-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"}, true},
		{"ec", []string{"-tls1_3"}, true},
		{"rsa", []string{"-tls1_2", "-cipher", "AES256-SHA"}, false},
		{"rsa", []string{"-tls1_2", "-cipher", "AES128-GCM-SHA256"}, false}, // RSA key exchange
		{"rsa", []string{"-tls1_2", "-cipher", "ECDHE-RSA-AES128-SHA"}, false},
		{"rsa", []string{"-tls1_2", "-cipher", "ECDHE-RSA-AES256-GCM-SHA384"}, true},
		{"rsa", []string{"-tls1_3"}, true},
	}
	for _, tt := range tests {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		args := append([]string{"s_client", "-connect", ports[tt.port], "-servername", "localhost"}, tt.args...)
		cmd := exec.CommandContext(ctx, openssl, args...)
		cmd.Stdin = strings.NewReader("") // EOF: close after the handshake
		out, err := cmd.CombinedOutput()
		cancel()
		// s_client exits 0 after a completed handshake, 1 after a failed one.
		if ok := err == nil && strings.Contains(string(out), "Cipher is "); ok != tt.ok {
			t.Errorf("openssl %s (%s port): handshake succeeded = %v, want %v (%v)\n%s",
				strings.Join(tt.args, " "), tt.port, ok, tt.ok, err, out)
		}
	}
}
