package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"edgebroker/broker"
	"edgebroker/broker/packet"
)

const (
	requestTopic = "statestore/v1/FA9AE35F-2F64-47CD-9BFF-08E2B32A0FE8/command/invoke"
	notifyPrefix = "clients/statestore/v1/FA9AE35F-2F64-47CD-9BFF-08E2B32A0FE8/"
)

// fakeStore answers state store requests on a real broker with the exact
// payloads and properties of /work/shared/statestore-protocol.md: enough
// of GET, SET (NX, NEX), DEL, VDEL and KEYNOTIFY for the CLI. SET of key
// "quota" answers -ERR, as the real store does when it is full.
type fakeStore struct {
	t    *testing.T
	srv  *broker.Server
	addr *net.TCPAddr

	mu    sync.Mutex
	data  map[string][]byte
	watch map[string]map[string]bool // key -> client IDs
	// sessions holds each requester's session, for notifications.
	sessions map[string]broker.SessionRef // client ID -> session
	counter  int
	// watched receives the key of every KEYNOTIFY registration.
	watched chan string
}

// startFake serves a broker on 127.0.0.1:0 (through TLS when tc is set,
// with port's authentication when port is set) with a fake store on it.
func startFake(t *testing.T, tc *tls.Config, port *broker.Port) *fakeStore {
	t.Helper()
	srv := broker.New(broker.Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeStore{
		t:        t,
		srv:      srv,
		addr:     ln.Addr().(*net.TCPAddr),
		data:     map[string][]byte{},
		watch:    map[string]map[string]bool{},
		sessions: map[string]broker.SessionRef{},
		watched:  make(chan string, 16),
	}
	if tc != nil {
		ln = tls.NewListener(ln, tc)
	}
	if port == nil {
		port = &broker.Port{Name: "test"}
	}
	done := make(chan error, 1)
	go func() { done <- srv.ServePort(ln, port) }()
	unsub, err := srv.Subscribe(requestTopic, 1, f.onRequest)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		unsub()
		srv.Close()
		if err := <-done; !errors.Is(err, broker.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return f
}

// args returns the connection flags for the fake.
func (f *fakeStore) args(rest ...string) []string {
	return append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(f.addr.Port), "-timeout", "5s"}, rest...)
}

type request struct {
	args            [][]byte
	responseTopic   string
	correlationData []byte
	clientID        string
	ts              string
}

func (f *fakeStore) onRequest(m *broker.Message) {
	// Copy what we keep: m is only valid during the call.
	r := request{
		responseTopic:   string(m.Props.ResponseTopic),
		correlationData: bytes.Clone(m.Props.CorrelationData),
	}
	for _, u := range m.Props.User {
		switch string(u.Key) {
		case "__srcId":
			r.clientID = string(u.Value)
		case "__ts":
			r.ts = string(u.Value)
		}
	}
	args, err := parseRESP(m.Payload)
	if err != nil {
		f.t.Errorf("fake: request %q: %v", m.Payload, err)
		return
	}
	r.args = args
	if m.Sender != nil {
		f.mu.Lock()
		f.sessions[r.clientID] = m.Sender.Session
		f.mu.Unlock()
	}
	if m.QoS != 1 || r.responseTopic == "" || len(r.correlationData) != 16 || r.ts == "" {
		f.t.Errorf("fake: request QoS %d, response topic %q, correlation %x, __ts %q", m.QoS, r.responseTopic, r.correlationData, r.ts)
		return
	}
	go f.answer(r) // never call back into the broker from its callback
}

// parseRESP reads a RESP array of bulk strings.
func parseRESP(b []byte) ([][]byte, error) {
	line := func() (string, error) {
		i := bytes.Index(b, []byte("\r\n"))
		if i < 0 {
			return "", errors.New("missing CRLF")
		}
		s := string(b[:i])
		b = b[i+2:]
		return s, nil
	}
	s, err := line()
	if err != nil || !strings.HasPrefix(s, "*") {
		return nil, fmt.Errorf("not an array: %q", s)
	}
	n, err := strconv.Atoi(s[1:])
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for range n {
		s, err := line()
		if err != nil || !strings.HasPrefix(s, "$") {
			return nil, fmt.Errorf("not a bulk string: %q", s)
		}
		l, err := strconv.Atoi(s[1:])
		if err != nil || l < 0 || len(b) < l+2 {
			return nil, fmt.Errorf("bad length %q", s)
		}
		out = append(out, bytes.Clone(b[:l]))
		b = b[l+2:]
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("trailing bytes %q", b)
	}
	return out, nil
}

func (f *fakeStore) hlc() string {
	f.counter++
	return fmt.Sprintf("%015d:%05d:%s", time.Now().UnixMilli(), f.counter, "fake")
}

func (f *fakeStore) answer(r request) {
	f.mu.Lock()
	payload, ts, notes := f.exec(r)
	f.mu.Unlock()

	p := &packet.Publish{QoS: 1, Topic: []byte(r.responseTopic), Payload: []byte(payload)}
	p.Props.Set(packet.PropCorrelationData)
	p.Props.CorrelationData = r.correlationData
	p.Props.Set(packet.PropContentType)
	p.Props.ContentType = []byte("application/octet-stream")
	p.Props.User = append(p.Props.User,
		packet.UserProperty{Key: []byte("__stat"), Value: []byte("200")},
		packet.UserProperty{Key: []byte("__protVer"), Value: []byte("1.0")})
	if ts != "" {
		p.Props.User = append(p.Props.User, packet.UserProperty{Key: []byte("__ts"), Value: []byte(ts)})
	}
	if err := f.srv.Publish(p); err != nil {
		f.t.Errorf("fake: publish response: %v", err)
	}
	for _, n := range notes {
		n()
	}
}

// exec runs one command under f.mu. It returns the response payload, its
// __ts ("" for none) and the notifications to send after the response.
func (f *fakeStore) exec(r request) (payload, ts string, notes []func()) {
	a := r.args
	if len(a) < 2 {
		return "-ERR wrong number of arguments\r\n", "", nil
	}
	cmd, key := strings.ToUpper(string(a[0])), string(a[1])
	notify := func(op []byte) {
		ts := f.hlc()
		for id := range f.watch[key] {
			notes = append(notes, func() { f.notify(id, key, op, ts) })
		}
	}
	switch cmd {
	case "GET":
		v, ok := f.data[key]
		if !ok {
			return "$-1\r\n", "", nil
		}
		return fmt.Sprintf("$%d\r\n%s\r\n", len(v), v), f.hlc(), nil
	case "SET":
		if len(a) < 3 {
			return "-ERR wrong number of arguments\r\n", "", nil
		}
		if key == "quota" {
			return "-ERR the quota has been exceeded\r\n", "", nil
		}
		val := a[2]
		old, exists := f.data[key]
		for _, o := range a[3:] {
			switch strings.ToUpper(string(o)) {
			case "NX":
				if exists {
					return ":-1\r\n", f.hlc(), nil
				}
			case "NEX":
				if exists && !bytes.Equal(old, val) {
					return ":-1\r\n", f.hlc(), nil
				}
			}
		}
		f.data[key] = val
		notify(fmt.Appendf(nil, "*4\r\n$6\r\nNOTIFY\r\n$3\r\nSET\r\n$5\r\nVALUE\r\n$%d\r\n%s\r\n", len(val), val))
		return "+OK\r\n", f.hlc(), notes
	case "DEL", "VDEL":
		v, ok := f.data[key]
		switch {
		case !ok:
			return ":0\r\n", "", nil
		case cmd == "VDEL" && (len(a) < 3 || !bytes.Equal(v, a[2])):
			return ":-1\r\n", f.hlc(), nil
		}
		delete(f.data, key)
		notify([]byte("*2\r\n$6\r\nNOTIFY\r\n$6\r\nDELETE\r\n"))
		return ":1\r\n", f.hlc(), notes
	case "KEYNOTIFY":
		if len(a) == 3 && strings.EqualFold(string(a[2]), "STOP") {
			if !f.watch[key][r.clientID] {
				return ":0\r\n", "", nil
			}
			delete(f.watch[key], r.clientID)
			return "+OK\r\n", "", nil
		}
		if f.watch[key] == nil {
			f.watch[key] = map[string]bool{}
		}
		f.watch[key][r.clientID] = true
		f.watched <- key
		return "+OK\r\n", "", nil
	}
	return "-ERR unknown command\r\n", "", nil
}

// notify sends a KEYNOTIFY notification straight to the client's session:
// the Go SDK never subscribes to the notification topic.
func (f *fakeStore) notify(clientID, key string, payload []byte, ts string) {
	topic := notifyPrefix + strings.ToUpper(hex.EncodeToString([]byte(clientID))) +
		"/command/notify/" + strings.ToUpper(hex.EncodeToString([]byte(key)))
	p := &packet.Publish{QoS: 1, Topic: []byte(topic), Payload: payload}
	p.Props.Set(packet.PropContentType)
	p.Props.ContentType = []byte("application/octet-stream")
	p.Props.User = append(p.Props.User,
		packet.UserProperty{Key: []byte("__ts"), Value: []byte(ts)},
		packet.UserProperty{Key: []byte("__protVer"), Value: []byte("1.0")})
	f.mu.Lock()
	ref := f.sessions[clientID]
	f.mu.Unlock()
	if !f.srv.SendTo(ref, p) {
		f.t.Errorf("fake: notify %s: no session", clientID)
	}
}

// result is one run of the CLI.
type result struct {
	code           int
	stdout, stderr string
}

func runCLI(ctx context.Context, args ...string) result {
	var stdout, stderr bytes.Buffer
	code := run(ctx, args, &stdout, &stderr)
	return result{code, stdout.String(), stderr.String()}
}

func check(t *testing.T, name string, got result, code int, stdout, stderrHas string) {
	t.Helper()
	if got.code != code || got.stdout != stdout || !strings.Contains(got.stderr, stderrHas) {
		t.Errorf("%s: got exit %d, stdout %q, stderr %q; want exit %d, stdout %q, stderr containing %q",
			name, got.code, got.stdout, got.stderr, code, stdout, stderrHas)
	}
}

func TestGetSetDel(t *testing.T) {
	f := startFake(t, nil, nil)
	ctx := t.Context()

	check(t, "get miss", runCLI(ctx, f.args("get", "k")...), exitMiss, "", "not found")
	check(t, "set", runCLI(ctx, f.args("set", "k", "hello world")...), exitOK, "OK\n", "")
	check(t, "get hit", runCLI(ctx, f.args("get", "k")...), exitOK, "hello world\n", "")
	check(t, "get -v", runCLI(ctx, f.args("-v", "get", "k")...), exitOK, "hello world\n", ":fake\n")
	check(t, "set -nx", runCLI(ctx, f.args("set", "k", "other", "-nx", "-px", "10s")...), exitMiss, "skipped\n", "")
	check(t, "set -nex same", runCLI(ctx, f.args("set", "-nex", "k", "hello world")...), exitOK, "OK\n", "")
	check(t, "set -- negative", runCLI(ctx, f.args("set", "n", "--", "-1")...), exitOK, "OK\n", "")
	check(t, "get negative", runCLI(ctx, f.args("get", "n")...), exitOK, "-1\n", "")
	check(t, "vdel mismatch", runCLI(ctx, f.args("vdel", "k", "nope")...), exitOK, "-1\n", "")
	check(t, "vdel", runCLI(ctx, f.args("vdel", "k", "hello world")...), exitOK, "1\n", "")
	check(t, "del absent", runCLI(ctx, f.args("del", "k")...), exitOK, "0\n", "")
	check(t, "del", runCLI(ctx, f.args("del", "n")...), exitOK, "1\n", "")

	// Binary keys and values.
	check(t, "set hex", runCLI(ctx, f.args("-binary", "hex", "set", "00ff", "0a0d00")...), exitOK, "OK\n", "")
	f.mu.Lock()
	got := f.data["\x00\xff"]
	f.mu.Unlock()
	if want := []byte("\n\r\x00"); !bytes.Equal(got, want) {
		t.Errorf("stored value: got %q, want %q", got, want)
	}
	check(t, "get base64", runCLI(ctx, f.args("-binary", "base64", "get", "AP8=")...), exitOK, "Cg0A\n", "")
	check(t, "empty value", runCLI(ctx, f.args("set", "e", "")...), exitOK, "OK\n", "")
	check(t, "get empty", runCLI(ctx, f.args("get", "e")...), exitOK, "\n", "")
}

func TestServerError(t *testing.T) {
	f := startFake(t, nil, nil)
	check(t, "set quota", runCLI(t.Context(), f.args("set", "quota", "v")...), exitServer, "",
		"statestore: set: server error: the quota has been exceeded")
}

func TestUsage(t *testing.T) {
	ctx := t.Context()
	for _, args := range [][]string{
		{},
		{"frob", "k"},
		{"get"},
		{"get", "a", "b"},
		{"set", "k"},
		{"set", "k", "v", "-nx", "-nex"},
		{"set", "k", "v", "-px", "soon"},
		{"-binary", "hex", "get", "xyz"},
		{"-binary", "rot13", "get", "k"},
		{"watch"},
		{"del", "-ft", "notanhlc", "k"},
	} {
		if got := runCLI(ctx, args...); got.code != exitUsage || got.stderr == "" {
			t.Errorf("run %q: got exit %d, stderr %q; want %d and a message", args, got.code, got.stderr, exitUsage)
		}
	}
}

func TestWatch(t *testing.T) {
	f := startFake(t, nil, nil)
	ctx := t.Context()
	done := make(chan result, 1)
	go func() { done <- runCLI(ctx, f.args("watch", "-count", "2", "a", "b")...) }()
	for range 2 {
		select {
		case <-f.watched:
		case r := <-done:
			t.Fatalf("watch ended early: %+v", r)
		case <-time.After(10 * time.Second):
			t.Fatal("no KEYNOTIFY")
		}
	}
	check(t, "set", runCLI(ctx, f.args("set", "b", "v 1")...), exitOK, "OK\n", "")
	check(t, "del", runCLI(ctx, f.args("del", "b")...), exitOK, "1\n", "")
	select {
	case r := <-done:
		check(t, "watch", r, exitOK, "SET b v 1\nDELETE b\n", "")
	case <-time.After(10 * time.Second):
		t.Fatal("watch did not print two notifications")
	}
	// The watcher said KEYNOTIFY STOP on its way out.
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, ids := range f.watch {
		if len(ids) != 0 {
			t.Errorf("key %q still watched by %v", k, ids)
		}
	}
}

func TestWatchInterrupted(t *testing.T) {
	f := startFake(t, nil, nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan result, 1)
	go func() { done <- runCLI(ctx, f.args("watch", "k")...) }()
	select {
	case <-f.watched:
	case <-time.After(10 * time.Second):
		t.Fatal("no KEYNOTIFY")
	}
	cancel() // what signal.NotifyContext does on ^C
	select {
	case r := <-done:
		check(t, "watch", r, exitOK, "", "")
	case <-time.After(10 * time.Second):
		t.Fatal("watch did not end on cancel")
	}
}

type passwords map[string]string

func (p passwords) Authenticate(c *broker.Client, r *broker.AuthRequest) broker.AuthResult {
	if want, ok := p[string(r.Username)]; ok && r.HasPassword && string(r.Password) == want {
		return broker.AuthResult{Code: packet.Success}
	}
	return broker.AuthResult{Code: packet.BadUsernameOrPassword}
}

func TestCredentials(t *testing.T) {
	f := startFake(t, nil, &broker.Port{Name: "auth", Authenticator: passwords{"alice": "s3cret"}})
	ctx := t.Context()
	check(t, "good", runCLI(ctx, f.args("-u", "alice", "-P", "s3cret", "set", "k", "v")...), exitOK, "OK\n", "")
	check(t, "bad password", runCLI(ctx, f.args("-u", "alice", "-P", "wrong", "get", "k")...), exitFailure, "",
		"connection refused: bad user name or password (0x86)")
	check(t, "anonymous", runCLI(ctx, f.args("get", "k")...), exitFailure, "", "bad user name or password")
}

func TestConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	start := time.Now()
	got := runCLI(t.Context(), "-p", port, "-timeout", "5s", "get", "k")
	check(t, "refused", got, exitFailure, "", "connection refused")
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v; want a failure without retrying", d)
	}
}

// testPKI writes a CA and returns it with a server certificate for
// 127.0.0.1 and a client certificate, all signed by the CA.
func testPKI(t *testing.T) (caFile string, server tls.Certificate, clientCert, clientKey string) {
	t.Helper()
	dir := t.TempDir()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey := newKey()
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "statestore test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err = x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(serial int64, tmpl *x509.Certificate) ([]byte, *ecdsa.PrivateKey) {
		k := newKey()
		tmpl.SerialNumber = big.NewInt(serial)
		tmpl.NotBefore, tmpl.NotAfter = ca.NotBefore, ca.NotAfter
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, k
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	srvDER, srvKey := issue(2, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "appliance"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	cliDER, cliKey := issue(3, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "alice"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	keyDER, err := x509.MarshalPKCS8PrivateKey(cliKey)
	if err != nil {
		t.Fatal(err)
	}
	server = tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}
	return write("ca.pem", "CERTIFICATE", caDER), server,
		write("client.pem", "CERTIFICATE", cliDER), write("client.key", "PRIVATE KEY", keyDER)
}

func TestTLS(t *testing.T) {
	caFile, server, certFile, keyFile := testPKI(t)
	pool := x509.NewCertPool()
	pemCA, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(pemCA)
	// The broker asks for a client certificate and verifies it if sent.
	f := startFake(t, &tls.Config{
		Certificates: []tls.Certificate{server},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS12,
	}, nil)
	ctx := t.Context()

	check(t, "cafile", runCLI(ctx, f.args("-cafile", caFile, "set", "k", "tls")...), exitOK, "OK\n", "")
	check(t, "client cert", runCLI(ctx, f.args("-cafile", caFile, "-cert", certFile, "-key", keyFile, "get", "k")...),
		exitOK, "tls\n", "")
	check(t, "insecure", runCLI(ctx, f.args("-insecure", "get", "k")...), exitOK, "tls\n", "")
	check(t, "unknown CA", runCLI(ctx, f.args("-tls", "get", "k")...), exitFailure, "", "certificate")
	check(t, "missing cafile", runCLI(ctx, f.args("-cafile", filepath.Join(t.TempDir(), "none.pem"), "get", "k")...),
		exitFailure, "", "-cafile")
	check(t, "plain to TLS port", runCLI(ctx, f.args("-timeout", "2s", "get", "k")...), exitFailure, "", "connecting to")
}

// TestREADMEExamples runs README's statestore command lines verbatim
// (with this fake's address appended, after the command's arguments,
// which is itself a flag position README uses) and checks each line's
// comment: the printed answer, and the version on stderr for -v.
func TestREADMEExamples(t *testing.T) {
	readme, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	f := startFake(t, nil, nil)
	ctx := t.Context()
	var lines int
	for line := range strings.Lines(string(readme)) {
		cmd, comment, _ := strings.Cut(strings.TrimSpace(line), "#")
		args := strings.Fields(cmd)
		if len(args) == 0 || args[0] != "bin/statestore" {
			continue
		}
		lines++
		args = args[1:]
		if slices.Contains(args, "-cafile") {
			// Another host, with its CA file: flags must parse, and the
			// first failure is the missing file, not a usage error.
			check(t, line, runCLI(ctx, args...), exitFailure, "", "-cafile: open ca.crt")
			continue
		}
		args = append(args, "-p", strconv.Itoa(f.addr.Port), "-timeout", "5s")
		if slices.Contains(args, "watch") {
			wctx, cancel := context.WithCancel(ctx)
			done := make(chan result, 1)
			go func() { done <- runCLI(wctx, args...) }()
			select {
			case <-f.watched:
			case r := <-done:
				t.Fatalf("%s: ended early: %+v", line, r)
			case <-time.After(10 * time.Second):
				t.Fatalf("%s: no KEYNOTIFY", line)
			}
			cancel()
			select {
			case r := <-done:
				check(t, line, r, exitOK, "", "")
			case <-time.After(10 * time.Second):
				t.Fatalf("%s: did not end on cancel", line)
			}
			continue
		}
		want := strings.TrimSuffix(strings.Fields(comment)[0], ",") + "\n"
		stderr := ""
		if slices.Contains(args, "-v") {
			stderr = "version "
		}
		check(t, line, runCLI(ctx, args...), exitOK, want, stderr)
	}
	if lines < 6 {
		t.Errorf("found %d bin/statestore lines in README, want at least 6", lines)
	}
}
