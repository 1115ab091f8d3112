package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Warnings returns what a configuration accepts but what is probably not
// meant, in the form of errors (file:line, resource, field path), ordered
// by file and line: AIO fields that mean nothing on the appliance and are
// ignored, ports using the built-in BrokerAuthentication default (which
// means something else than AIO's), topic rules with a '*' (a literal character in MQTT, not
// a wildcard), the settings of a defined DataflowEndpoint default (ignored), a
// dataflow password sent without TLS, and a dataDestination with $inputTopic
// written without braces. They do not make the configuration invalid; the appliance
// logs them and edgebundle lint prints them.
func (s *Set) Warnings() Errors {
	var rp report
	for _, r := range s.All() {
		rp.errs = append(rp.errs, r.object().warnings...)
	}
	s.builtinWarnings(&rp)
	s.endpointWarnings(&rp)
	s.dataflowWarnings(&rp)
	for _, a := range s.Authorizations {
		for i, rule := range a.Spec.AuthorizationPolicies.Rules {
			for j, br := range rule.BrokerResources {
				for k, t := range br.Topics {
					if strings.Contains(t, "*") {
						p := fmt.Sprintf("spec.authorizationPolicies.rules[%d].brokerResources[%d].topics[%d]", i, j, k)
						rp.add(a, p, "%q: %s", t, starTopic(t))
					}
				}
			}
		}
	}
	slices.SortStableFunc(rp.errs, func(a, b *Error) int {
		return cmp.Or(strings.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line))
	})
	return rp.errs
}

// starTopic explains a topic rule with '*', with the wildcard topics the
// rule may have meant when '*' is a whole level.
func starTopic(t string) string {
	msg := "'*' is a literal character in MQTT topics, not a wildcard: MQTT wildcards are + (one level) and # (every level below)"
	levels := strings.Split(t, "/")
	var plus, hash []string
	for i, l := range levels {
		if l != "*" {
			plus, hash = append(plus, l), append(hash, l)
			continue
		}
		plus = append(plus, "+")
		if i == len(levels)-1 {
			hash = append(hash, "#")
		} else {
			hash = append(hash, "+")
		}
	}
	p, h := strings.Join(plus, "/"), strings.Join(hash, "/")
	switch {
	case p == t:
		return msg
	case p == h:
		return fmt.Sprintf("%s; did you mean %q?", msg, p)
	}
	return fmt.Sprintf("%s; did you mean %q or %q?", msg, p, h)
}
