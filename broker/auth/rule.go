package auth

import (
	"fmt"
	"strings"
)

// Principal is an authenticated client as authorization sees it.
type Principal struct {
	ClientID string
	// Username is the verified username, or "" (see the package doc on
	// which methods verify it).
	Username string
	// Attributes are the authorization attributes the authentication
	// method supplied (certificate chain, password file, ...).
	Attributes map[string]string
}

// Rule is one entry of spec.authorizationPolicies.rules in a
// BrokerAuthorization.
type Rule struct {
	Principals Principals           // principals
	Broker     []BrokerResource     // brokerResources (required)
	StateStore []StateStoreResource // stateStoreResources
}

// Principals selects the clients a Rule applies to. A client matches if any
// entry matches: one of the client IDs, one of the usernames, or all pairs
// of one attribute map. Client IDs and usernames may contain tokens.
type Principals struct {
	ClientIDs  []string            // principals.clientIds
	Usernames  []string            // principals.usernames
	Attributes []map[string]string // principals.attributes
}

// BrokerResource grants one MQTT method.
type BrokerResource struct {
	Method Method // brokerResources[].method
	// ClientIDs (clientIds, Connect only) restricts which client IDs may
	// connect: patterns where '*' matches any run of characters.
	ClientIDs []string
	// Topics (topics, Publish and Subscribe only) are topic filters.
	Topics []string
}

// StateStoreResource grants access to state store keys.
type StateStoreResource struct {
	Method  KeyMethod // stateStoreResources[].method
	KeyType KeyType   // stateStoreResources[].keyType
	Keys    []string  // stateStoreResources[].keys
}

// Method is an MQTT operation a BrokerResource grants. The zero value is
// invalid.
type Method uint8

// Methods, spelled as in AIO.
const (
	Connect Method = iota + 1
	Publish
	Subscribe
)

var methodNames = []string{Connect: "Connect", Publish: "Publish", Subscribe: "Subscribe"}

func (m Method) String() string {
	if int(m) < len(methodNames) && m != 0 {
		return methodNames[m]
	}
	return fmt.Sprintf("Method(%d)", uint8(m))
}

// ParseMethod parses an AIO broker method name, ignoring case.
func ParseMethod(s string) (Method, error) {
	for m, name := range methodNames {
		if m != 0 && strings.EqualFold(s, name) {
			return Method(m), nil
		}
	}
	return 0, fmt.Errorf("auth: unknown broker method %q (want Connect, Publish or Subscribe)", s)
}

// KeyMethod is a set of state store access levels: Read covers GET and
// KEYNOTIFY, Write covers SET, DEL and VDEL. The zero value is invalid.
type KeyMethod uint8

// Key methods, spelled as in AIO.
const (
	Read KeyMethod = 1 << iota
	Write
	ReadWrite = Read | Write
)

func (m KeyMethod) String() string {
	switch m {
	case Read:
		return "Read"
	case Write:
		return "Write"
	case ReadWrite:
		return "ReadWrite"
	}
	return fmt.Sprintf("KeyMethod(%d)", uint8(m))
}

// ParseKeyMethod parses an AIO state store method name, ignoring case.
func ParseKeyMethod(s string) (KeyMethod, error) {
	for _, m := range []KeyMethod{Read, Write, ReadWrite} {
		if strings.EqualFold(s, m.String()) {
			return m, nil
		}
	}
	return 0, fmt.Errorf("auth: unknown state store method %q (want Read, Write or ReadWrite)", s)
}

// KeyType says how state store keys are matched. The zero value is Pattern,
// AIO's documented default.
type KeyType uint8

// Key types, spelled as in AIO.
const (
	// Pattern keys are globs in path.Match syntax ('*', '?', '[...]',
	// '\\' escapes), except that '*' and '?' also match '/'. Tokens are
	// allowed.
	Pattern KeyType = iota
	// String keys match exactly; '*', '?' and '[' are literal.
	String
	// Binary keys are base64 (standard encoding) and match the decoded
	// bytes exactly.
	Binary
)

var keyTypeNames = []string{Pattern: "Pattern", String: "String", Binary: "Binary"}

func (t KeyType) String() string {
	if int(t) < len(keyTypeNames) {
		return keyTypeNames[t]
	}
	return fmt.Sprintf("KeyType(%d)", uint8(t))
}

// ParseKeyType parses an AIO key type name, ignoring case; "" is Pattern.
func ParseKeyType(s string) (KeyType, error) {
	if s == "" {
		return Pattern, nil
	}
	for t, name := range keyTypeNames {
		if strings.EqualFold(s, name) {
			return KeyType(t), nil
		}
	}
	return 0, fmt.Errorf("auth: unknown state store key type %q (want Pattern, String or Binary)", s)
}

// FieldError is a validation error of one field of a rule list. Path names
// the field as in the YAML, e.g. "rules[1].brokerResources[0].topics[2]".
type FieldError struct {
	Path string
	Err  error
}

func (e *FieldError) Error() string { return "auth: " + e.Path + ": " + e.Err.Error() }

func (e *FieldError) Unwrap() error { return e.Err }
