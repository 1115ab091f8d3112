package appliance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"edgebroker/appliance/config"
	"edgebroker/provisioning/atomicfile"
	"edgebroker/provisioning/certs"
)

// CAFile is where the appliance exports the CA certificate clients need
// for its Automatic TLS ports (mosquitto_pub --cafile DATA/ca.crt).
const CAFile = "ca.crt"

// issueTimeout bounds issuing one certificate on the device.
const issueTimeout = time.Minute

func newCertManager(dataDir string, log *slog.Logger) *certs.Manager {
	return &certs.Manager{Dir: filepath.Join(dataDir, "certs"), Logger: log.With("subsystem", "certs")}
}

// errACME: ACME issuers arrive later (issue 6).
var errACME = errors.New("ACME issuers are not supported yet")

// issuerFor maps a cert-manager issuerRef onto an issuer of the device.
func issuerFor(set *config.Set, m *certs.Manager, ref config.IssuerRef) (certs.Issuer, error) {
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
		return nil, errACME
	}
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
func ensureCertificates(set *config.Set, m *certs.Manager) map[string]error {
	pending := map[string]error{}
	todo := append([]*config.Certificate(nil), set.Certificates...)
	for len(todo) > 0 {
		var later []*config.Certificate
		for _, c := range todo {
			if err := ensureCertificate(set, m, c); err != nil {
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

func ensureCertificate(set *config.Set, m *certs.Manager, c *config.Certificate) error {
	is, err := issuerFor(set, m, c.Spec.IssuerRef)
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
	ctx, cancel := context.WithTimeout(context.Background(), issueTimeout)
	defer cancel()
	_, err = m.Ensure(ctx, c.Spec.SecretName, spec, is)
	return err
}

// automaticTLS prepares a tls.mode Automatic port: its certificate is
// issued (or loaded) now and renewed by the Manager, and handshakes read
// it from the Manager's holder. It returns why the port must wait, or "".
func automaticTLS(set *config.Set, m *certs.Manager, p *port, cs *config.CertManagerCertificateSpec, dataDir string) string {
	secret := automaticSecret(p, cs)
	wait := func(err error) string {
		return fmt.Sprintf("BrokerListener/%s: port %d: Awaiting certificate %s from %s/%s: %v%s", p.listener, p.number, secret, cs.IssuerRef.Kind, cs.IssuerRef.Name, err, caHint(set, cs.IssuerRef))
	}
	is, err := issuerFor(set, m, cs.IssuerRef)
	if err != nil {
		return wait(err)
	}
	d, _ := cs.Duration.Value()
	rb, _ := cs.RenewBefore.Value()
	spec := certs.Spec{
		DNSNames: cs.SAN.DNS, IPs: parseIPs(cs.SAN.IP), Duration: d, RenewBefore: rb,
		Key: certs.KeySpec{Algorithm: cs.PrivateKey.Algorithm}, RotationPolicy: cs.PrivateKey.RotationPolicy,
	}.WithNames(deviceNames())
	ctx, cancel := context.WithTimeout(context.Background(), issueTimeout)
	defer cancel()
	if _, err := m.Ensure(ctx, secret, spec, is); err != nil {
		return wait(err)
	}
	p.tls.GetCertificate = m.Holder(secret).GetCertificate
	if ca, err := os.ReadFile(filepath.Join(m.SecretDir(secret), "ca.crt")); err == nil {
		if err := atomicfile.WriteFile(filepath.Join(dataDir, CAFile), ca, 0o644); err != nil {
			return wait(fmt.Errorf("exporting %s: %w", CAFile, err))
		}
	}
	return ""
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
