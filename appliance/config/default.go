package config

import (
	_ "embed"
	"fmt"
)

//go:embed default.yaml
var defaultYAML []byte

// DefaultFile is the name errors and positions give the embedded default.
const DefaultFile = "default.yaml"

// Names in the embedded default that the appliance refers to.
const (
	DefaultListener     = "default"              // port 18883, TLS, authentication
	DefaultLoopbackPort = 1883                   // plain port on the ClusterIp listener
	QuickstartCASecret  = "quickstart-root-ca"   // the quick-start root CA clients trust
	QuickstartCAIssuer  = "quickstart-ca-issuer" // issues the 18883 server certificate
	QuickstartPasswords = "quickstart-passwords" // the (empty) password file Secret
)

// DefaultYAML returns the embedded default configuration's source.
func DefaultYAML() []byte { return append([]byte(nil), defaultYAML...) }

// Default returns a fresh copy of the embedded default configuration
// (SPEC §2): see default.yaml for what it holds and why. It passes
// Validate.
func Default() *Set {
	rs, err := Parse(DefaultFile, defaultYAML)
	if err != nil {
		panic(fmt.Sprintf("config: embedded default: %v", err)) // a test keeps this from happening
	}
	s := new(Set)
	s.Add(rs...)
	return s
}
