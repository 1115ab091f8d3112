package appliance

import (
	"context"
	"crypto/tls"

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
// with the last CA, whose key stays in DATA/certs); before any, the
// status endpoint's handshakes fail and the log says why. The caller
// holds reloadMu.
func (a *Appliance) ensureStatusCert(ports []*port) {
	if !a.cfg.StatusTLS {
		return
	}
	for _, p := range ports {
		if p.deviceCA == nil {
			continue
		}
		spec := certs.Spec{}.WithNames(deviceNames())
		ctx, cancel := context.WithTimeout(context.Background(), issueTimeout)
		defer cancel()
		if _, err := a.iss.m.Ensure(ctx, StatusCertSecret, spec, p.deviceCA); err != nil {
			a.log.Error("status endpoint: no TLS certificate", "issuer", p.deviceCA.Name(), "err", err)
		}
		return
	}
	if a.iss.m.Holder(StatusCertSecret).Load() == nil {
		a.log.Error("status endpoint: no TLS certificate: no port uses Automatic TLS from an on-device CA, which would issue it; its TLS handshakes fail")
	}
}

// statusTLS is the status endpoint's tls.Config (Config.StatusTLS): the
// appliance's server policy and the certificate ensureStatusCert keeps.
func (a *Appliance) statusTLS() *tls.Config {
	return serverPolicy(&tls.Config{GetCertificate: a.iss.m.Holder(StatusCertSecret).GetCertificate})
}
