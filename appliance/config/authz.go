package config

import (
	"encoding/base64"
	"strings"
)

// Authorization methods, state store key types and cache settings.
const (
	AuthzConnect   = "Connect"
	AuthzPublish   = "Publish"
	AuthzSubscribe = "Subscribe"

	StateStoreRead      = "Read"
	StateStoreWrite     = "Write"
	StateStoreReadWrite = "ReadWrite"

	KeyTypePattern = "Pattern"
	KeyTypeString  = "String"
	KeyTypeBinary  = "Binary"

	CacheEnabled  = "Enabled"
	CacheDisabled = "Disabled"
)

// BrokerAuthorization is AIO's BrokerAuthorization: allow-only rules.
// brokerRef is accepted and ignored.
type BrokerAuthorization struct {
	Object `json:",inline" yaml:",inline"`
	Spec   BrokerAuthorizationSpec `json:"spec" yaml:"spec"`
}

// BrokerAuthorizationSpec is BrokerAuthorization.spec.
type BrokerAuthorizationSpec struct {
	AuthorizationPolicies AuthorizationPolicies `json:"authorizationPolicies" yaml:"authorizationPolicies"`
}

// AuthorizationPolicies holds the rules; no rules means deny all.
type AuthorizationPolicies struct {
	Cache string              `json:"cache,omitempty" yaml:"cache,omitempty"` // default Enabled
	Rules []AuthorizationRule `json:"rules,omitempty" yaml:"rules,omitempty"`
}

// AuthorizationRule grants its resources to clients matching any principal.
type AuthorizationRule struct {
	Principals          Principals           `json:"principals" yaml:"principals"`
	BrokerResources     []BrokerResource     `json:"brokerResources" yaml:"brokerResources"`
	StateStoreResources []StateStoreResource `json:"stateStoreResources,omitempty" yaml:"stateStoreResources,omitempty"`
}

// Principals match a client by client id, username, or all pairs of one
// attributes map.
type Principals struct {
	ClientIDs  []string            `json:"clientIds,omitempty" yaml:"clientIds,omitempty"`
	Usernames  []string            `json:"usernames,omitempty" yaml:"usernames,omitempty"`
	Attributes []map[string]string `json:"attributes,omitempty" yaml:"attributes,omitempty"`
}

// BrokerResource is an MQTT action and what it applies to.
type BrokerResource struct {
	Method    string   `json:"method" yaml:"method"`
	ClientIDs []string `json:"clientIds,omitempty" yaml:"clientIds,omitempty"` // Connect only
	Topics    []string `json:"topics,omitempty" yaml:"topics,omitempty"`       // Publish and Subscribe
}

// StateStoreResource grants access to state store keys. Binary keys are
// base64.
type StateStoreResource struct {
	Method  string   `json:"method" yaml:"method"`
	KeyType string   `json:"keyType,omitempty" yaml:"keyType,omitempty"` // default Pattern
	Keys    []string `json:"keys" yaml:"keys"`
}

func (a *BrokerAuthorization) setDefaults() {
	p := &a.Spec.AuthorizationPolicies
	if p.Cache == "" {
		p.Cache = CacheEnabled
	}
	for i := range p.Rules {
		for j := range p.Rules[i].StateStoreResources {
			if r := &p.Rules[i].StateStoreResources[j]; r.KeyType == "" {
				r.KeyType = KeyTypePattern
			}
		}
	}
}

func (a *BrokerAuthorization) validate(_ *Set, rp *report) {
	p := a.Spec.AuthorizationPolicies
	oneOf(rp, a, "spec.authorizationPolicies.cache", p.Cache, CacheEnabled, CacheDisabled)
	for i, rule := range p.Rules {
		path := idx("spec.authorizationPolicies.rules", i)
		pr := rule.Principals
		if len(pr.ClientIDs)+len(pr.Usernames)+len(pr.Attributes) == 0 {
			rp.add(a, path+".principals", "matches no client: give clientIds, usernames or attributes")
		}
		for j, m := range pr.Attributes {
			if len(m) == 0 {
				rp.add(a, idx(path+".principals.attributes", j), "an empty attributes map would match every client; remove it")
			}
		}
		if len(rule.BrokerResources) == 0 {
			rp.add(a, path+".brokerResources", "at least one resource is required")
		}
		for j, br := range rule.BrokerResources {
			a.validateBrokerResource(rp, idx(path+".brokerResources", j), br)
		}
		for j, sr := range rule.StateStoreResources {
			a.validateStateStoreResource(rp, idx(path+".stateStoreResources", j), sr)
		}
	}
}

func (a *BrokerAuthorization) validateBrokerResource(rp *report, path string, br BrokerResource) {
	if !oneOf(rp, a, path+".method", br.Method, AuthzConnect, AuthzPublish, AuthzSubscribe) {
		return
	}
	if br.Method == AuthzConnect {
		if len(br.Topics) > 0 {
			rp.add(a, path+".topics", "Connect takes no topics (use clientIds to restrict which client ids may connect)")
		}
		return
	}
	if len(br.ClientIDs) > 0 {
		rp.add(a, path+".clientIds", "only Connect takes clientIds")
	}
	if len(br.Topics) == 0 {
		rp.add(a, path+".topics", "%s needs at least one topic", br.Method)
	}
	for k, t := range br.Topics {
		if msg := checkTopic(t); msg != "" {
			rp.add(a, idx(path+".topics", k), "%q: %s", t, msg)
		}
	}
}

// checkTopic checks a topic filter with substitution tokens.
func checkTopic(t string) string {
	if t == "" {
		return "empty topic"
	}
	levels := strings.Split(t, "/")
	for i, l := range levels {
		switch {
		case l == "#" && i != len(levels)-1:
			return "'#' must be the last level"
		case l != "#" && l != "+" && strings.ContainsAny(l, "#+"):
			return "'+' and '#' must be a whole level"
		case strings.ContainsAny(l, "{}"):
			if msg := checkToken(l); msg != "" {
				return msg + " (a token must be a whole topic level)"
			}
		}
	}
	return ""
}

// checkToken checks that s is exactly one substitution token.
func checkToken(s string) string {
	inner, ok := strings.CutPrefix(s, "{principal.")
	if !ok || !strings.HasSuffix(inner, "}") {
		return "bad token " + s
	}
	inner = strings.TrimSuffix(inner, "}")
	if inner == "clientId" || inner == "username" {
		return ""
	}
	if name, ok := strings.CutPrefix(inner, "attributes."); ok && name != "" && !strings.ContainsAny(name, "{}") {
		return ""
	}
	return "unknown token " + s + " (want {principal.clientId}, {principal.username} or {principal.attributes.NAME})"
}

func (a *BrokerAuthorization) validateStateStoreResource(rp *report, path string, sr StateStoreResource) {
	oneOf(rp, a, path+".method", sr.Method, StateStoreRead, StateStoreWrite, StateStoreReadWrite)
	oneOf(rp, a, path+".keyType", sr.KeyType, KeyTypePattern, KeyTypeString, KeyTypeBinary)
	if len(sr.Keys) == 0 {
		rp.add(a, path+".keys", "at least one key is required")
	}
	for i, k := range sr.Keys {
		p := idx(path+".keys", i)
		switch {
		case k == "":
			rp.add(a, p, "empty key")
		case sr.KeyType == KeyTypeBinary:
			if _, err := base64.StdEncoding.DecodeString(k); err != nil {
				rp.add(a, p, "binary keys are base64: %v", err)
			}
		case sr.KeyType == KeyTypeString && strings.Contains(k, "{principal."):
			rp.add(a, p, "tokens are substituted only in keyType Pattern")
		case sr.KeyType == KeyTypePattern && strings.ContainsAny(k, "{}"):
			if msg := checkKeyTokens(k); msg != "" {
				rp.add(a, p, "%s", msg)
			}
		}
	}
}

// checkKeyTokens checks every {...} in a Pattern key.
func checkKeyTokens(k string) string {
	for k != "" {
		open := strings.IndexAny(k, "{}")
		if open < 0 {
			return ""
		}
		if k[open] == '}' {
			return "unbalanced '}' (curly braces are reserved for tokens)"
		}
		end := strings.IndexByte(k[open:], '}')
		if end < 0 {
			return "unbalanced '{' (curly braces are reserved for tokens)"
		}
		if msg := checkToken(k[open : open+end+1]); msg != "" {
			return msg
		}
		k = k[open+end+1:]
	}
	return ""
}
