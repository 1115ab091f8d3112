package appliance

import (
	"crypto/x509"
	"log/slog"
	"maps"

	"edgebroker/appliance/config"
	"edgebroker/broker"
	"edgebroker/broker/auth"
	"edgebroker/broker/packet"
)

// authenticator is a port's BrokerAuthentication: its methods are tried
// in order, and the first one the client's credentials are relevant to
// and valid for admits it (aio-config-model.md §2).
type authenticator struct {
	methods []authMethod
}

// authMethod is one authentication method. relevant reports whether the
// credentials are meant for it; only then does res count.
type authMethod interface {
	authenticate(c *broker.Client, r *broker.AuthRequest) (res broker.AuthResult, relevant bool)
}

// reauthMethod is a method that can also take a 5.0 enhanced
// authentication method at CONNECT and re-authenticate a connected
// client (AUTH 0x19). relevant false means the method could not decide
// (its server is unreachable): a transient failure.
type reauthMethod interface {
	authMethod
	reauthenticate(c *broker.Client, r *broker.AuthRequest) (res broker.AuthResult, relevant bool)
}

var _ broker.Authenticator = (*authenticator)(nil)

// Authenticate implements broker.Authenticator. A method that finds the
// credentials relevant but invalid does not end the search; if no method
// admits the client, the first such refusal is the answer, or, when no
// method found the credentials relevant, Not authorized — Bad
// authentication method for a 5.0 enhanced authentication method that
// none of the port's methods takes (only Custom does).
//
// Steps after the CONNECT (r.Step > 0) are re-authentications of a
// connected client (the Custom method never continues an exchange at
// CONNECT): only the methods that re-authenticate are asked; if none of
// them could decide, the answer is Continue authentication (AIO: AUTH
// 0x18, the client may retry later).
func (a *authenticator) Authenticate(c *broker.Client, r *broker.AuthRequest) broker.AuthResult {
	if r.Step > 0 {
		return a.reauthenticate(c, r)
	}
	refusal := broker.AuthResult{Code: packet.NotAuthorized}
	if r.Method != "" && !a.enhanced() {
		refusal.Code = packet.BadAuthenticationMethod
	}
	refused := false
	for _, m := range a.methods {
		res, relevant := m.authenticate(c, r)
		switch {
		case !relevant:
		case res.Code == packet.Success:
			return res
		case !refused:
			refusal, refused = res, true
		}
	}
	return refusal
}

// enhanced reports whether a method of the port takes 5.0 enhanced
// authentication.
func (a *authenticator) enhanced() bool {
	for _, m := range a.methods {
		if _, ok := m.(reauthMethod); ok {
			return true
		}
	}
	return false
}

func (a *authenticator) reauthenticate(c *broker.Client, r *broker.AuthRequest) broker.AuthResult {
	refusal := broker.AuthResult{Code: packet.NotAuthorized}
	refused := false
	for _, m := range a.methods {
		rm, ok := m.(reauthMethod)
		if !ok {
			continue
		}
		res, relevant := rm.reauthenticate(c, r)
		switch {
		case !relevant:
			if !refused {
				refusal.Code = packet.ContinueAuthentication
			}
		case res.Code == packet.Success:
			return res
		case !refused:
			refusal, refused = res, true
		}
	}
	return refusal
}

// newAuthenticator builds the methods of a BrokerAuthentication. Errors
// are configuration errors naming the resource.
func newAuthenticator(set *config.Set, ba *config.BrokerAuthentication, log *slog.Logger) (*authenticator, *x509.CertPool, error) {
	a := new(authenticator)
	var cas *x509.CertPool
	for _, m := range ba.Spec.AuthenticationMethods {
		switch m.Method {
		case config.MethodX509:
			x := m.X509Settings
			cm := set.ConfigMap(x.TrustedClientCACert)
			if cm == nil { // Validate reports this; be safe anyway
				return nil, nil, resourceError(ba, "spec.authenticationMethods", "ConfigMap/%s not found", x.TrustedClientCACert)
			}
			pool, err := clientCAs(cm)
			if err != nil {
				return nil, nil, err
			}
			cas = pool
			xm := &x509Method{}
			for _, name := range sortedKeys(x.AuthorizationAttributes) {
				e := x.AuthorizationAttributes[name]
				xm.attrs = append(xm.attrs, auth.SubjectAttributes{Subject: e.Subject, Attributes: e.Attributes})
			}
			a.methods = append(a.methods, xm)
		case config.MethodUsernamePassword:
			u := m.UsernamePasswordSettings
			sec := set.Secret(u.PasswordFileSecretRef)
			if sec == nil {
				return nil, nil, resourceError(ba, "spec.authenticationMethods", "Secret/%s not found", u.PasswordFileSecretRef)
			}
			file, _ := sec.Bytes(u.Key)
			pw, err := auth.ParsePasswordFile(file)
			if err != nil {
				return nil, nil, resourceError(sec, secretPath(sec, u.Key), "%v", err)
			}
			a.methods = append(a.methods, &passwordMethod{pw: pw, attrs: u.UserAttributes})
		case config.MethodCustom:
			cm, err := newCustomMethod(set, ba, m.CustomSettings, log)
			if err != nil {
				return nil, nil, err
			}
			a.methods = append(a.methods, cm)
		}
	}
	return a, cas, nil
}

// x509Method admits clients whose certificate the TLS handshake verified
// against the trusted client CAs. The username is the leaf's CN, the
// principal its subject, the attributes come from the first
// certificate in the chain whose subject has an authorizationAttributes
// entry, and the connection ends when the leaf expires.
type x509Method struct {
	attrs []auth.SubjectAttributes
}

func (m *x509Method) authenticate(c *broker.Client, _ *broker.AuthRequest) (broker.AuthResult, bool) {
	if c.TLS == nil || len(c.TLS.PeerCertificates) == 0 {
		return broker.AuthResult{}, false
	}
	if len(c.TLS.VerifiedChains) == 0 {
		return broker.AuthResult{Code: packet.NotAuthorized}, true
	}
	chain := c.TLS.VerifiedChains[0]
	leaf := chain[0]
	c.Username = auth.CNUsername(leaf)
	c.Attributes = auth.X509Attributes(chain, m.attrs)
	return broker.AuthResult{Code: packet.Success, Expiry: leaf.NotAfter, Principal: x509Principal(leaf)}, true
}

// passwordMethod checks the CONNECT's username and password against a
// password file; a CONNECT with a 5.0 Authentication Method is not for
// it. The principal is "user:" and the username. Attributes come from
// the file's third field, then from usernamePasswordSettings.userAttributes,
// which win on a shared name.
type passwordMethod struct {
	pw    *auth.Passwords
	attrs map[string]map[string]string
}

func (m *passwordMethod) authenticate(c *broker.Client, r *broker.AuthRequest) (broker.AuthResult, bool) {
	if len(r.Username) == 0 || r.Method != "" {
		return broker.AuthResult{}, false
	}
	user := string(r.Username)
	attrs, ok := m.pw.Verify(user, r.Password)
	if !ok || !r.HasPassword {
		return broker.AuthResult{Code: packet.BadUsernameOrPassword}, true
	}
	if extra := m.attrs[user]; len(extra) > 0 {
		if attrs == nil {
			attrs = make(map[string]string, len(extra))
		}
		maps.Copy(attrs, extra)
	}
	c.Username, c.Attributes = user, attrs
	return broker.AuthResult{Code: packet.Success, Principal: "user:" + user}, true
}

// x509Principal is the principal of a verified client certificate: its
// subject, as the authorization attributes identify certificates. Every
// CA the port trusts vouches for the subjects it issues, so a renewed
// certificate, or one from a new CA of the same trust, is the same
// principal.
func x509Principal(leaf *x509.Certificate) string {
	return "x509:" + leaf.Subject.String()
}
