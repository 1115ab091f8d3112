package appliance

import (
	"bytes"
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"

	"edgebroker/provisioning/certs"
)

// StatusCertSecret is the Secret (under DATA/certs) holding the status
// endpoint's certificate when it serves over TLS (Config.StatusTLS).
const StatusCertSecret = "status-server-cert"

// ensureStatusCert issues (or loads) the status endpoint's certificate
// from the on-device CA of the first Automatic TLS port that has one, for
// the device's names (localhost, the host name, its addresses), as that
// port's own certificate is: a client trusting DATA/ca.crt trusts both.
// A certificate from another CA is replaced. A configuration without such
// a port keeps the certificate and the CA it has (the Manager renews it
// with the last CA, whose key stays in DATA/certs; DATA/ca.crt keeps
// carrying it, see statusCA); before any, the status endpoint's
// handshakes fail and the log says why. The caller holds reloadMu.
func (a *Appliance) ensureStatusCert(ports []*port) {
	if !a.cfg.StatusTLS {
		return
	}
	var ca certs.Issuer
	for _, p := range ports {
		if p.deviceCA != nil {
			ca = p.deviceCA
			break
		}
	}
	if ca == nil {
		if a.iss.m.Holder(StatusCertSecret).Load() != nil {
			return // kept, and renewed by its CA
		}
		// Started with such a configuration: the CA in DATA/certs that
		// issued the stored certificate, if any, keeps renewing it.
		if ca = a.storedStatusCA(); ca == nil {
			a.log.Error("status endpoint: no TLS certificate: no port uses Automatic TLS from an on-device CA, which would issue it; its TLS handshakes fail")
			return
		}
	}
	spec := certs.Spec{}.WithNames(deviceNames())
	ctx, cancel := context.WithTimeout(context.Background(), issueTimeout)
	defer cancel()
	if _, err := a.iss.m.Ensure(ctx, StatusCertSecret, spec, ca); err != nil {
		a.log.Error("status endpoint: no TLS certificate", "issuer", ca.Name(), "err", err)
	}
}

// storedStatusCA returns the CA, among the Secrets in DATA/certs, that
// issued the stored status certificate; nil if none did (or there is
// none). A CA that only a configuration's Secret held is not there.
func (a *Appliance) storedStatusCA() certs.Issuer {
	m := a.iss.m
	crt, err := os.ReadFile(filepath.Join(m.SecretDir(StatusCertSecret), "tls.crt"))
	if err != nil {
		return nil
	}
	chain, err := certs.ParseCerts(crt)
	if err != nil {
		return nil
	}
	entries, _ := os.ReadDir(m.Dir)
	for _, e := range entries {
		if !e.IsDir() || e.Name() == StatusCertSecret {
			continue
		}
		if ca := m.SecretCA(e.Name()); ca.IssuedBy(chain) {
			return ca
		}
	}
	return nil
}

// statusCA is the CA of the status endpoint's certificate when DATA/ca.crt
// must carry it besides the ports' CAs: with Config.StatusTLS, when no
// port of the configuration has an on-device CA (whose CA the ports
// export, and which issues the status certificate anew if it is another).
// Clients keep reaching the status endpoint with DATA/ca.crt, /ca.crt or
// a stick's edgebroker-ca.crt.
func statusCA(cfg *Config, ports []*port, iss *issuers) []byte {
	if !cfg.StatusTLS || slices.ContainsFunc(ports, func(p *port) bool { return p.deviceCA != nil }) {
		return nil
	}
	ca, _ := os.ReadFile(filepath.Join(iss.m.SecretDir(StatusCertSecret), "ca.crt"))
	return ca
}

// statusTLS is the status endpoint's tls.Config (Config.StatusTLS): the
// appliance's server policy and the certificate ensureStatusCert keeps,
// presented with its CA (statusChain).
func (a *Appliance) statusTLS() *tls.Config {
	sc := &statusChain{holder: a.iss.m.Holder(StatusCertSecret), caFile: filepath.Join(a.iss.m.SecretDir(StatusCertSecret), "ca.crt")}
	return serverPolicy(&tls.Config{GetCertificate: sc.get})
}

// statusChain presents the status endpoint's certificate followed by the
// CA certificates that issued it (the Secret's ca.crt), so that a client
// can pin the CA (edgebundle push -pin), which outlives the leaf's
// renewals, and check that the leaf chains to it.
type statusChain struct {
	holder *certs.Holder // the Manager's; read-only
	caFile string        // the Secret's ca.crt; read-only
	// last is the holder's certificate seen last and its chain with the
	// CA; rebuilt when a renewal swaps the holder's.
	last atomic.Pointer[[2]*tls.Certificate]
}

func (s *statusChain) get(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	c, err := s.holder.GetCertificate(hello)
	if err != nil {
		return nil, err
	}
	if l := s.last.Load(); l != nil && l[0] == c {
		return l[1], nil
	}
	full := *c
	full.Certificate = slices.Clone(c.Certificate)
	caPEM, _ := os.ReadFile(s.caFile)
	cas, _ := certs.ParseCerts(caPEM) // none: the leaf alone
	for _, ca := range cas {
		if !slices.ContainsFunc(full.Certificate, func(der []byte) bool { return bytes.Equal(der, ca.Raw) }) {
			full.Certificate = append(full.Certificate, ca.Raw)
		}
	}
	s.last.Store(&[2]*tls.Certificate{c, &full})
	return &full, nil
}
