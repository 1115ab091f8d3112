package auth

import (
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"strings"

	"edgebroker/broker/topic"
)

// Policy is a compiled, validated list of rules. The zero Policy, like a
// nil one or one compiled from no rules, denies everything.
type Policy struct {
	rules []rule
}

type rule struct {
	clientIDs  []template // principals.clientIds
	usernames  []template // principals.usernames
	attributes []map[string]string
	connect    bool       // some Connect resource without clientIds
	connectIDs []template // clientIds of Connect resources, '*' globs
	publish    []template
	subscribe  []template
	keys       []keyRule
}

type keyRule struct {
	method KeyMethod
	typ    KeyType
	key    template // Pattern: glob; String: literal; Binary: decoded bytes
}

// compiler collects the errors of one Compile call.
type compiler struct {
	errs []error
}

func (c *compiler) errorf(path string, format string, args ...any) {
	c.errs = append(c.errs, &FieldError{Path: path, Err: fmt.Errorf(format, args...)})
}

func (c *compiler) fail(path string, err error) {
	c.errs = append(c.errs, &FieldError{Path: path, Err: err})
}

// Compile validates rules and compiles them into a Policy. It reports every
// problem it finds, joined with errors.Join, each a *FieldError naming the
// field, e.g. "rules[1].brokerResources[0].topics[2]: token must fill a
// whole topic level". An empty list of rules compiles to a Policy that
// denies everything.
func Compile(rules []Rule) (*Policy, error) {
	var c compiler
	p := &Policy{rules: make([]rule, 0, len(rules))}
	for i := range rules {
		p.rules = append(p.rules, c.rule(fmt.Sprintf("rules[%d]", i), &rules[i]))
	}
	if err := errors.Join(c.errs...); err != nil {
		return nil, err
	}
	return p, nil
}

func (c *compiler) rule(path string, r *Rule) rule {
	out := rule{
		clientIDs: c.names(path+".principals.clientIds", r.Principals.ClientIDs),
		usernames: c.names(path+".principals.usernames", r.Principals.Usernames),
	}
	for i, m := range r.Principals.Attributes {
		if len(m) == 0 {
			// An empty map would match every client.
			c.errorf(fmt.Sprintf("%s.principals.attributes[%d]", path, i), "empty attribute map")
		}
		out.attributes = append(out.attributes, maps.Clone(m))
	}
	if len(r.Broker) == 0 {
		c.errorf(path+".brokerResources", "required")
	}
	for i := range r.Broker {
		c.brokerResource(fmt.Sprintf("%s.brokerResources[%d]", path, i), &r.Broker[i], &out)
	}
	for i := range r.StateStore {
		c.stateStoreResource(fmt.Sprintf("%s.stateStoreResources[%d]", path, i), &r.StateStore[i], &out)
	}
	return out
}

// names compiles principal client IDs or usernames.
func (c *compiler) names(path string, names []string) []template {
	var out []template
	for i, s := range names {
		p := fmt.Sprintf("%s[%d]", path, i)
		if s == "" {
			c.errorf(p, "empty")
			continue
		}
		if t, err := parseTemplate(s); err != nil {
			c.fail(p, err)
		} else {
			out = append(out, t)
		}
	}
	return out
}

func (c *compiler) brokerResource(path string, br *BrokerResource, out *rule) {
	switch br.Method {
	case Connect:
		if len(br.Topics) > 0 {
			c.errorf(path+".topics", "not allowed with method Connect")
		}
		if len(br.ClientIDs) == 0 {
			out.connect = true
		}
		out.connectIDs = append(out.connectIDs, c.names(path+".clientIds", br.ClientIDs)...)
	case Publish, Subscribe:
		if len(br.ClientIDs) > 0 {
			c.errorf(path+".clientIds", "only allowed with method Connect")
		}
		if len(br.Topics) == 0 {
			c.errorf(path+".topics", "required with method %v", br.Method)
		}
		dst := &out.publish
		if br.Method == Subscribe {
			dst = &out.subscribe
		}
		for i, s := range br.Topics {
			if t, err := compileTopic(s); err != nil {
				c.fail(fmt.Sprintf("%s.topics[%d]", path, i), err)
			} else {
				*dst = append(*dst, t)
			}
		}
	default:
		c.errorf(path+".method", "unknown method %v (want Connect, Publish or Subscribe)", br.Method)
	}
}

// compileTopic parses a topic filter with tokens and checks that it is a
// valid, non-shared filter once tokens are substituted.
func compileTopic(s string) (template, error) {
	t, err := parseTemplate(s)
	if err != nil {
		return nil, err
	}
	if err := t.checkLevels(); err != nil {
		return nil, err
	}
	f := []byte(t.placeholder())
	if err := topic.ValidFilter(f); err != nil {
		return nil, fmt.Errorf("invalid topic filter: %w", err)
	}
	if _, _, shared := topic.ParseShared(f); shared {
		return nil, errors.New("a grant cannot be a shared subscription filter; $share/{group}/ is stripped before checking")
	}
	return t, nil
}

func (c *compiler) stateStoreResource(path string, sr *StateStoreResource, out *rule) {
	if sr.Method != Read && sr.Method != Write && sr.Method != ReadWrite {
		c.errorf(path+".method", "unknown method %v (want Read, Write or ReadWrite)", sr.Method)
	}
	if sr.KeyType > Binary {
		c.errorf(path+".keyType", "unknown key type %v (want Pattern, String or Binary)", sr.KeyType)
		return
	}
	if len(sr.Keys) == 0 {
		c.errorf(path+".keys", "required")
	}
	for i, k := range sr.Keys {
		t, err := compileKey(sr.KeyType, k)
		if err != nil {
			c.fail(fmt.Sprintf("%s.keys[%d]", path, i), err)
			continue
		}
		out.keys = append(out.keys, keyRule{method: sr.Method, typ: sr.KeyType, key: t})
	}
}

func compileKey(typ KeyType, k string) (template, error) {
	if k == "" {
		return nil, errors.New("empty key")
	}
	switch typ {
	case String:
		if strings.Contains(k, "{principal.") {
			return nil, errTokenNotHere
		}
		return template{{text: k}}, nil
	case Binary:
		b, err := base64.StdEncoding.DecodeString(k)
		if err != nil {
			return nil, fmt.Errorf("binary key is not valid base64: %w", err)
		}
		if len(b) == 0 {
			return nil, errors.New("empty key")
		}
		return template{{text: string(b)}}, nil
	}
	t, err := parseTemplate(k)
	if err != nil {
		return nil, err
	}
	if err := validGlob(t.placeholder()); err != nil {
		return nil, err
	}
	return t, nil
}
