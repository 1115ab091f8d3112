package benchcompare

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// transport is what a scenario's clients speak MQTT over.
type transport int

const (
	overTCP transport = iota // plain TCP
	overTLS                  // TLS 1.2 or 1.3 over TCP, an ECDSA P-256 server certificate
	overWS                   // a WebSocket (subprotocol mqtt) over plain TCP
)

// certFiles is the server certificate of a run's TLS listeners.
type certFiles struct {
	cert, key string // PEM files; the certificate is self-signed, so it is the CA file too
}

// writeCert generates an ECDSA P-256 key and a self-signed certificate for
// 127.0.0.1 and localhost, valid for a day, and writes them to dir.
func writeCert(dir string) (certFiles, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return certFiles{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "benchcompare"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return certFiles{}, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return certFiles{}, err
	}
	f := certFiles{cert: filepath.Join(dir, "server.crt"), key: filepath.Join(dir, "server.key")}
	if err := os.WriteFile(f.cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return certFiles{}, err
	}
	if err := os.WriteFile(f.key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return certFiles{}, err
	}
	return f, nil
}

// edgebrokerListener is edgebroker's configuration for a TLS or WebSocket
// run: one ClusterIp (loopback) listener port, anonymous, with Manual
// TLS from the Secret bench-cert or protocol WebSockets.
const edgebrokerListener = `apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata: {name: bench}
spec:
  serviceType: ClusterIp
  ports:
  - port: %d
%s`

// writeListenerConfig writes edgebroker's configuration for a run over t
// on port and returns its path.
func writeListenerConfig(dir string, port int, t transport, certs certFiles) (string, error) {
	var text string
	switch t {
	case overTLS:
		crt, err := os.ReadFile(certs.cert)
		if err != nil {
			return "", err
		}
		key, err := os.ReadFile(certs.key)
		if err != nil {
			return "", err
		}
		text = fmt.Sprintf(edgebrokerListener, port, "    tls: {mode: Manual, manual: {secretRef: bench-cert}}\n")
		text += fmt.Sprintf("---\napiVersion: v1\nkind: Secret\nmetadata: {name: bench-cert}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: %s\n  tls.key: %s\n",
			yamlBlock(crt), yamlBlock(key))
	case overWS:
		text = fmt.Sprintf(edgebrokerListener, port, "    protocol: WebSockets\n")
	default:
		return "", fmt.Errorf("benchcompare: no listener configuration for transport %d", t)
	}
	path := filepath.Join(dir, "listener.yaml")
	return path, os.WriteFile(path, []byte(text), 0o644)
}

// yamlBlock is PEM as a YAML literal block under a key at depth 2.
func yamlBlock(pem []byte) string {
	return "|\n    " + strings.ReplaceAll(strings.TrimRight(string(pem), "\n"), "\n", "\n    ")
}

// mosquittoListener returns the lines that follow mosquitto's listener
// line for a run over t: the certificate and key with TLS 1.2 as the
// lowest version (1.2 and 1.3 allowed, as edgebroker), or the WebSocket
// protocol.
func mosquittoListener(t transport, certs certFiles) string {
	switch t {
	case overTLS:
		return fmt.Sprintf("certfile %s\nkeyfile %s\ntls_version tlsv1.2\n", certs.cert, certs.key)
	case overWS:
		return "protocol websockets\n"
	}
	return ""
}
