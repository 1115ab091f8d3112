package certs

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNotIssued is returned by Holder.GetCertificate before a certificate
// was issued or loaded.
var ErrNotIssued = errors.New("certs: certificate not issued yet")

// Holder holds the current certificate of one Secret. A renewal swaps it
// atomically: new handshakes get the new certificate, established
// connections are not touched.
type Holder struct {
	p atomic.Pointer[tls.Certificate]
}

// Load returns the current certificate, or nil.
func (h *Holder) Load() *tls.Certificate { return h.p.Load() }

// GetCertificate is for tls.Config.GetCertificate.
func (h *Holder) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := h.p.Load(); c != nil {
		return c, nil
	}
	return nil, ErrNotIssued
}

// Status reports one managed certificate.
type Status struct {
	Issuer      string    // Issuer.Name()
	NotAfter    time.Time // of the certificate served; zero if none
	NextRenewal time.Time // next issuance attempt
	LastError   error     // of the last attempt; nil after a success
}

// Manager issues certificates, persists them under Dir (one directory per
// Secret name holding tls.crt, tls.key and ca.crt) and renews them.
//
// Now must follow the runtime clock that timers use (time.Now, or the fake
// clock inside a testing/synctest bubble); it exists so that issuance
// times can be fixed in tests.
type Manager struct {
	Dir      string
	Now      func() time.Time // default time.Now
	Logger   *slog.Logger     // default slog.Default()
	RetryMin time.Duration    // first retry after a failed issuance; default 10s
	RetryMax time.Duration    // cap of the doubling backoff; default 1h
	// Issued, if set, is called (without locks held) after a certificate
	// was issued and stored, by Ensure or by a renewal in Run. It must
	// not block.
	Issued func(name string)
	// IssueTimeout bounds each issuance Run makes; default 5 minutes.
	IssueTimeout time.Duration

	mu    sync.Mutex
	certs map[string]*managed
	wake  chan struct{}
}

type managed struct {
	holder Holder

	issueMu  sync.Mutex // serializes issuance for this name
	spec     Spec       // guarded by Manager.mu
	issuer   Issuer     // guarded by Manager.mu
	status   Status     // guarded by Manager.mu
	failures int        // guarded by Manager.mu
}

func (m *Manager) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

func (m *Manager) log() *slog.Logger {
	if m.Logger != nil {
		return m.Logger
	}
	return slog.Default()
}

// SecretDir is the directory holding the Secret name.
func (m *Manager) SecretDir(name string) string { return filepath.Join(m.Dir, name) }

// SecretCA returns a CA issuer that signs with the Secret name under Dir,
// e.g. the one a Certificate with isCA writes.
func (m *Manager) SecretCA(name string) SecretCA {
	return SecretCA{Dir: m.SecretDir(name), SecretName: name}
}

// entry returns the managed entry for name, creating it.
func (m *Manager) entry(name string) *managed {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.initLocked()
	mc := m.certs[name]
	if mc == nil {
		mc = new(managed)
		m.certs[name] = mc
	}
	return mc
}

func (m *Manager) initLocked() {
	if m.certs == nil {
		m.certs = make(map[string]*managed)
		m.wake = make(chan struct{}, 1)
	}
}

// Holder returns the holder of name's certificate; it may be taken
// before Ensure (a listener configured before its certificate exists).
func (m *Manager) Holder(name string) *Holder { return &m.entry(name).holder }

// Ensure makes name managed with spec and issuer and returns its
// certificate: the stored one when it is valid, matches spec, was issued by
// issuer (if it implements IssuedByChecker) and is not yet due for
// renewal; else a newly issued one. When issuance fails, a stored
// certificate that has not expired is kept and returned (Status has the
// error); without one, Ensure returns the error. Either way Run retries.
func (m *Manager) Ensure(ctx context.Context, name string, spec Spec, issuer Issuer) (*tls.Certificate, error) {
	mc, stored, current, err := m.adopt(name, spec, issuer)
	if err != nil {
		return nil, err
	}
	defer mc.issueMu.Unlock()
	defer m.kick()
	if current {
		return stored, nil
	}
	if err := m.issue(ctx, name, mc); err != nil {
		if c := mc.holder.Load(); c != nil {
			return c, nil
		}
		return nil, err
	}
	return mc.holder.Load(), nil
}

// Schedule makes name managed with spec and issuer like Ensure, but never
// issues in the caller: for issuers that take long or need the caller to
// serve first (ACME answers its challenges on the port the certificate is
// for). A stored certificate that is valid, matches and is not yet due
// is loaded and returned; otherwise Run issues one at once and retries
// with backoff, and Schedule returns the stored certificate while it has
// not expired, or nil. Issued reports when a certificate arrives.
func (m *Manager) Schedule(name string, spec Spec, issuer Issuer) (*tls.Certificate, error) {
	mc, stored, _, err := m.adopt(name, spec, issuer)
	if err != nil {
		return nil, err
	}
	mc.issueMu.Unlock()
	m.kick()
	return stored, nil
}

// adopt makes name managed with spec and issuer and loads its stored
// certificate into the holder while it has not expired. current says the
// stored certificate matches spec and issuer and is not yet due; if not,
// it is due now (status NextRenewal). On success the caller holds
// mc.issueMu and must unlock it.
func (m *Manager) adopt(name string, spec Spec, issuer Issuer) (mc *managed, stored *tls.Certificate, current bool, err error) {
	spec, err = spec.normalize(name)
	if err != nil {
		return nil, nil, false, err
	}
	mc = m.entry(name)
	mc.issueMu.Lock()
	m.mu.Lock()
	mc.spec, mc.issuer, mc.failures = spec, issuer, 0
	mc.status = Status{Issuer: issuer.Name()}
	m.mu.Unlock()

	now := m.now()
	stored, err = loadSecret(m.SecretDir(name))
	if err != nil || !now.Before(stored.Leaf.NotAfter) {
		m.mu.Lock()
		mc.status.NextRenewal = now
		m.mu.Unlock()
		return mc, nil, false, nil
	}
	mc.holder.p.Store(stored)
	current = now.Before(spec.renewAt(stored.Leaf)) && spec.matches(stored.Leaf, issuer) && issuedBy(issuer, stored)
	next := now
	if current {
		next = spec.renewAt(stored.Leaf)
	}
	m.setStatus(mc, stored.Leaf, next, nil)
	return mc, stored, current, nil
}

func issuedBy(is Issuer, c *tls.Certificate) bool {
	chk, ok := is.(IssuedByChecker)
	if !ok {
		return true
	}
	chain := []*x509.Certificate{c.Leaf}
	for _, der := range c.Certificate[1:] {
		x, err := x509.ParseCertificate(der)
		if err != nil {
			return false
		}
		chain = append(chain, x)
	}
	return chk.IssuedBy(chain)
}

// issue issues name's certificate, persists it and swaps it in; on
// failure it records the error and schedules a retry. mc.issueMu is held.
func (m *Manager) issue(ctx context.Context, name string, mc *managed) error {
	m.mu.Lock()
	spec, issuer := mc.spec, mc.issuer
	m.mu.Unlock()
	c, err := m.issueOnce(ctx, name, spec, issuer)
	if err != nil {
		err = fmt.Errorf("%s: %w", issuer.Name(), err)
		m.mu.Lock()
		mc.failures++
		mc.status.LastError = err
		mc.status.NextRenewal = m.now().Add(m.backoff(mc.failures))
		m.mu.Unlock()
		m.log().Warn("certificate issuance failed", "secret", name, "issuer", issuer.Name(), "err", err)
		return err
	}
	mc.holder.p.Store(c)
	m.mu.Lock()
	mc.failures = 0
	m.mu.Unlock()
	m.setStatus(mc, c.Leaf, spec.renewAt(c.Leaf), nil)
	m.log().Info("certificate issued", "secret", name, "issuer", issuer.Name(), "notAfter", c.Leaf.NotAfter)
	if m.Issued != nil {
		m.Issued(name)
	}
	return nil
}

func (m *Manager) issueOnce(ctx context.Context, name string, spec Spec, issuer Issuer) (*tls.Certificate, error) {
	dir := m.SecretDir(name)
	var key crypto.Signer
	if spec.RotationPolicy == RotateNever {
		if k, err := loadKey(dir); err == nil && spec.Key.Matches(k.Public()) {
			key = k
		}
	}
	if key == nil {
		var err error
		if key, err = spec.Key.Generate(); err != nil {
			return nil, err
		}
	}
	is, err := issuer.Issue(ctx, &Request{
		CommonName: spec.CommonName,
		DNSNames:   spec.DNSNames,
		IPs:        spec.IPs,
		IsCA:       spec.IsCA,
		Duration:   spec.Duration,
		Key:        key,
		Now:        m.now(),
	})
	if err != nil {
		return nil, err
	}
	var chain []*x509.Certificate
	for _, der := range is.Chain {
		x, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("issuer returned a bad certificate: %w", err)
		}
		chain = append(chain, x)
	}
	if len(chain) == 0 || !publicKeyOf(key).Equal(chain[0].PublicKey) {
		return nil, errors.New("issuer returned a certificate for another key")
	}
	if err := writeSecret(dir, is, key); err != nil {
		return nil, err
	}
	return tlsCert(chain, key), nil
}

// issueTimeout bounds one issuance by Run.
func (m *Manager) issueTimeout() time.Duration {
	if m.IssueTimeout > 0 {
		return m.IssueTimeout
	}
	return 5 * time.Minute
}

func (m *Manager) backoff(failures int) time.Duration {
	lo, hi := m.RetryMin, m.RetryMax
	if lo <= 0 {
		lo = 10 * time.Second
	}
	if hi <= 0 {
		hi = time.Hour
	}
	d := lo
	for i := 1; i < failures && d < hi; i++ {
		d *= 2
	}
	return min(d, hi)
}

func (m *Manager) setStatus(mc *managed, leaf *x509.Certificate, next time.Time, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	mc.status.NotAfter = leaf.NotAfter
	mc.status.NextRenewal = next
	mc.status.LastError = err
}

// kick wakes Run to recompute its next deadline.
func (m *Manager) kick() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Status returns name's status.
func (m *Manager) Status(name string) (Status, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	mc, ok := m.certs[name]
	if !ok || mc.issuer == nil {
		return Status{}, false
	}
	return mc.status, true
}

// Statuses returns the status of every managed certificate.
func (m *Manager) Statuses() map[string]Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]Status, len(m.certs))
	for name, mc := range maps.All(m.certs) {
		if mc.issuer != nil {
			out[name] = mc.status
		}
	}
	return out
}

// Remove stops renewing name. Its files and holder stay.
func (m *Manager) Remove(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.certs, name)
}

// Run renews each managed certificate when it is due (NotAfter −
// RenewBefore) and retries failed issuances with a doubling backoff, until
// ctx is done. A failed renewal keeps the current certificate.
func (m *Manager) Run(ctx context.Context) error {
	m.mu.Lock()
	m.initLocked()
	m.mu.Unlock()
	for {
		due, next := m.due()
		for _, name := range due {
			m.renew(ctx, name)
		}
		if len(due) > 0 {
			continue
		}
		var timer <-chan time.Time
		t := time.NewTimer(next.Sub(m.now()))
		if !next.IsZero() {
			timer = t.C
		}
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-m.wake:
		case <-timer:
		}
		t.Stop()
	}
}

// due returns the names due now and the earliest later deadline.
func (m *Manager) due() (due []string, next time.Time) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, mc := range m.certs {
		t := mc.status.NextRenewal
		switch {
		case mc.issuer == nil || t.IsZero():
		case !t.After(now):
			due = append(due, name)
		case next.IsZero() || t.Before(next):
			next = t
		}
	}
	return due, next
}

func (m *Manager) renew(ctx context.Context, name string) {
	m.mu.Lock()
	mc := m.certs[name]
	m.mu.Unlock()
	if mc == nil {
		return
	}
	mc.issueMu.Lock()
	defer mc.issueMu.Unlock()
	m.mu.Lock()
	due := m.certs[name] == mc && !mc.status.NextRenewal.After(m.now())
	m.mu.Unlock()
	if due { // not renewed by a concurrent Ensure meanwhile
		ctx, cancel := context.WithTimeout(ctx, m.issueTimeout())
		defer cancel()
		m.issue(ctx, name, mc)
	}
}
