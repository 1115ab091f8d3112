package config

import "strings"

// Names of resources every AIO cluster has, which AIO manifests refer to
// without defining them. A configuration that refers to one and does not
// define it gets the appliance's equivalent (see addBuiltins); one that
// defines a resource of that name uses its own.
const (
	// BuiltinIssuer is AIO's ClusterIssuer for the broker's server
	// certificates. On the appliance it is the quick-start root CA of the
	// embedded default (Certificate and Secret quickstart-root-ca, created
	// once and kept under DATA/certs), whose certificate the appliance
	// exports as DATA/ca.crt.
	BuiltinIssuer = "azure-iot-operations-aio-certificate-issuer"
	// BuiltinAuthentication is AIO's BrokerAuthentication of its default
	// listener. AIO's checks Kubernetes service account tokens (audience
	// aio-internal), which do not exist off Kubernetes; the appliance's is
	// the embedded default's: UsernamePassword with the password file in
	// Secret quickstart-passwords (key passwords), which a configuration
	// may bring. Without that Secret the file is empty: nobody logs in.
	BuiltinAuthentication = "default"
)

// builtinSelfSigned is the embedded default's issuer of the quick-start
// root CA.
const builtinSelfSigned = "quickstart-selfsigned-issuer"

// BuiltinEndpoint returns the appliance's DataflowEndpoint default, which
// a configuration gets when a Dataflow refers to it without defining it, as
// AIO installs one: the appliance's own broker, reached in process (its
// settings are not read; see DefaultEndpoint).
func BuiltinEndpoint() *DataflowEndpoint {
	return &DataflowEndpoint{
		Object: Object{APIVersion: APIVersionConnectivity, Kind: "DataflowEndpoint", Metadata: ObjectMeta{Name: DefaultEndpoint}},
		Spec:   DataflowEndpointSpec{EndpointType: EndpointMqtt},
	}
}

// BuiltIn reports whether the appliance supplied the resource because
// the configuration refers to it without defining it (see
// BuiltinIssuer, BuiltinAuthentication, BuiltinEndpoint).
func (o *Object) BuiltIn() bool { return o.builtin }

// BuiltIns returns the resources the appliance supplied to s.
func (s *Set) BuiltIns() []Resource {
	var out []Resource
	for _, r := range s.All() {
		if r.object().builtin {
			out = append(out, r)
		}
	}
	return out
}

// addBuiltins adds the appliance's equivalents of AIO's built-in
// resources that s refers to but does not define, taken from the
// embedded default (so the quick-start CA is the one the default uses):
// for BrokerAuthentication default, it and the Secret
// quickstart-passwords (unless s has it); for ClusterIssuer
// BuiltinIssuer, a ca issuer of Secret quickstart-root-ca and, unless s
// brings that Secret or a Certificate writing it, the Certificate that
// makes it and its self-signed Issuer; for DataflowEndpoint default,
// BuiltinEndpoint. A resource s defines under one of these names is never
// replaced.
func (s *Set) addBuiltins() {
	if s.refersToDefaultEndpoint() && s.DataflowEndpoint(DefaultEndpoint) == nil {
		ep := BuiltinEndpoint()
		ep.builtin = true
		s.Add(ep)
	}
	var wantAuthn, wantIssuer bool
	for _, l := range s.Listeners {
		for _, p := range l.Spec.Ports {
			wantAuthn = wantAuthn || p.AuthenticationRef == BuiltinAuthentication
			if p.TLS != nil && p.TLS.CertManagerCertificateSpec != nil {
				wantIssuer = wantIssuer || isBuiltinIssuer(p.TLS.CertManagerCertificateSpec.IssuerRef)
			}
		}
	}
	for _, c := range s.Certificates {
		wantIssuer = wantIssuer || isBuiltinIssuer(c.Spec.IssuerRef)
	}
	wantAuthn = wantAuthn && s.Authentication(BuiltinAuthentication) == nil
	wantIssuer = wantIssuer && s.Issuer("ClusterIssuer", BuiltinIssuer) == nil
	if !wantAuthn && !wantIssuer {
		return
	}
	def := Default()
	add := func(r Resource) {
		o := r.object()
		o.builtin = true
		o.src = source{} // no file: errors name the resource only
		s.Add(r)
	}
	if wantAuthn {
		add(def.Authentication(BuiltinAuthentication))
		if s.Secret(QuickstartPasswords) == nil {
			add(def.Secret(QuickstartPasswords))
		}
	}
	if wantIssuer {
		is := def.Issuer("Issuer", QuickstartCAIssuer)
		is.Kind, is.Metadata.Name = "ClusterIssuer", BuiltinIssuer
		add(is)
		if s.Secret(QuickstartCASecret) != nil || s.caWriter(QuickstartCASecret) != nil || s.Certificate(QuickstartCASecret) != nil {
			return // the configuration brings the CA
		}
		if ss := s.Issuer("Issuer", builtinSelfSigned); ss != nil && ss.Spec.SelfSigned == nil {
			return // another issuer by that name: the CA only from DATA, if made before
		} else if ss == nil {
			add(def.Issuer("Issuer", builtinSelfSigned))
		}
		add(def.Certificate(QuickstartCASecret))
	}
}

// refersToDefaultEndpoint reports whether a Dataflow of s names
// DefaultEndpoint.
func (s *Set) refersToDefaultEndpoint() bool {
	for _, d := range s.Dataflows {
		for _, op := range d.Spec.Operations {
			if op.SourceSettings != nil && op.SourceSettings.EndpointRef == DefaultEndpoint ||
				op.DestinationSettings != nil && op.DestinationSettings.EndpointRef == DefaultEndpoint {
				return true
			}
		}
	}
	return false
}

// isBuiltinIssuer reports whether ref names AIO's built-in ClusterIssuer.
func isBuiltinIssuer(ref IssuerRef) bool {
	return ref.Kind == "ClusterIssuer" && ref.Name == BuiltinIssuer
}

// builtinWarnings explains every port that uses the built-in
// BrokerAuthentication default: what it checks on the appliance, and
// that AIO's does something else.
func (s *Set) builtinWarnings(rp *report) {
	ba := s.Authentication(BuiltinAuthentication)
	if ba == nil || !ba.builtin {
		return
	}
	var msg strings.Builder
	msg.WriteString("BrokerAuthentication/default is not defined, so the appliance's built-in one applies: " +
		"UsernamePassword with the password file in Secret " + QuickstartPasswords + " (key " + DefaultPasswordKey + ")")
	if sec := s.Secret(QuickstartPasswords); sec == nil || sec.builtin {
		msg.WriteString(", which this configuration does not define: nobody can log in on this port")
	}
	msg.WriteString(". AIO's default authenticates Kubernetes service account tokens (audience aio-internal), " +
		"which do not exist on the appliance; define Secret " + QuickstartPasswords + " with users, or a BrokerAuthentication named default of your own")
	for _, l := range s.Listeners {
		for i, p := range l.Spec.Ports {
			if p.AuthenticationRef == BuiltinAuthentication {
				rp.add(l, idx("spec.ports", i)+".authenticationRef", "%s", msg.String())
			}
		}
	}
}
