package certs

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"edgebroker/broker/testenv"
)

// TestSeedBootstrap runs seed 000's chain end to end: a selfSigned issuer
// issues the CA Certificate test-ca (isCA, ECDSA 256, rotationPolicy
// Always); a ca issuer from test-ca issues port 8884's leaf; a client
// trusting test-ca's ca.crt connects over loopback TLS. After a renewal
// new handshakes see the new leaf while an established connection stays.
func TestSeedBootstrap(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a real renewal (about 2 s)")
	}
	m := &Manager{Dir: t.TempDir(), RetryMin: 100 * time.Millisecond}
	ensure(t, m, "test-ca", Spec{IsCA: true, CommonName: "test-ca", Key: KeySpec{ECDSA, 256}, RotationPolicy: RotateAlways}, SelfSigned{})
	leafSpec := Spec{
		Duration:    4 * time.Second,
		RenewBefore: 2 * time.Second,
		Key:         KeySpec{"Ec256", 0},
	}.WithNames([]string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}) // the device's names
	first := ensure(t, m, "broker-8884", leafSpec, m.SecretCA("test-ca"))

	caPEM, err := os.ReadFile(filepath.Join(m.SecretDir("broker-8884"), "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("ca.crt holds no certificate")
	}

	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: m.Holder("broker-8884").GetCertificate})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go echoServer(ln)

	dial := func(serverName string) (*tls.Conn, *bufio.Reader) {
		t.Helper()
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, ServerName: serverName})
		if err != nil {
			t.Fatalf("dial %s: %v", serverName, err)
		}
		return c, bufio.NewReader(c)
	}
	ping := func(c *tls.Conn, r *bufio.Reader, msg string) {
		t.Helper()
		fmt.Fprintln(c, msg)
		got, err := r.ReadString('\n')
		if err != nil || got != msg+"\n" {
			t.Fatalf("echo %q: got %q, %v", msg, got, err)
		}
	}
	old, oldR := dial("localhost")
	defer old.Close()
	ping(old, oldR, "before")
	if got := old.ConnectionState().PeerCertificates[0]; !got.Equal(first.Leaf) {
		t.Fatal("server presented another certificate than Ensure returned")
	}
	byIP, byIPR := dial("127.0.0.1")
	ping(byIP, byIPR, "by IP")
	byIP.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go m.Run(ctx)
	testenv.Eventually(t, 10*time.Second, "the leaf renewed", func() bool {
		return !m.Holder("broker-8884").Load().Leaf.Equal(first.Leaf)
	})

	fresh, freshR := dial("localhost")
	defer fresh.Close()
	ping(fresh, freshR, "after")
	if fresh.ConnectionState().PeerCertificates[0].Equal(first.Leaf) {
		t.Error("a new handshake still sees the old certificate")
	}
	ping(old, oldR, "old connection still up")
	if st, _ := m.Status("broker-8884"); st.LastError != nil || st.Issuer != "ca test-ca" {
		t.Errorf("status: %+v", st)
	}
}

func echoServer(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			r := bufio.NewReader(c)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if _, err := c.Write([]byte(line)); err != nil {
					return
				}
			}
		}()
	}
}
