package appliance

import (
	"errors"

	"edgebroker/appliance/config"
	"edgebroker/broker"
	"edgebroker/broker/auth"
)

// authorizer adapts a compiled BrokerAuthorization to broker.Authorizer.
type authorizer struct {
	pol *auth.Policy
}

var (
	_ broker.Authorizer  = authorizer{}
	_ broker.Permissions = (*auth.Grants)(nil)
)

// Authorize computes the client's grants once, at CONNECT. A client the
// policy does not let connect gets nil (an untyped nil interface, so the
// broker refuses it with Not authorized).
func (a authorizer) Authorize(c *broker.Client) broker.Permissions {
	g := a.pol.For(&auth.Principal{ClientID: c.ID, Username: c.Username, Attributes: c.Attributes})
	if !g.AllowConnect() {
		return nil
	}
	return g
}

// compilePolicy converts a BrokerAuthorization's rules and compiles them.
// Errors are configuration errors naming the resource and the rule field.
func compilePolicy(ba *config.BrokerAuthorization) (*auth.Policy, error) {
	const prefix = "spec.authorizationPolicies."
	var errs config.Errors
	var rules []auth.Rule
	for i, r := range ba.Spec.AuthorizationPolicies.Rules {
		ar := auth.Rule{Principals: auth.Principals{
			ClientIDs: r.Principals.ClientIDs, Usernames: r.Principals.Usernames, Attributes: r.Principals.Attributes,
		}}
		for j, br := range r.BrokerResources {
			m, err := auth.ParseMethod(br.Method)
			if err != nil {
				errs = append(errs, resourceError(ba, prefix+idx("rules", i)+idx(".brokerResources", j)+".method", "%v", err))
				continue
			}
			ar.Broker = append(ar.Broker, auth.BrokerResource{Method: m, ClientIDs: br.ClientIDs, Topics: br.Topics})
		}
		for j, sr := range r.StateStoreResources {
			path := prefix + idx("rules", i) + idx(".stateStoreResources", j)
			m, err := auth.ParseKeyMethod(sr.Method)
			if err != nil {
				errs = append(errs, resourceError(ba, path+".method", "%v", err))
				continue
			}
			kt, err := auth.ParseKeyType(sr.KeyType)
			if err != nil {
				errs = append(errs, resourceError(ba, path+".keyType", "%v", err))
				continue
			}
			ar.StateStore = append(ar.StateStore, auth.StateStoreResource{Method: m, KeyType: kt, Keys: sr.Keys})
		}
		rules = append(rules, ar)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	pol, err := auth.Compile(rules)
	if err != nil {
		for _, e := range unjoin(err) {
			if fe := (*auth.FieldError)(nil); errors.As(e, &fe) {
				errs = append(errs, resourceError(ba, prefix+fe.Path, "%v", fe.Err))
			} else {
				errs = append(errs, resourceError(ba, prefix+"rules", "%v", e))
			}
		}
		return nil, errs
	}
	return pol, nil
}

// unjoin returns the errors joined in err, or err alone.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
