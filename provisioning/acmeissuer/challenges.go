package acmeissuer

import (
	"crypto/tls"
	"errors"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
)

// ALPNProto is the ALPN protocol of tls-alpn-01 validation handshakes
// (RFC 8737). Never add it to a listener's base NextProtos: clients that
// offer other protocols (e.g. "mqtt") would then negotiate it.
const ALPNProto = "acme-tls/1"

// httpPathPrefix is where http-01 answers are served (RFC 8555 §8.3).
const httpPathPrefix = "/.well-known/acme-challenge/"

// maxTokenLen bounds http-01 tokens taken from request paths; real tokens
// are 43 base64url characters (RFC 8555 §8.1 asks for at least 128 bits).
const maxTokenLen = 256

// Challenges is a concurrency-safe registry of pending challenge answers,
// shared by all ACME issuers of the appliance. Issuers add an answer just
// before they ask the CA to validate and remove it when the authorization
// is done.
//
// The zero Challenges is empty and ready to use.
type Challenges struct {
	mu   sync.RWMutex
	http map[string][]string           // http-01: token → key authorizations
	alpn map[string][]*tls.Certificate // tls-alpn-01: identifier → challenge certificates, newest last
}

// TLSALPN01 returns the challenge certificate for a tls-alpn-01 validation
// handshake, or nil when hello is not one (it does not offer exactly
// "acme-tls/1") or no challenge is pending for its identifier. The
// identifier is the SNI; for IP identifiers the validator sends the
// reverse-DNS name (RFC 8738 §6), and without SNI the local address of
// the connection is used.
//
// A TLS listener calls it from GetConfigForClient and, when it returns a
// certificate, answers with a config whose NextProtos is ["acme-tls/1"]
// and whose Certificates holds only that certificate.
func (c *Challenges) TLSALPN01(hello *tls.ClientHelloInfo) *tls.Certificate {
	if len(hello.SupportedProtos) != 1 || hello.SupportedProtos[0] != ALPNProto {
		return nil
	}
	id := sniIdentifier(hello)
	if id == "" {
		return nil
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if certs := c.alpn[id]; len(certs) > 0 {
		return certs[len(certs)-1]
	}
	return nil
}

// TLSConfig returns a config for a listener (e.g. on :443) that answers
// only tls-alpn-01 validation handshakes and fails all others.
func (c *Challenges) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{ALPNProto},
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			if cert := c.TLSALPN01(hello); cert != nil {
				return cert, nil
			}
			return nil, errors.New("acmeissuer: no tls-alpn-01 challenge pending for this handshake")
		},
	}
}

// ServeHTTP answers http-01 validation requests: GET (or HEAD)
// /.well-known/acme-challenge/<token> with the key authorization of a
// pending challenge. Everything else gets 404.
func (c *Challenges) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	token, ok := strings.CutPrefix(r.URL.Path, httpPathPrefix)
	if !ok || (r.Method != http.MethodGet && r.Method != http.MethodHead) || !validToken(token) {
		http.NotFound(w, r)
		return
	}
	c.mu.RLock()
	answers := c.http[token]
	var ka string
	if len(answers) > 0 {
		ka = answers[len(answers)-1]
	}
	c.mu.RUnlock()
	if ka == "" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	if r.Method == http.MethodGet {
		w.Write([]byte(ka))
	}
}

// validToken reports whether token is a plausible ACME token: base64url
// characters only and bounded length.
func validToken(token string) bool {
	if token == "" || len(token) > maxTokenLen {
		return false
	}
	for _, b := range []byte(token) {
		switch {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9', b == '-', b == '_':
		default:
			return false
		}
	}
	return true
}

// addHTTP01 makes token answer keyAuth until the returned func is called.
func (c *Challenges) addHTTP01(token, keyAuth string) (remove func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.http == nil {
		c.http = make(map[string][]string)
	}
	c.http[token] = append(c.http[token], keyAuth)
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.http[token] = removeOne(c.http[token], func(s string) bool { return s == keyAuth })
		if len(c.http[token]) == 0 {
			delete(c.http, token)
		}
	}
}

// addTLSALPN01 makes identifier (a DNS name or an IP address) answer cert
// until the returned func is called.
func (c *Challenges) addTLSALPN01(identifier string, cert *tls.Certificate) (remove func()) {
	id := canonicalIdentifier(identifier)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.alpn == nil {
		c.alpn = make(map[string][]*tls.Certificate)
	}
	c.alpn[id] = append(c.alpn[id], cert)
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.alpn[id] = removeOne(c.alpn[id], func(x *tls.Certificate) bool { return x == cert })
		if len(c.alpn[id]) == 0 {
			delete(c.alpn, id)
		}
	}
}

// removeOne removes the first element of s for which match is true.
func removeOne[T any](s []T, match func(T) bool) []T {
	if i := slices.IndexFunc(s, match); i >= 0 {
		return slices.Delete(s, i, i+1)
	}
	return s
}

// canonicalIdentifier is the registry key of an identifier: a lower-case
// DNS name without a trailing dot, or an IP address in netip's form.
func canonicalIdentifier(s string) string {
	if ip, err := netip.ParseAddr(s); err == nil {
		return ip.Unmap().WithZone("").String()
	}
	return strings.ToLower(strings.TrimSuffix(s, "."))
}

// sniIdentifier returns the identifier a tls-alpn-01 handshake validates:
// the SNI, an IP address decoded from a reverse-DNS SNI (RFC 8738 §6),
// or the connection's local IP address when there is no SNI.
func sniIdentifier(hello *tls.ClientHelloInfo) string {
	name := canonicalIdentifier(hello.ServerName)
	if name == "" {
		if hello.Conn == nil {
			return ""
		}
		ap, err := netip.ParseAddrPort(hello.Conn.LocalAddr().String())
		if err != nil {
			return ""
		}
		return ap.Addr().Unmap().WithZone("").String()
	}
	if ip, ok := parseReverseDNS(name); ok {
		return ip.String()
	}
	return name
}

// parseReverseDNS decodes "4.3.2.1.in-addr.arpa" and the 32-nibble
// "….ip6.arpa" form into an address.
func parseReverseDNS(name string) (netip.Addr, bool) {
	if v4, ok := strings.CutSuffix(name, ".in-addr.arpa"); ok {
		labels := strings.Split(v4, ".")
		if len(labels) != 4 {
			return netip.Addr{}, false
		}
		slices.Reverse(labels)
		ip, err := netip.ParseAddr(strings.Join(labels, "."))
		if err != nil || !ip.Is4() {
			return netip.Addr{}, false
		}
		return ip, true
	}
	if v6, ok := strings.CutSuffix(name, ".ip6.arpa"); ok {
		nibbles := strings.Split(v6, ".")
		if len(nibbles) != 32 {
			return netip.Addr{}, false
		}
		var b [16]byte
		for i, n := range nibbles {
			if len(n) != 1 {
				return netip.Addr{}, false
			}
			v := strings.IndexByte("0123456789abcdef", n[0])
			if v < 0 {
				return netip.Addr{}, false
			}
			// nibbles[0] is the low nibble of the last byte.
			pos := 31 - i
			if pos%2 == 0 {
				b[pos/2] |= byte(v) << 4
			} else {
				b[pos/2] |= byte(v)
			}
		}
		return netip.AddrFrom16(b), true
	}
	return netip.Addr{}, false
}
