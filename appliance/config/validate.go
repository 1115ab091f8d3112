package config

import (
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

var (
	// brokerName is AIO's rule for listener, authentication,
	// authorization and broker names (3..63 characters).
	brokerName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*[a-z0-9]$`)
	// dnsLabel is one label of a Kubernetes DNS-1123 subdomain.
	dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
)

// Validate checks the whole Set, as the appliance does before applying
// it, and returns every problem at once (as Errors), or nil. It fills in
// defaults first (Parse has done so already for loaded resources). References
// that may be satisfied later (a listener's TLS Secret, a CA issuer's
// Secret) are not errors: see Pending.
func (s *Set) Validate() error {
	var rp report
	seen := map[string]Resource{}
	for _, r := range s.All() {
		o := r.object()
		r.setDefaults()
		checkName(&rp, r)
		if prev, ok := seen[o.Ref()]; ok {
			rp.add(r, "metadata.name", "%s already defined%s", o.Ref(), where(prev))
			continue
		}
		seen[o.Ref()] = r
		r.validate(s, &rp)
	}
	s.validateListenerSet(&rp)
	if len(s.Brokers) > 1 {
		rp.add(s.Brokers[1], "metadata.name", "only one Broker resource is allowed; %s is already defined%s",
			s.Brokers[0].Ref(), where(s.Brokers[0]))
	}
	if len(s.Devices) > 1 {
		rp.add(s.Devices[1], "metadata.name", "only one Device resource is allowed; %s is already defined%s",
			s.Devices[0].Ref(), where(s.Devices[0]))
	}
	return rp.err()
}

// where returns " at file:line" for r, or "".
func where(r Resource) string {
	file, line := r.Position()
	if file == "" {
		return ""
	}
	if line == 0 {
		return " in " + file
	}
	return fmt.Sprintf(" at %s:%d", file, line)
}

func checkName(rp *report, r Resource) {
	o := r.object()
	name := o.Metadata.Name
	switch o.Kind {
	case "Broker", "BrokerListener", "BrokerAuthentication", "BrokerAuthorization":
		if len(name) < 3 || len(name) > 63 || !brokerName.MatchString(name) {
			rp.add(r, "metadata.name", "%q is not a valid name: use 3 to 63 lower-case letters, digits and '-', starting and ending with a letter or digit", name)
		}
	default:
		if !isSubdomain(name) {
			rp.add(r, "metadata.name", "%q is not a valid name: use lower-case letters, digits, '-' and '.' (a DNS-1123 subdomain of at most 253 characters)", name)
		}
	}
}

// isSubdomain reports whether s is a Kubernetes DNS-1123 subdomain.
func isSubdomain(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if len(l) > 63 || !dnsLabel.MatchString(l) {
			return false
		}
	}
	return true
}

// isDNSName reports whether s is a host name for a certificate SAN; a
// leading "*." wildcard label is allowed.
func isDNSName(s string) bool {
	s = strings.TrimPrefix(s, "*.")
	if s == "" || len(s) > 253 || net.ParseIP(s) != nil {
		return false
	}
	for _, l := range strings.Split(strings.ToLower(s), ".") {
		if len(l) > 63 || !dnsLabel.MatchString(l) {
			return false
		}
	}
	return true
}

// oneOf reports whether v is one of allowed, and records an error if not.
func oneOf(rp *report, r Resource, path, v string, allowed ...string) bool {
	if slices.Contains(allowed, v) {
		return true
	}
	want := strings.Join(allowed, ", ")
	if v == "" {
		rp.add(r, path, "required (one of %s)", want)
		return false
	}
	for _, a := range allowed {
		if strings.EqualFold(a, v) {
			rp.add(r, path, "%q is not valid; did you mean %q? (spelling is case-sensitive)", v, a)
			return false
		}
	}
	rp.add(r, path, "%q is not valid (want one of %s)", v, want)
	return false
}

// Duration is a Go duration string ("2160h", "45m"), as AIO and
// cert-manager write durations.
type Duration string

// Value parses d; "" is 0.
func (d Duration) Value() (time.Duration, error) {
	if d == "" {
		return 0, nil
	}
	v, err := time.ParseDuration(string(d))
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (want e.g. 2160h or 45m)", string(d))
	}
	return v, nil
}

// checkLifetime validates duration and renewBefore at prefix.
func checkLifetime(rp *report, r Resource, prefix string, duration, renewBefore Duration) {
	dur, err := duration.Value()
	if err != nil {
		rp.add(r, prefix+".duration", "%v", err)
	} else if dur <= 0 && duration != "" {
		rp.add(r, prefix+".duration", "must be positive")
	}
	rb, err := renewBefore.Value()
	switch {
	case err != nil:
		rp.add(r, prefix+".renewBefore", "%v", err)
	case renewBefore != "" && rb <= 0:
		rp.add(r, prefix+".renewBefore", "must be positive")
	case dur > 0 && rb >= dur:
		rp.add(r, prefix+".renewBefore", "%s must be shorter than duration %s", renewBefore, duration)
	}
}

func idx(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// Waiting is a part of a valid configuration that waits for a Secret a
// later configuration will supply (SPEC §5): the port is configured but
// not served, or the issuer cannot issue yet.
type Waiting struct {
	Kind, Name string // the waiting resource
	Path       string // the field naming the Secret
	Port       int    // the listener port; 0 for an Issuer
	Secret     string // the missing Secret
}

// String returns the status line the appliance reports, e.g.
// "BrokerListener/tls: port 8885: Server certificate server-cert-secret
// not found. Awaiting creation of secret."
func (w Waiting) String() string {
	what := w.Path
	if w.Port != 0 {
		what = "port " + strconv.Itoa(w.Port)
	}
	if w.Kind == "BrokerListener" {
		return fmt.Sprintf("%s/%s: %s: Server certificate %s not found. Awaiting creation of secret.", w.Kind, w.Name, what, w.Secret)
	}
	return fmt.Sprintf("%s/%s: %s: CA secret %s not found. Awaiting creation of secret.", w.Kind, w.Name, what, w.Secret)
}

// Pending lists what waits for a Secret the Set does not hold: ports with
// tls.mode Manual whose secretRef is missing, and CA issuers whose Secret
// is neither in the Set nor written by a Certificate in it.
func (s *Set) Pending() []Waiting {
	var out []Waiting
	for _, l := range s.Listeners {
		for i, p := range l.Spec.Ports {
			if p.TLS == nil || p.TLS.Mode != TLSManual || p.TLS.Manual == nil || p.TLS.Manual.SecretRef == "" {
				continue
			}
			if s.Secret(p.TLS.Manual.SecretRef) == nil {
				out = append(out, Waiting{Kind: l.Kind, Name: l.Metadata.Name,
					Path: idx("spec.ports", i) + ".tls.manual.secretRef", Port: p.Port, Secret: p.TLS.Manual.SecretRef})
			}
		}
	}
	for _, is := range s.Issuers {
		if ca := is.Spec.CA; ca != nil && ca.SecretName != "" && s.Secret(ca.SecretName) == nil && s.caWriter(ca.SecretName) == nil {
			out = append(out, Waiting{Kind: is.Kind, Name: is.Metadata.Name, Path: "spec.ca.secretName", Secret: ca.SecretName})
		}
	}
	return out
}

func itoa(i int) string { return strconv.Itoa(i) }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
