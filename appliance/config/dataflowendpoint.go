package config

import (
	"crypto/tls"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Endpoint types (AIO's EndpointType). The appliance bridges MQTT only.
const (
	EndpointMqtt            = "Mqtt"
	EndpointKafka           = "Kafka"
	EndpointDataLakeStorage = "DataLakeStorage"
	EndpointFabricOneLake   = "FabricOneLake"
	EndpointDataExplorer    = "DataExplorer"
	EndpointLocalStorage    = "LocalStorage"
	EndpointOpenTelemetry   = "OpenTelemetry"
)

var endpointTypes = []string{EndpointMqtt, EndpointKafka, EndpointDataLakeStorage, EndpointFabricOneLake,
	EndpointDataExplorer, EndpointLocalStorage, EndpointOpenTelemetry}

// How a DataflowEndpoint authenticates to its broker (AIO's MqttAuthMethod,
// and the appliance's UsernamePassword, MethodUsernamePassword). The cloud
// identities are refused: the appliance has none.
const (
	EndpointAnonymous                     = "Anonymous"
	EndpointX509Certificate               = "X509Certificate"
	EndpointServiceAccountToken           = "ServiceAccountToken"
	EndpointSystemAssignedManagedIdentity = "SystemAssignedManagedIdentity"
	EndpointUserAssignedManagedIdentity   = "UserAssignedManagedIdentity"
)

var endpointAuthMethods = []string{EndpointAnonymous, EndpointX509Certificate, MethodUsernamePassword,
	EndpointServiceAccountToken, EndpointSystemAssignedManagedIdentity, EndpointUserAssignedManagedIdentity}

// AIO's OperationalMode (a dataflow's mode, an endpoint's tls.mode), retain
// handling and cloud event attribute handling.
const (
	ModeEnabled              = "Enabled"
	ModeDisabled             = "Disabled"
	RetainKeep               = "Keep"  // forward the retain flag as it came
	RetainNever              = "Never" // clear the retain flag
	CloudEventsPropagate     = "Propagate"
	CloudEventsCreateOrRemap = "CreateOrRemap"
)

// DefaultEndpoint is the DataflowEndpoint every Dataflow has at one end,
// as in AIO: the appliance's own broker, which flows use in process. A
// configuration need not define it (AIO installs it; see addBuiltins); one
// that does (an exported AIO configuration carries AIO's, with host
// aio-broker:18883 and a service account token) may, but its mqttSettings
// are ignored, with a warning: the name always means the appliance's broker.
const DefaultEndpoint = "default"

// Defaults of an Mqtt endpoint's settings, AIO's.
const (
	DefaultEndpointQoS                  = 1
	DefaultEndpointKeepAliveSeconds     = 60
	DefaultEndpointSessionExpirySeconds = 3600
	DefaultEndpointMaxInflightMessages  = 100
)

// X.509 client certificate Secrets: a kubernetes.io/tls Secret (tls.crt,
// leaf first, and tls.key), or AIO's own layout, an Opaque Secret with
// these keys (kubectl create secret generic --from-file=client_cert.pem=...).
const (
	AIOClientCertKey          = "client_cert.pem"
	AIOClientKeyKey           = "client_key.pem"
	AIOClientIntermediatesKey = "client_intermediate_certs.pem" // optional
)

// Keys of a UsernamePassword endpoint's Secret.
const (
	EndpointUsernameKey = "username"
	EndpointPasswordKey = "password"
)

// DataflowEndpoint is AIO's DataflowEndpoint: a broker that Dataflows
// connect to. Only endpointType Mqtt is supported; AIO's other types are
// refused naming spec.endpointType. AIO's spec.hostType (a hint for its
// portal) is ignored with a warning.
type DataflowEndpoint struct {
	Object `json:",inline" yaml:",inline"`
	Spec   DataflowEndpointSpec `json:"spec" yaml:"spec"`
}

// DataflowEndpointSpec is DataflowEndpoint.spec.
type DataflowEndpointSpec struct {
	// EndpointType is what the endpoint is (required): Mqtt. AIO's Kafka,
	// DataLakeStorage, FabricOneLake, DataExplorer, LocalStorage and
	// OpenTelemetry are refused.
	EndpointType string `json:"endpointType" yaml:"endpointType"`
	// MqttSettings configures an Mqtt endpoint (required for one).
	MqttSettings *MqttEndpointSettings `json:"mqttSettings,omitempty" yaml:"mqttSettings,omitempty"`

	// The settings of AIO's other endpoint types, accepted only to be
	// refused with the endpointType that needs them.
	KafkaSettings           AIOSettings `json:"kafkaSettings,omitempty" yaml:"kafkaSettings,omitempty"`
	DataLakeStorageSettings AIOSettings `json:"dataLakeStorageSettings,omitempty" yaml:"dataLakeStorageSettings,omitempty"`
	FabricOneLakeSettings   AIOSettings `json:"fabricOneLakeSettings,omitempty" yaml:"fabricOneLakeSettings,omitempty"`
	DataExplorerSettings    AIOSettings `json:"dataExplorerSettings,omitempty" yaml:"dataExplorerSettings,omitempty"`
	LocalStorageSettings    AIOSettings `json:"localStorageSettings,omitempty" yaml:"localStorageSettings,omitempty"`
	OpenTelemetrySettings   AIOSettings `json:"openTelemetrySettings,omitempty" yaml:"openTelemetrySettings,omitempty"`
}

// AIOSettings is the settings block of an AIO feature the appliance does
// not support, kept as written only to be refused with a useful message
// (naming the feature, not "unknown field").
type AIOSettings map[string]any

// MqttEndpointSettings is an Mqtt endpoint's mqttSettings, AIO's fields.
type MqttEndpointSettings struct {
	// Host is the broker as host:port (required). The appliance's
	// extensions: a comma-separated list of host:port, tried in turn; with
	// protocol WebSockets, an entry may end in the HTTP path of the
	// broker's WebSocket endpoint (host:port/path; default /mqtt).
	Host string `json:"host,omitempty" yaml:"host,omitempty"`
	// Authentication is how the flow logs in to the broker (required).
	Authentication *EndpointAuthentication `json:"authentication,omitempty" yaml:"authentication,omitempty"`
	// TLS of the connection; default mode Enabled, trusting the system's
	// roots.
	TLS *EndpointTLS `json:"tls,omitempty" yaml:"tls,omitempty"`
	// ClientIDPrefix starts the client ids of the flows' connections;
	// optional.
	ClientIDPrefix string `json:"clientIdPrefix,omitempty" yaml:"clientIdPrefix,omitempty"`
	// QoS of the flows' subscriptions and publications: 0 or 1 (default 1).
	QoS *int `json:"qos,omitempty" yaml:"qos,omitempty"`
	// SessionExpirySeconds of the connection's session (default 3600).
	SessionExpirySeconds *int `json:"sessionExpirySeconds,omitempty" yaml:"sessionExpirySeconds,omitempty"`
	// KeepAliveSeconds of the connection, 0..65535 (default 60; 0: none).
	KeepAliveSeconds *int `json:"keepAliveSeconds,omitempty" yaml:"keepAliveSeconds,omitempty"`
	// MaxInflightMessages is the receive maximum when subscribing and the
	// unacknowledged messages allowed when publishing, 1..65535 (default
	// 100).
	MaxInflightMessages *int `json:"maxInflightMessages,omitempty" yaml:"maxInflightMessages,omitempty"`
	// Retain is Keep (forward the retain flag, default) or Never (clear it).
	Retain string `json:"retain,omitempty" yaml:"retain,omitempty"`
	// Protocol is Mqtt (default: MQTT over TCP) or WebSockets (MQTT over
	// WebSockets, subprotocol mqtt, at path /mqtt unless the host names
	// one; wss with tls.mode Enabled).
	Protocol string `json:"protocol,omitempty" yaml:"protocol,omitempty"`
	// CloudEventAttributes is AIO's cloud event handling: Propagate (what
	// the appliance does: user properties pass as they are) is accepted,
	// CreateOrRemap refused.
	CloudEventAttributes string `json:"cloudEventAttributes,omitempty" yaml:"cloudEventAttributes,omitempty"`
}

// EndpointAuthentication is an endpoint's authentication: a method and
// the settings of that method only.
type EndpointAuthentication struct {
	// Method is Anonymous, X509Certificate or UsernamePassword (required).
	Method string `json:"method" yaml:"method"`
	// X509CertificateSettings names the Secret with the client certificate
	// and key, for X509Certificate.
	X509CertificateSettings *EndpointSecretRef `json:"x509CertificateSettings,omitempty" yaml:"x509CertificateSettings,omitempty"`
	// UsernamePasswordSettings names an Opaque Secret with keys username
	// and password, for UsernamePassword (the appliance's extension).
	UsernamePasswordSettings *EndpointSecretRef `json:"usernamePasswordSettings,omitempty" yaml:"usernamePasswordSettings,omitempty"`

	// AIO's cloud identities' settings, accepted only to be refused.
	ServiceAccountTokenSettings           AIOSettings `json:"serviceAccountTokenSettings,omitempty" yaml:"serviceAccountTokenSettings,omitempty"`
	SystemAssignedManagedIdentitySettings AIOSettings `json:"systemAssignedManagedIdentitySettings,omitempty" yaml:"systemAssignedManagedIdentitySettings,omitempty"`
	UserAssignedManagedIdentitySettings   AIOSettings `json:"userAssignedManagedIdentitySettings,omitempty" yaml:"userAssignedManagedIdentitySettings,omitempty"`
}

// EndpointSecretRef names a Secret.
type EndpointSecretRef struct {
	SecretRef string `json:"secretRef" yaml:"secretRef"`
}

// EndpointTLS is an endpoint's TLS.
type EndpointTLS struct {
	// Mode is Enabled (default) or Disabled.
	Mode string `json:"mode,omitempty" yaml:"mode,omitempty"`
	// TrustedCACertificateConfigMapRef names a ConfigMap whose PEM
	// certificates (under any key, as trustedClientCaCert) are the CAs the
	// broker's certificate must chain to; without it, the system's roots.
	TrustedCACertificateConfigMapRef string `json:"trustedCaCertificateConfigMapRef,omitempty" yaml:"trustedCaCertificateConfigMapRef,omitempty"`
}

func (e *DataflowEndpoint) setDefaults() {
	m := e.Spec.MqttSettings
	if m == nil {
		return
	}
	setDefault(&m.QoS, DefaultEndpointQoS)
	setDefault(&m.SessionExpirySeconds, DefaultEndpointSessionExpirySeconds)
	setDefault(&m.KeepAliveSeconds, DefaultEndpointKeepAliveSeconds)
	setDefault(&m.MaxInflightMessages, DefaultEndpointMaxInflightMessages)
	if m.Retain == "" {
		m.Retain = RetainKeep
	}
	if m.Protocol == "" {
		m.Protocol = ProtocolMqtt
	}
	if m.TLS == nil {
		m.TLS = new(EndpointTLS)
	}
	if m.TLS.Mode == "" {
		m.TLS.Mode = ModeEnabled
	}
}

func setDefault(p **int, v int) {
	if *p == nil {
		*p = &v
	}
}

// otherSettings are the settings blocks of the endpoint types the
// appliance does not support, by field name.
func (sp *DataflowEndpointSpec) otherSettings() []struct {
	field, typ string
	given      bool
} {
	return []struct {
		field, typ string
		given      bool
	}{
		{"kafkaSettings", EndpointKafka, sp.KafkaSettings != nil},
		{"dataLakeStorageSettings", EndpointDataLakeStorage, sp.DataLakeStorageSettings != nil},
		{"fabricOneLakeSettings", EndpointFabricOneLake, sp.FabricOneLakeSettings != nil},
		{"dataExplorerSettings", EndpointDataExplorer, sp.DataExplorerSettings != nil},
		{"localStorageSettings", EndpointLocalStorage, sp.LocalStorageSettings != nil},
		{"openTelemetrySettings", EndpointOpenTelemetry, sp.OpenTelemetrySettings != nil},
	}
}

// unsupportedEndpoint says why an endpoint type is refused.
func unsupportedEndpoint(typ string) string {
	const mqttOnly = "the appliance bridges MQTT only: use endpointType Mqtt with mqttSettings " +
		"(Azure Event Grid's MQTT broker, AIO's broker or any MQTT broker)"
	switch typ {
	case EndpointKafka:
		return "Kafka endpoints (Kafka, Event Hubs, Fabric Real-Time Intelligence) are not supported on the appliance; " + mqttOnly
	case EndpointOpenTelemetry:
		return "OpenTelemetry endpoints are not supported on the appliance; " + mqttOnly
	}
	return typ + " is a storage endpoint, which the appliance does not write to; " + mqttOnly
}

func (e *DataflowEndpoint) validate(s *Set, rp *report) {
	sp := &e.Spec
	if !oneOf(rp, e, "spec.endpointType", sp.EndpointType, endpointTypes...) {
		return
	}
	if sp.EndpointType != EndpointMqtt {
		rp.add(e, "spec.endpointType", "%s", unsupportedEndpoint(sp.EndpointType))
		return
	}
	for _, o := range sp.otherSettings() {
		if o.given {
			rp.add(e, "spec."+o.field, "only for endpointType %s, not %s", o.typ, EndpointMqtt)
		}
	}
	if e.Metadata.Name == DefaultEndpoint {
		return // the appliance's own broker: its settings are ignored (see Warnings)
	}
	m := sp.MqttSettings
	if m == nil {
		rp.add(e, "spec.mqttSettings", "endpointType Mqtt needs mqttSettings with host and authentication")
		return
	}
	const p = "spec.mqttSettings."
	ws := m.Protocol == ProtocolWebSockets
	e.validateHosts(rp, p+"host", m.Host, ws)
	e.validateTLS(s, rp, p+"tls", m.TLS)
	e.validateAuth(s, rp, p+"authentication", m)
	if m.ClientIDPrefix != "" && (len(m.ClientIDPrefix) > 64 || !clientIDPrefix.MatchString(m.ClientIDPrefix)) {
		rp.add(e, p+"clientIdPrefix", "%q is not a valid client id prefix: use at most 64 letters, digits, '-', '_' and '.', starting with a letter or digit", m.ClientIDPrefix)
	}
	if m.QoS != nil && *m.QoS != 0 && *m.QoS != 1 {
		rp.add(e, p+"qos", "%d is not valid (want 0 or 1: AIO's dataflows use QoS 0 or 1)", *m.QoS)
	}
	e.limit(rp, p+"sessionExpirySeconds", m.SessionExpirySeconds, 0, 1<<31-1)
	e.limit(rp, p+"keepAliveSeconds", m.KeepAliveSeconds, 0, 65535)
	e.limit(rp, p+"maxInflightMessages", m.MaxInflightMessages, 1, 65535)
	oneOf(rp, e, p+"retain", m.Retain, RetainKeep, RetainNever)
	oneOf(rp, e, p+"protocol", m.Protocol, ProtocolMqtt, ProtocolWebSockets)
	if m.CloudEventAttributes != "" &&
		oneOf(rp, e, p+"cloudEventAttributes", m.CloudEventAttributes, CloudEventsPropagate, CloudEventsCreateOrRemap) &&
		m.CloudEventAttributes == CloudEventsCreateOrRemap {
		rp.add(e, p+"cloudEventAttributes", "CreateOrRemap is not supported on the appliance: flows forward messages with their user properties as they are (Propagate); remove it or use Propagate")
	}
}

// clientIDPrefix is what a client id prefix may hold: characters every
// broker accepts in a client id.
var clientIDPrefix = regexp.MustCompile(`^[A-Za-z0-9][-_.A-Za-z0-9]*$`)

func (e *DataflowEndpoint) limit(rp *report, path string, v *int, lo, hi int) {
	if v != nil && (*v < lo || *v > hi) {
		rp.add(e, path, "%d is out of range %d..%d", *v, lo, hi)
	}
}

// validateHosts checks host: one host:port, or a comma-separated list of
// them, each a DNS name or an IP address (IPv6 in brackets) and a port,
// and for WebSockets (ws) optionally a path.
func (e *DataflowEndpoint) validateHosts(rp *report, path, hosts string, ws bool) {
	if strings.TrimSpace(hosts) == "" {
		rp.add(e, path, "required: the broker as host:port (e.g. mqtt.example.net:8883), or several, comma-separated, tried in turn")
		return
	}
	list := splitHosts(hosts)
	for i, h := range list {
		where := ""
		if len(list) > 1 {
			where = " (entry " + itoa(i+1) + ")"
		}
		hp, urlPath, hasPath := strings.Cut(h, "/")
		switch {
		case hasPath && !ws:
			rp.add(e, path, "%q%s: a path is only for protocol WebSockets (want host:port)", h, where)
		case hasPath && !wsPath.MatchString("/"+urlPath):
			rp.add(e, path, "%q%s: path %q is not a URL path (letters, digits and -._~!$&'()*+,;=:@/%%)", h, where, "/"+urlPath)
		}
		if msg := checkHostPort(hp); msg != "" {
			rp.add(e, path, "%q%s: %s", h, where, msg)
		} else if slices.Contains(list[:i], h) {
			rp.add(e, path, "%q%s is listed twice", h, where)
		}
	}
}

// wsPath is what the path of a WebSocket endpoint may hold: RFC 3986's
// path characters, no query or fragment.
var wsPath = regexp.MustCompile(`^/[-A-Za-z0-9._~!$&'()*+,;=:@/%]*$`)

// splitHosts cuts a host list at commas, trimming spaces.
func splitHosts(hosts string) []string {
	var out []string
	for _, h := range strings.Split(hosts, ",") {
		out = append(out, strings.TrimSpace(h))
	}
	return out
}

// checkHostPort checks one host:port.
func checkHostPort(hp string) string {
	if hp == "" {
		return "empty entry (want host:port)"
	}
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		return "not host:port (want e.g. mqtt.example.net:8883, or [fd00::1]:8883)"
	}
	switch {
	case host == "":
		return "no host name"
	case net.ParseIP(host) == nil && (strings.HasPrefix(host, "*.") || !isDNSName(host)):
		return "host " + strconv.Quote(host) + " is neither a DNS name nor an IP address"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "port " + strconv.Quote(port) + " is not a port number (1..65535)"
	}
	return ""
}

func (e *DataflowEndpoint) validateTLS(s *Set, rp *report, path string, t *EndpointTLS) {
	if t == nil || !oneOf(rp, e, path+".mode", t.Mode, ModeEnabled, ModeDisabled) || t.TrustedCACertificateConfigMapRef == "" {
		return
	}
	ref := t.TrustedCACertificateConfigMapRef
	switch cm := s.ConfigMap(ref); {
	case t.Mode == ModeDisabled:
		rp.add(e, path+".trustedCaCertificateConfigMapRef", "only for mode Enabled")
	case cm == nil:
		rp.add(e, path+".trustedCaCertificateConfigMapRef", "ConfigMap/%s not found (it holds the PEM CA certificates the broker's certificate must chain to)", ref)
	case !cm.hasCertificates():
		rp.add(e, path+".trustedCaCertificateConfigMapRef", "%s holds no PEM CERTIFICATE", cm.Ref())
	}
}

func (e *DataflowEndpoint) validateAuth(s *Set, rp *report, path string, m *MqttEndpointSettings) {
	a := m.Authentication
	if a == nil {
		rp.add(e, path, "required: method Anonymous, X509Certificate (a client certificate Secret) or UsernamePassword (a Secret with username and password)")
		return
	}
	if !oneOf(rp, e, path+".method", a.Method, endpointAuthMethods...) {
		return
	}
	given := []struct {
		method, field string
		given         bool
	}{
		{EndpointX509Certificate, "x509CertificateSettings", a.X509CertificateSettings != nil},
		{MethodUsernamePassword, "usernamePasswordSettings", a.UsernamePasswordSettings != nil},
		{EndpointServiceAccountToken, "serviceAccountTokenSettings", a.ServiceAccountTokenSettings != nil},
		{EndpointSystemAssignedManagedIdentity, "systemAssignedManagedIdentitySettings", a.SystemAssignedManagedIdentitySettings != nil},
		{EndpointUserAssignedManagedIdentity, "userAssignedManagedIdentitySettings", a.UserAssignedManagedIdentitySettings != nil},
	}
	for _, g := range given {
		if g.given && g.method != a.Method {
			rp.add(e, path+"."+g.field, "only for method %s, not %s", g.method, a.Method)
		}
	}
	const instead = "use X509Certificate (a client certificate Secret; Azure Event Grid's MQTT broker accepts them) or UsernamePassword (a Secret with username and password) instead"
	switch a.Method {
	case EndpointServiceAccountToken:
		rp.add(e, path+".method", "ServiceAccountToken needs Kubernetes service accounts, which do not exist on the appliance; %s", instead)
	case EndpointSystemAssignedManagedIdentity, EndpointUserAssignedManagedIdentity:
		rp.add(e, path+".method", "%s needs an Azure managed identity, which the appliance does not have; %s", a.Method, instead)
	case EndpointX509Certificate:
		if m.TLS != nil && m.TLS.Mode == ModeDisabled {
			rp.add(e, path+".method", "X509Certificate needs tls.mode Enabled: the client certificate is presented in the TLS handshake")
		}
		ref := ""
		if a.X509CertificateSettings != nil {
			ref = a.X509CertificateSettings.SecretRef
		}
		e.validateX509Secret(s, rp, path+".x509CertificateSettings.secretRef", ref)
	case MethodUsernamePassword:
		ref := ""
		if a.UsernamePasswordSettings != nil {
			ref = a.UsernamePasswordSettings.SecretRef
		}
		e.validatePasswordSecret(s, rp, path+".usernamePasswordSettings.secretRef", ref)
	}
}

func (e *DataflowEndpoint) validateX509Secret(s *Set, rp *report, path, ref string) {
	if ref == "" {
		rp.add(e, path, "method X509Certificate needs the name of a kubernetes.io/tls Secret with the client certificate (tls.crt) and key (tls.key)")
		return
	}
	sec := s.Secret(ref)
	if sec == nil {
		rp.add(e, path, "Secret/%s not found", ref)
		return
	}
	crt, key, msg := clientCertificate(sec)
	if msg != "" {
		rp.add(e, path, "%s %s", sec.Ref(), msg)
		return
	}
	if sec.Type == SecretTypeTLS && (checkCertPEM(crt) != "" || checkKeyPEM(key) != "") {
		return // the Secret's own validation reports it
	}
	if sec.Type != SecretTypeTLS {
		bad := false
		for _, k := range []string{AIOClientCertKey, AIOClientIntermediatesKey} {
			if b, ok := sec.Bytes(k); ok {
				if msg := checkCertPEM(b); msg != "" {
					rp.add(sec, sec.dataPath(k), "%s", msg)
					bad = true
				}
			}
		}
		if msg := checkKeyPEM(key); msg != "" {
			rp.add(sec, sec.dataPath(AIOClientKeyKey), "%s", msg)
			bad = true
		}
		if bad {
			return
		}
	}
	if _, err := tls.X509KeyPair(crt, key); err != nil {
		rp.add(e, path, "%s: the client certificate and key do not go together: %v", sec.Ref(), err)
	}
}

// clientCertificate returns the client certificate chain (leaf first) and
// key of an X509Certificate endpoint's Secret, in either layout, or what
// is missing.
func clientCertificate(sec *Secret) (crt, key []byte, missing string) {
	if sec.Type == SecretTypeTLS {
		crt, _ = sec.Bytes("tls.crt")
		key, _ = sec.Bytes("tls.key")
		return crt, key, ""
	}
	crt, okc := sec.Bytes(AIOClientCertKey)
	key, okk := sec.Bytes(AIOClientKeyKey)
	if !okc || !okk {
		return nil, nil, "has type " + sec.Type + " without " + AIOClientCertKey + " and " + AIOClientKeyKey +
			": want a " + SecretTypeTLS + " Secret (tls.crt, tls.key) or AIO's layout (" + AIOClientCertKey + ", " +
			AIOClientKeyKey + ", optionally " + AIOClientIntermediatesKey + ")"
	}
	if in, ok := sec.Bytes(AIOClientIntermediatesKey); ok && len(in) > 0 {
		crt = append(append(slices.Clip(crt), '\n'), in...)
	}
	return crt, key, ""
}

func (e *DataflowEndpoint) validatePasswordSecret(s *Set, rp *report, path, ref string) {
	if ref == "" {
		rp.add(e, path, "method UsernamePassword needs the name of a Secret with keys %s and %s", EndpointUsernameKey, EndpointPasswordKey)
		return
	}
	sec := s.Secret(ref)
	if sec == nil {
		rp.add(e, path, "Secret/%s not found", ref)
		return
	}
	for _, k := range []string{EndpointUsernameKey, EndpointPasswordKey} {
		if _, ok := sec.Bytes(k); !ok {
			rp.add(e, path, "%s has no key %q", sec.Ref(), k)
		}
	}
	if u, ok := sec.Bytes(EndpointUsernameKey); ok && len(u) == 0 {
		rp.add(sec, sec.dataPath(EndpointUsernameKey), "empty username")
	}
}

// endpointWarnings explains what an endpoint accepts but probably does not
// mean: settings of a defined default endpoint, which are ignored, and a
// password sent without TLS.
func (s *Set) endpointWarnings(rp *report) {
	for _, e := range s.DataflowEndpoints {
		m := e.Spec.MqttSettings
		switch {
		case m == nil || e.Spec.EndpointType != EndpointMqtt:
		case e.Metadata.Name == DefaultEndpoint:
			rp.add(e, "spec.mqttSettings", "DataflowEndpoint/default is the appliance's own broker, which flows use in process: "+
				"its mqttSettings (in AIO, aio-broker:18883 with a service account token) are ignored")
		case m.Authentication != nil && m.Authentication.Method == MethodUsernamePassword && m.TLS != nil && m.TLS.Mode == ModeDisabled:
			rp.add(e, "spec.mqttSettings.tls.mode", "Disabled: the password crosses the network in clear text; use mode Enabled")
		}
	}
}
