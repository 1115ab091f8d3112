package tlsnet_test

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"edgebroker/broker/testenv"
	"edgebroker/broker/tlsnet"
)

// TestTLSLayout: this Go's crypto/tls has the fields ReleaseInput resets.
// A Go release that renames or retypes them fails here, not silently in
// the memory figures.
func TestTLSLayout(t *testing.T) {
	if !tlsnet.LayoutOK() {
		t.Fatal("crypto/tls's Conn no longer has in (halfConn with its mutex first), rawInput, input and hand as tlsnet/release.go expects: idle TLS connections keep their input buffers")
	}
}

// pair is a TLS 1.3 connection on loopback: the client's end and the
// server's over a Sock.
func pair(t *testing.T) (client, server *tls.Conn, sock *tlsnet.Sock) {
	t.Helper()
	cert, pool, _ := testenv.SelfSigned(t, "tlsnet.test")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	type side struct {
		tc  *tls.Conn
		s   *tlsnet.Sock
		err error
	}
	accepted := make(chan side, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			accepted <- side{err: err}
			return
		}
		tc, s := tlsnet.Server(nc, cfg)
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		accepted <- side{tc, s, tc.Handshake()}
	}()
	d := &net.Dialer{Timeout: 10 * time.Second}
	client, err = tls.DialWithDialer(d, "tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "tlsnet.test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	sd := <-accepted
	if sd.err != nil {
		t.Fatal(sd.err)
	}
	server, sock = sd.tc, sd.s
	t.Cleanup(func() { server.Close() })
	if sock == nil {
		t.Fatal("no Sock under a TCP connection")
	}
	client.SetDeadline(time.Now().Add(10 * time.Second))
	return client, server, sock
}

// TestReleaseInput: after a read that returned everything, crypto/tls's
// input buffers are let go and the connection reads on; while a read
// left plaintext in crypto/tls (the reader's buffer was too small),
// HoldsInput says so and nothing is released.
func TestReleaseInput(t *testing.T) {
	client, server, sock := pair(t)
	if _, err := client.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1024)
	if n, err := server.Read(buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	if !sock.Idle() || tlsnet.HoldsInput(server) {
		t.Fatalf("after the whole message: Sock idle %v, crypto/tls holds input %v; want idle, nothing held", sock.Idle(), tlsnet.HoldsInput(server))
	}
	if tlsnet.InputCap(server) == 0 {
		t.Fatal("crypto/tls's input buffers are empty before the release: the test shows nothing")
	}
	if !tlsnet.ReleaseInput(server) || tlsnet.InputCap(server) != 0 {
		t.Fatalf("release: input buffers of %d B left", tlsnet.InputCap(server))
	}

	// 40 KiB: several records; read 1 KiB of the first.
	big := bytes.Repeat([]byte("0123456789abcdef"), 40<<10/16)
	go client.Write(big)
	if _, err := io.ReadFull(server, buf); err != nil {
		t.Fatal(err)
	}
	if !tlsnet.HoldsInput(server) {
		t.Error("HoldsInput: false with the rest of a 16 KiB record decrypted and not read")
	}
	if tlsnet.ReleaseInput(server) {
		t.Error("ReleaseInput let go of buffers holding plaintext")
	}
	rest := make([]byte, len(big)-len(buf))
	if _, err := io.ReadFull(server, rest); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(append(buf, rest...), big) {
		t.Fatal("the 40 KiB arrived changed")
	}
	if tlsnet.HoldsInput(server) || !sock.Idle() || !tlsnet.ReleaseInput(server) {
		t.Errorf("after the whole message: holds input %v, Sock idle %v; want released", tlsnet.HoldsInput(server), sock.Idle())
	}
}

// TestSockRecordAtATime: a Sock hands crypto/tls one record at most per
// Read, even when the socket brought more, so that crypto/tls never
// reads ahead of the record it decrypts.
func TestSockRecordAtATime(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cl, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	s, err := tlsnet.NewSock(nc.(*net.TCPConn))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rec := func(body string) []byte { return append([]byte{23, 3, 3, 0, byte(len(body))}, body...) }
	a, b := rec("first record"), rec("second")
	if _, err := cl.Write(append(append([]byte{}, a...), b...)); err != nil {
		t.Fatal(err)
	}
	s.SetReadDeadline(time.Now().Add(10 * time.Second))
	p := make([]byte, 1024)
	var got []byte
	for len(got) < len(a) { // the two may arrive apart; the first Read ends at a's end
		n, err := s.Read(p)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p[:n]...)
	}
	if !bytes.Equal(got, a) {
		t.Fatalf("first reads returned % x, want the first record % x", got, a)
	}
	got = got[:0]
	for len(got) < len(b) {
		n, err := s.Read(p)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p[:n]...)
	}
	if !bytes.Equal(got, b) || !s.Idle() {
		t.Fatalf("then % x (idle %v), want the second record % x and an empty buffer", got, s.Idle(), b)
	}
}
