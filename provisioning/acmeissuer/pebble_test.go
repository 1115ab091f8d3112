package acmeissuer

// The test environment: a real Pebble (the ACME test CA, built from the
// separate module in tools/pebble) and pebble-challtestsrv as its DNS
// server, both on loopback, plus this package's challenge listeners on
// the ports Pebble validates.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"edgebroker/provisioning/certs"
)

// Validity periods of the Pebble profiles the tests use.
const (
	defaultValidity    = 2160 * time.Hour // = certs.DefaultDuration, so the Manager keeps the certificate
	shortlivedValidity = 160 * time.Hour
)

// env is the shared environment built by TestMain; envErr says why it is
// missing.
var (
	env    *pebbleEnv
	envErr error
)

type pebbleEnv struct {
	bin       string // directory with pebble and pebble-challtestsrv
	pebbleDir string // the pebble module (test certificates)
	minica    []byte // PEM root of Pebble's HTTPS certificate
	dnsAddr   string // pebble-challtestsrv's DNS server

	challenges *Challenges
	httpPort   int // where Challenges.ServeHTTP listens (http-01)
	tlsPort    int // an "MQTT TLS port" answering tls-alpn-01 through GetConfigForClient
	baseCert   *tls.Certificate
	httpHits   atomic.Int64 // http-01 answers served
	alpnHits   atomic.Int64 // tls-alpn-01 answers served

	ca *pebble // the Pebble most tests use
}

// pebble is one running Pebble.
type pebble struct {
	dirURL  string
	mgmt    string // management interface host:port
	client  *http.Client
	log     *lockedBuffer
	cleanup func()
}

func TestMain(m *testing.M) {
	code, cleanup := func() (int, func()) {
		tmp, err := os.MkdirTemp("", "acmeissuer-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1, func() {}
		}
		var stops []func()
		cleanup := func() {
			for i := len(stops) - 1; i >= 0; i-- {
				stops[i]()
			}
			os.RemoveAll(tmp)
		}
		env, stops, envErr = setup(tmp)
		if envErr != nil && os.Getenv("CI") != "" {
			fmt.Fprintf(os.Stderr, "acmeissuer: Pebble test environment: %v\n", envErr)
			return 1, cleanup
		}
		code := m.Run()
		if code != 0 && env != nil {
			fmt.Fprintf(os.Stderr, "--- Pebble log (tail):\n%s\n", tail(env.ca.log.String(), 4000))
		}
		return code, cleanup
	}()
	cleanup()
	os.Exit(code)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// needPebble skips t when the Pebble environment could not be built
// (outside CI; in CI TestMain fails instead).
func needPebble(t *testing.T) *pebbleEnv {
	t.Helper()
	if envErr != nil {
		t.Skipf("no Pebble ACME test server: %v (it is built from tools/pebble with `go build`, which needs the Go module proxy the first time)", envErr)
	}
	return env
}

// setup builds Pebble, starts the challenge listeners, the DNS server
// and Pebble. stops undo what was started, even on error.
func setup(tmp string) (e *pebbleEnv, stops []func(), err error) {
	e = &pebbleEnv{bin: filepath.Join(tmp, "bin"), challenges: new(Challenges)}
	if _, err := exec.LookPath("go"); err != nil {
		return nil, nil, fmt.Errorf("go command not found: %w", err)
	}
	mod, err := filepath.Abs(filepath.Join("..", "..", "tools", "pebble"))
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// One go build links both binaries in parallel into e.bin.
	out, err := exec.CommandContext(ctx, "go", "build", "-C", mod, "-o", e.bin+string(filepath.Separator),
		"github.com/letsencrypt/pebble/v2/cmd/pebble", "github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv").CombinedOutput()
	if err != nil {
		return nil, nil, fmt.Errorf("go build -C %s pebble pebble-challtestsrv: %v\n%s", mod, err, out)
	}
	out, err = exec.CommandContext(ctx, "go", "list", "-C", mod, "-m", "-f", "{{.Dir}}", "github.com/letsencrypt/pebble/v2").Output()
	if err != nil {
		return nil, nil, fmt.Errorf("go list pebble module in %s: %v", mod, err)
	}
	e.pebbleDir = strings.TrimSpace(string(out))
	if e.minica, err = os.ReadFile(filepath.Join(e.pebbleDir, "test", "certs", "pebble.minica.pem")); err != nil {
		return nil, nil, err
	}

	stop, err := e.serveChallenges()
	if err != nil {
		return nil, nil, err
	}
	stops = append(stops, stop)
	stop, err = e.startDNS(filepath.Join(tmp, "dns.log"))
	if stop != nil {
		stops = append(stops, stop)
	}
	if err != nil {
		return nil, stops, err
	}
	e.ca, err = e.startPebble(filepath.Join(tmp, "pebble"), pebbleConfig{})
	if err != nil {
		return nil, stops, err
	}
	stops = append(stops, e.ca.cleanup)
	return e, stops, nil
}

// serveChallenges starts an HTTP listener for http-01 and a TLS listener
// that answers tls-alpn-01 the way the appliance's MQTT port does: a
// base config offering "mqtt", and GetConfigForClient switching to the
// challenge certificate for acme-tls/1 handshakes.
func (e *pebbleEnv) serveChallenges() (stop func(), err error) {
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		hl.Close()
		return nil, err
	}
	e.httpPort, e.tlsPort = hl.Addr().(*net.TCPAddr).Port, tl.Addr().(*net.TCPAddr).Port
	hs := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
			e.challenges.ServeHTTP(rec, r)
			if rec.status == http.StatusOK {
				e.httpHits.Add(1)
			}
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go hs.Serve(hl)

	e.baseCert = selfSignedCert("mqtt.edge.test")
	tl = tls.NewListener(tl, mqttPortConfig(e.challenges, e.baseCert, &e.alpnHits))
	go func() {
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				c.(*tls.Conn).Handshake()
			}()
		}
	}()
	return func() { hs.Close(); tl.Close() }, nil
}

// mqttPortConfig is the TLS config of an MQTT port as the appliance
// builds it: base NextProtos without acme-tls/1, and tls-alpn-01 answered
// from GetConfigForClient. hits counts challenge answers.
func mqttPortConfig(c *Challenges, base *tls.Certificate, hits *atomic.Int64) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{*base},
		NextProtos:   []string{"mqtt"},
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			cert := c.TLSALPN01(hello)
			if cert == nil {
				return nil, nil
			}
			hits.Add(1)
			return &tls.Config{Certificates: []tls.Certificate{*cert}, NextProtos: []string{ALPNProto}}, nil
		},
	}
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func selfSignedCert(name string) *tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	is, err := certs.SelfSigned{}.Issue(context.Background(), &certs.Request{
		CommonName: name, DNSNames: []string{name}, Duration: time.Hour, Key: key,
	})
	if err != nil {
		panic(err)
	}
	return &tls.Certificate{Certificate: is.Chain, PrivateKey: key}
}

// startDNS starts pebble-challtestsrv as a DNS server on loopback that
// answers every A query with 127.0.0.1 (and no AAAA), with all its other
// servers off.
func (e *pebbleEnv) startDNS(logFile string) (stop func(), err error) {
	dnsPort, err := freeUDPAndTCPPort()
	if err != nil {
		return nil, err
	}
	mgmt, err := freePort()
	if err != nil {
		return nil, err
	}
	e.dnsAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(dnsPort))
	log, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(e.bin, "pebble-challtestsrv"),
		"-dnsserver", e.dnsAddr,
		"-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
		"-management", net.JoinHostPort("127.0.0.1", strconv.Itoa(mgmt)),
		"-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, err
	}
	stop = func() { cmd.Process.Kill(); cmd.Wait(); log.Close() }
	// Ready when it resolves a name.
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, e.dnsAddr)
	}}
	err = poll(10*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		addrs, err := r.LookupHost(ctx, "ready.edge.test")
		if err == nil && (len(addrs) != 1 || addrs[0] != "127.0.0.1") {
			err = fmt.Errorf("ready.edge.test resolves to %v", addrs)
		}
		return err
	})
	if err != nil {
		return stop, fmt.Errorf("pebble-challtestsrv DNS on %s: %w", e.dnsAddr, err)
	}
	return stop, nil
}

// pebbleConfig holds the knobs tests change.
type pebbleConfig struct {
	EABKeys    map[string]string // keyID → base64url HMAC key; non-empty: EAB required
	AuthzReuse int               // percentage of valid authorizations reused in new orders
}

// startPebble starts a Pebble with its state in dir and waits for its
// directory.
func (e *pebbleEnv) startPebble(dir string, pc pebbleConfig) (*pebble, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	listen, err := freePort()
	if err != nil {
		return nil, err
	}
	mgmt, err := freePort()
	if err != nil {
		return nil, err
	}
	type profile struct {
		Description       string `json:"description"`
		PromoteCommonName bool   `json:"promoteCommonName"`
		ValidityPeriod    uint64 `json:"validityPeriod"`
	}
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":                  net.JoinHostPort("127.0.0.1", strconv.Itoa(listen)),
		"managementListenAddress":        net.JoinHostPort("127.0.0.1", strconv.Itoa(mgmt)),
		"certificate":                    filepath.Join(e.pebbleDir, "test", "certs", "localhost", "cert.pem"),
		"privateKey":                     filepath.Join(e.pebbleDir, "test", "certs", "localhost", "key.pem"),
		"httpPort":                       e.httpPort,
		"tlsPort":                        e.tlsPort,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": len(pc.EABKeys) > 0,
		"externalAccountMACKeys":         pc.EABKeys,
		"keyAlgorithm":                   "ecdsa",
		"retryAfter":                     map[string]int{"authz": 1, "order": 1},
		"profiles": map[string]profile{
			// Like Let's Encrypt's classic profile: the first name
			// becomes the common name, as certs.Spec expects.
			"default":    {"default", true, uint64(defaultValidity / time.Second)},
			"shortlived": {"shortlived", false, uint64(shortlivedValidity / time.Second)},
		},
	}}
	data, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	cfgFile := filepath.Join(dir, "pebble-config.json")
	if err := os.WriteFile(cfgFile, data, 0o600); err != nil {
		return nil, err
	}
	log := new(lockedBuffer)
	cmd := exec.Command(filepath.Join(e.bin, "pebble"), "-config", cfgFile, "-dnsserver", e.dnsAddr)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"PEBBLE_VA_NOSLEEP=1",      // validate at once
		"PEBBLE_WFE_NONCEREJECT=0", // no random badNonce (each costs a 1 s client backoff)
		// By default every order is validated, so each test sees its solver work.
		"PEBBLE_AUTHZREUSE="+strconv.Itoa(pc.AuthzReuse),
	)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(e.minica)
	p := &pebble{
		dirURL:  fmt.Sprintf("https://127.0.0.1:%d/dir", listen),
		mgmt:    net.JoinHostPort("127.0.0.1", strconv.Itoa(mgmt)),
		client:  &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 5 * time.Second},
		log:     log,
		cleanup: func() { cmd.Process.Kill(); <-exited },
	}
	err = poll(20*time.Second, func() error {
		select {
		case <-exited:
			return errExited
		default:
		}
		res, err := p.client.Get(p.dirURL)
		if err != nil {
			return err
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", p.dirURL, res.Status)
		}
		return nil
	})
	if err != nil {
		p.cleanup()
		return nil, fmt.Errorf("pebble did not come up: %w\n%s", err, log.String())
	}
	return p, nil
}

// lockedBuffer collects a process's output (written by exec's copier
// goroutine, read by the test).
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// roots fetches Pebble's issuing root (a new one each start) from its
// management interface.
func (p *pebble) roots() (*x509.CertPool, error) {
	res, err := p.client.Get("https://" + p.mgmt + "/roots/0")
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode(body)
	if res.StatusCode != http.StatusOK || b == nil {
		return nil, fmt.Errorf("GET /roots/0: %s: %.200q", res.Status, body)
	}
	root, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(root)
	return pool, nil
}

var errExited = errors.New("process exited")

// poll calls f until it returns nil or errExited, or timeout passes (a
// bounded wait on a server coming up, which sends no event).
func poll(timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for d := 10 * time.Millisecond; ; d = min(2*d, 200*time.Millisecond) {
		err := f()
		if err == nil {
			return nil
		}
		if errors.Is(err, errExited) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(d)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// freeUDPAndTCPPort returns a loopback port free for both UDP and TCP
// (a DNS server listens on both).
func freeUDPAndTCPPort() (int, error) {
	for range 20 {
		u, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		t, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		u.Close()
		if err == nil {
			t.Close()
			return port, nil
		}
	}
	return 0, errors.New("no loopback port free for both UDP and TCP")
}
