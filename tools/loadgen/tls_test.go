package loadgen

import (
	"crypto/tls"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"edgebroker/broker"
	"edgebroker/broker/testenv"
)

// startTLSBroker serves an in-process broker over TLS with a self-signed
// certificate for 127.0.0.1, and returns the address and the CA file.
func startTLSBroker(t *testing.T) (addr, caFile string) {
	t.Helper()
	return startTLSBrokerMax(t, 0)
}

// startTLSBrokerMax is startTLSBroker with a highest TLS version (0: Go's).
func startTLSBrokerMax(t *testing.T, maxVersion uint16) (addr, caFile string) {
	t.Helper()
	return startTLSBrokerWith(t, func(c *tls.Config) { c.MaxVersion = maxVersion })
}

// startTLSBrokerWith is startTLSBroker with the port's tls.Config changed
// by conf.
func startTLSBrokerWith(t *testing.T, conf func(*tls.Config)) (addr, caFile string) {
	t.Helper()
	cert, _, certPEM := testenv.SelfSigned(t, "127.0.0.1")
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := broker.New(broker.Config{})
	done := make(chan error, 1)
	tc := &tls.Config{Certificates: []tls.Certificate{cert}}
	conf(tc)
	go func() {
		done <- s.ServePort(ln, &broker.Port{Name: "default", TLS: tc})
	}()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, broker.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String(), caFile
}

func TestTLS(t *testing.T) {
	addr, ca := startTLSBroker(t)
	for _, cfg := range []Config{
		{CAFile: ca},
		{Insecure: true},
	} {
		cfg.Mode, cfg.Addr, cfg.QoS, cfg.Count, cfg.Duration = FanIn, addr, 1, 1000, 3*time.Second
		res, err := Run(t.Context(), cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Received != 1000 || len(res.Errors) > 0 {
			t.Errorf("%s: errors %v", res.Summary(), res.Errors)
		}
	}
	// Plain TCP to a TLS port fails to connect.
	if _, err := Run(t.Context(), Config{Addr: addr, Count: 10, Duration: time.Second}, nil); err == nil {
		t.Error("plain MQTT to a TLS port: no error")
	}
}

// TestConnects: connects mode makes full TLS handshakes of the version
// asked for, again and again, and reads the broker's CPU time and context
// switches around them.
func TestConnects(t *testing.T) {
	addr, ca := startTLSBroker(t)
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		cfg := Config{Mode: Connects, Addr: addr, CAFile: ca, TLSVersion: v, Count: 40, Dialers: 4, Sources: 4,
			Duration: 10 * time.Second, BrokerPID: os.Getpid()}
		res, err := Run(t.Context(), cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Log(res.Summary())
		if res.Conns != 40 || res.ConnectFailed != 0 || len(res.Errors) > 0 {
			t.Errorf("%s: conns %d, failed %d, errors %v", tls.VersionName(v), res.Conns, res.ConnectFailed, res.Errors)
		}
		if res.ConnsPerSecond <= 0 || res.Broker == nil || res.Broker.CtxSwitches <= 0 || res.Broker.CtxSwitchesPerMsg <= 0 {
			t.Errorf("%s: rate %v, broker usage %+v", tls.VersionName(v), res.ConnsPerSecond, res.Broker)
		}
	}
	// TLSVersion is the only version offered: a broker that stops at
	// TLS 1.2 refuses a TLS 1.3 client.
	addr12, ca12 := startTLSBrokerMax(t, tls.VersionTLS12)
	res, err := Run(t.Context(), Config{Mode: Connects, Addr: addr12, CAFile: ca12, TLSVersion: tls.VersionTLS13, Count: 2, Duration: 5 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Conns != 0 || res.ConnectFailed != 2 {
		t.Errorf("TLS 1.3 only against a TLS 1.2 broker: %s", res.Summary())
	}
}

// TestCurves: Curves are the only key exchanges the clients offer. A
// broker that accepts only the X25519MLKEM768 hybrid refuses clients
// offering X25519 and P-256, and takes Go's default client.
func TestCurves(t *testing.T) {
	addr, ca := startTLSBrokerWith(t, func(c *tls.Config) { c.CurvePreferences = []tls.CurveID{tls.X25519MLKEM768} })
	for _, tc := range []struct {
		curves []tls.CurveID
		ok     bool
	}{{[]tls.CurveID{tls.X25519, tls.CurveP256}, false}, {nil, true}} {
		res, err := Run(t.Context(), Config{Mode: Connects, Addr: addr, CAFile: ca, TLSVersion: tls.VersionTLS13, Curves: tc.curves,
			Count: 2, Dialers: 1, Duration: 5 * time.Second}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := res.ConnectFailed == 0 && res.Conns == 2; got != tc.ok {
			t.Errorf("curves %v: %s", tc.curves, res.Summary())
		}
	}
}
