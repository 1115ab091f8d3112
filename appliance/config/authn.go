package config

import (
	"net/url"
	"slices"
	"strings"
)

// Authentication methods. UsernamePassword is the appliance's own method
// (AIO has none): MQTT CONNECT username and password checked against a
// password file in a Secret. It stands in for AIO's Custom method, which
// needs an external HTTPS auth server.
const (
	MethodCustom              = "Custom"
	MethodServiceAccountToken = "ServiceAccountToken"
	MethodX509                = "X509"
	MethodUsernamePassword    = "UsernamePassword"
)

// Defaults of the authentication settings.
const (
	DefaultTrustedClientCACert = "client-ca" // x509Settings.trustedClientCaCert
	DefaultPasswordKey         = "passwords" // usernamePasswordSettings.key
)

// BrokerAuthentication is AIO's BrokerAuthentication: methods tried in
// order. brokerRef is accepted and ignored.
type BrokerAuthentication struct {
	Object `json:",inline" yaml:",inline"`
	Spec   BrokerAuthenticationSpec `json:"spec" yaml:"spec"`
}

// BrokerAuthenticationSpec is BrokerAuthentication.spec.
type BrokerAuthenticationSpec struct {
	AuthenticationMethods []AuthenticationMethod `json:"authenticationMethods" yaml:"authenticationMethods"`
}

// AuthenticationMethod is one method and its settings; only the settings
// of the named method may be given.
type AuthenticationMethod struct {
	Method                      string                       `json:"method" yaml:"method"`
	CustomSettings              *CustomSettings              `json:"customSettings,omitempty" yaml:"customSettings,omitempty"`
	X509Settings                *X509Settings                `json:"x509Settings,omitempty" yaml:"x509Settings,omitempty"`
	ServiceAccountTokenSettings *ServiceAccountTokenSettings `json:"serviceAccountTokenSettings,omitempty" yaml:"serviceAccountTokenSettings,omitempty"`
	UsernamePasswordSettings    *UsernamePasswordSettings    `json:"usernamePasswordSettings,omitempty" yaml:"usernamePasswordSettings,omitempty"`
}

// CustomSettings points at an external HTTPS authentication server.
type CustomSettings struct {
	Endpoint        string            `json:"endpoint" yaml:"endpoint"` // https only
	CACertConfigMap string            `json:"caCertConfigMap,omitempty" yaml:"caCertConfigMap,omitempty"`
	Headers         map[string]string `json:"headers,omitempty" yaml:"headers,omitempty"`
	Auth            *CustomAuth       `json:"auth,omitempty" yaml:"auth,omitempty"`
}

// CustomAuth is the client certificate the broker presents to the server.
type CustomAuth struct {
	X509 X509SecretRef `json:"x509" yaml:"x509"`
}

// X509SecretRef names a kubernetes.io/tls Secret.
type X509SecretRef struct {
	SecretRef string `json:"secretRef" yaml:"secretRef"`
}

// X509Settings trusts client certificates issued by the CAs in a
// ConfigMap; the username is the leaf's subject CN.
type X509Settings struct {
	TrustedClientCACert     string                       `json:"trustedClientCaCert,omitempty" yaml:"trustedClientCaCert,omitempty"` // ConfigMap; default client-ca
	AuthorizationAttributes map[string]X509AttributeSpec `json:"authorizationAttributes,omitempty" yaml:"authorizationAttributes,omitempty"`
}

// X509AttributeSpec gives attributes to clients whose certificate (or an
// issuing certificate in the chain) has this subject DN.
type X509AttributeSpec struct {
	Subject    string            `json:"subject" yaml:"subject"` // e.g. "CN = smart-fan, OU = Engineering"
	Attributes map[string]string `json:"attributes" yaml:"attributes"`
}

// ServiceAccountTokenSettings is accepted only to be rejected with a
// useful message: there are no service account tokens off Kubernetes.
type ServiceAccountTokenSettings struct {
	Audiences []string `json:"audiences" yaml:"audiences"`
}

// UsernamePasswordSettings configures the UsernamePassword method:
//
//   - method: UsernamePassword
//     usernamePasswordSettings:
//     passwordFileSecretRef: mqtt-users   # a Secret (Opaque)
//     key: passwords                      # its key holding the file; default "passwords"
//     userAttributes:                     # optional authorization attributes per user
//     sensor-17: {building: "17"}
//
// The file has one "username:hash" line per user, as mosquitto_passwd
// writes it ($7$ PBKDF2-SHA512, $6$ SHA512) or with bcrypt/argon2id
// hashes; blank lines and lines starting with '#' are skipped. The
// username is verified, so authorization rules may use it.
type UsernamePasswordSettings struct {
	PasswordFileSecretRef string                       `json:"passwordFileSecretRef" yaml:"passwordFileSecretRef"`
	Key                   string                       `json:"key,omitempty" yaml:"key,omitempty"`
	UserAttributes        map[string]map[string]string `json:"userAttributes,omitempty" yaml:"userAttributes,omitempty"`
}

func (a *BrokerAuthentication) hasMethod(m string) bool {
	return slices.ContainsFunc(a.Spec.AuthenticationMethods, func(am AuthenticationMethod) bool { return am.Method == m })
}

func (a *BrokerAuthentication) setDefaults() {
	for i := range a.Spec.AuthenticationMethods {
		m := &a.Spec.AuthenticationMethods[i]
		if m.Method == MethodX509 && m.X509Settings == nil {
			m.X509Settings = new(X509Settings)
		}
		if m.X509Settings != nil && m.X509Settings.TrustedClientCACert == "" {
			m.X509Settings.TrustedClientCACert = DefaultTrustedClientCACert
		}
		if m.UsernamePasswordSettings != nil && m.UsernamePasswordSettings.Key == "" {
			m.UsernamePasswordSettings.Key = DefaultPasswordKey
		}
	}
}

func (a *BrokerAuthentication) validate(s *Set, rp *report) {
	ms := a.Spec.AuthenticationMethods
	if len(ms) == 0 {
		rp.add(a, "spec.authenticationMethods", "at least one method is required")
	}
	for i, m := range ms {
		path := idx("spec.authenticationMethods", i)
		if j := slices.IndexFunc(ms[:i], func(o AuthenticationMethod) bool { return o.Method == m.Method }); j >= 0 && m.Method != MethodCustom {
			rp.add(a, path+".method", "%s already listed at spec.authenticationMethods[%d]", m.Method, j)
		}
		if !oneOf(rp, a, path+".method", m.Method, MethodCustom, MethodServiceAccountToken, MethodX509, MethodUsernamePassword) {
			continue
		}
		a.checkSettingsMatch(rp, path, m)
		switch m.Method {
		case MethodServiceAccountToken:
			rp.add(a, path+".method", "ServiceAccountToken needs Kubernetes service accounts, which do not exist on the appliance; use X509 (client certificates) or UsernamePassword (a password file Secret) instead")
		case MethodX509:
			a.validateX509(s, rp, path+".x509Settings", m.X509Settings)
		case MethodCustom:
			a.validateCustom(s, rp, path+".customSettings", m.CustomSettings)
		case MethodUsernamePassword:
			a.validatePasswords(s, rp, path+".usernamePasswordSettings", m.UsernamePasswordSettings)
		}
	}
}

// checkSettingsMatch reports settings blocks that belong to another method.
func (a *BrokerAuthentication) checkSettingsMatch(rp *report, path string, m AuthenticationMethod) {
	given := map[string]bool{
		MethodCustom:              m.CustomSettings != nil,
		MethodX509:                m.X509Settings != nil,
		MethodServiceAccountToken: m.ServiceAccountTokenSettings != nil,
		MethodUsernamePassword:    m.UsernamePasswordSettings != nil,
	}
	field := map[string]string{
		MethodCustom: "customSettings", MethodX509: "x509Settings",
		MethodServiceAccountToken: "serviceAccountTokenSettings", MethodUsernamePassword: "usernamePasswordSettings",
	}
	for _, method := range []string{MethodCustom, MethodX509, MethodServiceAccountToken, MethodUsernamePassword} {
		if given[method] && method != m.Method {
			rp.add(a, path+"."+field[method], "only for method %s, not %s", method, m.Method)
		}
	}
}

func (a *BrokerAuthentication) validateX509(s *Set, rp *report, path string, x *X509Settings) {
	if cm := s.ConfigMap(x.TrustedClientCACert); cm == nil {
		rp.add(a, path+".trustedClientCaCert", "ConfigMap/%s not found (it holds the PEM CA certificates that issue client certificates)", x.TrustedClientCACert)
	} else if !cm.hasCertificates() {
		rp.add(a, path+".trustedClientCaCert", "%s holds no PEM CERTIFICATE", cm.Ref())
	}
	for _, name := range sortedKeys(x.AuthorizationAttributes) {
		if attr := x.AuthorizationAttributes[name]; !strings.Contains(attr.Subject, "=") {
			rp.add(a, path+".authorizationAttributes["+name+"].subject", "%q is not a subject DN (want e.g. \"CN = smart-fan, OU = Engineering\")", attr.Subject)
		}
	}
}

func (a *BrokerAuthentication) validateCustom(s *Set, rp *report, path string, c *CustomSettings) {
	if c == nil {
		rp.add(a, path, "method Custom needs customSettings with an endpoint")
		return
	}
	u, err := url.Parse(c.Endpoint)
	switch {
	case c.Endpoint == "":
		rp.add(a, path+".endpoint", "required")
	case err != nil || u.Host == "":
		rp.add(a, path+".endpoint", "%q is not a URL", c.Endpoint)
	case u.Scheme != "https":
		rp.add(a, path+".endpoint", "%q must use https", c.Endpoint)
	}
	if c.CACertConfigMap != "" && s.ConfigMap(c.CACertConfigMap) == nil {
		rp.add(a, path+".caCertConfigMap", "ConfigMap/%s not found", c.CACertConfigMap)
	}
	if c.Auth != nil {
		ref := c.Auth.X509.SecretRef
		if sec := s.Secret(ref); ref == "" {
			rp.add(a, path+".auth.x509.secretRef", "required")
		} else if sec == nil {
			rp.add(a, path+".auth.x509.secretRef", "Secret/%s not found", ref)
		} else if sec.Type != SecretTypeTLS {
			rp.add(a, path+".auth.x509.secretRef", "%s has type %s, want %s", sec.Ref(), sec.Type, SecretTypeTLS)
		}
	}
}

func (a *BrokerAuthentication) validatePasswords(s *Set, rp *report, path string, u *UsernamePasswordSettings) {
	if u == nil || u.PasswordFileSecretRef == "" {
		rp.add(a, path+".passwordFileSecretRef", "method UsernamePassword needs the name of a Secret holding the password file")
		return
	}
	sec := s.Secret(u.PasswordFileSecretRef)
	if sec == nil {
		rp.add(a, path+".passwordFileSecretRef", "Secret/%s not found", u.PasswordFileSecretRef)
		return
	}
	file, ok := sec.Bytes(u.Key)
	if !ok {
		rp.add(a, path+".key", "%s has no key %q", sec.Ref(), u.Key)
		return
	}
	users, msg := parsePasswordFile(file)
	if msg != "" {
		rp.add(sec, sec.dataPath(u.Key), "password file: %s", msg)
	}
	for _, name := range sortedKeys(u.UserAttributes) {
		if !slices.Contains(users, name) {
			rp.add(a, path+".userAttributes["+name+"]", "no user %q in %s key %q", name, sec.Ref(), u.Key)
		}
	}
}

// parsePasswordFile returns the users of a "username:hash" file, or a
// message about its first bad line.
func parsePasswordFile(b []byte) (users []string, msg string) {
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" || hash == "" {
			return users, "line " + itoa(i+1) + ": want username:hash"
		}
		if !strings.HasPrefix(hash, "$") {
			return users, "line " + itoa(i+1) + ": user " + user + ": the password is not hashed (use mosquitto_passwd, bcrypt or argon2id)"
		}
		if slices.Contains(users, user) {
			return users, "line " + itoa(i+1) + ": user " + user + " listed twice"
		}
		users = append(users, user)
	}
	return users, ""
}
