// Package pebbletest runs a real Pebble (the ACME test CA, v2.10.1, built
// from the separate module tools/pebble) for tests, with
// pebble-challtestsrv as its DNS server answering every name with
// 127.0.0.1, both on loopback. Pebble validates http-01 and tls-alpn-01
// on the ports the test chooses (Options.HTTPPort, Options.TLSPort).
//
// Only _test.go files may import it.
package pebbletest

import (
	"bufio"
	"bytes"
	"context"
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
	"testing"
	"time"

	"edgebroker/broker/testenv"
)

// Validity periods of the profiles in DefaultProfiles.
const (
	DefaultValidity    = 2160 * time.Hour // = certs.DefaultDuration, so a certs.Manager keeps the certificate
	ShortlivedValidity = 160 * time.Hour
)

// Profile is a Pebble certificate profile.
type Profile struct {
	PromoteCommonName bool          // the first identifier becomes the subject's CommonName
	Validity          time.Duration // lifetime of the certificates (whole seconds)
}

// DefaultProfiles returns the profiles a Pebble has when Options.Profiles
// is nil: "default", like Let's Encrypt's classic profile (the first name
// becomes the CommonName, as certs.Spec expects), valid DefaultValidity;
// and "shortlived", valid ShortlivedValidity. Pebble picks one at random
// for orders that name none.
func DefaultProfiles() map[string]Profile {
	return map[string]Profile{
		"default":    {PromoteCommonName: true, Validity: DefaultValidity},
		"shortlived": {Validity: ShortlivedValidity},
	}
}

// Options configure a Pebble.
type Options struct {
	// HTTPPort and TLSPort are the loopback ports where Pebble validates
	// http-01 and tls-alpn-01 challenges. 0: that challenge type is
	// unused (validating it fails).
	HTTPPort, TLSPort int
	// AlwaysValid makes Pebble skip validation (PEBBLE_VA_ALWAYS_VALID=1):
	// every challenge the client accepts becomes valid at once.
	AlwaysValid bool
	// EAB maps key IDs to base64url HMAC keys; non-empty makes external
	// account binding required.
	EAB map[string]string
	// AuthzReuse is the percentage of valid authorizations Pebble reuses
	// in new orders for the same identifier (PEBBLE_AUTHZREUSE). 0: every
	// order is validated.
	AuthzReuse int
	// Profiles are Pebble's certificate profiles by name; nil:
	// DefaultProfiles().
	Profiles map[string]Profile
}

// Pebble is a running Pebble.
type Pebble struct {
	// DirectoryURL is the ACME directory, https://127.0.0.1:PORT/dir.
	DirectoryURL string
	// CABundlePEM is the minica root that signs Pebble's HTTPS
	// certificate: the CA bundle an ACME client needs to talk to it. It
	// does not sign the certificates Pebble issues (see Roots).
	CABundlePEM []byte
	// ManagementURL is Pebble's management interface,
	// https://127.0.0.1:PORT (same HTTPS certificate).
	ManagementURL string
	// DNSAddr is pebble-challtestsrv's DNS server (127.0.0.1:PORT, UDP
	// and TCP), which Pebble resolves identifiers with.
	DNSAddr string
	// LogFile holds Pebble's output; it is printed when the test fails.
	LogFile string

	client *http.Client
}

// HTTPClient returns a client that trusts CABundlePEM (Pebble's HTTPS
// certificate), with a 10 s timeout.
func (p *Pebble) HTTPClient() *http.Client { return p.client }

// RootPEM fetches, as PEM, the root that issues Pebble's certificates (a
// new one each start) from the management interface (/roots/0).
func (p *Pebble) RootPEM() ([]byte, error) {
	u := p.ManagementURL + "/roots/0"
	res, err := p.client.Get(u)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if b, _ := pem.Decode(body); res.StatusCode != http.StatusOK || b == nil || b.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("GET %s: %s: %.200q", u, res.Status, body)
	}
	return body, nil
}

// Roots returns a pool holding RootPEM's certificate: what certificates
// Pebble issues verify against.
func (p *Pebble) Roots() (*x509.CertPool, error) {
	data, err := p.RootPEM()
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode(data)
	root, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("Pebble root: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(root)
	return pool, nil
}

// built is what Build found, once per process.
var built struct {
	once                 sync.Once
	pebble, challtestsrv string
	moduleDir            string // the Pebble module's source (test certificates)
	err                  error
}

// Build builds pebble and pebble-challtestsrv once per process and
// returns their paths. It finds the repository root by walking up from
// the working directory to the go.mod of module "edgebroker", and builds
// from its tools/pebble module with `go tool -n`, which links each
// binary once into the Go build cache (no copy per test process; about
// 0.4 s when cached). When that fails, Build calls t.Fatal if the CI
// environment variable is set, else t.Skip with the reason.
func Build(t testing.TB) (pebbleBin, challtestsrvBin string) {
	t.Helper()
	built.once.Do(func() {
		built.pebble, built.challtestsrv, built.moduleDir, built.err = build()
	})
	if built.err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("pebbletest: %v", built.err)
		}
		t.Skipf("pebbletest: no Pebble ACME test server (CI unset, so skipping): %v", built.err)
	}
	return built.pebble, built.challtestsrv
}

func build() (pebbleBin, challtestsrvBin, moduleDir string, err error) {
	if _, err := exec.LookPath("go"); err != nil {
		return "", "", "", fmt.Errorf("go command not found: %w", err)
	}
	root, err := repoRoot()
	if err != nil {
		return "", "", "", err
	}
	mod := filepath.Join(root, "tools", "pebble")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	gocmd := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = mod
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("go %s in %s (needs the Go module proxy the first time): %v\n%s", strings.Join(args, " "), mod, err, stderr.Bytes())
		}
		return strings.TrimSpace(string(out)), nil
	}
	// Both in parallel: each links a binary.
	var wg sync.WaitGroup
	var errs [2]error
	wg.Go(func() { pebbleBin, errs[0] = gocmd("tool", "-n", "pebble") })
	wg.Go(func() { challtestsrvBin, errs[1] = gocmd("tool", "-n", "pebble-challtestsrv") })
	wg.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		return "", "", "", err
	}
	for _, bin := range []string{pebbleBin, challtestsrvBin} {
		if fi, err := os.Stat(bin); err != nil || !fi.Mode().IsRegular() {
			return "", "", "", fmt.Errorf("go tool -n in %s printed %q, not an executable", mod, bin)
		}
	}
	if moduleDir, err = gocmd("list", "-m", "-f", "{{.Dir}}", "github.com/letsencrypt/pebble/v2"); err != nil {
		return "", "", "", err
	}
	return pebbleBin, challtestsrvBin, moduleDir, nil
}

// repoRoot walks up from the working directory to the directory whose
// go.mod declares module "edgebroker".
func repoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; {
		if mod, err := moduleName(filepath.Join(dir, "go.mod")); err == nil && mod == "edgebroker" {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of module edgebroker in %s or above", wd)
		}
		dir = parent
	}
}

// moduleName returns the module path a go.mod declares.
func moduleName(gomod string) (string, error) {
	f, err := os.Open(gomod)
	if err != nil {
		return "", err
	}
	defer f.Close()
	s := bufio.NewScanner(io.LimitReader(f, 1<<20))
	for s.Scan() {
		line, _, _ := strings.Cut(s.Text(), "//")
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module"); ok && rest != "" && (rest[0] == ' ' || rest[0] == '\t') {
			return strings.Trim(strings.TrimSpace(rest), `"`), nil
		}
	}
	if err := s.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("%s: no module line", gomod)
}

// Start starts pebble-challtestsrv (as a DNS server answering every A
// query with 127.0.0.1) and Pebble with opts, both on loopback, and waits
// (at most 20 s each) until they answer. t.Cleanup stops both; their
// logs are files in t.TempDir(), printed when t failed. Start calls
// Build, so it skips or fails t like Build; failures to start fail t.
func Start(t testing.TB, opts Options) *Pebble {
	t.Helper()
	pebbleBin, challtestsrvBin := Build(t)
	dir := t.TempDir()
	dnsLog, pebbleLog := filepath.Join(dir, "pebble-challtestsrv.log"), filepath.Join(dir, "pebble.log")
	// Registered before the processes' cleanups, so it runs after them
	// (and before TempDir's removal): the logs are complete.
	t.Cleanup(func() {
		if t.Failed() {
			for _, f := range []string{dnsLog, pebbleLog} {
				if data, err := os.ReadFile(f); err == nil {
					t.Logf("--- %s (tail):\n%s", filepath.Base(f), tail(data, 8000))
				}
			}
		}
	})

	dnsAddr := startDNS(t, challtestsrvBin, dnsLog)
	p, err := startPebble(t, pebbleBin, dir, pebbleLog, dnsAddr, opts)
	if err != nil {
		t.Fatalf("pebbletest: %v", err)
	}
	return p
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return append([]byte("…"), b[len(b)-n:]...)
	}
	return b
}

// startDNS starts pebble-challtestsrv with only its DNS server, on a
// loopback port free for UDP and TCP, and returns that address once it
// resolves a name. A port that was free a moment ago may be taken by
// then (other tests' resolvers use random UDP ports on loopback):
// pebble-challtestsrv then logs "address already in use" for UDP and
// keeps running, so startDNS watches its log and tries another port.
func startDNS(t testing.TB, bin, logFile string) string {
	t.Helper()
	var err error
	for range 5 {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freeUDPAndTCPPort(t)))
		stop, exited := run(t, logFile, nil, bin,
			"-dnsserver", addr,
			"-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
			"-management", net.JoinHostPort("127.0.0.1", strconv.Itoa(testenv.FreePort(t))),
			"-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "")
		r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}}
		taken := false
		err = testenv.Poll(20*time.Second, exited, func() error {
			if b, _ := os.ReadFile(logFile); bytes.Contains(b, []byte("address already in use")) {
				taken = true
				return nil // try another port
			}
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			addrs, err := r.LookupHost(ctx, "ready.edge.test")
			if err == nil && (len(addrs) != 1 || addrs[0] != "127.0.0.1") {
				err = fmt.Errorf("ready.edge.test resolves to %v, want 127.0.0.1", addrs)
			}
			return err
		})
		if err == nil && !taken {
			t.Cleanup(stop)
			return addr
		}
		stop()
		if !taken {
			break
		}
		err = fmt.Errorf("%s was taken before pebble-challtestsrv bound it", addr)
		t.Logf("pebbletest: %v; another port", err)
	}
	t.Fatalf("pebbletest: pebble-challtestsrv DNS did not come up: %v", err)
	return ""
}

// pebbleConfig is Pebble's JSON configuration (cmd/pebble's config).
type pebbleConfig struct {
	Pebble struct {
		ListenAddress                  string             `json:"listenAddress"`
		ManagementListenAddress        string             `json:"managementListenAddress"`
		Certificate                    string             `json:"certificate"`
		PrivateKey                     string             `json:"privateKey"`
		HTTPPort                       int                `json:"httpPort"`
		TLSPort                        int                `json:"tlsPort"`
		OCSPResponderURL               string             `json:"ocspResponderURL"`
		ExternalAccountBindingRequired bool               `json:"externalAccountBindingRequired"`
		ExternalAccountMACKeys         map[string]string  `json:"externalAccountMACKeys"`
		KeyAlgorithm                   string             `json:"keyAlgorithm"`
		RetryAfter                     map[string]int     `json:"retryAfter"`
		Profiles                       map[string]profile `json:"profiles"`
	} `json:"pebble"`
}

type profile struct {
	Description       string `json:"description"`
	PromoteCommonName bool   `json:"promoteCommonName"`
	ValidityPeriod    uint64 `json:"validityPeriod"` // seconds
}

func startPebble(t testing.TB, bin, dir, logFile, dnsAddr string, opts Options) (*Pebble, error) {
	t.Helper()
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(testenv.FreePort(t)))
	mgmt := net.JoinHostPort("127.0.0.1", strconv.Itoa(testenv.FreePort(t)))
	var cfg pebbleConfig
	c := &cfg.Pebble
	c.ListenAddress, c.ManagementListenAddress = listen, mgmt
	c.Certificate = filepath.Join(built.moduleDir, "test", "certs", "localhost", "cert.pem")
	c.PrivateKey = filepath.Join(built.moduleDir, "test", "certs", "localhost", "key.pem")
	c.HTTPPort, c.TLSPort = opts.HTTPPort, opts.TLSPort
	c.ExternalAccountBindingRequired = len(opts.EAB) > 0
	c.ExternalAccountMACKeys = opts.EAB
	c.KeyAlgorithm = "ecdsa"
	c.RetryAfter = map[string]int{"authz": 1, "order": 1}
	profiles := opts.Profiles
	if profiles == nil {
		profiles = DefaultProfiles()
	}
	c.Profiles = make(map[string]profile, len(profiles))
	for name, pr := range profiles {
		c.Profiles[name] = profile{Description: name, PromoteCommonName: pr.PromoteCommonName, ValidityPeriod: uint64(pr.Validity / time.Second)}
	}
	data, err := json.Marshal(&cfg)
	if err != nil {
		return nil, err
	}
	cfgFile := filepath.Join(dir, "pebble-config.json")
	if err := os.WriteFile(cfgFile, data, 0o600); err != nil {
		return nil, err
	}
	minica, err := os.ReadFile(filepath.Join(built.moduleDir, "test", "certs", "pebble.minica.pem"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(minica) {
		return nil, errors.New("pebble.minica.pem holds no certificate")
	}

	env := []string{
		"PEBBLE_VA_NOSLEEP=1",      // validate at once
		"PEBBLE_WFE_NONCEREJECT=0", // no random badNonce (each costs a client backoff)
		"PEBBLE_AUTHZREUSE=" + strconv.Itoa(opts.AuthzReuse),
	}
	if opts.AlwaysValid {
		env = append(env, "PEBBLE_VA_ALWAYS_VALID=1")
	}
	stop, exited := run(t, logFile, env, bin, "-config", cfgFile, "-dnsserver", dnsAddr)
	t.Cleanup(stop)
	p := &Pebble{
		DirectoryURL:  "https://" + listen + "/dir",
		CABundlePEM:   minica,
		ManagementURL: "https://" + mgmt,
		DNSAddr:       dnsAddr,
		LogFile:       logFile,
		client: &http.Client{
			Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
			Timeout:   10 * time.Second,
		},
	}
	err = testenv.Poll(20*time.Second, exited, func() error {
		res, err := p.client.Get(p.DirectoryURL)
		if err != nil {
			return err
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", p.DirectoryURL, res.Status)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pebble did not come up: %w", err)
	}
	t.Cleanup(p.client.CloseIdleConnections)
	return p, nil
}

// run starts bin with its output in logFile and extra environment;
// exited is closed when it ends, stop kills it and waits.
func run(t testing.TB, logFile string, env []string, bin string, args ...string) (stop func(), exited <-chan struct{}) {
	t.Helper()
	log, err := os.OpenFile(logFile, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = filepath.Dir(logFile)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		t.Fatalf("pebbletest: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); log.Close(); close(done) }()
	return func() { cmd.Process.Kill(); <-done }, done
}

// freeUDPAndTCPPort returns a loopback port free for both UDP and TCP (a
// DNS server listens on both).
func freeUDPAndTCPPort(t testing.TB) int {
	t.Helper()
	for range 20 {
		u, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		u.Close()
		if err == nil {
			l.Close()
			return port
		}
	}
	t.Fatal("pebbletest: no loopback port free for both UDP and TCP")
	return 0
}
