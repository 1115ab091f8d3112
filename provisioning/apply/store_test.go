package apply

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"edgebroker/provisioning/bundle"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func testKey(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

func pub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

var (
	keyA = testKey(1) // baked into the image
	keyB = testKey(2)
	keyC = testKey(3)
)

// portApplier is a real "live reload": it binds the TCP port named in the
// configuration's port file on loopback, as the broker binds its listeners.
type portApplier struct {
	mu    sync.Mutex
	ln    net.Listener
	dir   string // configuration now live
	calls []string
}

func (p *portApplier) Apply(_ context.Context, dir string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, filepath.Base(dir))
	port, err := os.ReadFile(filepath.Join(dir, "port"))
	if err != nil {
		return err
	}
	if p.ln != nil {
		p.ln.Close()
		p.ln, p.dir = nil, ""
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strings.TrimSpace(string(port))))
	if err != nil {
		return err
	}
	p.ln, p.dir = ln, dir
	return nil
}

// live returns the live configuration's folder and checks its port answers.
func (p *portApplier) live(t *testing.T) string {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		t.Fatal("no configuration is live")
	}
	c, err := net.DialTimeout("tcp", p.ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatalf("the live configuration's port does not answer: %v", err)
	}
	c.Close()
	return p.dir
}

func (p *portApplier) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
	}
}

// validate stands in for the appliance's validator: a configuration needs
// a numeric port file; a file named "invalid" yields two problems.
func validate(fsys fs.FS) error {
	if _, err := fs.Stat(fsys, "invalid"); err == nil {
		return errors.Join(errors.New("invalid:1: BrokerListener/x: spec.ports[0].port: required"),
			errors.New("invalid:3: Secret/y: data[tls.crt]: no PEM CERTIFICATE"))
	}
	if _, err := fs.Stat(fsys, "many"); err == nil {
		var errs []error
		for i := range 150 {
			errs = append(errs, fmt.Errorf("many:%d: problem", i+1))
		}
		return errors.Join(errs...)
	}
	b, err := fs.ReadFile(fsys, "port")
	if err != nil {
		return fmt.Errorf("port: %w", err)
	}
	if strings.Trim(string(b), "0123456789\n") != "" {
		return fmt.Errorf("port: %q is not a number", b)
	}
	return nil
}

func newStore(t *testing.T) (*Store, *portApplier) {
	p := new(portApplier)
	t.Cleanup(p.close)
	s := &Store{
		Dir:      filepath.Join(t.TempDir(), "provisioning"),
		Trust:    []ed25519.PublicKey{pub(keyA)},
		Device:   bundle.Device{Serial: "10000000cafe", Model: "Raspberry Pi 4 Model B Rev 1.4"},
		Validate: validate,
		Apply:    p.Apply,
		Now:      func() time.Time { return t0.Add(time.Hour) },
	}
	return s, p
}

func mk(t *testing.T, key ed25519.PrivateKey, serial uint64, files map[string]string, mod ...func(*bundle.PackOptions)) []byte {
	t.Helper()
	fsys := fstest.MapFS{}
	for k, v := range files {
		fsys[k] = &fstest.MapFile{Data: []byte(v)}
	}
	o := bundle.PackOptions{Key: key, Serial: serial, Created: t0, Expires: t0.Add(48 * time.Hour)}
	for _, f := range mod {
		f(&o)
	}
	var buf bytes.Buffer
	if _, err := bundle.Pack(&buf, fsys, o); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func cfg(port string) map[string]string {
	return map[string]string{"port": port, "listeners.yaml": "kind: BrokerListener\n", "secrets/srv/tls.key": "KEY"}
}

func install(t *testing.T, s *Store, data []byte) Result {
	t.Helper()
	return s.Install(context.Background(), bytes.NewReader(data))
}

func mustApply(t *testing.T, s *Store, data []byte) {
	t.Helper()
	if res := install(t, s, data); !res.Applied || res.RolledBack || len(res.Reasons) > 0 {
		t.Fatalf("Install: %+v", res)
	}
}

func TestInstallRollback(t *testing.T) {
	s, p := newStore(t)
	if _, ok := s.Current(); ok {
		t.Fatal("Current before any install: ok")
	}
	mustApply(t, s, mk(t, keyA, 1, cfg("0")))
	cur1, ok := s.Current()
	if !ok || p.live(t) != cur1 {
		t.Fatalf("Current = %q, %v; live %q", cur1, ok, p.dir)
	}
	if got, _ := os.ReadFile(filepath.Join(cur1, "secrets/srv/tls.key")); string(got) != "KEY" {
		t.Errorf("extracted tls.key: %q", got)
	}
	if fi, err := os.Stat(filepath.Join(cur1, "secrets/srv/tls.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("tls.key mode: %v, %v; want 0600", fi.Mode(), err)
	}

	// Serial 2 wants a port that is taken: it cannot come up.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, busyPort, _ := net.SplitHostPort(busy.Addr().String())
	before := snapshot(t, s.Dir)
	res := install(t, s, mk(t, keyA, 2, cfg(busyPort)))
	if res.Applied || !res.RolledBack || res.Serial != 2 {
		t.Fatalf("Install of a configuration that cannot bind: %+v", res)
	}
	want := []string{"apply: the new configuration could not come up: listen tcp 127.0.0.1:" + busyPort, "apply: rolled back to serial 1"}
	if len(res.Reasons) != 2 || !strings.HasPrefix(res.Reasons[0], want[0]) || res.Reasons[1] != want[1] {
		t.Errorf("Reasons: got %q, want %q", res.Reasons, want)
	}
	if got, ok := s.Current(); got != cur1 || !ok || p.live(t) != cur1 {
		t.Errorf("after rollback: Current %q, live %q; want %q", got, p.dir, cur1)
	}
	if diff := diffSnap(before, snapshot(t, s.Dir)); diff != "" {
		t.Errorf("the store changed on a rollback:\n%s", diff)
	}
	if got, want := p.calls, []string{filepath.Base(cur1), "config-00000000000000000002", filepath.Base(cur1)}; !slices.Equal(got, want) {
		t.Errorf("Apply calls: got %v, want %v", got, want)
	}

	// The same serial, fixed, is accepted: a rolled-back serial is not spent.
	mustApply(t, s, mk(t, keyA, 2, cfg("0")))
	cur2, _ := s.Current()
	prev, ok := s.Previous()
	if p.live(t) != cur2 || prev != cur1 || !ok || s.LastSerial() != 2 {
		t.Errorf("after serial 2: Current %q Previous %q live %q serial %d", cur2, prev, p.dir, s.LastSerial())
	}
	mustApply(t, s, mk(t, keyA, 3, cfg("0")))
	if _, err := os.Stat(cur1); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("serial 1's folder after serial 3: %v, want it removed", err)
	}
	h := s.History()
	if len(h) != 4 || !h[0].Applied || !h[1].RolledBack || !h[3].Applied || h[3].Serial != 3 || !h[0].Time.Equal(t0.Add(time.Hour)) {
		t.Errorf("History: %+v", h)
	}
}

func TestRollbackWithoutPrevious(t *testing.T) {
	s, _ := newStore(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, port, _ := net.SplitHostPort(busy.Addr().String())
	res := install(t, s, mk(t, keyA, 1, cfg(port)))
	if res.Applied || res.RolledBack || len(res.Reasons) != 2 || res.Reasons[1] != "apply: no previous configuration to roll back to" {
		t.Errorf("Install: %+v", res)
	}
	if _, ok := s.Current(); ok || s.LastSerial() != 0 {
		t.Error("a configuration that never came up became current")
	}
}

// craft writes a bundle by hand, signed by key, for what Pack refuses to make.
func craft(t *testing.T, key ed25519.PrivateKey, serial uint64, names []string, files map[string]string) []byte {
	t.Helper()
	m := bundle.Manifest{Format: bundle.FormatVersion, Serial: serial, Created: t0, Expires: t0.Add(48 * time.Hour), KeyID: bundle.KeyID(pub(key))}
	for _, n := range names {
		sum := sha256.Sum256([]byte(files[n]))
		m.Files = append(m.Files, bundle.File{Path: n, Size: int64(len(files[n])), SHA256: hex.EncodeToString(sum[:])})
	}
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	put := func(name string, data []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Size: int64(len(data)), Mode: 0o644}); err != nil {
			t.Fatal(err)
		}
		tw.Write(data)
	}
	put("manifest.json", raw)
	put("manifest.sig", ed25519.Sign(key, raw))
	for _, n := range names {
		put("config/"+n, []byte(files[n]))
	}
	tw.Close()
	return buf.Bytes()
}

// TestRejections: each bad bundle is rejected with its exact reason, Apply
// is not called, and the store (all but history.json) stays byte-identical.
func TestRejections(t *testing.T) {
	s, p := newStore(t)
	s.Limits = bundle.Limits{MaxTotal: 64 << 10, MaxFiles: 16, MaxFileSize: 16 << 10}
	mustApply(t, s, mk(t, keyA, 5, cfg("0")))
	cur, _ := s.Current()
	good := mk(t, keyA, 6, cfg("0"))
	flipped := bytes.Clone(good)
	i := bytes.LastIndex(flipped, []byte("kind: BrokerListener"))
	flipped[i] = 'K'
	badSig := bytes.Clone(good)
	i = bytes.Index(badSig, []byte(`"serial": 6`))
	badSig[i+len(`"serial": `)] = '9'
	for _, tt := range []struct {
		name string
		data []byte
		want error
		msg  string
	}{
		{"bad signature", badSig, bundle.ErrSignature, "does not match its signature"},
		{"untrusted key", mk(t, keyB, 6, cfg("0")), bundle.ErrUntrusted, "signed by key " + bundle.KeyID(pub(keyB))},
		{"replayed serial", mk(t, keyA, 5, cfg("0")), bundle.ErrReplay, "serial 5 is not above 5"},
		{"older serial", mk(t, keyA, 4, cfg("0")), bundle.ErrReplay, "serial 4 is not above 5"},
		{"expired", mk(t, keyA, 6, cfg("0"), func(o *bundle.PackOptions) { o.Expires = t0.Add(time.Minute) }), bundle.ErrExpired, "expired 2026-11-23T12:01:00Z"},
		{"not yet valid", mk(t, keyA, 6, cfg("0"), func(o *bundle.PackOptions) { o.Created, o.Expires = t0.Add(3*time.Hour), t0.Add(9*time.Hour) }), bundle.ErrNotYetValid, "created 2026-11-23T15:00:00Z"},
		{"other device", mk(t, keyA, 6, cfg("0"), func(o *bundle.PackOptions) { o.Device = &bundle.Device{Serial: "10000000beef"} }), bundle.ErrDevice, `for serial "10000000beef"`},
		{"invalid configuration", mk(t, keyA, 6, map[string]string{"invalid": "x"}), nil, "invalid:1: BrokerListener/x: spec.ports[0].port: required"},
		{"path traversal", craft(t, keyA, 6, []string{"../../etc/cron.d/x"}, map[string]string{"../../etc/cron.d/x": "* * * * * root sh"}), bundle.ErrPath, "climbs out with .."},
		{"truncated file", good[:len(good)/2], bundle.ErrTruncated, ""},
		{"hash mismatch", flipped, bundle.ErrHash, "listeners.yaml has SHA-256"},
		{"oversize", mk(t, keyA, 6, map[string]string{"port": "0", "big": strings.Repeat("x", 20<<10)}, func(o *bundle.PackOptions) { o.Limits = bundle.DefaultLimits() }), bundle.ErrOversize, "big is 20480 bytes, more than 16384"},
		{"retire the last key", mk(t, keyA, 6, cfg("0"), func(o *bundle.PackOptions) { o.Retire = []ed25519.PublicKey{pub(keyA)} }), bundle.ErrKeys, "would leave no trusted key"},
		{"not a bundle", []byte("hello"), bundle.ErrFormat, "5 bytes, shorter than an archive header"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := snapshot(t, s.Dir)
			calls := len(p.calls)
			res := install(t, s, tt.data)
			if res.Applied || res.RolledBack || res.Err == nil {
				t.Fatalf("Install: %+v, want a rejection", res)
			}
			if tt.want != nil && !errors.Is(res.Err, tt.want) {
				t.Errorf("Err: got %v, want %v", res.Err, tt.want)
			}
			if !strings.Contains(strings.Join(res.Reasons, "\n"), tt.msg) {
				t.Errorf("Reasons: got %q, want one containing %q", res.Reasons, tt.msg)
			}
			if diff := diffSnap(before, snapshot(t, s.Dir)); diff != "" {
				t.Errorf("the store changed:\n%s", diff)
			}
			if len(p.calls) != calls || p.live(t) != cur {
				t.Errorf("Apply was called: %v", p.calls[calls:])
			}
			h := s.History()
			if last := h[len(h)-1]; last.Applied || !slices.Equal(last.Reasons, res.Reasons) {
				t.Errorf("history's last entry: %+v, want the rejection", last)
			}
		})
	}
	// A stick pulled mid-read: the read fails, nothing changes.
	before := snapshot(t, s.Dir)
	res := s.Install(context.Background(), io.MultiReader(bytes.NewReader(good[:len(good)/2]), errReader{syscall.EIO}))
	if res.Applied || !errors.Is(res.Err, syscall.EIO) {
		t.Errorf("Install from a pulled stick: %+v", res)
	}
	if diff := diffSnap(before, snapshot(t, s.Dir)); diff != "" {
		t.Errorf("the store changed:\n%s", diff)
	}
	// Every reason of an invalid configuration, one each.
	res = install(t, s, mk(t, keyA, 6, map[string]string{"invalid": "x"}))
	if len(res.Reasons) != 2 || !strings.HasPrefix(res.Reasons[1], "invalid:3: Secret/y") {
		t.Errorf("Reasons: %q, want both problems", res.Reasons)
	}
	// The history keeps the first 100 reasons of an attempt.
	res = install(t, s, mk(t, keyA, 6, map[string]string{"many": "x"}))
	h := s.History()
	if got := h[len(h)-1].Reasons; len(res.Reasons) != 150 || len(got) != 101 || got[100] != "... and 50 more" {
		t.Errorf("Reasons: %d in the result, %d in the history ending %q", len(res.Reasons), len(got), got[len(got)-1])
	}
	// History persists across a restart and is bounded.
	s2 := &Store{Dir: s.Dir, Trust: s.Trust, Now: s.Now, HistoryLen: 3}
	mustApply(t, s2, mk(t, keyA, 7, cfg("1")))
	if h := s2.History(); len(h) != 3 || h[2].Serial != 7 || !h[2].Applied {
		t.Errorf("History: %+v", h)
	}
}

func TestEnrolRetire(t *testing.T) {
	s, _ := newStore(t)
	// Signed by the baked key A: enrol B.
	mustApply(t, s, mk(t, keyA, 1, cfg("0"), func(o *bundle.PackOptions) { o.Enrol = []ed25519.PublicKey{pub(keyB)} }))
	// Signed by B: enrol C, retire A (the baked key).
	mustApply(t, s, mk(t, keyB, 2, cfg("0"), func(o *bundle.PackOptions) {
		o.Enrol = []ed25519.PublicKey{pub(keyC)}
		o.Retire = []ed25519.PublicKey{pub(keyA)}
	}))
	// After a restart (a new Store on the same folder), A is retired.
	s2 := &Store{Dir: s.Dir, Trust: s.Trust, Validate: validate, Now: s.Now}
	if got, want := s2.Trusted().IDs(), []string{bundle.KeyID(pub(keyB)), bundle.KeyID(pub(keyC))}; !slices.Equal(got, want) {
		t.Errorf("Trusted: got %v, want %v", got, want)
	}
	res := install(t, s2, mk(t, keyA, 3, cfg("0")))
	if !errors.Is(res.Err, bundle.ErrUntrusted) {
		t.Errorf("a bundle by the retired key: %+v", res)
	}
	mustApply(t, s2, mk(t, keyC, 3, cfg("0")))
	// A rolled-back bundle's key changes do not take effect.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, port, _ := net.SplitHostPort(busy.Addr().String())
	p := new(portApplier)
	defer p.close()
	s2.Apply = p.Apply
	res = install(t, s2, mk(t, keyC, 4, cfg(port), func(o *bundle.PackOptions) { o.Retire = []ed25519.PublicKey{pub(keyB)} }))
	if !res.RolledBack || !s2.Trusted().Contains(pub(keyB)) {
		t.Errorf("after a rollback: %+v, trusted %v", res, s2.Trusted().IDs())
	}
}

// TestCrashLeftovers: what a power cut leaves (a staging folder, an
// extracted folder never committed, a temporary state file) does not
// change what is current and is removed by the next Install.
func TestCrashLeftovers(t *testing.T) {
	s, _ := newStore(t)
	mustApply(t, s, mk(t, keyA, 1, cfg("0")))
	cur, _ := s.Current()
	for _, name := range []string{".staging/secrets/x", "config-00000000000000000002/port", ".state.json.tmp123"} {
		p := filepath.Join(s.Dir, name)
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, []byte("half"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s2 := &Store{Dir: s.Dir, Trust: s.Trust, Validate: validate, Now: s.Now}
	if got, ok := s2.Current(); got != cur || !ok || s2.LastSerial() != 1 {
		t.Errorf("after a crash: Current %q, serial %d; want %q, 1", got, s2.LastSerial(), cur)
	}
	mustApply(t, s2, mk(t, keyA, 2, cfg("7")))
	ents, _ := os.ReadDir(s.Dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	want := []string{"config-00000000000000000001", "config-00000000000000000002", "history.json", "state.json"}
	if !slices.Equal(names, want) {
		t.Errorf("store after the next install: %v, want %v", names, want)
	}
	cur2, _ := s2.Current()
	if got, _ := os.ReadFile(filepath.Join(cur2, "port")); string(got) != "7" {
		t.Errorf("port: %q, want the new bundle's, not the leftover", got)
	}
}

func TestConcurrentInstalls(t *testing.T) {
	s, _ := newStore(t)
	s.Apply = nil
	const n = 8
	bundles := make([][]byte, n)
	for i := range bundles {
		bundles[i] = mk(t, keyA, uint64(i+1), cfg("0"))
	}
	var wg sync.WaitGroup
	results := make([]Result, n)
	for i := range n {
		wg.Go(func() { results[i] = install(t, s, bundles[i]) })
	}
	wg.Wait()
	for i, r := range results {
		if !r.Applied && !errors.Is(r.Err, bundle.ErrReplay) {
			t.Errorf("serial %d: %+v", i+1, r)
		}
	}
	if !results[n-1].Applied || s.LastSerial() != n || len(s.History()) != n {
		t.Errorf("after %d concurrent installs: serial %d, %d in history", n, s.LastSerial(), len(s.History()))
	}
}

// snapshot maps every file under dir except history.json to mode and contents.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case rel == historyFile:
		case d.IsDir():
			out[rel] = info.Mode().String()
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = info.Mode().String() + " " + string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func diffSnap(a, b map[string]string) string {
	var out []string
	for k, v := range a {
		if b[k] != v {
			out = append(out, fmt.Sprintf("%s: %q -> %q", k, v, b[k]))
		}
	}
	for k, v := range b {
		if _, ok := a[k]; !ok {
			out = append(out, fmt.Sprintf("%s: new %q", k, v))
		}
	}
	slices.Sort(out)
	return strings.Join(out, "\n")
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// TestSerialAboveMaxRecovers: a device that applied a serial above
// bundle.MaxSerial before such serials were refused (2^64-1 left it
// unable to take any bundle) accepts bundles above the previous
// configuration's serial again; those up to it stay refused.
func TestSerialAboveMaxRecovers(t *testing.T) {
	s, _ := newStore(t)
	mustApply(t, s, mk(t, keyA, 5, cfg("0")))
	st, err := s.load()
	if err != nil {
		t.Fatal(err)
	}
	// What applying 2^64-1 after 5 left behind.
	huge := fmt.Sprintf("%s%020d", configPre, uint64(math.MaxUint64))
	if err := os.CopyFS(filepath.Join(s.Dir, huge), os.DirFS(filepath.Join(s.Dir, st.Current))); err != nil {
		t.Fatal(err)
	}
	st.Serial, st.Previous, st.Current = math.MaxUint64, st.Current, huge
	if err := s.save(st); err != nil {
		t.Fatal(err)
	}
	if res := install(t, s, mk(t, keyA, 5, cfg("0"))); res.Applied || !errors.Is(res.Err, bundle.ErrReplay) {
		t.Errorf("serial 5 again: %+v, want ErrReplay", res)
	}
	mustApply(t, s, mk(t, keyA, 6, cfg("0")))
	if got := s.LastSerial(); got != 6 {
		t.Errorf("LastSerial: %d, want 6", got)
	}
}
