package appliance

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"strconv"

	"edgebroker/appliance/config"
	"edgebroker/broker"
	"edgebroker/broker/seclog"
	"edgebroker/broker/wsnet"
	"edgebroker/provisioning/certs"
)

// port is one configured BrokerListener port as the appliance runs it.
type port struct {
	listener string // BrokerListener name
	number   int    // spec.ports[].port
	addr     string // where to bind
	ws       bool   // MQTT over WebSockets
	tls      *tls.Config
	cert     *serverCert // nil without TLS
	bport    broker.Port
	waiting  string       // why the port is not served; "" if it is
	certInfo *CertStatus  // for status: where the server certificate comes from; nil without TLS
	caPEM    []byte       // the on-device CA clients need for this port (Automatic TLS), exported as ca.crt
	deviceCA certs.Issuer // that CA as an issuer (Automatic TLS from an on-device CA); nil otherwise
	// Fingerprints of what the port's authentication and authorization
	// are built from: a reload that changes them disconnects the port's
	// clients so they reconnect under the new rules.
	authnFP, authzFP string
}

// defaultLoopbackListener is the embedded default's ClusterIp listener,
// whose port 1883 -loopback moves or turns off.
const defaultLoopbackListener = "loopback"

// portKey names a port in logs and as broker.Port.Name: "listener/port".
func portKey(listener string, number int) string {
	return listener + "/" + strconv.Itoa(number)
}

// buildPorts turns the Set's listeners into ports. It checks what
// Validate cannot: server chains (certs.ParseChain), client CA bundles,
// password files and authorization policies; every problem is returned
// at once as config.Errors.
func buildPorts(set *config.Set, cfg *Config, def bool, iss *issuers, log *slog.Logger) ([]*port, error) {
	for name, err := range iss.ensureCertificates(set) {
		log.Warn("certificate not issued yet", "certificate", name, "err", err)
	}
	var errs config.Errors
	add := func(err error) {
		switch e := err.(type) {
		case config.Errors:
			errs = append(errs, e...)
		case *config.Error:
			errs = append(errs, e)
		default:
			errs = append(errs, &config.Error{Msg: err.Error()})
		}
	}
	authns := map[string]*authenticator{}
	cas := map[string]*x509.CertPool{}
	for _, ba := range set.Authentications {
		a, pool, err := newAuthenticator(set, ba, log)
		if err != nil {
			add(err)
			continue
		}
		authns[ba.Metadata.Name], cas[ba.Metadata.Name] = a, pool
	}
	authzs := map[string]authorizer{}
	for _, bz := range set.Authorizations {
		pol, err := compilePolicy(bz)
		if err != nil {
			add(err)
			continue
		}
		authzs[bz.Metadata.Name] = authorizer{pol}
	}
	waiting := map[string]string{}
	for _, w := range set.Pending() {
		if w.Port != 0 {
			waiting[portKey(w.Name, w.Port)] = w.String()
		}
	}
	var ports []*port
	for _, l := range set.Listeners {
		host := "" // LoadBalancer and NodePort: every interface
		if l.Spec.ServiceType == config.ServiceClusterIP {
			host = "127.0.0.1"
		}
		for _, lp := range l.Spec.Ports {
			key := portKey(l.Metadata.Name, lp.Port)
			number := lp.Port
			if lp.NodePort != 0 {
				// A NodePort service is reached on its node port from
				// outside the cluster: the device is the node.
				number = lp.NodePort
			}
			if n, ok := cfg.PortMap[lp.Port]; ok {
				number = n
			}
			p := &port{
				listener: l.Metadata.Name, number: lp.Port,
				addr:  net.JoinHostPort(host, strconv.Itoa(number)),
				ws:    lp.Protocol == config.ProtocolWebSockets,
				bport: broker.Port{Name: key},
			}
			if def && l.Metadata.Name == defaultLoopbackListener && lp.Port == config.DefaultLoopbackPort {
				switch cfg.Loopback {
				case "off":
					continue
				case "":
				default:
					p.addr = cfg.Loopback
				}
			}
			if lp.AuthenticationRef != "" {
				if a := authns[lp.AuthenticationRef]; a != nil {
					p.bport.Authenticator = a
				}
				p.authnFP = authnFingerprint(set, lp.AuthenticationRef)
			}
			if lp.AuthorizationRef != "" {
				if a, ok := authzs[lp.AuthorizationRef]; ok {
					p.bport.Authorizer = a
				}
				p.authzFP = fingerprint(set.Authorization(lp.AuthorizationRef))
			}
			if t := lp.TLS; t != nil {
				p.cert = new(serverCert)
				p.tls = serverTLS(p.cert, cas[lp.AuthenticationRef])
				switch t.Mode {
				case config.TLSManual:
					c, err := manualCert(set, t.Manual.SecretRef)
					p.certInfo = &CertStatus{Mode: string(config.TLSManual), Secret: t.Manual.SecretRef}
					if c != nil {
						p.certInfo.Issuer, p.certInfo.NotAfter = c.Leaf.Issuer.String(), c.Leaf.NotAfter
					}
					switch {
					case err != nil:
						add(err)
					case c == nil:
						p.waiting = waiting[key]
						if p.waiting == "" {
							p.waiting = fmt.Sprintf("BrokerListener/%s: port %d: Server certificate %s not found. Awaiting creation of secret.", l.Metadata.Name, lp.Port, t.Manual.SecretRef)
						}
					default:
						p.cert.p.Store(c)
					}
				case config.TLSAutomatic:
					p.certInfo = &CertStatus{Mode: string(config.TLSAutomatic), Secret: automaticSecret(p, t.CertManagerCertificateSpec)}
					p.waiting = iss.automaticTLS(set, p, t.CertManagerCertificateSpec)
				}
			}
			ports = append(ports, p)
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	if err := exportCAs(ports, cfg.DataDir, statusCA(cfg, ports, iss)); err != nil {
		return nil, err
	}
	return ports, nil
}

// listen binds p's address and wraps the listener in WebSockets (over
// TLS with tc: wsnet speaks it itself) or in TLS as configured. A plain
// MQTT port's TLS is the broker's (broker.Port.TLS, see newLivePort):
// tc is nil there.
func (p *port) listen(tc *tls.Config, log *slog.Logger, sec *seclog.Log) (net.Listener, error) {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		return nil, fmt.Errorf("appliance: %s: listen %s: %w", p.bport.Name, p.addr, err)
	}
	if p.ws {
		// The WebSocket listener speaks TLS itself (wss://), so that
		// idle wss clients park in the broker's reactor.
		return wsnet.ListenTLS(ln, tc, log.With("port", p.bport.Name), wsnet.DefaultMaxUpgrading, sec), nil
	}
	if tc != nil {
		ln = tls.NewListener(ln, tc)
	}
	return ln, nil
}
