package appliance

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"edgebroker/appliance/config"
	"edgebroker/provisioning/certs"
)

// serverCert holds a port's server certificate. GetCertificate reads it
// on every handshake, so a reload swaps it without touching connections.
type serverCert struct {
	p atomic.Pointer[tls.Certificate]
}

func (s *serverCert) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := s.p.Load(); c != nil {
		return c, nil
	}
	return nil, errors.New("appliance: no server certificate")
}

// manualCert loads the server chain of a tls.mode Manual port from its
// Secret. It returns nil and no error if the Secret does not exist (the
// port waits for it, see config.Set.Pending), and a *config.Error naming
// the Secret if the chain is unusable (SPEC §5: wrong order, key
// mismatch, mixed key algorithms).
func manualCert(set *config.Set, name string) (*tls.Certificate, error) {
	sec := set.Secret(name)
	if sec == nil {
		return nil, nil
	}
	crt, _ := sec.Bytes("tls.crt")
	key, _ := sec.Bytes("tls.key")
	c, err := certs.ParseChain(crt, key)
	if err != nil {
		return nil, resourceError(sec, secretPath(sec, "tls.crt"), "server certificate chain: %v", err)
	}
	return c, nil
}

// secretPath names key in sec as config errors do: stringData[key] or
// data[key].
func secretPath(sec *config.Secret, key string) string {
	if _, ok := sec.StringData[key]; ok {
		return "stringData[" + key + "]"
	}
	return "data[" + key + "]"
}

// clientCAs returns every PEM certificate in every key of a ConfigMap
// (AIO: trustedClientCaCert may use any key names).
func clientCAs(cm *config.ConfigMap) (*x509.CertPool, error) {
	keys := make([]string, 0, len(cm.Data)+len(cm.BinaryData))
	for k := range cm.Data {
		keys = append(keys, k)
	}
	for k := range cm.BinaryData {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	pool := x509.NewCertPool()
	n := 0
	for _, k := range keys {
		b, _ := cm.Bytes(k)
		for {
			var blk *pem.Block
			if blk, b = pem.Decode(b); blk == nil {
				break
			}
			if blk.Type != "CERTIFICATE" {
				continue
			}
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return nil, resourceError(cm, "data["+k+"]", "certificate: %v", err)
			}
			pool.AddCert(c)
			n++
		}
	}
	if n == 0 {
		return nil, resourceError(cm, "data", "no PEM CERTIFICATE to trust")
	}
	return pool, nil
}

// tls12Suites are the TLS 1.2 cipher suites the appliance serves: ECDHE
// with an AEAD (AES-GCM or ChaCha20-Poly1305), no CBC, SHA-1 or RSA key
// exchange. TLS 1.3 suites are not configurable in crypto/tls and are all
// AEAD.
var tls12Suites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// serverPolicy sets the protocol versions and cipher suites of every
// tls.Config the appliance serves (MQTT ports, the tls-alpn-01 answers
// on them and on the ACME TLS port) and returns tc: TLS 1.2 with
// tls12Suites, or TLS 1.3.
func serverPolicy(tc *tls.Config) *tls.Config {
	tc.MinVersion = tls.VersionTLS12
	tc.CipherSuites = tls12Suites
	return tc
}

// serverTLS returns the tls.Config of a port: serverPolicy, the
// certificate from holder, and client certificates verified against
// cas when the port's authentication has an X509 method.
func serverTLS(holder *serverCert, cas *x509.CertPool) *tls.Config {
	tc := serverPolicy(&tls.Config{GetCertificate: holder.get})
	if cas != nil {
		tc.ClientAuth = tls.VerifyClientCertIfGiven
		tc.ClientCAs = cas
	}
	return tc
}

// resourceError is a *config.Error about resource r at path, positioned at
// the resource's metadata.name (the config package knows finer positions
// only for its own checks).
func resourceError(r config.Resource, path, format string, args ...any) *config.Error {
	file, line := r.Position()
	kind, name, _ := strings.Cut(r.Ref(), "/")
	return &config.Error{File: file, Line: line, Kind: kind, Name: name, Path: path, Msg: fmt.Sprintf(format, args...)}
}
