package appliance

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/acme"

	"edgebroker/appliance/config"
	"edgebroker/provisioning/acmeissuer"
	"edgebroker/provisioning/atomicfile"
	"edgebroker/provisioning/certs"
)

// CAFile is where the appliance exports the CA certificate clients need
// for its Automatic TLS ports (mosquitto_pub --cafile DATA/ca.crt).
const CAFile = "ca.crt"

// issueTimeout bounds issuing one certificate on the device.
const issueTimeout = time.Minute

// issuers is what the appliance issues certificates with: the Manager
// that stores and renews them, and the ACME challenge answers shared by
// every TLS port and the http-01 port.
type issuers struct {
	m          *certs.Manager
	challenges *acmeissuer.Challenges
	log        *slog.Logger
	// http01 binds the http-01 port the first time an ACME issuer needs
	// it; nil when the appliance serves none.
	http01 func() error
	// keep are certificates the appliance manages besides the
	// configuration's (the status endpoint's): never pruned. Set at
	// construction; read-only.
	keep []string
	// wg counts the http-01 port's goroutines, which end with the
	// context acmeHTTP01 was given; Run waits for them.
	wg sync.WaitGroup
}

func newIssuers(dataDir string, log *slog.Logger) *issuers {
	log = log.With("subsystem", "certs")
	return &issuers{
		m:          &certs.Manager{Dir: filepath.Join(dataDir, "certs"), Logger: log},
		challenges: new(acmeissuer.Challenges),
		log:        log,
	}
}

// issuerFor maps a cert-manager issuerRef onto an issuer of the device.
func (iss *issuers) issuerFor(set *config.Set, ref config.IssuerRef) (certs.Issuer, error) {
	m := iss.m
	kind := ref.Kind
	if kind == "" {
		kind = "Issuer"
	}
	is := set.Issuer(kind, ref.Name)
	switch {
	case is == nil:
		return nil, fmt.Errorf("%s/%s not found", kind, ref.Name)
	case is.Spec.SelfSigned != nil:
		return certs.SelfSigned{}, nil
	case is.Spec.CA != nil:
		name := is.Spec.CA.SecretName
		if sec := set.Secret(name); sec != nil { // a CA the configuration brings
			crt, _ := sec.Bytes("tls.crt")
			key, _ := sec.Bytes("tls.key")
			return certs.NewCA(crt, key)
		}
		return m.SecretCA(name), nil // a CA a Certificate (isCA) writes
	default:
		return iss.acme(set, is)
	}
}

// isACME reports whether ref names an ACME issuer.
func isACME(set *config.Set, ref config.IssuerRef) bool {
	kind := ref.Kind
	if kind == "" {
		kind = "Issuer"
	}
	is := set.Issuer(kind, ref.Name)
	return is != nil && is.Spec.ACME != nil
}

// acme builds an ACME issuer. Its account key lives like cert-manager's,
// in the Secret privateKeySecretRef (key tls.key) on the data partition:
// created on first use, or taken from a Secret the configuration brings.
func (iss *issuers) acme(set *config.Set, is *config.Issuer) (certs.Issuer, error) {
	a := is.Spec.ACME
	keyName := a.PrivateKeySecretRef.Key
	if keyName == "" {
		keyName = "tls.key"
	}
	keyFile := filepath.Join(iss.m.SecretDir(a.PrivateKeySecretRef.Name), keyName)
	if sec := set.Secret(a.PrivateKeySecretRef.Name); sec != nil {
		if b, ok := sec.Bytes(keyName); ok {
			if old, err := os.ReadFile(keyFile); err != nil || !bytes.Equal(old, b) {
				if err := os.MkdirAll(filepath.Dir(keyFile), 0o700); err != nil {
					return nil, err
				}
				if err := atomicfile.WriteFile(keyFile, b, 0o600); err != nil {
					return nil, fmt.Errorf("ACME account key: %w", err)
				}
			}
		}
	}
	cfg := acmeissuer.Config{
		Server: a.Server, Email: a.Email, AccountKeyFile: keyFile, SkipTLSVerify: a.SkipTLSVerify,
		Challenges: iss.challenges, Logger: iss.log.With("issuer", is.Ref()),
	}
	if a.CABundle != "" {
		b, err := base64.StdEncoding.DecodeString(a.CABundle)
		if err != nil {
			return nil, fmt.Errorf("%s: spec.acme.caBundle: %w", is.Ref(), err)
		}
		cfg.CABundle = b
	}
	if eab := a.ExternalAccountBinding; eab != nil {
		var key []byte
		if sec := set.Secret(eab.KeySecretRef.Name); sec != nil {
			key, _ = sec.Bytes(eab.KeySecretRef.Key)
		}
		// cert-manager: the Secret holds the HMAC key base64url-encoded.
		hmac, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(strings.TrimSpace(string(key)), "="))
		if err != nil {
			return nil, fmt.Errorf("%s: spec.acme.externalAccountBinding.keySecretRef: the key is not base64url: %w", is.Ref(), err)
		}
		cfg.EAB = &acme.ExternalAccountBinding{KID: eab.KeyID, Key: hmac}
	}
	for _, sv := range a.Solvers {
		cfg.HTTP01 = cfg.HTTP01 || sv.HTTP01 != nil
		cfg.TLSALPN01 = cfg.TLSALPN01 || sv.TLSALPN01 != nil
	}
	if !cfg.HTTP01 && !cfg.TLSALPN01 {
		cfg.TLSALPN01 = true // answered on the TLS port itself
	}
	if cfg.HTTP01 {
		if iss.http01 == nil {
			cfg.HTTP01 = false
			if !cfg.TLSALPN01 {
				return nil, fmt.Errorf("%s: its http01 solver needs the http-01 port, which this appliance does not serve (-acme-http)", is.Ref())
			}
		} else if err := iss.http01(); err != nil {
			if !cfg.TLSALPN01 {
				return nil, fmt.Errorf("%s: http01 solver: %w", is.Ref(), err)
			}
			iss.log.Warn("http-01 port unavailable; answering tls-alpn-01 only", "issuer", is.Ref(), "err", err)
			cfg.HTTP01 = false
		}
	}
	return acmeissuer.New(cfg)
}

// caHint explains a ca issuer whose Secret nothing in the configuration
// provides (it may still exist on the device from an earlier one).
func caHint(set *config.Set, ref config.IssuerRef) string {
	kind := ref.Kind
	if kind == "" {
		kind = "Issuer"
	}
	is := set.Issuer(kind, ref.Name)
	if is == nil || is.Spec.CA == nil || set.Secret(is.Spec.CA.SecretName) != nil {
		return ""
	}
	for _, c := range set.Certificates {
		if c.Spec.SecretName == is.Spec.CA.SecretName {
			return ""
		}
	}
	return fmt.Sprintf(" (no Secret or Certificate in the configuration provides %s)", is.Spec.CA.SecretName)
}

// ensureCertificates issues or loads every Certificate resource, issuers'
// CAs before the certificates they sign. It returns a problem per
// Certificate that cannot be issued yet.
func (iss *issuers) ensureCertificates(set *config.Set) map[string]error {
	pending := map[string]error{}
	todo := append([]*config.Certificate(nil), set.Certificates...)
	for len(todo) > 0 {
		var later []*config.Certificate
		for _, c := range todo {
			if err := iss.ensureCertificate(set, c); err != nil {
				pending[c.Metadata.Name] = err
				later = append(later, c)
			} else {
				delete(pending, c.Metadata.Name)
			}
		}
		if len(later) == len(todo) {
			break // no progress: what is left waits
		}
		todo = later
	}
	return pending
}

func (iss *issuers) ensureCertificate(set *config.Set, c *config.Certificate) error {
	is, err := iss.issuerFor(set, c.Spec.IssuerRef)
	if err != nil {
		return err
	}
	d, _ := c.Spec.Duration.Value()
	rb, _ := c.Spec.RenewBefore.Value()
	spec := certs.Spec{
		CommonName: c.Spec.CommonName, DNSNames: c.Spec.DNSNames, IPs: parseIPs(c.Spec.IPAddresses),
		IsCA: c.Spec.IsCA, Duration: d, RenewBefore: rb,
		Key:            certs.KeySpec{Algorithm: c.Spec.PrivateKey.Algorithm, Size: c.Spec.PrivateKey.Size},
		RotationPolicy: c.Spec.PrivateKey.RotationPolicy,
	}
	if isACME(set, c.Spec.IssuerRef) { // issued in the background
		_, err = iss.m.Schedule(c.Spec.SecretName, spec, is)
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), issueTimeout)
	defer cancel()
	_, err = iss.m.Ensure(ctx, c.Spec.SecretName, spec, is)
	return err
}

// automaticTLS prepares a tls.mode Automatic port: its certificate is
// issued (or loaded) now and renewed by the Manager, and handshakes read
// it from the Manager's holder. It returns why the port must wait, or "".
//
// A port whose issuer is ACME is served at once, before its certificate
// exists: the CA validates tls-alpn-01 on that very port. Until the
// certificate arrives its handshakes fail, and status says why.
func (iss *issuers) automaticTLS(set *config.Set, p *port, cs *config.CertManagerCertificateSpec) string {
	m := iss.m
	secret := automaticSecret(p, cs)
	wait := func(err error) string {
		return fmt.Sprintf("BrokerListener/%s: port %d: Awaiting certificate %s from %s/%s: %v%s", p.listener, p.number, secret, cs.IssuerRef.Kind, cs.IssuerRef.Name, err, caHint(set, cs.IssuerRef))
	}
	is, err := iss.issuerFor(set, cs.IssuerRef)
	if err != nil {
		return wait(err)
	}
	d, _ := cs.Duration.Value()
	rb, _ := cs.RenewBefore.Value()
	spec := certs.Spec{
		DNSNames: cs.SAN.DNS, IPs: parseIPs(cs.SAN.IP), Duration: d, RenewBefore: rb,
		Key: certs.KeySpec{Algorithm: cs.PrivateKey.Algorithm}, RotationPolicy: cs.PrivateKey.RotationPolicy,
	}
	if isACME(set, cs.IssuerRef) {
		// A public CA validates only the names configured: not localhost or
		// the device's LAN addresses. Its roots are the clients' own, so no
		// ca.crt is exported.
		if _, err := m.Schedule(secret, spec, is); err != nil {
			return wait(err)
		}
		p.tls.GetCertificate = m.Holder(secret).GetCertificate
		return ""
	}
	spec = spec.WithNames(deviceNames())
	ctx, cancel := context.WithTimeout(context.Background(), issueTimeout)
	defer cancel()
	if _, err := m.Ensure(ctx, secret, spec, is); err != nil {
		return wait(err)
	}
	p.tls.GetCertificate = m.Holder(secret).GetCertificate
	if ca, err := os.ReadFile(filepath.Join(m.SecretDir(secret), "ca.crt")); err == nil {
		p.caPEM = ca
	}
	if _, self := is.(certs.SelfSigned); !self { // a CA, not a lone self-signed certificate
		p.deviceCA = is
	}
	return ""
}

// prune stops renewing certificates the configuration no longer uses
// (their files stay, so a configuration that comes back reuses them).
func (iss *issuers) prune(set *config.Set, ports []*port) {
	keep := map[string]bool{}
	for _, name := range iss.keep {
		keep[name] = true
	}
	for _, c := range set.Certificates {
		keep[c.Spec.SecretName] = true
	}
	for _, p := range ports {
		if p.certInfo != nil && p.certInfo.Mode == config.TLSAutomatic {
			keep[p.certInfo.Secret] = true
		}
	}
	for name := range iss.m.Statuses() {
		if !keep[name] {
			iss.m.Remove(name)
			iss.log.Info("certificate no longer used: not renewed", "secret", name)
		}
	}
}

// exportCAs writes the CA certificates of the Automatic ports' on-device
// issuers to DATA/ca.crt, each once, for clients (mosquitto_pub --cafile),
// and then extra (the status endpoint's CA, when no port's issues its
// certificate: see statusCA). When no port uses one any more and there is
// no extra, the file is removed, so that neither /ca.crt nor a USB report
// hands out a CA the device no longer serves; while an Automatic port
// waits for its certificate (its CA unknown) the file is kept.
func exportCAs(ports []*port, dataDir string, extra []byte) error {
	var all []byte
	waiting := false
	for _, p := range append(ports, &port{caPEM: extra}) {
		if len(p.caPEM) > 0 && !bytes.Contains(all, p.caPEM) {
			all = append(all, p.caPEM...)
		}
		waiting = waiting || p.certInfo != nil && p.certInfo.Mode == string(config.TLSAutomatic) && p.waiting != ""
	}
	path := filepath.Join(dataDir, CAFile)
	if len(all) == 0 {
		if waiting {
			return nil
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("appliance: removing %s no port uses: %w", CAFile, err)
		}
		return nil
	}
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, all) {
		return nil
	}
	if err := atomicfile.WriteFile(path, all, 0o644); err != nil {
		return fmt.Errorf("appliance: exporting %s: %w", CAFile, err)
	}
	return nil
}

// automaticSecret is the Secret an Automatic port's certificate is
// stored in: secretName, or "LISTENER-PORT".
func automaticSecret(p *port, cs *config.CertManagerCertificateSpec) string {
	if cs.SecretName != "" {
		return cs.SecretName
	}
	return fmt.Sprintf("%s-%d", p.listener, p.number)
}

// deviceNames are the names every Automatic certificate carries besides
// the configured SANs: localhost, the host name and the addresses of the
// device, so clients reach it by any of them.
func deviceNames() ([]string, []net.IP) {
	dns := []string{"localhost"}
	if h, err := os.Hostname(); err == nil && h != "" && h != "localhost" {
		dns = append(dns, h)
		if !strings.Contains(h, ".") {
			dns = append(dns, h+".local") // the name mDNS gives the device
		}
	}
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
				ips = append(ips, n.IP)
			}
		}
	}
	return dns, ips
}

func parseIPs(ss []string) []net.IP {
	var ips []net.IP
	for _, s := range ss {
		if ip := net.ParseIP(s); ip != nil {
			ips = append(ips, ip)
		}
	}
	return ips
}

// serveALPN completes the TLS handshakes of a tls-alpn-01 port (the
// challenge certificate is all the CA needs) until ctx ends.
func serveALPN(ctx context.Context, ln net.Listener) error {
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("appliance: -acme-tls: %w", err)
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			c.(*tls.Conn).Handshake()
		}()
	}
}

// acmeHTTP01 returns a function that binds the http-01 port once and
// serves the ACME challenge answers on it until ctx ends. A bind failure
// is returned (and retried at the next call).
func acmeHTTP01(ctx context.Context, addr string, iss *issuers, log *slog.Logger) func() error {
	if addr == "" {
		addr = ":80"
	}
	var mu sync.Mutex
	bound := false
	return func() error {
		mu.Lock()
		defer mu.Unlock()
		if bound {
			return nil
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("http-01 port: %w", err)
		}
		bound = true
		hs, ln := lanHTTP(iss.challenges, ln)
		iss.wg.Go(func() { hs.Serve(ln) })
		iss.wg.Go(func() {
			<-ctx.Done()
			hs.Close()
		})
		log.Info("serving ACME http-01 challenges", "addr", ln.Addr().String())
		return nil
	}
}
