package auth

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// DN is a distinguished name in a canonical form, for comparison with ==:
// its attributes as "OID=value" sorted and joined with ",", values with
// runs of white space collapsed to one space, trimmed and lower-cased (the
// caseIgnoreMatch of RFC 5280 §7.1 for the usual attribute types).
//
// The order of the relative distinguished names is ignored: OpenSSL prints a
// subject in DER order ("C = US, OU = Engineering, CN = Root") and RFC 4514
// in reverse ("CN=Root,OU=Engineering,C=US"), and AIO examples use either.
type DN string

// SubjectAttributes is one entry of x509Settings.authorizationAttributes:
// a certificate subject and the attributes it confers.
type SubjectAttributes struct {
	Subject    string            // subject, a DN string for ParseDN
	Attributes map[string]string // attributes
}

// attributeTypes maps DN attribute type names, upper-cased, to their OIDs.
var attributeTypes = map[string]string{
	"CN": "2.5.4.3", "SN": "2.5.4.4", "SURNAME": "2.5.4.4", "SERIALNUMBER": "2.5.4.5",
	"C": "2.5.4.6", "L": "2.5.4.7", "ST": "2.5.4.8", "S": "2.5.4.8", "STREET": "2.5.4.9",
	"O": "2.5.4.10", "OU": "2.5.4.11", "TITLE": "2.5.4.12", "POSTALCODE": "2.5.4.17",
	"NAME": "2.5.4.41", "GN": "2.5.4.42", "GIVENNAME": "2.5.4.42", "INITIALS": "2.5.4.43",
	"DNQUALIFIER": "2.5.4.46", "PSEUDONYM": "2.5.4.65",
	"DC": "0.9.2342.19200300.100.1.25", "UID": "0.9.2342.19200300.100.1.1",
	"E": "1.2.840.113549.1.9.1", "EMAIL": "1.2.840.113549.1.9.1", "EMAILADDRESS": "1.2.840.113549.1.9.1",
}

// ParseDN parses a distinguished name written in OpenSSL's one-line style
// ("CN = Contoso Root CA Cert, OU = Engineering, C = US") or RFC 4514 style
// ("CN=Contoso Root CA Cert,OU=Engineering,C=US"), with '+' for multi-valued
// RDNs, quoted values and backslash escapes, and returns its canonical form.
// Attribute types are names such as CN, O, OU, C, L, ST, DC, UID,
// emailAddress, or dotted OIDs.
func ParseDN(s string) (DN, error) {
	var pairs []string
	for raw := range splitDN(s) {
		typ, val, ok := strings.Cut(raw, "=")
		if !ok {
			return "", fmt.Errorf("auth: DN %q: %q is not type=value", s, raw)
		}
		oid, err := attributeOID(strings.TrimSpace(typ))
		if err != nil {
			return "", fmt.Errorf("auth: DN %q: %w", s, err)
		}
		v, err := unescapeDNValue(strings.TrimSpace(val))
		if err != nil {
			return "", fmt.Errorf("auth: DN %q: %w", s, err)
		}
		if v = normalizeValue(v); v == "" {
			return "", fmt.Errorf("auth: DN %q: empty value for %s", s, strings.TrimSpace(typ))
		}
		pairs = append(pairs, canonicalPair(oid, v))
	}
	if len(pairs) == 0 {
		return "", errors.New("auth: empty distinguished name")
	}
	return joinPairs(pairs), nil
}

// SubjectDN returns the canonical form of a certificate subject: of all
// its attributes (name.Names) for a parsed certificate, or of the fields
// and ExtraNames of a pkix.Name built in code.
func SubjectDN(name pkix.Name) DN {
	atvs := name.Names
	if len(atvs) == 0 {
		for _, rdn := range name.ToRDNSequence() {
			atvs = append(atvs, rdn...)
		}
	}
	var pairs []string
	for _, atv := range atvs {
		v, ok := atv.Value.(string)
		if !ok {
			v = fmt.Sprint(atv.Value)
		}
		pairs = append(pairs, canonicalPair(atv.Type.String(), normalizeValue(v)))
	}
	return joinPairs(pairs)
}

// X509Attributes returns the authorization attributes of a client whose
// verified chain is chain, leaf first. Walking from the leaf up, the first
// certificate whose subject equals the subject of an entry supplies all the
// attributes of that entry, and the walk stops; if several entries name the
// same subject, the first wins. Entries whose subject does not parse never
// match (validate them with ParseDN when loading the configuration). The
// result is a copy, or nil if nothing matched.
func X509Attributes(chain []*x509.Certificate, entries []SubjectAttributes) map[string]string {
	dns := make([]DN, len(entries))
	for i, e := range entries {
		dns[i], _ = ParseDN(e.Subject) // "" on error, and no subject is ""
	}
	for _, c := range chain {
		if c == nil {
			continue
		}
		subject := SubjectDN(c.Subject)
		if subject == "" {
			continue
		}
		if i := slices.Index(dns, subject); i >= 0 {
			return maps.Clone(entries[i].Attributes)
		}
	}
	return nil
}

// CNUsername returns the username of a client authenticated by the X509
// method: the common name of its leaf certificate's subject.
func CNUsername(leaf *x509.Certificate) string {
	if leaf == nil {
		return ""
	}
	return leaf.Subject.CommonName
}

// splitDN yields the attribute-value assertions of s, split at ',', ';'
// and '+' outside quotes and escapes.
func splitDN(s string) func(yield func(string) bool) {
	return func(yield func(string) bool) {
		if strings.TrimSpace(s) == "" {
			return
		}
		start, quoted := 0, false
		for i := 0; i < len(s); i++ {
			switch s[i] {
			case '\\':
				i++
			case '"':
				quoted = !quoted
			case ',', ';', '+':
				if !quoted {
					if !yield(s[start:i]) {
						return
					}
					start = i + 1
				}
			}
		}
		yield(s[start:])
	}
}

func attributeOID(typ string) (string, error) {
	if oid, ok := attributeTypes[strings.ToUpper(typ)]; ok {
		return oid, nil
	}
	oid := strings.TrimPrefix(strings.TrimPrefix(typ, "OID."), "oid.")
	if oid != "" && strings.Trim(oid, "0123456789.") == "" && !strings.Contains(oid, "..") &&
		oid[0] != '.' && oid[len(oid)-1] != '.' && strings.Contains(oid, ".") {
		return oid, nil
	}
	return "", fmt.Errorf("unknown attribute type %q", typ)
}

// unescapeDNValue removes quotes and backslash escapes (\, or \2C) from a
// trimmed attribute value.
func unescapeDNValue(v string) (string, error) {
	if strings.HasPrefix(v, "#") {
		return "", errors.New("hex-encoded (#...) values are not supported")
	}
	if strings.HasPrefix(v, `"`) {
		if len(v) < 2 || !strings.HasSuffix(v, `"`) || strings.HasSuffix(v, `\"`) && !strings.HasSuffix(v, `\\"`) {
			return "", fmt.Errorf("unterminated quoted value %s", v)
		}
		v = v[1 : len(v)-1]
	}
	if !strings.Contains(v, `\`) {
		return v, nil
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '\\' {
			b.WriteByte(v[i])
			continue
		}
		if i+1 >= len(v) {
			return "", errors.New(`value ends in a lone '\'`)
		}
		if i+2 < len(v) && isHex(v[i+1]) && isHex(v[i+2]) {
			b.WriteByte(unhex(v[i+1])<<4 | unhex(v[i+2]))
			i += 2
			continue
		}
		b.WriteByte(v[i+1])
		i++
	}
	return b.String(), nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

func normalizeValue(v string) string {
	return strings.ToLower(strings.Join(strings.Fields(v), " "))
}

// canonicalPair escapes the separators in v so that distinct DNs cannot
// join to the same string.
func canonicalPair(oid, v string) string {
	return oid + "=" + strings.NewReplacer(`\`, `\\`, `,`, `\,`).Replace(v)
}

func joinPairs(pairs []string) DN {
	slices.Sort(pairs)
	return DN(strings.Join(pairs, ","))
}
