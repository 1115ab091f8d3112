package auth

import (
	"strings"

	"edgebroker/broker/topic"
)

// Grants are what a Policy allows one principal, computed once by
// Policy.For when the client connects. A nil *Grants allows nothing. Grants
// are immutable and safe for concurrent use.
type Grants struct {
	connect   bool
	publish   [][]byte // topic filters, tokens substituted
	subscribe [][]byte
	keys      []keyGrant
}

type keyGrant struct {
	method KeyMethod
	typ    KeyType
	key    string // Pattern: glob, token values escaped; otherwise exact bytes
}

// For computes the grants of principal p. A nil Policy or Principal gets
// nothing.
func (pol *Policy) For(p *Principal) *Grants {
	g := new(Grants)
	if pol == nil || p == nil {
		return g
	}
	for i := range pol.rules {
		r := &pol.rules[i]
		if !r.matches(p) {
			continue
		}
		g.connect = g.connect || r.allowConnect(p)
		g.publish = appendFilters(g.publish, r.publish, p)
		g.subscribe = appendFilters(g.subscribe, r.subscribe, p)
		for _, k := range r.keys {
			esc := globLiteral
			if k.typ != Pattern {
				esc = nil // String and Binary keys have no tokens
			}
			if key, ok := k.key.expand(p, esc); ok {
				g.keys = append(g.keys, keyGrant{method: k.method, typ: k.typ, key: key})
			}
		}
	}
	return g
}

// AllowConnect reports whether p may connect: some rule matching p has a
// Connect resource, without clientIds or with a pattern matching p.ClientID.
func (pol *Policy) AllowConnect(p *Principal) bool {
	if pol == nil || p == nil {
		return false
	}
	for i := range pol.rules {
		if r := &pol.rules[i]; r.matches(p) && r.allowConnect(p) {
			return true
		}
	}
	return false
}

// AllowPublish reports whether p may publish to the topic name. It computes
// p's grants on every call; the broker uses For once and Grants.AllowPublish
// per message instead.
func (pol *Policy) AllowPublish(p *Principal, topicName []byte) bool {
	return pol.For(p).AllowPublish(topicName)
}

// AllowSubscribe is like AllowPublish for a SUBSCRIBE topic filter; see
// Grants.AllowSubscribe.
func (pol *Policy) AllowSubscribe(p *Principal, filter []byte) bool {
	return pol.For(p).AllowSubscribe(filter)
}

// matches reports whether any principal entry of r matches p.
func (r *rule) matches(p *Principal) bool {
	for _, t := range r.clientIDs {
		if v, ok := t.expand(p, nil); ok && v == p.ClientID {
			return true
		}
	}
	for _, t := range r.usernames {
		if v, ok := t.expand(p, nil); ok && v == p.Username {
			return true
		}
	}
	for _, m := range r.attributes {
		if len(m) > 0 && attributesMatch(m, p.Attributes) {
			return true
		}
	}
	return false
}

// attributesMatch reports whether have holds every pair of want.
func attributesMatch(want, have map[string]string) bool {
	for k, v := range want {
		if hv, ok := have[k]; !ok || hv != v {
			return false
		}
	}
	return true
}

func (r *rule) allowConnect(p *Principal) bool {
	if r.connect {
		return true
	}
	for _, t := range r.connectIDs {
		if pieces, ok := starPieces(t, p); ok && starMatch(pieces, p.ClientID) {
			return true
		}
	}
	return false
}

// starPieces expands a client ID pattern for p into the literal pieces
// between its '*' wildcards. Token values are literal even if they contain
// '*'.
func starPieces(t template, p *Principal) ([]string, bool) {
	var pieces []string
	var cur strings.Builder
	for _, pt := range t {
		v, ok := pt.value(p)
		if !ok {
			return nil, false
		}
		if pt.kind != literal {
			cur.WriteString(v)
			continue
		}
		for i, seg := range strings.Split(v, "*") {
			if i > 0 {
				pieces = append(pieces, cur.String())
				cur.Reset()
			}
			cur.WriteString(seg)
		}
	}
	return append(pieces, cur.String()), true
}

// starMatch reports whether s consists of the pieces in order with anything
// between them.
func starMatch(pieces []string, s string) bool {
	if len(pieces) == 1 {
		return s == pieces[0]
	}
	first, last := pieces[0], pieces[len(pieces)-1]
	if !strings.HasPrefix(s, first) {
		return false
	}
	s = s[len(first):]
	for _, m := range pieces[1 : len(pieces)-1] {
		i := strings.Index(s, m)
		if i < 0 {
			return false
		}
		s = s[i+len(m):]
	}
	return strings.HasSuffix(s, last)
}

// appendFilters appends the expansions of ts for p to dst, skipping
// duplicates and filters with a missing or unsafe token value.
func appendFilters(dst [][]byte, ts []template, p *Principal) [][]byte {
	for _, t := range ts {
		f, ok := t.expand(p, topicLevel)
		if !ok {
			continue
		}
		dup := false
		for _, d := range dst {
			dup = dup || string(d) == f
		}
		if !dup {
			dst = append(dst, []byte(f))
		}
	}
	return dst
}

// AllowConnect reports whether the principal may connect.
func (g *Grants) AllowConnect() bool { return g != nil && g.connect }

// AllowPublish reports whether the grants allow publishing to the topic
// name, which must be a valid topic name. It allocates nothing.
func (g *Grants) AllowPublish(topicName []byte) bool {
	if g == nil {
		return false
	}
	for _, f := range g.publish {
		if topic.Match(f, topicName) {
			return true
		}
	}
	return false
}

// AllowSubscribe reports whether the grants allow subscribing to the
// filter, which must be a valid topic filter: after stripping a
// "$share/{group}/" prefix, every topic name it can match must be matched by
// one allowed Subscribe filter (topic.Covers). It allocates nothing.
func (g *Grants) AllowSubscribe(filter []byte) bool {
	if g == nil {
		return false
	}
	_, f, _ := topic.ParseShared(filter)
	for _, a := range g.subscribe {
		if topic.Covers(a, f) {
			return true
		}
	}
	return false
}

// AllowKey reports whether the grants allow the state store access method
// (Read, Write, or ReadWrite for both) on the key, given as raw bytes.
func (g *Grants) AllowKey(method KeyMethod, key []byte) bool {
	if g == nil || method == 0 || method&^ReadWrite != 0 {
		return false
	}
	for _, want := range []KeyMethod{Read, Write} {
		if method&want != 0 && !g.allowKey(want, key) {
			return false
		}
	}
	return true
}

func (g *Grants) allowKey(want KeyMethod, key []byte) bool {
	for _, k := range g.keys {
		if k.method&want == 0 {
			continue
		}
		if k.typ == Pattern && globMatch(k.key, string(key)) || k.typ != Pattern && k.key == string(key) {
			return true
		}
	}
	return false
}
