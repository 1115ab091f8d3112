package benchcompare

import (
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"edgebroker/appliance/config"
	"edgebroker/tools/loadgen"
)

// TestTransportScenarios: the paced scenarios run at each rate, plain and
// over TLS; the TLS and WebSocket scenarios are named so that -only TLS
// and -only WebSocket pick them, and carry their transport to the load.
func TestTransportScenarios(t *testing.T) {
	cfg := Config{Payload: 64, FanInPubs: 8, FanOutSubs: 100, LatencyRates: []float64{1000, 5000}, IdleConns: 2000,
		HandshakeDialers: 8, Duration: 2 * time.Second, DurablePubs: 64, DurableRate: 2000, DataflowPubs: 8}
	var names []string
	byName := map[string]scenario{}
	for _, s := range cfg.scenarios() {
		names = append(names, s.name)
		byName[s.name] = s
	}
	for _, want := range []string{
		"latency QoS 0 at 1000 msg/s", "latency QoS 0 at 5000 msg/s",
		"TLS fan-in QoS 0 (8→1)", "TLS latency QoS 0 at 1000 msg/s", "TLS latency QoS 0 at 5000 msg/s", "TLS idle connections (2000)",
		"TLS handshakes (1.3, ECDSA P-256)", "TLS handshakes (1.2, ECDSA P-256)", "WebSocket fan-in QoS 0 (8→1)",
	} {
		if _, ok := byName[want]; !ok {
			t.Errorf("no scenario %q in %q", want, names)
		}
	}
	for _, s := range byName {
		tlsName, wsName := strings.HasPrefix(s.name, "TLS "), strings.HasPrefix(s.name, "WebSocket ")
		if tlsName != (s.transport == overTLS) || tlsName != s.load.TLS || wsName != (s.transport == overWS) || wsName != s.load.WebSocket {
			t.Errorf("%s: transport %d, load TLS %v WebSocket %v", s.name, s.transport, s.load.TLS, s.load.WebSocket)
		}
	}
	if l := byName["latency QoS 0 at 1000 msg/s"].load; l.Mode != loadgen.Latency || l.Rate != 1000 || l.Count != 2000 {
		t.Errorf("paced 1000: %+v", l)
	}
	if l := byName["TLS handshakes (1.2, ECDSA P-256)"].load; l.Mode != loadgen.Connects || l.TLSVersion != tls.VersionTLS12 || l.Dialers != 8 {
		t.Errorf("TLS 1.2 handshakes: %+v", l)
	}
	if l := byName["TLS handshakes (1.3, ECDSA P-256)"].load; l.TLSVersion != tls.VersionTLS13 || !slices.Equal(l.Curves, []tls.CurveID{tls.X25519, tls.CurveP256}) {
		t.Errorf("TLS 1.3 handshakes: %+v", l)
	}
	if l := byName["TLS handshakes (1.3, ECDSA P-256, ML-KEM offered)"].load; l.TLSVersion != tls.VersionTLS13 || l.Curves != nil {
		t.Errorf("TLS 1.3 handshakes, Go's default client: %+v", l)
	}
	cfg.Only = []string{"TLS handshakes"}
	if got := len(cfg.scenarios()); got != 3 {
		t.Errorf("-only 'TLS handshakes': %d scenarios", got)
	}
}

// TestListenerConfigs: edgebroker's TLS and WebSocket configurations are
// valid and serve the port as asked; mosquitto's listener has the same
// certificate and TLS 1.2 as its lowest version, or websockets.
func TestListenerConfigs(t *testing.T) {
	certs, err := writeCert(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.LoadX509KeyPair(certs.cert, certs.key); err != nil {
		t.Fatalf("the run's certificate: %v", err)
	}
	for _, tr := range []transport{overTLS, overWS} {
		dir := t.TempDir()
		cmd, err := edgebroker("bin/edgebroker").command(launch{dir: dir, port: 18883, transport: tr, certs: certs})
		if err != nil {
			t.Fatal(err)
		}
		args := strings.Join(cmd.Args, " ")
		conf := filepath.Join(dir, "listener.yaml")
		if !strings.Contains(args, "-config "+conf) || strings.Contains(args, "-listen") {
			t.Fatalf("edgebroker %s: want -config %s and no -listen", args, conf)
		}
		set, err := config.LoadPath(conf)
		if err == nil {
			err = set.Validate()
		}
		if err != nil {
			t.Fatalf("transport %d: edgebroker's configuration: %v", tr, err)
		}
		l := set.Listener("bench")
		if l == nil || l.Spec.ServiceType != config.ServiceClusterIP || len(l.Spec.Ports) != 1 || l.Spec.Ports[0].Port != 18883 {
			t.Fatalf("transport %d: listener %+v", tr, l)
		}
		p := l.Spec.Ports[0]
		switch tr {
		case overTLS:
			if p.TLS == nil || p.TLS.Mode != config.TLSManual || p.TLS.Manual.SecretRef != "bench-cert" || set.Secret("bench-cert") == nil {
				t.Errorf("TLS port %+v", p)
			}
		case overWS:
			if p.Protocol != config.ProtocolWebSockets || p.TLS != nil {
				t.Errorf("WebSocket port %+v", p)
			}
		}

		dir = t.TempDir()
		if _, err := mosquitto("mosquitto", "").command(launch{dir: dir, port: 18883, transport: tr, certs: certs}); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dir, "mosquitto.conf"))
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"listener 18883 127.0.0.1\nprotocol websockets\n"}
		if tr == overTLS {
			want = []string{"listener 18883 127.0.0.1\ncertfile " + certs.cert + "\nkeyfile " + certs.key + "\ntls_version tlsv1.2\n"}
		}
		for _, w := range want {
			if !strings.Contains(string(b), w) {
				t.Errorf("mosquitto.conf lacks %q:\n%s", w, b)
			}
		}
	}
}

func TestLastLogLine(t *testing.T) {
	err := errors.New("benchcompare: mosquitto: exited before listening: exit status 1; log ends: 1796294508: Opening websockets listen socket on port 18931.\n1796294508: Error: Unable to start any listening sockets, exiting.\n")
	if got, want := lastLogLine(err), "Error: Unable to start any listening sockets, exiting."; got != want {
		t.Errorf("lastLogLine = %q, want %q", got, want)
	}
	if got, want := lastLogLine(errors.New("exited before listening: exit status 1")), "exited before listening: exit status 1"; got != want {
		t.Errorf("lastLogLine without a log = %q, want %q", got, want)
	}
}

// TestMosquittoWSBinary: the WebSocket rows run the mosquitto built with
// WebSockets, the other rows Debian's.
func TestMosquittoWSBinary(t *testing.T) {
	for _, tr := range []transport{overTCP, overTLS, overWS} {
		certs := certFiles{cert: "c.pem", key: "k.pem"}
		cmd, err := mosquitto("/usr/sbin/mosquitto", "/cache/mosquitto-ws").command(launch{dir: t.TempDir(), port: 18883, transport: tr, certs: certs})
		if err != nil {
			t.Fatal(err)
		}
		want := "/usr/sbin/mosquitto"
		if tr == overWS {
			want = "/cache/mosquitto-ws"
		}
		if cmd.Path != want {
			t.Errorf("transport %v runs %s, want %s", tr, cmd.Path, want)
		}
	}
}
