package appliance

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"sync/atomic"

	"edgebroker/appliance/config"
	"edgebroker/broker"
	"edgebroker/broker/packet"
	"edgebroker/provisioning/acmeissuer"
)

// livePort is a configured port while the appliance serves it. It lives
// across reloads: the broker.Port handed to the broker stays the same, and
// its hooks and TLS configuration delegate to what the latest
// configuration built, so a reload changes them without a rebind.
type livePort struct {
	key   string
	addr  string // configured bind address
	ws    bool
	tlsOn bool
	ln    net.Listener
	bport broker.Port

	authn   atomic.Pointer[broker.Authenticator] // nil: anonymous
	authz   atomic.Pointer[broker.Authorizer]    // nil: everything allowed
	tlsCfg  atomic.Pointer[tls.Config]
	authnFP string
	authzFP string
	stopped atomic.Bool // closed on purpose: Serve's error is expected
}

// sameSocket reports whether p can keep lp's listener.
func (lp *livePort) sameSocket(p *port) bool {
	return lp.addr == p.addr && lp.ws == p.ws && lp.tlsOn == (p.tls != nil)
}

// update points lp at what p was built from.
func (lp *livePort) update(p *port) {
	store := func(a broker.Authenticator) *broker.Authenticator {
		if a == nil {
			return nil
		}
		return &a
	}
	lp.authn.Store(store(p.bport.Authenticator))
	if p.bport.Authorizer == nil {
		lp.authz.Store(nil)
	} else {
		az := p.bport.Authorizer
		lp.authz.Store(&az)
	}
	if p.tls != nil {
		lp.tlsCfg.Store(p.tls)
	}
	lp.authnFP, lp.authzFP = p.authnFP, p.authzFP
}

// portAuthn is a live port's broker.Authenticator.
type portAuthn struct{ lp *livePort }

func (a portAuthn) Authenticate(c *broker.Client, r *broker.AuthRequest) broker.AuthResult {
	if cur := a.lp.authn.Load(); cur != nil {
		return (*cur).Authenticate(c, r)
	}
	if r.Method != "" { // anonymous port: no enhanced authentication
		return broker.AuthResult{Code: packet.BadAuthenticationMethod}
	}
	return broker.AuthResult{Code: packet.Success}
}

// portAuthz is a live port's broker.Authorizer.
type portAuthz struct{ lp *livePort }

func (a portAuthz) Authorize(c *broker.Client) broker.Permissions {
	if cur := a.lp.authz.Load(); cur != nil {
		return (*cur).Authorize(c)
	}
	return allowAll{}
}

// allowAll is the Permissions of a port without authorization.
type allowAll struct{}

func (allowAll) AllowPublish([]byte) bool   { return true }
func (allowAll) AllowSubscribe([]byte) bool { return true }

// ReloadCode is the reason code 5.0 clients get when a reload changes
// their port's authentication or authorization: they reconnect under the
// new rules.
const ReloadCode = packet.AdministrativeAction

// apply makes the served ports match ports. Every new socket is bound
// before anything else changes, so a bind failure leaves the running
// configuration as it was. Ports whose socket stays keep their
// connections: a new server certificate or client CA takes effect on the
// next handshake, and changed authentication or authorization disconnects
// exactly that port's clients.
func (a *Appliance) apply(ports []*port) error {
	type bind struct {
		p  *port
		lp *livePort
	}
	var binds []bind
	keep := map[string]*port{}
	closeAll := func() {
		for _, b := range binds {
			b.lp.ln.Close()
		}
	}
	for _, p := range ports {
		if p.waiting != "" {
			continue
		}
		key := p.bport.Name
		if old := a.live[key]; old != nil && old.sameSocket(p) {
			keep[key] = p
			continue
		}
		if old := a.live[key]; old != nil && old.addr == p.addr {
			keep[key] = nil // same address, new socket: rebound below
			continue
		}
		lp, err := a.newLivePort(p)
		if err != nil {
			closeAll()
			return err
		}
		binds = append(binds, bind{p, lp})
	}
	// Committed: nothing below can fail the whole apply.
	for key, lp := range a.live {
		if p, ok := keep[key]; ok && p != nil {
			changed := lp.authnFP != p.authnFP || lp.authzFP != p.authzFP
			lp.update(p)
			if changed {
				n := a.srv.DisconnectPort(&lp.bport, ReloadCode)
				a.log.Info("port rules changed: clients reconnect", "port", key, "disconnected", n)
			}
			continue
		}
		a.stop(lp)
		delete(a.live, key)
	}
	for key, p := range keep {
		if p != nil {
			continue
		}
		for _, q := range ports { // rebind on the address just freed
			if q.bport.Name == key {
				lp, err := a.newLivePort(q)
				if err != nil {
					a.log.Error("rebind", "port", key, "err", err)
					break
				}
				binds = append(binds, bind{q, lp})
			}
		}
	}
	for _, b := range binds {
		a.live[b.p.bport.Name] = b.lp
		a.serve(b.lp)
	}
	snapshot := maps.Clone(a.live)
	a.ports.Store(&snapshot)
	a.setStatus(ports)
	return nil
}

// newLivePort binds p's socket.
func (a *Appliance) newLivePort(p *port) (*livePort, error) {
	lp := &livePort{key: p.bport.Name, addr: p.addr, ws: p.ws, tlsOn: p.tls != nil}
	lp.bport = broker.Port{Name: p.bport.Name, Authenticator: portAuthn{lp}, Authorizer: portAuthz{lp}}
	lp.update(p)
	var tc *tls.Config
	if lp.tlsOn {
		tc = serverPolicy(&tls.Config{
			GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
				if c := a.iss.challenges.TLSALPN01(hello); c != nil { // an ACME CA validating tls-alpn-01
					return serverPolicy(&tls.Config{Certificates: []tls.Certificate{*c}, NextProtos: []string{acmeissuer.ALPNProto}}), nil
				}
				return lp.tlsCfg.Load(), nil
			},
		})
	}
	if tc != nil && !p.ws {
		// The broker speaks TLS itself, so that idle TLS clients park
		// in its reactor like plain ones (broker.Port.TLS).
		lp.bport.TLS, tc = tc, nil
	}
	ln, err := p.listen(tc, a.log, a.srv.Security())
	if err != nil {
		return nil, err
	}
	lp.ln = ln
	return lp, nil
}

// serve runs the broker on a live port in the appliance's errgroup; one
// bound before Run starts its goroutines waits in pending. The caller
// holds reloadMu.
func (a *Appliance) serve(lp *livePort) {
	if a.g == nil {
		a.pending = append(a.pending, lp)
		return
	}
	a.log.Info("serving MQTT", "addr", lp.ln.Addr().String(), "port", lp.key)
	a.g.Go(func() error {
		err := a.srv.ServePort(lp.ln, &lp.bport)
		if lp.stopped.Load() || errors.Is(err, broker.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("appliance: serve %s: %w", lp.ln.Addr(), err)
	})
}

// stop closes a live port and disconnects its clients.
func (a *Appliance) stop(lp *livePort) {
	lp.stopped.Store(true)
	lp.ln.Close()
	n := a.srv.DisconnectPort(&lp.bport, ReloadCode)
	a.log.Info("port removed", "port", lp.key, "disconnected", n)
}

// setStatus records every configured port's state.
func (a *Appliance) setStatus(ports []*port) {
	var st Status
	for _, p := range ports {
		ps := PortStatus{Listener: p.listener, Port: p.number, Message: p.waiting, TLS: p.certInfo}
		if lp := a.live[p.bport.Name]; lp != nil && p.waiting == "" {
			ps.Serving, ps.Addr = true, lp.ln.Addr()
		} else if ps.Message == "" {
			ps.Message = "not bound"
		}
		if !ps.Serving {
			a.log.Warn("port not served", "port", p.bport.Name, "status", ps.Message)
		}
		st.Ports = append(st.Ports, ps)
	}
	a.mu.Lock()
	a.status = st
	a.mu.Unlock()
}

// fingerprint hashes resources as JSON (map keys sorted, so stable).
func fingerprint(rs ...config.Resource) string {
	h := sha256.New()
	enc := json.NewEncoder(h)
	for _, r := range rs {
		if err := enc.Encode(r); err != nil {
			fmt.Fprintf(h, "unencodable %s: %v", r.Ref(), err)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// authnFingerprint covers a BrokerAuthentication and the ConfigMaps and
// Secrets its methods read.
func authnFingerprint(set *config.Set, name string) string {
	ba := set.Authentication(name)
	if ba == nil {
		return ""
	}
	rs := []config.Resource{ba}
	for _, m := range ba.Spec.AuthenticationMethods {
		if x := m.X509Settings; x != nil {
			if cm := set.ConfigMap(x.TrustedClientCACert); cm != nil {
				rs = append(rs, cm)
			}
		}
		if cs := m.CustomSettings; cs != nil {
			if cm := set.ConfigMap(cs.CACertConfigMap); cm != nil {
				rs = append(rs, cm)
			}
			if cs.Auth != nil {
				if sec := set.Secret(cs.Auth.X509.SecretRef); sec != nil {
					rs = append(rs, sec)
				}
			}
		}
		if u := m.UsernamePasswordSettings; u != nil {
			if sec := set.Secret(u.PasswordFileSecretRef); sec != nil {
				rs = append(rs, sec)
			}
		}
	}
	return fingerprint(rs...)
}
