package config

import (
	"encoding/base64"
	"net"
	"net/url"
	"slices"
	"strings"
)

// CertManagerGroup is the only issuer group the appliance serves.
const CertManagerGroup = "cert-manager.io"

// Key rotation policies (AIO and cert-manager spell them alike).
const (
	RotateAlways = "Always"
	RotateNever  = "Never"
)

// Issuer is a cert-manager Issuer or ClusterIssuer (the Kind field says
// which; on the appliance they behave the same). Exactly one of
// selfSigned, ca and acme is set.
type Issuer struct {
	Object `json:",inline" yaml:",inline"`
	Spec   IssuerSpec `json:"spec" yaml:"spec"`
}

// IssuerSpec is Issuer.spec.
type IssuerSpec struct {
	SelfSigned *SelfSignedIssuer `json:"selfSigned,omitempty" yaml:"selfSigned,omitempty"`
	CA         *CAIssuer         `json:"ca,omitempty" yaml:"ca,omitempty"`
	ACME       *ACMEIssuer       `json:"acme,omitempty" yaml:"acme,omitempty"`
}

// SelfSignedIssuer signs each certificate with its own key.
type SelfSignedIssuer struct{}

// CAIssuer signs with the CA certificate and key in a kubernetes.io/tls
// Secret, or in the Secret a Certificate with isCA: true writes.
type CAIssuer struct {
	SecretName string `json:"secretName" yaml:"secretName"`
}

// ACMEIssuer obtains certificates from an ACME directory.
type ACMEIssuer struct {
	Server                 string                  `json:"server" yaml:"server"`
	Email                  string                  `json:"email,omitempty" yaml:"email,omitempty"`
	PrivateKeySecretRef    SecretKeySelector       `json:"privateKeySecretRef" yaml:"privateKeySecretRef"` // account key; created if missing
	CABundle               string                  `json:"caBundle,omitempty" yaml:"caBundle,omitempty"`   // base64 PEM to trust for server
	SkipTLSVerify          bool                    `json:"skipTLSVerify,omitempty" yaml:"skipTLSVerify,omitempty"`
	ExternalAccountBinding *ExternalAccountBinding `json:"externalAccountBinding,omitempty" yaml:"externalAccountBinding,omitempty"`
	Solvers                []ACMESolver            `json:"solvers,omitempty" yaml:"solvers,omitempty"`
}

// SecretKeySelector names a Secret and optionally one of its keys.
type SecretKeySelector struct {
	Name string `json:"name" yaml:"name"`
	Key  string `json:"key,omitempty" yaml:"key,omitempty"`
}

// ExternalAccountBinding binds the ACME account to an existing one.
type ExternalAccountBinding struct {
	KeyID        string            `json:"keyID" yaml:"keyID"`
	KeySecretRef SecretKeySelector `json:"keySecretRef" yaml:"keySecretRef"`
}

// ACMESolver says how challenges are answered: http01 (HTTP on port 80)
// or tlsAlpn01 (on the MQTT TLS port itself). Their cert-manager details
// (ingress classes...) mean nothing on the appliance and are kept as is.
type ACMESolver struct {
	Selector  map[string]any `json:"selector,omitempty" yaml:"selector,omitempty"`
	HTTP01    map[string]any `json:"http01,omitempty" yaml:"http01,omitempty"`
	TLSALPN01 map[string]any `json:"tlsAlpn01,omitempty" yaml:"tlsAlpn01,omitempty"`
	DNS01     map[string]any `json:"dns01,omitempty" yaml:"dns01,omitempty"` // rejected
}

// Certificate is a cert-manager Certificate, issued on the device and
// written to the Secret secretName. Key algorithms use cert-manager's
// spelling: algorithm RSA (size 2048, 3072, 4096, 8192; default 2048),
// ECDSA (size 256, 384, 521; default 256) or Ed25519.
type Certificate struct {
	Object `json:",inline" yaml:",inline"`
	Spec   CertificateSpec `json:"spec" yaml:"spec"`
}

// CertificateSpec is Certificate.spec.
type CertificateSpec struct {
	IsCA        bool           `json:"isCA,omitempty" yaml:"isCA,omitempty"`
	CommonName  string         `json:"commonName,omitempty" yaml:"commonName,omitempty"`
	DNSNames    []string       `json:"dnsNames,omitempty" yaml:"dnsNames,omitempty"`
	IPAddresses []string       `json:"ipAddresses,omitempty" yaml:"ipAddresses,omitempty"`
	Duration    Duration       `json:"duration,omitempty" yaml:"duration,omitempty"` // default 2160h
	RenewBefore Duration       `json:"renewBefore,omitempty" yaml:"renewBefore,omitempty"`
	PrivateKey  CertificateKey `json:"privateKey,omitzero" yaml:"privateKey,omitempty"`
	Usages      []string       `json:"usages,omitempty" yaml:"usages,omitempty"`
	SecretName  string         `json:"secretName" yaml:"secretName"`
	IssuerRef   IssuerRef      `json:"issuerRef" yaml:"issuerRef"`
}

// CertificateKey is a Certificate's private key.
type CertificateKey struct {
	Algorithm      string `json:"algorithm,omitempty" yaml:"algorithm,omitempty"` // RSA | ECDSA | Ed25519
	Size           int    `json:"size,omitempty" yaml:"size,omitempty"`
	RotationPolicy string `json:"rotationPolicy,omitempty" yaml:"rotationPolicy,omitempty"` // Always | Never
}

var keySizes = map[string][]int{"RSA": {2048, 3072, 4096, 8192}, "ECDSA": {256, 384, 521}, "Ed25519": {0}}

var usages = []string{"signing", "digital signature", "content commitment", "key encipherment",
	"key agreement", "data encipherment", "cert sign", "crl sign", "encipher only", "decipher only",
	"any", "server auth", "client auth", "code signing", "email protection", "s/mime",
	"ipsec end system", "ipsec tunnel", "ipsec user", "timestamping", "ocsp signing",
	"microsoft sgc", "netscape sgc"}

func (is *Issuer) setDefaults() {}

func (is *Issuer) validate(s *Set, rp *report) {
	sp := is.Spec
	n := 0
	for _, set := range []bool{sp.SelfSigned != nil, sp.CA != nil, sp.ACME != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		rp.add(is, "spec", "want exactly one of selfSigned, ca and acme")
	}
	if ca := sp.CA; ca != nil {
		if ca.SecretName == "" {
			rp.add(is, "spec.ca.secretName", "required")
		} else if sec := s.Secret(ca.SecretName); sec != nil && sec.Type != SecretTypeTLS {
			rp.add(is, "spec.ca.secretName", "%s has type %s, want %s", sec.Ref(), sec.Type, SecretTypeTLS)
		} else if c := s.caWriter(ca.SecretName); sec == nil && c != nil && !c.Spec.IsCA {
			rp.add(is, "spec.ca.secretName", "%s writes %s but is not a CA (set isCA: true)", c.Ref(), ca.SecretName)
		}
	}
	if a := sp.ACME; a != nil {
		is.validateACME(s, rp, a)
	}
}

func (is *Issuer) validateACME(s *Set, rp *report, a *ACMEIssuer) {
	const p = "spec.acme"
	if u, err := url.Parse(a.Server); a.Server == "" || err != nil || u.Scheme != "https" || u.Host == "" {
		rp.add(is, p+".server", "%q is not an https URL of an ACME directory", a.Server)
	}
	if a.Email != "" && !strings.Contains(a.Email, "@") {
		rp.add(is, p+".email", "%q is not an email address", a.Email)
	}
	if a.PrivateKeySecretRef.Name == "" {
		rp.add(is, p+".privateKeySecretRef.name", "required (the appliance creates the account key Secret if missing)")
	} else if !isSubdomain(a.PrivateKeySecretRef.Name) {
		rp.add(is, p+".privateKeySecretRef.name", "%q is not a valid Secret name", a.PrivateKeySecretRef.Name)
	}
	if a.CABundle != "" {
		b, err := base64.StdEncoding.DecodeString(a.CABundle)
		if err != nil {
			rp.add(is, p+".caBundle", "not base64: %v", err)
		} else if msg := checkCertPEM(b); msg != "" {
			rp.add(is, p+".caBundle", "%s", msg)
		}
	}
	if eab := a.ExternalAccountBinding; eab != nil {
		if eab.KeyID == "" {
			rp.add(is, p+".externalAccountBinding.keyID", "required")
		}
		if sec := s.Secret(eab.KeySecretRef.Name); sec == nil {
			rp.add(is, p+".externalAccountBinding.keySecretRef.name", "Secret/%s not found", eab.KeySecretRef.Name)
		} else if _, ok := sec.Bytes(eab.KeySecretRef.Key); eab.KeySecretRef.Key == "" || !ok {
			rp.add(is, p+".externalAccountBinding.keySecretRef.key", "%s has no key %q", sec.Ref(), eab.KeySecretRef.Key)
		}
	}
	for i, sv := range a.Solvers {
		path := idx(p+".solvers", i)
		switch {
		case sv.DNS01 != nil:
			rp.add(is, path+".dns01", "dns01 is not supported on the appliance; use http01 or tlsAlpn01")
		case (sv.HTTP01 != nil) == (sv.TLSALPN01 != nil):
			rp.add(is, path, "want exactly one of http01 and tlsAlpn01")
		}
	}
}

// caWriter returns the Certificate that writes Secret name, or nil.
func (s *Set) caWriter(name string) *Certificate {
	for _, c := range s.Certificates {
		if c.Spec.SecretName == name {
			return c
		}
	}
	return nil
}

// checkIssuerRef checks ref and that it names an issuer in s.
func checkIssuerRef(s *Set, rp *report, r Resource, path string, ref IssuerRef, kindRequired bool) {
	if ref.Name == "" {
		rp.add(r, path+".name", "required")
	}
	if !kindRequired && ref.Kind == "" {
		ref.Kind = "Issuer"
	}
	kindOK := oneOf(rp, r, path+".kind", ref.Kind, "Issuer", "ClusterIssuer")
	if ref.Group != CertManagerGroup {
		rp.add(r, path+".group", "%q is not served (want %s)", ref.Group, CertManagerGroup)
	}
	if ref.Name != "" && kindOK && s.Issuer(ref.Kind, ref.Name) == nil {
		rp.add(r, path+".name", "%s/%s not found", ref.Kind, ref.Name)
	}
}

func (c *Certificate) setDefaults() {
	sp := &c.Spec
	if sp.IssuerRef.Kind == "" {
		sp.IssuerRef.Kind = "Issuer"
	}
	if sp.IssuerRef.Group == "" {
		sp.IssuerRef.Group = CertManagerGroup
	}
	if sp.Duration == "" {
		sp.Duration = DefaultCertDuration
	}
	if sp.PrivateKey.Algorithm == "" {
		sp.PrivateKey.Algorithm = "RSA"
	}
	if sizes := keySizes[sp.PrivateKey.Algorithm]; sp.PrivateKey.Size == 0 && len(sizes) > 0 {
		sp.PrivateKey.Size = sizes[0]
	}
	if sp.PrivateKey.RotationPolicy == "" {
		sp.PrivateKey.RotationPolicy = RotateAlways
	}
}

func (c *Certificate) validate(s *Set, rp *report) {
	sp := c.Spec
	checkIssuerRef(s, rp, c, "spec.issuerRef", sp.IssuerRef, false)
	checkLifetime(rp, c, "spec", sp.Duration, sp.RenewBefore)
	if sp.SecretName == "" {
		rp.add(c, "spec.secretName", "required")
	} else if !isSubdomain(sp.SecretName) {
		rp.add(c, "spec.secretName", "%q is not a valid Secret name", sp.SecretName)
	} else if w := s.caWriter(sp.SecretName); w != c {
		rp.add(c, "spec.secretName", "Secret %s is already written by %s", sp.SecretName, w.Ref())
	}
	if sp.CommonName == "" && len(sp.DNSNames) == 0 && len(sp.IPAddresses) == 0 {
		rp.add(c, "spec", "want at least one of commonName, dnsNames and ipAddresses")
	}
	if len(sp.CommonName) > 64 {
		rp.add(c, "spec.commonName", "longer than 64 characters")
	}
	for i, d := range sp.DNSNames {
		if !isDNSName(d) {
			rp.add(c, idx("spec.dnsNames", i), "%q is not a DNS name", d)
		}
	}
	for i, ip := range sp.IPAddresses {
		if net.ParseIP(ip) == nil {
			rp.add(c, idx("spec.ipAddresses", i), "%q is not an IP address", ip)
		}
	}
	k := sp.PrivateKey
	if oneOf(rp, c, "spec.privateKey.algorithm", k.Algorithm, "RSA", "ECDSA", "Ed25519") {
		if sizes := keySizes[k.Algorithm]; !slices.Contains(sizes, k.Size) {
			rp.add(c, "spec.privateKey.size", "%d is not a %s key size (want one of %v)", k.Size, k.Algorithm, sizes)
		}
	}
	oneOf(rp, c, "spec.privateKey.rotationPolicy", k.RotationPolicy, RotateAlways, RotateNever)
	for i, u := range sp.Usages {
		oneOf(rp, c, idx("spec.usages", i), u, usages...)
	}
}
