package config

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"regexp"
	"strings"
)

// Secret types the appliance accepts.
const (
	SecretTypeOpaque = "Opaque"
	SecretTypeTLS    = "kubernetes.io/tls"
)

// Secret is a Kubernetes Secret: TLS material (type kubernetes.io/tls with
// tls.crt, tls.key and optionally ca.crt) or Opaque data (password files,
// ACME keys). data is base64, stringData plain text; stringData wins on a
// shared key, as in Kubernetes.
type Secret struct {
	Object     `json:",inline" yaml:",inline"`
	Type       string            `json:"type,omitempty" yaml:"type,omitempty"` // default Opaque
	Immutable  bool              `json:"immutable,omitempty" yaml:"immutable,omitempty"`
	Data       map[string]string `json:"data,omitempty" yaml:"data,omitempty"`
	StringData map[string]string `json:"stringData,omitempty" yaml:"stringData,omitempty"`

	bytes map[string][]byte // Data decoded, then StringData
}

// Bytes returns the value of key, decoded.
func (s *Secret) Bytes(key string) ([]byte, bool) {
	if s.bytes == nil {
		s.decode(new(report))
	}
	b, ok := s.bytes[key]
	return b, ok
}

// dataPath returns the field path of key: stringData[key] or data[key].
func (s *Secret) dataPath(key string) string {
	if _, ok := s.StringData[key]; ok {
		return "stringData[" + key + "]"
	}
	return "data[" + key + "]"
}

// keysPath returns "data", or "stringData" if only that is given.
func (s *Secret) keysPath() string {
	if s.Data == nil && s.StringData != nil {
		return "stringData"
	}
	return "data"
}

func (s *Secret) setDefaults() {
	if s.Type == "" {
		s.Type = SecretTypeOpaque
	}
}

func (s *Secret) decode(rp *report) {
	s.bytes = decodeBase64(rp, s, "data", s.Data)
	for k, v := range s.StringData {
		s.bytes[k] = []byte(v)
	}
}

func decodeBase64(rp *report, r Resource, path string, m map[string]string) map[string][]byte {
	out := make(map[string][]byte, len(m))
	for _, k := range sortedKeys(m) {
		b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(m[k]), ""))
		if err != nil {
			rp.add(r, path+"["+k+"]", "not base64 (use stringData for plain text): %v", err)
			continue
		}
		out[k] = b
	}
	return out
}

var dataKey = regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)

func checkKeys(rp *report, r Resource, path string, keys ...map[string]string) {
	for _, m := range keys {
		for _, k := range sortedKeys(m) {
			if len(k) > 253 || !dataKey.MatchString(k) {
				rp.add(r, path+"["+k+"]", "%q is not a valid key (letters, digits, '-', '_' and '.')", k)
			}
		}
	}
}

func (s *Secret) validate(_ *Set, rp *report) {
	s.decode(rp)
	checkKeys(rp, s, "data", s.Data)
	checkKeys(rp, s, "stringData", s.StringData)
	if !oneOf(rp, s, "type", s.Type, SecretTypeOpaque, SecretTypeTLS) || s.Type != SecretTypeTLS {
		return
	}
	crt, ok := s.bytes["tls.crt"]
	if !ok {
		rp.add(s, s.keysPath(), "a %s Secret needs tls.crt (the certificate chain, leaf first)", SecretTypeTLS)
	} else if msg := checkCertPEM(crt); msg != "" {
		rp.add(s, s.dataPath("tls.crt"), "%s", msg)
	}
	key, ok := s.bytes["tls.key"]
	if !ok {
		rp.add(s, s.keysPath(), "a %s Secret needs tls.key (the private key)", SecretTypeTLS)
	} else if msg := checkKeyPEM(key); msg != "" {
		rp.add(s, s.dataPath("tls.key"), "%s", msg)
	}
	if ca, ok := s.bytes["ca.crt"]; ok && len(ca) > 0 {
		if msg := checkCertPEM(ca); msg != "" {
			rp.add(s, s.dataPath("ca.crt"), "%s", msg)
		}
	}
}

// checkCertPEM checks that b holds only PEM certificates, at least one.
func checkCertPEM(b []byte) string {
	n := 0
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		n++
		if blk.Type != "CERTIFICATE" {
			return "PEM block " + itoa(n) + " is " + blk.Type + ", want CERTIFICATE"
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			return "certificate " + itoa(n) + ": " + err.Error()
		}
	}
	if n == 0 {
		return "no PEM CERTIFICATE"
	}
	if strings.TrimSpace(string(b)) != "" {
		return "not PEM after certificate " + itoa(n)
	}
	return ""
}

func checkKeyPEM(b []byte) string {
	blk, rest := pem.Decode(b)
	switch {
	case blk == nil:
		return "not a PEM private key"
	case blk.Type != "PRIVATE KEY" && blk.Type != "EC PRIVATE KEY" && blk.Type != "RSA PRIVATE KEY":
		return "PEM block is " + blk.Type + ", want PRIVATE KEY"
	case strings.TrimSpace(string(rest)) != "":
		return "want exactly one PEM private key"
	}
	return ""
}

// ConfigMap is a Kubernetes ConfigMap: trust bundles (PEM CA
// certificates, under any key). binaryData is base64.
type ConfigMap struct {
	Object     `json:",inline" yaml:",inline"`
	Immutable  bool              `json:"immutable,omitempty" yaml:"immutable,omitempty"`
	Data       map[string]string `json:"data,omitempty" yaml:"data,omitempty"`
	BinaryData map[string]string `json:"binaryData,omitempty" yaml:"binaryData,omitempty"`

	bytes map[string][]byte
}

// Bytes returns the value of key from data or binaryData (decoded).
func (c *ConfigMap) Bytes(key string) ([]byte, bool) {
	if c.bytes == nil {
		c.decode(new(report))
	}
	b, ok := c.bytes[key]
	return b, ok
}

func (c *ConfigMap) decode(rp *report) {
	c.bytes = decodeBase64(rp, c, "binaryData", c.BinaryData)
	for k, v := range c.Data {
		c.bytes[k] = []byte(v)
	}
}

func (c *ConfigMap) hasCertificates() bool {
	if c.bytes == nil {
		c.decode(new(report))
	}
	for _, k := range sortedKeys(c.bytes) {
		if blk, _ := pem.Decode(c.bytes[k]); blk != nil && blk.Type == "CERTIFICATE" {
			return true
		}
	}
	return false
}

func (c *ConfigMap) setDefaults() {}

func (c *ConfigMap) validate(_ *Set, rp *report) {
	c.decode(rp)
	checkKeys(rp, c, "data", c.Data)
	checkKeys(rp, c, "binaryData", c.BinaryData)
	for _, k := range sortedKeys(c.Data) {
		if _, ok := c.BinaryData[k]; ok {
			rp.add(c, "binaryData["+k+"]", "key %q is also in data", k)
		}
	}
}
