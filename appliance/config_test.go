package appliance_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"edgebroker/appliance"
	"edgebroker/broker/testenv"
	"edgebroker/provisioning/certs/certstest"
)

const wait = 10 * time.Second

func testLogger(t *testing.T) *slog.Logger { return slog.New(slog.NewTextHandler(t.Output(), nil)) }

// writeConfig writes YAML files into a fresh -config folder.
func writeConfig(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// block indents PEM (or any text) as a YAML literal block at depth n.
func block(s string, n int) string {
	pad := strings.Repeat(" ", n)
	return "|\n" + pad + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+pad)
}

// tlsSecret is a kubernetes.io/tls Secret document.
func tlsSecret(name string, crt, key []byte) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata:
  name: %s
type: kubernetes.io/tls
stringData:
  tls.crt: %s
  tls.key: %s
`, name, block(string(crt), 4), block(string(key), 4))
}

// runConfig runs the appliance with -config dir, every configured port
// mapped to a free port, and returns the running appliance.
func runConfig(t *testing.T, dir string, ports ...int) *appliance.Appliance {
	t.Helper()
	a, err := tryRunConfig(t, dir, ports...)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return a
}

func tryRunConfig(t *testing.T, dir string, ports ...int) (*appliance.Appliance, error) {
	t.Helper()
	pm := map[int]int{}
	for _, p := range ports {
		pm[p] = 0
	}
	return runAt(t, dir, filepath.Join(t.TempDir(), "data"), pm)
}

// served returns the bound address of a served port.
func served(t *testing.T, a *appliance.Appliance, listener string, port int) *net.TCPAddr {
	t.Helper()
	st, ok := a.Status().Port(listener, port)
	if !ok || !st.Serving {
		t.Fatalf("%s/%d not served; status:\n%s", listener, port, a.Status())
	}
	return st.Addr.(*net.TCPAddr)
}

func portOf(a *net.TCPAddr) string { return fmt.Sprint(a.Port) }

// pahoClient connects a paho v3 client, failing the test on error.
func pahoClient(t *testing.T, o *mqtt.ClientOptions) mqtt.Client {
	t.Helper()
	c, err := pahoConnect(o)
	if err != nil {
		t.Fatalf("connect %s: %v", o.Servers[0], err)
	}
	return c
}

func pahoConnect(o *mqtt.ClientOptions) (mqtt.Client, error) {
	o.SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(wait)
	c := mqtt.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(wait) {
		return nil, errors.New("connect timed out")
	}
	if tok.Error() != nil {
		return nil, tok.Error()
	}
	return c, nil
}

func done(t *testing.T, what string, tok mqtt.Token) {
	t.Helper()
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("%s: %v", what, tok.Error())
	}
}

// subscribe subscribes c to filter and returns the payloads it gets.
func subscribe(t *testing.T, c mqtt.Client, filter string) chan string {
	t.Helper()
	got := make(chan string, 16)
	done(t, "subscribe "+filter, c.Subscribe(filter, 1, func(_ mqtt.Client, m mqtt.Message) {
		got <- m.Topic() + " " + string(m.Payload())
	}))
	return got
}

func expect(t *testing.T, got chan string, want string) {
	t.Helper()
	select {
	case m := <-got:
		if m != want {
			t.Errorf("got message %q, want %q", m, want)
		}
	case <-time.After(wait):
		t.Fatalf("no message %q", want)
	}
}

// seedTLS builds seed 000's chain: root → intermediate → leaf with SANs
// mqtts-endpoint and localhost.
func seedTLS() (root, leaf *certstest.Cert) {
	root = certstest.Root("Contoso Root CA", certstest.EC256)
	inter := root.Intermediate("Contoso Intermediate CA", certstest.EC256)
	leaf = inter.Server("mqtts-endpoint", []string{"mqtts-endpoint", "localhost"}, []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, certstest.EC256)
	return root, leaf
}

func rootPool(root *certstest.Cert) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(root.Cert)
	return p
}

// TestManualTLSSeed000 is seed 000's manual TLS flow: a Secret with the
// chain (leaf + intermediate), a LoadBalancer port with tls.mode Manual,
// and clients that trust only the root.
func TestManualTLSSeed000(t *testing.T) {
	root, leaf := seedTLS()
	dir := writeConfig(t, map[string]string{
		"secret.yaml": tlsSecret("server-cert-secret", leaf.ChainPEM(), leaf.KeyPEM()),
		"listener.yaml": `apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: manual-tls-listener
spec:
  serviceType: LoadBalancer
  ports:
  - port: 8885
    tls:
      mode: Manual
      manual:
        secretRef: server-cert-secret
`,
	})
	a := runConfig(t, dir, 8885)
	addr := served(t, a, "manual-tls-listener", 8885)
	if !addr.IP.IsUnspecified() {
		t.Errorf("LoadBalancer port bound to %v, want every interface", addr.IP)
	}
	url := "tls://localhost:" + portOf(addr)
	tc := &tls.Config{RootCAs: rootPool(root)}
	sub := pahoClient(t, mqtt.NewClientOptions().AddBroker(url).SetClientID("sub").SetTLSConfig(tc))
	defer sub.Disconnect(0)
	got := subscribe(t, sub, "test-topic")
	pub := pahoClient(t, mqtt.NewClientOptions().AddBroker(url).SetClientID("pub").SetTLSConfig(tc))
	done(t, "publish", pub.Publish("test-topic", 1, false, "from paho"))
	pub.Disconnect(0)
	expect(t, got, "test-topic from paho")

	// Without the root CA the handshake fails.
	if _, err := pahoConnect(mqtt.NewClientOptions().AddBroker(url).SetClientID("x").SetTLSConfig(&tls.Config{})); err == nil {
		t.Error("connected without trusting the root CA")
	}

	t.Run("mosquitto_pub", func(t *testing.T) {
		bin := testenv.NeedTool(t, "mosquitto_pub")
		ca := filepath.Join(t.TempDir(), "root_ca.crt")
		if err := os.WriteFile(ca, root.CertPEM(), 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, "-d", "-h", "localhost", "-p", portOf(addr), "-i", "my-client",
			"-t", "test-topic", "-m", "Hello", "--cafile", ca).CombinedOutput()
		if err != nil {
			t.Fatalf("mosquitto_pub: %v\n%s", err, out)
		}
		expect(t, got, "test-topic Hello")
	})
}

// TestMissingSecretNotServed: a Manual port whose Secret does not exist is
// configured but not served, and Status says why.
func TestMissingSecretNotServed(t *testing.T) {
	dir := writeConfig(t, map[string]string{"listener.yaml": `apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: tls
spec:
  serviceType: ClusterIp
  ports:
  - port: 1883
  - port: 8885
    tls:
      mode: Manual
      manual:
        secretRef: server-cert-secret
`})
	a := runConfig(t, dir, 1883, 8885)
	served(t, a, "tls", 1883)
	st, ok := a.Status().Port("tls", 8885)
	if !ok {
		t.Fatalf("no status for tls/8885:\n%s", a.Status())
	}
	if st.Serving || st.Addr != nil {
		t.Errorf("tls/8885 is served at %v without its Secret", st.Addr)
	}
	if want := "Server certificate server-cert-secret not found. Awaiting creation of secret."; !strings.Contains(st.Message, want) {
		t.Errorf("status message %q does not contain %q", st.Message, want)
	}
}

// TestEmbeddedDefaultServesTLS: without -config the default listener's
// port 18883 is served with TLS from the on-device quick-start CA, whose
// certificate is exported as DATA/ca.crt; authentication is required.
// A restart keeps the same CA.
func TestEmbeddedDefaultServesTLS(t *testing.T) {
	data := t.TempDir()
	run := func() (*appliance.Appliance, context.CancelFunc, chan error) {
		ctx, cancel := context.WithCancel(context.Background())
		started := make(chan *appliance.Appliance, 1)
		errc := make(chan error, 1)
		go func() {
			errc <- appliance.Run(ctx, appliance.Config{DataDir: data, Loopback: "127.0.0.1:0", Logger: testLogger(t),
				PortMap: map[int]int{18883: 0}, Started: func(a *appliance.Appliance) { started <- a }})
		}()
		select {
		case a := <-started:
			return a, cancel, errc
		case err := <-errc:
			t.Fatalf("Run: %v", err)
		case <-time.After(wait):
			t.Fatal("not started")
		}
		return nil, cancel, errc
	}
	a, cancel, errc := run()
	if addr := served(t, a, "loopback", 1883); !addr.IP.IsLoopback() {
		t.Errorf("loopback port bound to %v", addr)
	}
	tlsAddr := served(t, a, "default", 18883)
	caPEM, err := os.ReadFile(filepath.Join(data, appliance.CAFile))
	if err != nil {
		t.Fatalf("exported CA: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("ca.crt holds no certificate")
	}
	for _, name := range []string{"localhost", "127.0.0.1"} {
		c, err := tls.Dial("tcp", "127.0.0.1:"+portOf(tlsAddr), &tls.Config{RootCAs: pool, ServerName: name})
		if err != nil {
			t.Fatalf("TLS handshake as %q verified with ca.crt: %v", name, err)
		}
		c.Close()
	}
	// Authentication required: an anonymous client is refused.
	cl := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("ssl://localhost:" + portOf(tlsAddr)).SetClientID("anon").SetProtocolVersion(4).
		SetTLSConfig(&tls.Config{RootCAs: pool}).SetAutoReconnect(false).SetConnectTimeout(wait))
	tok := cl.Connect()
	tok.WaitTimeout(wait)
	if rc := tok.(*mqtt.ConnectToken).ReturnCode(); rc != 5 {
		t.Errorf("anonymous client on 18883: CONNACK %d, want 5 (not authorized)", rc)
	}

	// The seed's mosquitto_pub command against the quick-start port: the
	// TLS handshake verifies with ca.crt (the CONNACK that follows refuses
	// the anonymous client), and fails with another CA.
	t.Run("mosquitto_pub", func(t *testing.T) {
		bin := testenv.NeedTool(t, "mosquitto_pub")
		other := filepath.Join(t.TempDir(), "other.crt")
		root, _ := seedTLS()
		if err := os.WriteFile(other, root.CertPEM(), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, tt := range []struct{ cafile, want string }{
			{"ca.crt", "received CONNACK (135)"},
			{other, "certificate verify failed"},
		} {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			cmd := exec.CommandContext(ctx, bin, "-d", "-h", "localhost", "-p", portOf(tlsAddr), "-V", "mqttv5", "-i", "test", "-t", "test", "-m", "test", "--cafile", tt.cafile)
			cmd.Dir = data
			out, _ := cmd.CombinedOutput()
			cancel()
			if !strings.Contains(string(out), tt.want) {
				t.Errorf("mosquitto_pub --cafile %s: want %q in:\n%s", tt.cafile, tt.want, out)
			}
		}
	})
	cancel()
	if err := <-errc; err != nil {
		t.Errorf("Run: %v", err)
	}

	// Restart: the same CA, so clients keep trusting the device.
	_, cancel, errc = run()
	again, err := os.ReadFile(filepath.Join(data, appliance.CAFile))
	if err != nil || string(again) != string(caPEM) {
		t.Errorf("ca.crt changed across a restart (err %v)", err)
	}
	cancel()
	<-errc
}

// TestPasswordFile: users from a file written by the real
// mosquitto_passwd; a wrong password is refused with CONNACK 4 (3.1.1)
// and 0x86 (5.0).
func TestPasswordFile(t *testing.T) {
	bin := testenv.NeedTool(t, "mosquitto_passwd")
	pwfile := filepath.Join(t.TempDir(), "passwords")
	if out, err := exec.Command(bin, "-b", "-c", pwfile, "alice", "s3cret").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v\n%s", err, out)
	}
	pw, err := os.ReadFile(pwfile)
	if err != nil {
		t.Fatal(err)
	}
	dir := writeConfig(t, map[string]string{"config.yaml": `apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: local
spec:
  serviceType: ClusterIp
  ports:
  - port: 1883
    authenticationRef: users
---
` + passwordUsers(string(pw))})
	a := runConfig(t, dir, 1883)
	addr := served(t, a, "local", 1883)
	url := "tcp://" + addr.String()

	c := pahoClient(t, mqtt.NewClientOptions().AddBroker(url).SetClientID("a").SetUsername("alice").SetPassword("s3cret"))
	c.Disconnect(0)
	if _, err := pahoConnect(mqtt.NewClientOptions().AddBroker(url).SetClientID("b").SetUsername("alice").SetPassword("wrong")); !errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword) {
		t.Errorf("3.1.1 wrong password: got %v, want CONNACK 4 (%v)", err, packets.ErrorRefusedBadUsernameOrPassword)
	}
	if _, err := pahoConnect(mqtt.NewClientOptions().AddBroker(url).SetClientID("c")); !errors.Is(err, packets.ErrorRefusedNotAuthorised) {
		t.Errorf("3.1.1 no credentials: got %v, want CONNACK 5", err)
	}

	for _, tc := range []struct {
		password string
		want     byte
	}{{"s3cret", 0}, {"wrong", 0x86}} {
		ack := v5Connect(t, addr.String(), &paho.Connect{ClientID: "v5", CleanStart: true,
			UsernameFlag: true, Username: "alice", PasswordFlag: true, Password: []byte(tc.password)})
		if ack == nil || ack.ReasonCode != tc.want {
			t.Errorf("5.0 password %q: CONNACK %+v, want reason code %#x", tc.password, ack, tc.want)
		}
	}
}

// v5Connect sends a 5.0 CONNECT and returns the CONNACK.
func v5Connect(t *testing.T, addr string, cp *paho.Connect) *paho.Connack {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := paho.NewClient(paho.ClientConfig{Conn: testenv.LockedConn(nc), PacketTimeout: wait})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ack, err := c.Connect(ctx, cp)
	if err == nil {
		c.Disconnect(&paho.Disconnect{})
	}
	return ack
}

// TestNodePortListens: a NodePort listener's port with a nodePort listens
// on the node port (the device is the node), on every interface; status
// still names the port by its configured number.
func TestNodePortListens(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	node := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := writeConfig(t, map[string]string{"config.yaml": fmt.Sprintf(`apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: nodes
spec:
  serviceType: NodePort
  ports:
  - port: 1883
    nodePort: %d
`, node)})
	a := runConfig(t, dir)
	addr := served(t, a, "nodes", 1883)
	if addr.Port != node || !addr.IP.IsUnspecified() {
		t.Errorf("nodes/1883 served on %v, want every interface, port %d", addr, node)
	}
	c := pahoClient(t, mqtt.NewClientOptions().AddBroker(fmt.Sprintf("tcp://127.0.0.1:%d", node)).SetClientID("np"))
	c.Disconnect(0)
}
