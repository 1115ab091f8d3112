package wsnet_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"edgebroker/broker"
	"edgebroker/broker/packet"
	"edgebroker/broker/seclog"
	"edgebroker/broker/wsnet"
)

const wait = 5 * time.Second

// serve runs a broker behind a WebSocket listener (wss:// when cfg is set).
func serve(t *testing.T, cfg *tls.Config) (*broker.Server, string) {
	return serveLimit(t, cfg, wsnet.DefaultMaxUpgrading)
}

func serveLimit(t *testing.T, cfg *tls.Config, maxUpgrading int) (*broker.Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := broker.New(broker.Config{})
	wl := wsnet.ListenTLS(ln, cfg, nil, maxUpgrading, s.Security())
	done := make(chan error, 1)
	go func() { done <- s.Serve(wl) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, broker.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
		wl.Close()
	})
	return s, ln.Addr().String()
}

// pubSub connects two paho clients to url and passes one message.
func pubSub(t *testing.T, url string, tc *tls.Config) {
	t.Helper()
	got := make(chan string, 1)
	connect := func(id string) mqtt.Client {
		o := mqtt.NewClientOptions().AddBroker(url).SetClientID(id).SetAutoReconnect(false).SetConnectTimeout(wait)
		if tc != nil {
			o.SetTLSConfig(tc)
		}
		c := mqtt.NewClient(o)
		if tok := c.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
			t.Fatalf("connect %s: %v", url, tok.Error())
		}
		t.Cleanup(func() { c.Disconnect(0) })
		return c
	}
	sub := connect("ws-sub")
	if tok := sub.Subscribe("ws/#", 1, func(_ mqtt.Client, m mqtt.Message) { got <- string(m.Payload()) }); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	pub := connect("ws-pub")
	if tok := pub.Publish("ws/a", 1, false, "over websockets"); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	select {
	case m := <-got:
		if m != "over websockets" {
			t.Errorf("got %q", m)
		}
	case <-time.After(wait):
		t.Fatal("no message over WebSockets")
	}
}

func TestPahoOverWebSocket(t *testing.T) {
	_, addr := serve(t, nil)
	pubSub(t, "ws://"+addr+"/mqtt", nil)
}

func TestPahoOverSecureWebSocket(t *testing.T) {
	cert, pool := selfSigned(t)
	_, addr := serve(t, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	pubSub(t, "wss://"+addr+"/mqtt", &tls.Config{RootCAs: pool, ServerName: "localhost"})
}

func TestRefusesWithoutMQTTSubprotocol(t *testing.T) {
	_, addr := serve(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+addr+"/", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	_, _, err = c.Read(ctx)
	if got := websocket.CloseStatus(err); got != websocket.StatusPolicyViolation {
		t.Errorf("close status %v (err %v), want policy violation", got, err)
	}
}

// TestDisconnectArrivesBeforeClose checks the order the writer keeps: a
// server-initiated 5.0 DISCONNECT is flushed before the connection ends
// (a WebSocket closes on an expired read deadline).
func TestDisconnectArrivesBeforeClose(t *testing.T) {
	s, addr := serve(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	wc, _, err := websocket.Dial(ctx, "ws://"+addr+"/", &websocket.DialOptions{Subprotocols: []string{"mqtt"}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	nc := websocket.NetConn(ctx, wc, websocket.MessageBinary)
	cp := packet.Connect{ProtocolName: []byte("MQTT"), Version: packet.V5, CleanStart: true, ClientID: []byte("ws-raw")}
	if _, err := nc.Write(cp.Append(nil)); err != nil {
		t.Fatal(err)
	}
	h, _ := readPacket(t, nc)
	if h.Type != packet.CONNACK {
		t.Fatalf("got type %d, want CONNACK", h.Type)
	}
	if !s.Disconnect("ws-raw", packet.AdministrativeAction) {
		t.Fatal("Disconnect: client not found")
	}
	h, body := readPacket(t, nc)
	if h.Type != packet.DISCONNECT {
		t.Fatalf("got type %d, want DISCONNECT", h.Type)
	}
	var d packet.Disconnect
	if err := d.Decode(packet.V5, h.Flags, body); err != nil {
		t.Fatal(err)
	}
	if got, want := d.Code, packet.AdministrativeAction; got != want {
		t.Errorf("DISCONNECT code %#x, want %#x", byte(got), byte(want))
	}
}

func readPacket(t *testing.T, nc net.Conn) (packet.FixedHeader, []byte) {
	t.Helper()
	var buf []byte
	tmp := make([]byte, 1024)
	for {
		h, n, err := packet.ParseFixedHeader(buf)
		if err == nil && len(buf) >= n+h.Remaining {
			return h, buf[n : n+h.Remaining]
		}
		k, err := nc.Read(tmp)
		buf = append(buf, tmp[:k]...)
		if err != nil && k == 0 {
			t.Fatalf("read: %v", err)
		}
	}
}

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// TestHeaderLimit: an upgrade request with huge headers is refused
// before they are buffered (net/http's default would take 1 MiB).
func TestHeaderLimit(t *testing.T) {
	_, addr := serve(t, nil)
	nc, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(wait))
	req := "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Pad: " + strings.Repeat("p", 64<<10) + "\r\n\r\n"
	go nc.Write([]byte(req)) // the server may answer before reading it all
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatalf("response: %v", err)
	}
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("status %d, want 431", resp.StatusCode)
	}
}

// TestUpgradingLimit: at most maxUpgrading sockets may sit before their
// upgrade (here silent ones, as a slowloris would); one more is closed at
// once. Upgraded connections do not count, and a socket that closes makes
// room. On wss:// a socket counts from Accept, its TLS handshake included.
func TestUpgradingLimit(t *testing.T) {
	t.Run("ws", func(t *testing.T) { upgradingLimit(t, false) })
	t.Run("wss", func(t *testing.T) { upgradingLimit(t, true) })
}

func upgradingLimit(t *testing.T, secure bool) {
	var cfg, client *tls.Config
	url := "ws://"
	if secure {
		cert, pool := selfSigned(t)
		cfg = &tls.Config{Certificates: []tls.Certificate{cert}}
		client = &tls.Config{RootCAs: pool, ServerName: "localhost"}
		url = "wss://"
	}
	s, addr := serveLimit(t, cfg, 2)
	dial := func() net.Conn {
		t.Helper()
		nc, err := net.DialTimeout("tcp", addr, wait)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		return nc
	}
	// closed reports whether the server closed nc within d.
	closed := func(nc net.Conn, d time.Duration) bool {
		nc.SetReadDeadline(time.Now().Add(d))
		_, err := nc.Read(make([]byte, 1))
		var ne net.Error
		return !(errors.As(err, &ne) && ne.Timeout())
	}
	pubSub(t, url+addr+"/mqtt", client) // upgraded connections come and go
	a, b := dial(), dial()
	if c := dial(); !closed(c, wait) {
		t.Fatal("a third socket before its upgrade was not closed")
	}
	if n := s.Security().Count(seclog.LimitConnections); n != 1 {
		t.Errorf("%d limit_connections events, want 1", n)
	}
	if closed(a, 100*time.Millisecond) || closed(b, 100*time.Millisecond) {
		t.Fatal("a socket within the limit was closed")
	}
	a.Close()
	deadline := time.Now().Add(wait)
	for {
		if !closed(dial(), 100*time.Millisecond) {
			break // the closed socket made room
		}
		if time.Now().After(deadline) {
			t.Fatal("no room after a socket closed")
		}
	}
}
