package auth

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// Token spellings.
const (
	tokenClientID   = "principal.clientId"
	tokenUsername   = "principal.username"
	tokenAttrPrefix = "principal.attributes."
)

type partKind uint8

const (
	literal partKind = iota
	clientIDToken
	usernameToken
	attributeToken
)

// part is a literal run of text or a token; text is the literal or, for an
// attribute token, the attribute name.
type part struct {
	kind partKind
	text string
}

// template is a string with tokens, split into parts.
type template []part

var (
	errUnmatchedOpen  = errors.New("unmatched '{' (curly braces are reserved for tokens)")
	errUnmatchedClose = errors.New("unmatched '}' (curly braces are reserved for tokens)")
	errWholeLevel     = errors.New("token must fill a whole topic level")
	errTokenNotHere   = errors.New("tokens are only allowed with keyType Pattern")
)

// parseTemplate splits s into literal text and tokens.
func parseTemplate(s string) (template, error) {
	var t template
	for s != "" {
		i := strings.IndexAny(s, "{}")
		if i < 0 {
			return append(t, part{text: s}), nil
		}
		if s[i] == '}' {
			return nil, errUnmatchedClose
		}
		if i > 0 {
			t = append(t, part{text: s[:i]})
		}
		name, rest, ok := strings.Cut(s[i+1:], "}")
		if !ok || strings.Contains(name, "{") {
			return nil, errUnmatchedOpen
		}
		p, err := parseToken(name)
		if err != nil {
			return nil, err
		}
		t = append(t, p)
		s = rest
	}
	return t, nil
}

func parseToken(name string) (part, error) {
	switch {
	case name == tokenClientID:
		return part{kind: clientIDToken}, nil
	case name == tokenUsername:
		return part{kind: usernameToken}, nil
	case strings.HasPrefix(name, tokenAttrPrefix) && len(name) > len(tokenAttrPrefix):
		return part{kind: attributeToken, text: name[len(tokenAttrPrefix):]}, nil
	}
	return part{}, errors.New("unknown token {" + name + "} (want {principal.clientId}, {principal.username} or {principal.attributes.NAME})")
}

// value returns the text a part stands for in the context of principal p,
// and false if a token's value is missing.
func (pt part) value(p *Principal) (string, bool) {
	var v string
	switch pt.kind {
	case literal:
		return pt.text, true
	case clientIDToken:
		v = p.ClientID
	case usernameToken:
		v = p.Username
	case attributeToken:
		v = p.Attributes[pt.text]
	}
	return v, v != ""
}

// expand substitutes p's values into t, passing each token value through
// esc (if not nil). It returns false if a value is missing or esc rejects it.
func (t template) expand(p *Principal, esc func(string) (string, bool)) (string, bool) {
	if len(t) == 1 && t[0].kind == literal {
		return t[0].text, true
	}
	var b strings.Builder
	for _, pt := range t {
		v, ok := pt.value(p)
		if ok && esc != nil && pt.kind != literal {
			v, ok = esc(v)
		}
		if !ok {
			return "", false
		}
		b.WriteString(v)
	}
	return b.String(), true
}

// placeholder substitutes "x" for every token, to validate the shape of a
// template independently of any principal.
func (t template) placeholder() string {
	var b strings.Builder
	for _, pt := range t {
		if pt.kind == literal {
			b.WriteString(pt.text)
		} else {
			b.WriteString("x")
		}
	}
	return b.String()
}

// checkLevels reports whether every token in the topic template t fills a
// whole level.
func (t template) checkLevels() error {
	for i, pt := range t {
		if pt.kind == literal {
			continue
		}
		if i > 0 && (t[i-1].kind != literal || !strings.HasSuffix(t[i-1].text, "/")) {
			return errWholeLevel
		}
		if i < len(t)-1 && (t[i+1].kind != literal || !strings.HasPrefix(t[i+1].text, "/")) {
			return errWholeLevel
		}
	}
	return nil
}

// topicLevel accepts a value substituted into a topic filter only if it is
// a plain level, so that it cannot add wildcards, levels or a '$' prefix.
func topicLevel(v string) (string, bool) {
	return v, !strings.ContainsAny(v, "/+#\x00") && v[0] != '$'
}

// globLiteral escapes v so that a glob pattern matches it literally, even
// inside a character class: every ASCII byte other than a letter or digit
// gets a backslash in front. A value that is not UTF-8 is refused: a
// character class cannot hold a byte that is not a character, escaped or
// not, so no pattern would be well-formed.
func globLiteral(v string) (string, bool) {
	if !utf8.ValidString(v) {
		return "", false
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < utf8.RuneSelf && !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	return b.String(), true
}
