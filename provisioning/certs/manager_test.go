package certs

import (
	"context"
	"crypto"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func serialOf(c *tls.Certificate) string { return c.Leaf.SerialNumber.String() }

func ensure(t *testing.T, m *Manager, name string, spec Spec, is Issuer) *tls.Certificate {
	t.Helper()
	c, err := m.Ensure(context.Background(), name, spec, is)
	if err != nil {
		t.Fatalf("Ensure(%s): %v", name, err)
	}
	return c
}

func TestManagerPersists(t *testing.T) {
	dir := t.TempDir()
	now := t0
	m := &Manager{Dir: dir, Now: func() time.Time { return now }}
	spec := Spec{DNSNames: []string{"a.local"}, Duration: 24 * time.Hour}
	c := ensure(t, m, "srv", spec, SelfSigned{})
	for _, f := range []struct {
		name string
		perm os.FileMode
	}{{"srv", 0o700 | os.ModeDir}, {"srv/tls.key", 0o600}, {"srv/tls.crt", 0o644}, {"srv/ca.crt", 0o644}} {
		fi, err := os.Stat(filepath.Join(dir, f.name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode() & (os.ModePerm | os.ModeDir); got != f.perm {
			t.Errorf("%s: mode %v, want %v", f.name, got, f.perm)
		}
	}
	crt, _ := os.ReadFile(filepath.Join(dir, "srv", "tls.crt"))
	key, _ := os.ReadFile(filepath.Join(dir, "srv", "tls.key"))
	if _, err := ParseChain(crt, key); err != nil {
		t.Errorf("stored Secret does not parse: %v", err)
	}
	st, ok := m.Status("srv")
	if want := (Status{Issuer: "selfSigned", NotAfter: t0.Add(24 * time.Hour), NextRenewal: t0.Add(16 * time.Hour)}); !ok || st != want {
		t.Errorf("Status: got %+v, want %+v", st, want)
	}
	if c.Leaf.Subject.CommonName != "a.local" {
		t.Errorf("CommonName: got %q, want the first DNS name", c.Leaf.Subject.CommonName)
	}

	// A restart loads the same certificate, unless the inputs changed.
	for _, tt := range []struct {
		name   string
		spec   Spec
		is     Issuer
		at     time.Time
		reused bool
	}{
		{"same", spec, SelfSigned{}, t0.Add(time.Hour), true},
		{"same, spelled differently", Spec{DNSNames: []string{"a.local"}, Duration: 24 * time.Hour, Key: KeySpec{"Ec256", 0}, RotationPolicy: RotateAlways}, SelfSigned{}, t0, true},
		{"shorter duration kept", Spec{DNSNames: []string{"a.local"}, Duration: 48 * time.Hour}, SelfSigned{}, t0, true},
		{"due for renewal", spec, SelfSigned{}, t0.Add(16 * time.Hour), false},
		{"expired", spec, SelfSigned{}, t0.Add(25 * time.Hour), false},
		{"dns added", spec.WithNames([]string{"b.local"}, nil), SelfSigned{}, t0, false},
		{"ip added", spec.WithNames(nil, []net.IP{net.IPv4(192, 0, 2, 1)}), SelfSigned{}, t0, false},
		{"common name", Spec{CommonName: "x", DNSNames: []string{"a.local"}, Duration: 24 * time.Hour}, SelfSigned{}, t0, false},
		{"key algorithm", Spec{DNSNames: []string{"a.local"}, Duration: 24 * time.Hour, Key: KeySpec{"Ed25519", 0}}, SelfSigned{}, t0, false},
		{"longer duration", Spec{DNSNames: []string{"a.local"}, Duration: 12 * time.Hour}, SelfSigned{}, t0, false},
		{"isCA", Spec{CommonName: "a.local", DNSNames: []string{"a.local"}, Duration: 24 * time.Hour, IsCA: true}, SelfSigned{}, t0, false},
		{"other issuer", spec, nil, t0, false},
	} {
		if tt.name == "other issuer" {
			ca, err := QuickStartCA(filepath.Join(t.TempDir(), "qs"), filepath.Join(t.TempDir(), "ca.crt"), t0)
			if err != nil {
				t.Fatal(err)
			}
			tt.is = ca
		}
		t.Run(tt.name, func(t *testing.T) {
			d := t.TempDir()
			os.CopyFS(d, os.DirFS(dir))
			now := tt.at
			m2 := &Manager{Dir: d, Now: func() time.Time { return now }}
			got := ensure(t, m2, "srv", tt.spec, tt.is)
			if reused := serialOf(got) == serialOf(c); reused != tt.reused {
				t.Errorf("reused the stored certificate: got %v, want %v", reused, tt.reused)
			}
		})
	}
}

func TestSpecInvalid(t *testing.T) {
	m := &Manager{Dir: t.TempDir()}
	for _, spec := range []Spec{
		{RenewBefore: DefaultDuration},
		{Duration: time.Hour, RenewBefore: 2 * time.Hour},
		{Duration: -time.Hour},
		{Key: KeySpec{"RSA", 1024}},
		{RotationPolicy: "Sometimes"},
	} {
		if _, err := m.Ensure(context.Background(), "x", spec, SelfSigned{}); err == nil {
			t.Errorf("Ensure(%+v): got nil error", spec)
		}
	}
}

func TestRotationPolicy(t *testing.T) {
	for _, tt := range []struct {
		policy  string
		sameKey bool
	}{{RotateAlways, false}, {"", false}, {RotateNever, true}} {
		t.Run(tt.policy, func(t *testing.T) {
			now := t0
			m := &Manager{Dir: t.TempDir(), Now: func() time.Time { return now }}
			spec := Spec{DNSNames: []string{"a"}, Duration: time.Hour, RotationPolicy: tt.policy}
			c1 := ensure(t, m, "srv", spec, SelfSigned{})
			now = now.Add(50 * time.Minute) // past 2/3
			c2 := ensure(t, m, "srv", spec, SelfSigned{})
			if serialOf(c1) == serialOf(c2) {
				t.Fatal("not renewed")
			}
			if same := c1.Leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(c2.Leaf.PublicKey); same != tt.sameKey {
				t.Errorf("kept the key: got %v, want %v", same, tt.sameKey)
			}
		})
	}
}

// flaky is an Issuer that fails while fail is set.
type flaky struct {
	SelfSigned
	fail  atomic.Bool
	calls atomic.Int32
}

var errFlaky = errors.New("flaky: down")

func (f *flaky) Issue(ctx context.Context, req *Request) (*Issued, error) {
	f.calls.Add(1)
	if f.fail.Load() {
		return nil, errFlaky
	}
	return f.SelfSigned.Issue(ctx, req)
}

func TestRunRenews(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := &Manager{Dir: t.TempDir(), RetryMin: time.Minute, RetryMax: 3 * time.Minute}
		is := new(flaky)
		spec := Spec{DNSNames: []string{"a"}, Duration: 3 * time.Hour, RenewBefore: time.Hour}
		c1 := ensure(t, m, "srv", spec, is)
		h := m.Holder("srv")
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- m.Run(ctx) }()

		step := func(d time.Duration) {
			time.Sleep(d)
			synctest.Wait()
		}
		step(2*time.Hour - time.Second)
		if got := h.Load(); serialOf(got) != serialOf(c1) {
			t.Fatal("renewed before NotAfter - renewBefore")
		}
		step(time.Second)
		c2 := h.Load()
		if serialOf(c2) == serialOf(c1) {
			t.Fatal("not renewed at NotAfter - renewBefore")
		}
		st, _ := m.Status("srv")
		if want := time.Now().Add(2 * time.Hour); !st.NextRenewal.Equal(want) || st.LastError != nil {
			t.Errorf("status after renewal: %+v, want NextRenewal %v", st, want)
		}

		// Failures keep the certificate and back off 1m, 2m, 3m, 3m.
		is.fail.Store(true)
		step(2 * time.Hour)
		for i, d := range []time.Duration{time.Minute, 2 * time.Minute, 3 * time.Minute, 3 * time.Minute} {
			st, _ := m.Status("srv")
			if !errors.Is(st.LastError, errFlaky) || !st.NextRenewal.Equal(time.Now().Add(d)) {
				t.Fatalf("failure %d: status %+v, want LastError and NextRenewal in %v", i+1, st, d)
			}
			if h.Load() != c2 {
				t.Fatal("a failed renewal replaced the certificate")
			}
			step(d)
		}
		is.fail.Store(false)
		step(3 * time.Minute)
		if st, _ := m.Status("srv"); st.LastError != nil || h.Load() == c2 {
			t.Errorf("after recovery: status %+v, certificate unchanged %v", st, h.Load() == c2)
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run: got %v, want context.Canceled", err)
		}
	})
}

func TestEnsureNotReadyThenRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := &Manager{Dir: t.TempDir(), RetryMin: 10 * time.Second}
		h := m.Holder("leaf")
		if _, err := h.GetCertificate(nil); !errors.Is(err, ErrNotIssued) {
			t.Errorf("GetCertificate before issuance: got %v, want ErrNotIssued", err)
		}
		_, err := m.Ensure(t.Context(), "leaf", Spec{DNSNames: []string{"a"}}, m.SecretCA("test-ca"))
		if !errors.Is(err, ErrNotReady) {
			t.Fatalf("Ensure with a missing CA: got %v, want ErrNotReady", err)
		}
		if st, ok := m.Status("leaf"); !ok || st.LastError == nil || st.Issuer != "ca test-ca" {
			t.Errorf("Status: %+v, %v", st, ok)
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go m.Run(ctx)
		ensure(t, m, "test-ca", Spec{IsCA: true}, SelfSigned{})
		time.Sleep(10 * time.Second)
		synctest.Wait()
		c, err := h.GetCertificate(nil)
		if err != nil {
			t.Fatalf("after the CA appeared: %v", err)
		}
		if got := c.Leaf.Issuer.CommonName; got != "test-ca" {
			t.Errorf("leaf issuer: got %q, want test-ca", got)
		}
		cancel()
	})
}

// TestScheduleIssuesInRun: Schedule returns at once without issuing; Run
// issues, retries a failure with backoff, and Issued reports the result.
// A restart with the stored certificate issues nothing.
func TestScheduleIssuesInRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		issued := make(chan string, 4)
		dir := t.TempDir()
		m := &Manager{Dir: dir, RetryMin: time.Minute, Issued: func(name string) { issued <- name }}
		is := new(flaky)
		is.fail.Store(true)
		spec := Spec{DNSNames: []string{"a"}, Duration: 3 * time.Hour, RenewBefore: time.Hour}
		c, err := m.Schedule("srv", spec, is)
		if c != nil || err != nil {
			t.Fatalf("Schedule without a stored certificate: %v, %v; want nil, nil", c, err)
		}
		if is.calls.Load() != 0 {
			t.Fatal("Schedule issued in the caller")
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go m.Run(ctx)
		synctest.Wait()
		if st, _ := m.Status("srv"); !errors.Is(st.LastError, errFlaky) || len(issued) != 0 {
			t.Fatalf("after a failed first attempt: %+v, issued %d", st, len(issued))
		}
		is.fail.Store(false)
		time.Sleep(time.Minute)
		synctest.Wait()
		if got := <-issued; got != "srv" || m.Holder("srv").Load() == nil {
			t.Fatalf("Issued(%q), holder %v", got, m.Holder("srv").Load())
		}
		cancel()

		m2 := &Manager{Dir: dir, Issued: func(name string) { issued <- name }}
		n := is.calls.Load()
		if c, err := m2.Schedule("srv", spec, is); c == nil || err != nil || is.calls.Load() != n {
			t.Errorf("Schedule after a restart: %v, %v, %d issuances; want the stored certificate", c, err, is.calls.Load()-n)
		}
	})
}

// acmeLike issues as an ACME CA does: no CommonName (it is a SAN) and a
// lifetime of its own choosing.
type acmeLike struct {
	SelfSigned
	calls atomic.Int32
}

func (a *acmeLike) ChoosesLifetime() {}

func (a *acmeLike) Issue(ctx context.Context, req *Request) (*Issued, error) {
	a.calls.Add(1)
	r := *req
	r.CommonName, r.Duration = "", 6*24*time.Hour
	return a.SelfSigned.Issue(ctx, &r)
}

// TestStoredACMECertificateKept: a certificate without a CommonName and
// with the CA's lifetime still matches its Spec after a restart, so the
// device does not reissue (and burn an ACME CA's rate limits) at every
// start.
func TestStoredACMECertificateKept(t *testing.T) {
	dir := t.TempDir()
	is := new(acmeLike)
	spec := Spec{DNSNames: []string{"gw.example"}, Duration: 90 * 24 * time.Hour, RenewBefore: 2 * 24 * time.Hour}
	ensure(t, &Manager{Dir: dir}, "srv", spec, is)
	ensure(t, &Manager{Dir: dir}, "srv", spec, is)
	if n := is.calls.Load(); n != 1 {
		t.Errorf("%d issuances for two starts, want 1", n)
	}
}
