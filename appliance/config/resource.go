package config

import (
	"github.com/goccy/go-yaml/ast"
)

// API versions the loader accepts.
const (
	APIVersionAIO         = "mqttbroker.iotoperations.azure.com/v1"
	APIVersionAIOBeta     = "mqttbroker.iotoperations.azure.com/v1beta1"
	APIVersionCertManager = "cert-manager.io/v1"
	// AIO's dataflows (Dataflow, DataflowEndpoint).
	APIVersionConnectivity     = "connectivity.iotoperations.azure.com/v1"
	APIVersionConnectivityBeta = "connectivity.iotoperations.azure.com/v1beta1"
	APIVersionCore             = "v1"
	// APIVersionAppliance (device.go) serves the appliance's own kinds.
)

// Object is what every resource has: type and metadata. It also remembers
// where the resource was read from, so errors can name file and line.
type Object struct {
	APIVersion string     `json:"apiVersion" yaml:"apiVersion"`
	Kind       string     `json:"kind" yaml:"kind"`
	Metadata   ObjectMeta `json:"metadata" yaml:"metadata"`

	src source
	// warnings are what parsing found accepted but meaningless here (see
	// Set.Warnings); set by parseDocument.
	warnings Errors
	// builtin says the appliance supplied the resource for a reference
	// the configuration does not define (Set.addBuiltins sets it).
	builtin bool
}

// ObjectMeta is Kubernetes' metadata. Only name matters on the appliance;
// namespace, labels and annotations are kept but mean nothing, and the
// server-set fields (uid, resourceVersion, creationTimestamp, ...) are
// dropped while loading.
type ObjectMeta struct {
	Name        string            `json:"name" yaml:"name"`
	Namespace   string            `json:"namespace,omitempty" yaml:"namespace,omitempty"`
	Labels      map[string]string `json:"labels,omitempty" yaml:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty" yaml:"annotations,omitempty"`
}

// source is where a resource came from.
type source struct {
	file   string
	offset int      // lines before the document inside file
	node   ast.Node // the document's root mapping; nil for resources built in code
}

// Resource is one configuration document: *BrokerListener,
// *BrokerAuthentication, *BrokerAuthorization, *Broker,
// *DataflowEndpoint, *Dataflow, *Secret, *ConfigMap, *Issuer (Issuer and
// ClusterIssuer), *Certificate or *Device.
type Resource interface {
	// Ref returns "Kind/name".
	Ref() string
	// Position returns the file and line of the document's metadata.name.
	Position() (file string, line int)

	object() *Object
	setDefaults()
	validate(s *Set, rp *report)
}

// Ref returns "Kind/name".
func (o *Object) Ref() string { return o.Kind + "/" + o.Metadata.Name }

// Position returns the file and line of the resource's metadata.name.
func (o *Object) Position() (string, int) { return o.src.file, o.line("metadata.name") }

// FieldPosition returns the file and line of the field at path
// ("spec.interfaces[0].name"), or of its nearest parent: for errors found
// outside this package about a loaded resource.
func (o *Object) FieldPosition(path string) (string, int) { return o.src.file, o.line(path) }

func (o *Object) object() *Object { return o }

// line returns the line of path in the document, or of the nearest parent
// that exists.
func (o *Object) line(path string) int {
	n := o.src.node
	if n == nil {
		return 0
	}
	if path == "" {
		path = "metadata.name"
	}
	line := tokenLine(n)
	for i, seg := range splitPath(path) {
		next, l := child(n, seg)
		if next == nil {
			if i == 0 && path != "metadata.name" {
				return o.line("metadata.name") // a missing top-level field: point at the resource
			}
			break
		}
		n, line = next, l
	}
	if line == 0 {
		return 0
	}
	return line + o.src.offset
}

// Set is a whole configuration: every resource, grouped by kind, each group
// in load order. The zero Set is empty and ready to use.
type Set struct {
	Brokers         []*Broker
	Listeners       []*BrokerListener
	Authentications []*BrokerAuthentication
	Authorizations  []*BrokerAuthorization
	// DataflowEndpoints are the brokers Dataflows connect to; Dataflows
	// copy messages between the appliance's broker and one of them.
	DataflowEndpoints []*DataflowEndpoint
	Dataflows         []*Dataflow
	Issuers           []*Issuer // kinds Issuer and ClusterIssuer
	Certificates      []*Certificate
	Secrets           []*Secret
	ConfigMaps        []*ConfigMap
	// Devices holds the device's own settings (at most one).
	Devices []*Device
}

// Add appends resources to their kind's group.
func (s *Set) Add(rs ...Resource) {
	for _, r := range rs {
		switch r := r.(type) {
		case *Broker:
			s.Brokers = append(s.Brokers, r)
		case *BrokerListener:
			s.Listeners = append(s.Listeners, r)
		case *BrokerAuthentication:
			s.Authentications = append(s.Authentications, r)
		case *BrokerAuthorization:
			s.Authorizations = append(s.Authorizations, r)
		case *DataflowEndpoint:
			s.DataflowEndpoints = append(s.DataflowEndpoints, r)
		case *Dataflow:
			s.Dataflows = append(s.Dataflows, r)
		case *Issuer:
			s.Issuers = append(s.Issuers, r)
		case *Certificate:
			s.Certificates = append(s.Certificates, r)
		case *Secret:
			s.Secrets = append(s.Secrets, r)
		case *ConfigMap:
			s.ConfigMaps = append(s.ConfigMaps, r)
		case *Device:
			s.Devices = append(s.Devices, r)
		}
	}
}

// All returns every resource, kind by kind in the order of Set's fields.
func (s *Set) All() []Resource {
	var out []Resource
	out = appendAll(out, s.Brokers)
	out = appendAll(out, s.Listeners)
	out = appendAll(out, s.Authentications)
	out = appendAll(out, s.Authorizations)
	out = appendAll(out, s.DataflowEndpoints)
	out = appendAll(out, s.Dataflows)
	out = appendAll(out, s.Issuers)
	out = appendAll(out, s.Certificates)
	out = appendAll(out, s.Secrets)
	out = appendAll(out, s.ConfigMaps)
	return appendAll(out, s.Devices)
}

func appendAll[T Resource](out []Resource, rs []T) []Resource {
	for _, r := range rs {
		out = append(out, r)
	}
	return out
}

func find[T Resource](rs []T, kind, name string) T {
	for _, r := range rs {
		if o := r.object(); o.Metadata.Name == name && (kind == "" || o.Kind == kind) {
			return r
		}
	}
	var zero T
	return zero
}

// Listener returns the BrokerListener called name, or nil.
func (s *Set) Listener(name string) *BrokerListener { return find(s.Listeners, "", name) }

// Authentication returns the BrokerAuthentication called name, or nil.
func (s *Set) Authentication(name string) *BrokerAuthentication {
	return find(s.Authentications, "", name)
}

// Authorization returns the BrokerAuthorization called name, or nil.
func (s *Set) Authorization(name string) *BrokerAuthorization {
	return find(s.Authorizations, "", name)
}

// DataflowEndpoint returns the DataflowEndpoint called name, or nil. A
// loaded Set has DefaultEndpoint when a Dataflow refers to it (see
// addBuiltins); a Dataflow's reference to it is valid either way.
func (s *Set) DataflowEndpoint(name string) *DataflowEndpoint {
	return find(s.DataflowEndpoints, "", name)
}

// Dataflow returns the Dataflow called name, or nil.
func (s *Set) Dataflow(name string) *Dataflow { return find(s.Dataflows, "", name) }

// Issuer returns the Issuer or ClusterIssuer (kind) called name, or nil.
func (s *Set) Issuer(kind, name string) *Issuer { return find(s.Issuers, kind, name) }

// Certificate returns the Certificate called name, or nil.
func (s *Set) Certificate(name string) *Certificate { return find(s.Certificates, "", name) }

// Secret returns the Secret called name, or nil.
func (s *Set) Secret(name string) *Secret { return find(s.Secrets, "", name) }

// ConfigMap returns the ConfigMap called name, or nil.
func (s *Set) ConfigMap(name string) *ConfigMap { return find(s.ConfigMaps, "", name) }

// Broker returns the Broker resource, or nil if the Set has none (then the
// broker runs with its default limits).
func (s *Set) Broker() *Broker {
	if len(s.Brokers) == 0 {
		return nil
	}
	return s.Brokers[0]
}
