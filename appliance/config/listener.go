package config

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net"
	"strings"
)

// Service types: where a listener's ports are reachable on the appliance.
const (
	ServiceClusterIP    = "ClusterIp"    // loopback only: programs on the device
	ServiceLoadBalancer = "LoadBalancer" // every LAN interface
	ServiceNodePort     = "NodePort"     // every LAN interface
)

// Port protocols and TLS modes.
const (
	ProtocolMqtt       = "Mqtt"
	ProtocolWebSockets = "WebSockets"
	TLSAutomatic       = "Automatic"
	TLSManual          = "Manual"
)

// DefaultCertDuration is the lifetime of an Automatic server certificate
// when certManagerCertificateSpec.duration is unset (AIO: 90 days).
const DefaultCertDuration Duration = "2160h"

// BrokerListener is AIO's BrokerListener: a set of ports sharing one
// service type.
type BrokerListener struct {
	Object `json:",inline" yaml:",inline"`
	Spec   BrokerListenerSpec `json:"spec" yaml:"spec"`
}

// BrokerListenerSpec is BrokerListener.spec. brokerRef is accepted and
// ignored.
type BrokerListenerSpec struct {
	ServiceName string         `json:"serviceName,omitempty" yaml:"serviceName,omitempty"` // default: the listener's name
	ServiceType string         `json:"serviceType,omitempty" yaml:"serviceType,omitempty"` // default ClusterIp
	Ports       []ListenerPort `json:"ports" yaml:"ports"`
}

// ListenerPort is one port with its own protocol, TLS, authentication and
// authorization.
type ListenerPort struct {
	Port              int      `json:"port" yaml:"port"`
	NodePort          int      `json:"nodePort,omitempty" yaml:"nodePort,omitempty"` // NodePort listeners only: the appliance listens on it instead of port
	Protocol          string   `json:"protocol,omitempty" yaml:"protocol,omitempty"` // default Mqtt
	AuthenticationRef string   `json:"authenticationRef,omitempty" yaml:"authenticationRef,omitempty"`
	AuthorizationRef  string   `json:"authorizationRef,omitempty" yaml:"authorizationRef,omitempty"`
	TLS               *TLSSpec `json:"tls,omitempty" yaml:"tls,omitempty"`
}

// TLSSpec is a port's TLS: Automatic (issued on the device from an
// issuer) or Manual (a kubernetes.io/tls Secret).
type TLSSpec struct {
	Mode                       string                      `json:"mode" yaml:"mode"`
	CertManagerCertificateSpec *CertManagerCertificateSpec `json:"certManagerCertificateSpec,omitempty" yaml:"certManagerCertificateSpec,omitempty"`
	Manual                     *ManualTLS                  `json:"manual,omitempty" yaml:"manual,omitempty"`
}

// ManualTLS names the Secret holding the server chain (leaf first) and key.
type ManualTLS struct {
	SecretRef string `json:"secretRef" yaml:"secretRef"`
}

// CertManagerCertificateSpec says how an Automatic port's certificate is
// issued. Key algorithms use AIO's spelling (Ec256, Rsa2048, ...).
type CertManagerCertificateSpec struct {
	IssuerRef   IssuerRef  `json:"issuerRef" yaml:"issuerRef"`
	Duration    Duration   `json:"duration,omitempty" yaml:"duration,omitempty"` // default 2160h
	RenewBefore Duration   `json:"renewBefore,omitempty" yaml:"renewBefore,omitempty"`
	PrivateKey  PrivateKey `json:"privateKey,omitzero" yaml:"privateKey,omitempty"`
	SAN         SAN        `json:"san,omitzero" yaml:"san,omitempty"`
	SecretName  string     `json:"secretName,omitempty" yaml:"secretName,omitempty"`
}

// IssuerRef names a cert-manager Issuer or ClusterIssuer.
type IssuerRef struct {
	Name  string `json:"name" yaml:"name"`
	Kind  string `json:"kind,omitempty" yaml:"kind,omitempty"`   // Issuer | ClusterIssuer
	Group string `json:"group,omitempty" yaml:"group,omitempty"` // default cert-manager.io
}

// PrivateKey is an Automatic certificate's key: algorithm Ec256 | Ec384 |
// Ec521 | Ed25519 | Rsa2048 | Rsa4096 | Rsa8192 (default Ec256, as AIO's
// default listener) and rotationPolicy Always | Never (default Always).
type PrivateKey struct {
	Algorithm      string `json:"algorithm,omitempty" yaml:"algorithm,omitempty"`
	RotationPolicy string `json:"rotationPolicy,omitempty" yaml:"rotationPolicy,omitempty"`
}

// SAN lists extra subject alternative names; the appliance adds its
// host name and addresses.
type SAN struct {
	DNS []string `json:"dns,omitempty" yaml:"dns,omitempty"`
	IP  []string `json:"ip,omitempty" yaml:"ip,omitempty"`
}

var keyAlgorithms = []string{"Ec256", "Ec384", "Ec521", "Ed25519", "Rsa2048", "Rsa4096", "Rsa8192"}

func (l *BrokerListener) setDefaults() {
	if l.Spec.ServiceName == "" {
		l.Spec.ServiceName = l.Metadata.Name
	}
	if l.Spec.ServiceType == "" {
		l.Spec.ServiceType = ServiceClusterIP
	}
	for i := range l.Spec.Ports {
		p := &l.Spec.Ports[i]
		if p.Protocol == "" {
			p.Protocol = ProtocolMqtt
		}
		if p.TLS == nil || p.TLS.CertManagerCertificateSpec == nil {
			continue
		}
		c := p.TLS.CertManagerCertificateSpec
		if c.IssuerRef.Group == "" {
			c.IssuerRef.Group = CertManagerGroup
		}
		if c.Duration == "" {
			c.Duration = DefaultCertDuration
		}
		if c.PrivateKey.Algorithm == "" {
			c.PrivateKey.Algorithm = "Ec256"
		}
		if c.PrivateKey.RotationPolicy == "" {
			c.PrivateKey.RotationPolicy = RotateAlways
		}
	}
}

// validate checks one listener on its own; validateListenerSet checks
// what listeners share (service types, names, ports).
func (l *BrokerListener) validate(s *Set, rp *report) {
	oneOf(rp, l, "spec.serviceType", l.Spec.ServiceType, ServiceClusterIP, ServiceLoadBalancer, ServiceNodePort)
	if n := l.Spec.ServiceName; len(n) > 63 || !dnsLabel.MatchString(n) {
		rp.add(l, "spec.serviceName", "%q is not a valid service name (a DNS label: lower-case letters, digits and '-', at most 63)", n)
	}
	if len(l.Spec.Ports) == 0 {
		rp.add(l, "spec.ports", "at least one port is required")
	}
	for i, p := range l.Spec.Ports {
		l.validatePort(s, rp, idx("spec.ports", i), p)
	}
}

func (l *BrokerListener) validatePort(s *Set, rp *report, path string, p ListenerPort) {
	if p.Port < 1 || p.Port > 65535 {
		rp.add(l, path+".port", "%d is not a port number (1..65535)", p.Port)
	}
	if p.NodePort < 0 || p.NodePort > 65535 {
		rp.add(l, path+".nodePort", "%d is not a port number (0..65535)", p.NodePort)
	} else if p.NodePort != 0 && l.Spec.ServiceType != ServiceNodePort {
		rp.add(l, path+".nodePort", "only a NodePort listener has node ports")
	}
	oneOf(rp, l, path+".protocol", p.Protocol, ProtocolMqtt, ProtocolWebSockets)
	var authn *BrokerAuthentication
	if p.AuthenticationRef != "" {
		if authn = s.Authentication(p.AuthenticationRef); authn == nil {
			rp.add(l, path+".authenticationRef", "BrokerAuthentication/%s not found", p.AuthenticationRef)
		}
	}
	if p.AuthorizationRef != "" {
		if p.AuthenticationRef == "" {
			rp.add(l, path+".authorizationRef", "authorization needs authentication on the same port: set authenticationRef too")
		}
		if s.Authorization(p.AuthorizationRef) == nil {
			rp.add(l, path+".authorizationRef", "BrokerAuthorization/%s not found", p.AuthorizationRef)
		}
	}
	if authn != nil && p.TLS == nil && authn.hasMethod(MethodX509) {
		rp.add(l, path+".authenticationRef", "%s uses X509 client certificates, which need tls on this port", authn.Ref())
	}
	if p.TLS != nil {
		l.validateTLS(s, rp, path+".tls", p.TLS)
	}
}

func (l *BrokerListener) validateTLS(s *Set, rp *report, path string, t *TLSSpec) {
	if !oneOf(rp, l, path+".mode", t.Mode, TLSAutomatic, TLSManual) {
		return
	}
	if t.Mode == TLSManual {
		if t.CertManagerCertificateSpec != nil {
			rp.add(l, path+".certManagerCertificateSpec", "only for mode Automatic")
		}
		switch {
		case t.Manual == nil || t.Manual.SecretRef == "":
			rp.add(l, path+".manual.secretRef", "mode Manual needs the name of a kubernetes.io/tls Secret")
		default:
			if sec := s.Secret(t.Manual.SecretRef); sec != nil && sec.Type != SecretTypeTLS {
				rp.add(l, path+".manual.secretRef", "%s has type %s, want %s", sec.Ref(), sec.Type, SecretTypeTLS)
			}
		}
		return
	}
	if t.Manual != nil {
		rp.add(l, path+".manual", "only for mode Manual")
	}
	c := t.CertManagerCertificateSpec
	if c == nil {
		rp.add(l, path+".certManagerCertificateSpec", "mode Automatic needs certManagerCertificateSpec with an issuerRef")
		return
	}
	path += ".certManagerCertificateSpec"
	checkIssuerRef(s, rp, l, path+".issuerRef", c.IssuerRef, true)
	checkLifetime(rp, l, path, c.Duration, c.RenewBefore)
	if oneOf(rp, l, path+".privateKey.algorithm", c.PrivateKey.Algorithm, keyAlgorithms...) {
		checkChainAlgorithm(s, rp, l, path, c)
	}
	oneOf(rp, l, path+".privateKey.rotationPolicy", c.PrivateKey.RotationPolicy, RotateAlways, RotateNever)
	for i, d := range c.SAN.DNS {
		if !isDNSName(d) {
			rp.add(l, idx(path+".san.dns", i), "%q is not a DNS name", d)
		}
	}
	for i, ip := range c.SAN.IP {
		if net.ParseIP(ip) == nil {
			rp.add(l, idx(path+".san.ip", i), "%q is not an IP address", ip)
		}
	}
	if c.SecretName != "" && !isSubdomain(c.SecretName) {
		rp.add(l, path+".secretName", "%q is not a valid Secret name", c.SecretName)
	}
}

// validateListenerSet checks the rules across listeners: one listener per
// service type, unique service names, each port used once.
func (s *Set) validateListenerSet(rp *report) {
	type use struct {
		l *BrokerListener
		i int
	}
	types := map[string]*BrokerListener{}
	names := map[string]*BrokerListener{}
	ports := map[int]use{}
	for _, l := range s.Listeners {
		if prev := types[l.Spec.ServiceType]; prev != nil && prev != l {
			rp.add(l, "spec.serviceType", "%s already used by %s (at most one listener per service type; add ports to it instead)", l.Spec.ServiceType, prev.Ref())
		} else {
			types[l.Spec.ServiceType] = l
		}
		if prev := names[l.Spec.ServiceName]; prev != nil && prev != l {
			rp.add(l, "spec.serviceName", "%q already used by %s", l.Spec.ServiceName, prev.Ref())
		} else {
			names[l.Spec.ServiceName] = l
		}
		for i, p := range l.Spec.Ports {
			prev, dup := ports[p.Port]
			switch {
			case !dup:
				ports[p.Port] = use{l, i}
			case prev.l == l:
				rp.add(l, idx("spec.ports", i)+".port", "%d already used by spec.ports[%d]", p.Port, prev.i)
			default:
				rp.add(l, idx("spec.ports", i)+".port", "%d already used by %s", p.Port, prev.l.Ref())
			}
		}
	}
}

// MixedChain is what a chain that mixes key algorithms is refused with,
// a Manual port's Secret (provisioning/certs.ErrMixedAlgorithm) or an
// Automatic port's key under a CA of another family.
const MixedChain = "the chain mixes key algorithms; every certificate must use the same one (all EC or all RSA)"

// checkChainAlgorithm refuses an Automatic port whose key algorithm is
// of another family than its CA issuer's key (an Rsa2048 leaf under an
// EC CA): AIO requires every certificate of a chain to use the same one.
// The CA's family comes from the Certificate that writes the CA's
// Secret, or from the Secret's tls.crt; when neither is known yet (the
// Secret is pending) there is nothing to check.
func checkChainAlgorithm(s *Set, rp *report, l *BrokerListener, path string, c *CertManagerCertificateSpec) {
	is := s.Issuer(c.IssuerRef.Kind, c.IssuerRef.Name)
	if is == nil || is.Spec.CA == nil {
		return
	}
	ca, from := s.caFamily(is.Spec.CA.SecretName)
	leaf := keyFamily(c.PrivateKey.Algorithm)
	if ca == "" || leaf == ca {
		return
	}
	rp.add(l, path+".privateKey.algorithm", "%s: %s is an %s key, and %s signs with an %s key (%s); choose an %s algorithm",
		MixedChain, c.PrivateKey.Algorithm, leaf, is.Ref(), ca, from, ca)
}

// caFamily returns the key family (EC, RSA, Ed25519) of the CA in the
// Secret name, and where it was learnt; "" if unknown.
func (s *Set) caFamily(name string) (family, from string) {
	for _, cert := range s.Certificates {
		if cert.Spec.SecretName == name {
			return keyFamily(cert.Spec.PrivateKey.Algorithm), cert.Ref()
		}
	}
	sec := s.Secret(name)
	if sec == nil {
		return "", ""
	}
	crt, _ := sec.Bytes("tls.crt")
	blk, _ := pem.Decode(crt)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return "", ""
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return "", ""
	}
	switch cert.PublicKey.(type) {
	case *ecdsa.PublicKey:
		return "EC", sec.Ref()
	case *rsa.PublicKey:
		return "RSA", sec.Ref()
	case ed25519.PublicKey:
		return "Ed25519", sec.Ref()
	}
	return "", ""
}

// keyFamily maps a key algorithm, in AIO's (Ec256, Rsa2048, ...) or
// cert-manager's (ECDSA, RSA, Ed25519) spelling, to its family.
func keyFamily(alg string) string {
	switch {
	case alg == "ECDSA" || strings.HasPrefix(alg, "Ec"):
		return "EC"
	case strings.HasPrefix(alg, "Rsa") || alg == "RSA":
		return "RSA"
	case alg == "Ed25519":
		return "Ed25519"
	}
	return ""
}
