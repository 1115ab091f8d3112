package brokertest

import (
	"crypto/tls"
	"net"
	"sync"
	"testing"

	"edgebroker/broker"
	"edgebroker/broker/testenv"
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
	cert, pool, _ := testenv.SelfSigned(t, "broker.test")
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
