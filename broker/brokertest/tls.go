package brokertest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"edgebroker/broker"
)

// tlsNets maps the address of a ServeTLS port to its clients' TLS
// configuration: Dial speaks TLS to it.
var tlsNets sync.Map // string → *tls.Config

// ServeTLS serves s on a new loopback port with the broker's own TLS
// (Port.TLS, a self-signed ECDSA P-256 certificate for broker.test) until
// the test ends, and returns the address. Dial, and the V3/V5 raw helpers
// built on it, speak TLS 1.3 to that address. port names the listener
// (nil: a port named "tls"); its TLS field is set here.
func ServeTLS(t testing.TB, s *broker.Server, port *broker.Port) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if port == nil {
		port = &broker.Port{Name: "tls"}
	}
	cert, pool := selfSigned(t)
	port.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	addr := ln.Addr().String()
	tlsNets.Store(addr, &tls.Config{RootCAs: pool, ServerName: "broker.test", MinVersion: tls.VersionTLS13})
	t.Cleanup(func() { tlsNets.Delete(addr) })
	serve(t, s, ln, port)
	return addr
}

// tlsDial is Dial's way to a ServeTLS address; ok is false for other
// addresses.
func tlsDial(addr string) (nc net.Conn, ok bool, err error) {
	cfg, ok := tlsNets.Load(addr)
	if !ok {
		return nil, false, nil
	}
	nc, err = tls.DialWithDialer(&net.Dialer{Timeout: WaitTime}, "tcp", addr, cfg.(*tls.Config))
	return nc, true, err
}

// selfSigned makes a self-signed ECDSA P-256 certificate for broker.test
// and a pool that trusts it.
func selfSigned(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		DNSNames:              []string{"broker.test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
