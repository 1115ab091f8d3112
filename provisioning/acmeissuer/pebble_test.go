package acmeissuer

// The test environment: a real Pebble (the ACME test CA, run by
// pebbletest) validating on this package's challenge listeners, both on
// loopback. Each test starts its own (about 0.1 s), so tests share no
// state and run in parallel.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"edgebroker/provisioning/acmeissuer/pebbletest"
	"edgebroker/provisioning/certs"
)

// Validity periods of the Pebble profiles the tests use.
const (
	shortlivedValidity = pebbletest.ShortlivedValidity // the "shortlived" profile
)

// pebbleEnv is one test's environment.
type pebbleEnv struct {
	challenges *Challenges
	httpPort   int // where Challenges.ServeHTTP listens (http-01)
	tlsPort    int // an "MQTT TLS port" answering tls-alpn-01 through GetConfigForClient
	baseCert   *tls.Certificate
	httpHits   atomic.Int64 // http-01 answers served
	alpnHits   atomic.Int64 // tls-alpn-01 answers served

	ca *pebbletest.Pebble // validating on httpPort and tlsPort
}

// needPebble starts this test's challenge listeners and a Pebble with
// opts validating on them; it skips t when Pebble cannot be built
// (outside CI; in CI it fails t). Tests using it run in parallel.
func needPebble(t *testing.T, opts pebbletest.Options) *pebbleEnv {
	t.Helper()
	pebbletest.Build(t) // skip before anything is started
	t.Parallel()
	e := &pebbleEnv{challenges: new(Challenges)}
	stop, err := e.serveChallenges()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	opts.HTTPPort, opts.TLSPort = e.httpPort, e.tlsPort
	e.ca = pebbletest.Start(t, opts)
	return e
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

// lockedBuffer collects log output written by other goroutines and
// read by the test.
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
