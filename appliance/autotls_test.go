package appliance_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"edgebroker/appliance"
	"edgebroker/appliance/config"
	"edgebroker/broker/testenv"
)

// seed000CA is the seed's ca.yaml: a selfSigned issuer bootstraps the
// CA certificate test-ca (ECDSA 256, rotationPolicy Always).
const seed000CA = `apiVersion: cert-manager.io/v1
kind: Issuer
metadata:
  name: selfsigned-ca-issuer
  namespace: azure-iot-operations
spec:
  selfSigned: {}
---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: selfsigned-ca-cert
  namespace: azure-iot-operations
spec:
  isCA: true
  commonName: test-ca
  secretName: test-ca
  issuerRef:
    # Must match Issuer name above
    name: selfsigned-ca-issuer
    # Must match Issuer kind above
    kind: Issuer
    group: cert-manager.io
  # Override default private key config to use an EC key
  privateKey:
    rotationPolicy: Always
    algorithm: ECDSA
    size: 256
`

// seed000Issuer is the seed's issuer-ca.yaml.
const seed000Issuer = `apiVersion: cert-manager.io/v1
kind: Issuer
metadata:
  name: my-issuer
  namespace: azure-iot-operations
spec:
  ca:
    # Must match secretName of generated or imported CA cert
    secretName: test-ca
`

// automaticListener is a LoadBalancer listener with one Automatic TLS
// port from issuer; san is the YAML of certManagerCertificateSpec.san.
func automaticListener(name string, port int, issuer, san string) string {
	return `apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: ` + name + `
  namespace: azure-iot-operations
spec:
  serviceType: LoadBalancer
  ports:
  - port: ` + itoa(port) + `
    protocol: Mqtt
    tls:
      mode: Automatic
      certManagerCertificateSpec:
        issuerRef:
          name: ` + issuer + `
          kind: Issuer
          group: cert-manager.io
        privateKey:
          algorithm: Ec256
          rotationPolicy: Always
` + san
}

func itoa(n int) string { return strconv.Itoa(n) }

// runAt runs the appliance on -config dir with DataDir data; ports not in
// portMap bind as configured.
func runAt(t *testing.T, dir, data string, portMap map[int]int) (*appliance.Appliance, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan *appliance.Appliance, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- appliance.Run(ctx, appliance.Config{DataDir: data, ConfigPath: dir, PortMap: portMap, Logger: testLogger(t),
			Started: func(a *appliance.Appliance) { started <- a }})
	}()
	select {
	case a := <-started:
		t.Cleanup(func() {
			cancel()
			if err := <-errc; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
		return a, nil
	case err := <-errc:
		cancel()
		return nil, err
	case <-time.After(wait):
		cancel()
		t.Fatal("appliance did not start")
		return nil, nil
	}
}

// TestAutomaticTLSSeed000 runs the seed's bootstrap as written: a
// selfSigned issuer makes the CA certificate test-ca, my-issuer (ca:
// test-ca) issues port 8884's server certificate, the appliance exports
// ca.crt, and the seed's mosquitto_pub command, run beside ca.crt,
// succeeds.
func TestAutomaticTLSSeed000(t *testing.T) {
	dir := writeConfig(t, map[string]string{
		"ca.yaml":        seed000CA,
		"issuer-ca.yaml": seed000Issuer,
		"listener.yaml":  automaticListener("my-new-tls-listener", 8884, "my-issuer", ""),
	})
	data := t.TempDir()
	portMap := map[int]int{}
	if ln, err := net.Listen("tcp", ":8884"); err == nil { // the seed's port, unless this host uses it
		ln.Close()
	} else {
		portMap[8884] = 0
	}
	a, err := runAt(t, dir, data, portMap)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	addr := served(t, a, "my-new-tls-listener", 8884)
	st, _ := a.Status().Port("my-new-tls-listener", 8884)
	if c := st.TLS; c == nil || c.Issuer != "ca test-ca" || c.Secret != "my-new-tls-listener-8884" || c.LastError != "" {
		t.Errorf("port status TLS: %+v", c)
	}

	caPEM, err := os.ReadFile(filepath.Join(data, appliance.CAFile))
	if err != nil {
		t.Fatalf("ca.crt not exported: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("ca.crt holds no certificate")
	}
	c, err := tls.Dial("tcp", "127.0.0.1:"+portOf(addr), &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		t.Fatalf("TLS handshake verified with ca.crt: %v", err)
	}
	chain := c.ConnectionState().PeerCertificates
	c.Close()
	if top := chain[len(chain)-1]; top.Issuer.CommonName != "test-ca" {
		t.Errorf("server chain ends at %q, want a certificate issued by test-ca", top.Issuer.CommonName)
	}

	url := "tls://localhost:" + portOf(addr)
	sub := pahoClient(t, mqtt.NewClientOptions().AddBroker(url).SetClientID("sub").SetTLSConfig(&tls.Config{RootCAs: pool}))
	defer sub.Disconnect(0)
	got := subscribe(t, sub, "test")

	bin := testenv.NeedTool(t, "mosquitto_pub")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-h", "localhost", "-p", portOf(addr), "-V", "mqttv5", "-i", "test", "-t", "test", "-m", "test", "--cafile", "ca.crt")
	cmd.Dir = data // "--cafile ca.crt" as the seed writes it
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	expect(t, got, "test test")
}

// TestAutomaticTLSBadInput: each bad certificate input is named clearly,
// and what already serves keeps serving.
func TestAutomaticTLSBadInput(t *testing.T) {
	plain := `apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: plain
spec:
  serviceType: ClusterIp
  ports:
  - port: 1883
`
	for _, tt := range []struct {
		name  string
		files map[string]string
		want  string // in Run's error; "" when the config loads and the port waits
		wait  string // in the port's status message when it waits
	}{
		{
			name: "unknown issuer kind",
			files: map[string]string{"issuer.yaml": strings.Replace(seed000Issuer, "ca:\n    # Must match secretName of generated or imported CA cert\n    secretName: test-ca\n", "vault:\n    server: https://vault.local\n", 1),
				"l.yaml": automaticListener("tls", 8884, "my-issuer", "")},
			want: "vault",
		},
		{
			name:  "missing CA Secret",
			files: map[string]string{"issuer.yaml": seed000Issuer, "l.yaml": automaticListener("tls", 8884, "my-issuer", "")},
			wait:  "test-ca",
		},
		{
			name:  "issuer not found",
			files: map[string]string{"l.yaml": automaticListener("tls", 8884, "nobody", "")},
			want:  "nobody",
		},
		{
			name:  "invalid SAN IP",
			files: map[string]string{"ca.yaml": seed000CA, "issuer.yaml": seed000Issuer, "l.yaml": automaticListener("tls", 8884, "my-issuer", "        san:\n          ip: [\"10.0.0.300\"]\n")},
			want:  "10.0.0.300",
		},
		{
			name:  "invalid SAN DNS name",
			files: map[string]string{"ca.yaml": seed000CA, "issuer.yaml": seed000Issuer, "l.yaml": automaticListener("tls", 8884, "my-issuer", "        san:\n          dns: [\"bad name!\"]\n")},
			want:  "bad name!",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.files["plain.yaml"] = plain
			dir := writeConfig(t, tt.files)
			a, err := runAt(t, dir, t.TempDir(), map[int]int{8884: 0, 1883: 0})
			if tt.want != "" {
				var es config.Errors
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("Run: %v; want an error naming %q", err, tt.want)
				}
				if !errors.As(err, &es) {
					t.Logf("error is not config.Errors: %T", err)
				}
				t.Logf("error, as the user sees it:\n%v", err)
				return
			}
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			served(t, a, "plain", 1883)
			st, _ := a.Status().Port("tls", 8884)
			if st.Serving || !strings.Contains(st.Message, tt.wait) {
				t.Errorf("tls/8884: serving %v, message %q; want waiting, naming %q", st.Serving, st.Message, tt.wait)
			}
			t.Logf("status, as the user sees it:\n%s", a.Status())
		})
	}
}

// TestWaitingPortComesUp: a port waiting for its CA comes up by itself
// once the certificate manager's retry finds the CA Secret (here written
// on the device by hand, as an earlier configuration's CA would be), and
// serves a certificate from that CA: no reload needed.
func TestWaitingPortComesUp(t *testing.T) {
	dir := writeConfig(t, map[string]string{"issuer.yaml": seed000Issuer, "l.yaml": automaticListener("tls", 8884, "my-issuer", "")})
	data := t.TempDir()
	a, err := runAt(t, dir, data, map[int]int{8884: 0})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st, _ := a.Status().Port("tls", 8884); st.Serving {
		t.Fatal("served without its CA")
	}
	root, _ := seedTLS()
	caDir := filepath.Join(data, "certs", "test-ca")
	if err := os.MkdirAll(caDir, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"tls.crt": root.CertPEM(), "tls.key": root.KeyPEM(), "ca.crt": root.CertPEM()} {
		if err := os.WriteFile(filepath.Join(caDir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The first retry comes 10 s after the failure.
	if err := testenv.Poll(30*time.Second, nil, func() error {
		if st, _ := a.Status().Port("tls", 8884); !st.Serving {
			return fmt.Errorf("port still waiting:\n%s", a.Status())
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	addr := served(t, a, "tls", 8884)
	c, err := tls.Dial("tcp", "127.0.0.1:"+portOf(addr), &tls.Config{RootCAs: rootPool(root), ServerName: "localhost"})
	if err != nil {
		t.Fatalf("handshake verified by the CA: %v", err)
	}
	c.Close()
}

// launch runs the appliance with cfg (its Started and Ready are set here)
// and returns it, the addresses Ready reported, and a stop function that
// cancels Run and checks its result. A Run that fails to start fails the
// test.
func launch(t *testing.T, cfg appliance.Config) (*appliance.Appliance, []net.Addr, func()) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan *appliance.Appliance, 1)
	ready := make(chan []net.Addr, 1)
	errc := make(chan error, 1)
	cfg.Started = func(a *appliance.Appliance) { started <- a }
	cfg.Ready = func(a []net.Addr) { ready <- a }
	go func() { errc <- appliance.Run(ctx, cfg) }()
	select {
	case a := <-started:
		stopped := false
		return a, <-ready, func() {
			if stopped {
				return
			}
			stopped = true
			cancel()
			if err := <-errc; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	case err := <-errc:
		cancel()
		t.Fatalf("Run: %v", err)
	case <-time.After(wait):
		cancel()
		t.Fatal("appliance did not start")
	}
	return nil, nil, nil
}
