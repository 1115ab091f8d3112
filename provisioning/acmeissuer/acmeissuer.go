// Package acmeissuer implements certs.Issuer with an ACME CA (RFC 8555)
// through golang.org/x/crypto/acme: it registers an account under a
// persisted key, orders DNS and IP identifiers (RFC 8738), answers
// http-01 and tls-alpn-01 challenges through a shared Challenges registry
// that the appliance mounts on its HTTP and TLS listeners, and finalizes
// the order with a CSR for the requested key.
package acmeissuer

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"

	"golang.org/x/crypto/acme"

	"edgebroker/provisioning/certs"
)

// Config configures one ACME issuer (a cert-manager Issuer with acme:).
type Config struct {
	Server string // directory URL, e.g. https://acme-v02.api.letsencrypt.org/directory
	Email  string // optional account contact

	// AccountKeyFile holds the account key (PEM). It is created (EC
	// P-256, mode 0600, written atomically) on first use if missing and
	// reused afterwards, so a restart keeps the account.
	AccountKeyFile string

	CABundle      []byte // PEM roots for the server's HTTPS (a private ACME CA); empty: system roots
	SkipTLSVerify bool   // do not verify the server's HTTPS certificate at all

	EAB *acme.ExternalAccountBinding // optional external account binding

	// HTTP01 and TLSALPN01 enable the solvers; at least one must be.
	// When a CA offers both, tls-alpn-01 is used.
	HTTP01, TLSALPN01 bool

	// Profile is an optional ACME issuance profile (e.g. "shortlived" on
	// Let's Encrypt and Pebble); the order fails when the CA does not
	// advertise it.
	Profile string

	Challenges *Challenges  // where answers are published; required
	Logger     *slog.Logger // default slog.Default()
}

// Issuer is a certs.Issuer backed by an ACME CA. It is safe for
// concurrent use; each Issue runs one order.
type Issuer struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex // guards client; held while registering
	client *acme.Client
}

var (
	_ certs.Issuer          = (*Issuer)(nil)
	_ certs.IssuedByChecker = (*Issuer)(nil)
)

// New checks cfg and returns an issuer. It does no I/O: the account key
// is loaded (or created) and the account registered on the first Issue.
func New(cfg Config) (*Issuer, error) {
	u, err := url.Parse(cfg.Server)
	switch {
	case cfg.Server == "":
		return nil, errors.New("acme: no server (directory URL)")
	case err != nil:
		return nil, fmt.Errorf("acme: server: %w", err)
	case u.Scheme != "https" && u.Scheme != "http" || u.Host == "":
		return nil, fmt.Errorf("acme: server %q is not an http(s) URL", cfg.Server)
	case cfg.AccountKeyFile == "":
		return nil, errors.New("acme: no account key file")
	case !cfg.HTTP01 && !cfg.TLSALPN01:
		return nil, errors.New("acme: no solver enabled (want http01 or tlsAlpn01)")
	case cfg.Challenges == nil:
		return nil, errors.New("acme: no Challenges registry")
	case cfg.EAB != nil && (cfg.EAB.KID == "" || len(cfg.EAB.Key) == 0):
		return nil, errors.New("acme: external account binding needs a key ID and a key")
	}
	if cfg.Email != "" && (strings.ContainsAny(cfg.Email, " \t\r\n,") || !strings.Contains(cfg.Email, "@")) {
		return nil, fmt.Errorf("acme: email %q is not an address", cfg.Email)
	}
	if _, err := httpClient(cfg.CABundle, cfg.SkipTLSVerify); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Issuer{cfg: cfg, log: log.With("issuer", "acme "+cfg.Server)}, nil
}

// Name implements certs.Issuer.
func (is *Issuer) Name() string { return "acme " + is.cfg.Server }

// AccountURL returns the account's URL at the CA once an Issue has
// registered (or found) it, else "".
func (is *Issuer) AccountURL() string {
	is.mu.Lock()
	defer is.mu.Unlock()
	if is.client == nil {
		return ""
	}
	return string(is.client.KID)
}

// IssuedBy implements certs.IssuedByChecker, so that a certificate stored
// by another kind of issuer is replaced when a Secret switches to ACME:
// an ACME chain has a leaf that is not self-signed and is signed by the
// next certificate. (A chain from the on-device CA passes this check too;
// telling CAs apart would need the CA's roots, which ACME does not name.)
func (is *Issuer) IssuedBy(chain []*x509.Certificate) bool {
	if len(chain) < 2 || chain[0].IsCA {
		return false
	}
	leaf := chain[0]
	if leaf.CheckSignatureFrom(leaf) == nil {
		return false
	}
	return leaf.CheckSignatureFrom(chain[1]) == nil
}

// account returns a client with a registered account: it loads or
// creates the account key and registers it (or finds the account the key
// already has) on first use. A failure is retried on the next call.
func (is *Issuer) account(ctx context.Context) (*acme.Client, error) {
	is.mu.Lock()
	defer is.mu.Unlock()
	if is.client != nil {
		return is.client, nil
	}
	key, created, err := loadOrCreateKey(is.cfg.AccountKeyFile)
	if err != nil {
		return nil, err
	}
	if created {
		is.log.Info("acme account key created", "file", is.cfg.AccountKeyFile)
	}
	hc, err := httpClient(is.cfg.CABundle, is.cfg.SkipTLSVerify)
	if err != nil {
		return nil, err
	}
	c := &acme.Client{Key: key, HTTPClient: hc, DirectoryURL: is.cfg.Server, UserAgent: "edgebroker"}
	if _, err := c.Discover(ctx); err != nil {
		return nil, fmt.Errorf("acme: directory %s: %w", is.cfg.Server, unwrapURL(err))
	}
	acct := &acme.Account{ExternalAccountBinding: is.cfg.EAB}
	if is.cfg.Email != "" {
		acct.Contact = []string{"mailto:" + is.cfg.Email}
	}
	a, err := c.Register(ctx, acct, acme.AcceptTOS)
	switch {
	case errors.Is(err, acme.ErrAccountAlreadyExists):
		// Register stored the account URL in c.KID.
		is.log.Info("acme account reused", "account", string(c.KID))
	case err != nil:
		return nil, fmt.Errorf("acme: register account at %s: %w", is.cfg.Server, unwrapURL(err))
	default:
		is.log.Info("acme account registered", "account", a.URI)
	}
	if c.KID == "" {
		return nil, fmt.Errorf("acme: register account at %s: the server returned no account URL", is.cfg.Server)
	}
	is.client = c
	return c, nil
}

// unwrapURL drops net/url's "Post \"https://…\":" wrapper: the caller
// names the step and URL itself.
func unwrapURL(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return ue.Err
	}
	return err
}

// Issue implements certs.Issuer: it orders req's names (its DNS names and
// IP addresses, plus the common name if it is not among them), answers
// the challenges, and finalizes the order with a CSR signed by req.Key.
// The lifetime is the CA's (or its profile's): req.Duration is not sent,
// as most CAs reject notAfter in orders. CA certificates cannot be
// ordered.
func (is *Issuer) Issue(ctx context.Context, req *certs.Request) (*certs.Issued, error) {
	ids, csrTmpl, err := identifiers(req)
	if err != nil {
		return nil, err
	}
	c, err := is.account(ctx)
	if err != nil {
		return nil, err
	}
	var opts []acme.OrderOption
	if is.cfg.Profile != "" {
		opts = append(opts, acme.WithOrderIssuanceProfile(acme.ProfileName(is.cfg.Profile)))
	}
	order, err := c.AuthorizeOrder(ctx, ids, opts...)
	if err != nil {
		return nil, fmt.Errorf("acme: new order for %s: %w", idList(ids), unwrapURL(err))
	}
	is.log.Info("acme order created", "order", order.URI, "identifiers", idList(ids))
	if err := is.authorize(ctx, c, order); err != nil {
		return nil, err
	}
	orderURL := order.URI
	if order, err = c.WaitOrder(ctx, orderURL); err != nil {
		return nil, fmt.Errorf("acme: order %s: %w", orderURL, unwrapURL(err))
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, csrTmpl, req.Key)
	if err != nil {
		return nil, fmt.Errorf("acme: certificate request: %w", err)
	}
	der, _, err := c.CreateCertFromOrder(ctx, order, csr, true)
	if err != nil {
		return nil, fmt.Errorf("acme: finalize order %s: %w", order.URI, unwrapURL(err))
	}
	issued, err := checkChain(der, req.Key)
	if err != nil {
		return nil, fmt.Errorf("acme: order %s: %w", order.URI, err)
	}
	is.log.Info("acme certificate issued", "order", order.URI, "notAfter", issued.NotAfter)
	return issued, nil
}

// identifiers returns the order identifiers for req and the CSR template.
func identifiers(req *certs.Request) ([]acme.AuthzID, *x509.CertificateRequest, error) {
	switch {
	case req.IsCA:
		return nil, nil, errors.New("acme: an ACME CA does not issue CA certificates (isCA)")
	case req.Key == nil:
		return nil, nil, errors.New("acme: request has no key")
	}
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: req.CommonName}}
	var ids []acme.AuthzID
	addDNS := func(name string) {
		name = strings.ToLower(strings.TrimSuffix(name, "."))
		if !slices.Contains(tmpl.DNSNames, name) {
			tmpl.DNSNames = append(tmpl.DNSNames, name)
			ids = append(ids, acme.AuthzID{Type: "dns", Value: name})
		}
	}
	addIP := func(ip net.IP) {
		if v4 := ip.To4(); v4 != nil {
			ip = v4
		}
		if !slices.ContainsFunc(tmpl.IPAddresses, ip.Equal) {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			ids = append(ids, acme.AuthzID{Type: "ip", Value: ip.String()})
		}
	}
	if cn := req.CommonName; cn != "" {
		// cert-manager orders the common name too (a CA only puts names
		// it validated in a certificate), and first: CAs that set a
		// common name take the first name.
		if ip := net.ParseIP(cn); ip != nil {
			addIP(ip)
		} else {
			addDNS(cn)
		}
	}
	for _, d := range req.DNSNames {
		addDNS(d)
	}
	for _, ip := range req.IPs {
		if ip.To16() == nil {
			return nil, nil, fmt.Errorf("acme: bad IP address %v", ip)
		}
		addIP(ip)
	}
	if len(ids) == 0 {
		return nil, nil, errors.New("acme: request has no DNS name or IP address")
	}
	return ids, tmpl, nil
}

func idList(ids []acme.AuthzID) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = id.Type + ":" + id.Value
	}
	return strings.Join(s, ",")
}

// checkChain parses the CA's chain (leaf first), checks that it certifies
// key and is in order, and drops a self-signed root at its end.
func checkChain(der [][]byte, key crypto.Signer) (*certs.Issued, error) {
	var chain []*x509.Certificate
	for i, d := range der {
		c, err := x509.ParseCertificate(d)
		if err != nil {
			return nil, fmt.Errorf("certificate %d of the chain: %w", i+1, err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil, errors.New("the CA returned no certificate")
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(chain[0].PublicKey) {
		return nil, errors.New("the CA returned a certificate for another key")
	}
	for i := 0; i+1 < len(chain); i++ {
		if err := chain[i].CheckSignatureFrom(chain[i+1]); err != nil {
			return nil, fmt.Errorf("the CA returned a chain out of order: certificate %d is not signed by certificate %d: %w", i+1, i+2, err)
		}
	}
	top := der[len(der)-1]
	if n := len(chain); n > 1 && chain[n-1].CheckSignatureFrom(chain[n-1]) == nil {
		der = der[:n-1] // RFC 5246 §7.4.2: the root is left out
	}
	return &certs.Issued{Chain: der, CA: top, NotAfter: chain[0].NotAfter}, nil
}

// ChoosesLifetime implements certs.LifetimeChooser: the ACME CA (or the
// order's profile) decides how long certificates live, so Spec.Duration
// does not make a stored certificate stale.
func (is *Issuer) ChoosesLifetime() {}
