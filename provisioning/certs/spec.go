package certs

import (
	"crypto/x509"
	"fmt"
	"net"
	"slices"
	"time"
)

// DefaultDuration is a certificate's lifetime when Spec.Duration is unset
// (cert-manager and AIO: 90 days).
const DefaultDuration = 2160 * time.Hour

// Spec is what the Manager keeps issued under one Secret name: the inputs
// of a cert-manager Certificate or an AIO certManagerCertificateSpec.
type Spec struct {
	CommonName     string // default: the first DNS name (leaves) or the Secret name (CAs)
	DNSNames       []string
	IPs            []net.IP
	IsCA           bool
	Duration       time.Duration // default DefaultDuration
	RenewBefore    time.Duration // default Duration/3, as cert-manager
	Key            KeySpec
	RotationPolicy string // RotateAlways (default) or RotateNever
}

// WithNames returns s with extra SANs added (the device's hostname and
// addresses), leaving out names s already has.
func (s Spec) WithNames(dns []string, ips []net.IP) Spec {
	s.DNSNames = slices.Clone(s.DNSNames)
	for _, d := range dns {
		if !slices.Contains(s.DNSNames, d) {
			s.DNSNames = append(s.DNSNames, d)
		}
	}
	s.IPs = slices.Clone(s.IPs)
	for _, ip := range ips {
		if !slices.ContainsFunc(s.IPs, ip.Equal) {
			s.IPs = append(s.IPs, ip)
		}
	}
	return s
}

// normalize fills in defaults and checks s.
func (s Spec) normalize(name string) (Spec, error) {
	var err error
	if s.Key, err = s.Key.Normalize(); err != nil {
		return s, err
	}
	if s.Duration == 0 {
		s.Duration = DefaultDuration
	}
	if s.RenewBefore == 0 {
		s.RenewBefore = s.Duration / 3
	}
	switch {
	case s.Duration < 0 || s.RenewBefore < 0:
		return s, fmt.Errorf("certs: %s: negative duration or renewBefore", name)
	case s.RenewBefore >= s.Duration:
		return s, fmt.Errorf("certs: %s: renewBefore %v must be shorter than duration %v", name, s.RenewBefore, s.Duration)
	}
	switch s.RotationPolicy {
	case "":
		s.RotationPolicy = RotateAlways
	case RotateAlways, RotateNever:
	default:
		return s, fmt.Errorf("certs: %s: rotationPolicy %q, want %s or %s", name, s.RotationPolicy, RotateAlways, RotateNever)
	}
	if s.CommonName == "" {
		if s.IsCA {
			s.CommonName = name
		} else if len(s.DNSNames) > 0 {
			s.CommonName = s.DNSNames[0]
		}
	}
	return s, nil
}

// matches reports whether leaf was issued for s (s normalized). A leaf
// with a shorter lifetime than s.Duration matches (a CA caps its leaves'
// lifetime to its own); a longer one does not.
func (s Spec) matches(leaf *x509.Certificate, is Issuer) bool {
	cn := leaf.Subject.CommonName == s.CommonName ||
		// ACME CAs may leave the CommonName out; it is one of the SANs.
		leaf.Subject.CommonName == "" && (slices.Contains(leaf.DNSNames, s.CommonName) ||
			slices.ContainsFunc(leaf.IPAddresses, func(ip net.IP) bool { return ip.String() == s.CommonName }))
	_, fixed := is.(LifetimeChooser)
	return cn &&
		sameSet(leaf.DNSNames, s.DNSNames, func(a, b string) bool { return a == b }) &&
		sameSet(leaf.IPAddresses, s.IPs, net.IP.Equal) &&
		leaf.IsCA == s.IsCA &&
		s.Key.Matches(leaf.PublicKey) &&
		(fixed || leaf.NotAfter.Sub(leaf.NotBefore) <= s.Duration)
}

// LifetimeChooser is an optional Issuer capability: the issuer (an ACME
// CA) chooses certificates' lifetimes itself, so a stored certificate
// whose lifetime differs from Spec.Duration still matches.
type LifetimeChooser interface {
	ChoosesLifetime()
}

func sameSet[T any](a, b []T, eq func(T, T) bool) bool {
	has := func(xs []T, y T) bool { return slices.ContainsFunc(xs, func(x T) bool { return eq(x, y) }) }
	for _, x := range a {
		if !has(b, x) {
			return false
		}
	}
	for _, y := range b {
		if !has(a, y) {
			return false
		}
	}
	return true
}

// renewAt is when leaf is due for renewal: NotAfter − RenewBefore, or at
// two thirds of its lifetime when RenewBefore is not shorter than it.
func (s Spec) renewAt(leaf *x509.Certificate) time.Time {
	rb := s.RenewBefore
	if life := leaf.NotAfter.Sub(leaf.NotBefore); rb >= life {
		rb = life / 3
	}
	return leaf.NotAfter.Add(-rb)
}
